//go:build !linux && !windows

package backend

import (
	"fmt"
	"runtime"

	"github.com/google/go-tpm/tpm2/transport"
)

const defaultDevicePath = ""

// openDevice fails: this OS has no TPM device support here.
func openDevice(string) (transport.TPMCloser, error) {
	return nil, fmt.Errorf("%w: no TPM device support on %s: %s", ErrNoTPM, runtime.GOOS, useInstead)
}
