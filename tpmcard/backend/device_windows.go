//go:build windows

package backend

import (
	"errors"
	"fmt"

	"github.com/google/go-tpm/tpm2/transport"
	"github.com/google/go-tpm/tpm2/transport/windowstpm"
	"github.com/google/go-tpm/tpmutil/tbs"
)

// defaultDevicePath is empty: Windows reaches the TPM through TBS.
const defaultDevicePath = ""

// openDevice opens the TPM through the TPM Base Services.
func openDevice(path string) (transport.TPMCloser, error) {
	if path != "" {
		return nil, fmt.Errorf("opening TPM at %s: Windows reaches the TPM through TBS: use --tpm device without a path", path)
	}
	t, err := windowstpm.Open()
	switch {
	case err == nil:
		return t, nil
	case errors.Is(err, tbs.ErrTPMNotFound):
		return nil, fmt.Errorf("%w (TBS found none): %s: %w", ErrNoTPM, useInstead, err)
	case errors.Is(err, tbs.ErrAccessDenied):
		return nil, fmt.Errorf("opening TPM through TBS: access denied: run as an administrator or as the service account: %w", err)
	case errors.Is(err, windowstpm.ErrNotTPM20):
		return nil, fmt.Errorf("%w 2.0 (TBS found an older TPM): %s: %w", ErrNoTPM, useInstead, err)
	}
	return nil, fmt.Errorf("opening TPM through TBS: %w", err)
}
