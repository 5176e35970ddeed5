package backend

import (
	"errors"
	"io/fs"
	"strings"
	"syscall"
	"testing"
)

func TestDeviceErrorPermission(t *testing.T) {
	cause := &fs.PathError{Op: "open", Path: "/dev/tpmrm0", Err: syscall.EACCES}
	err := deviceError("/dev/tpmrm0", cause)
	if !errors.Is(err, fs.ErrPermission) || errors.Is(err, ErrNoTPM) {
		t.Errorf("error %v: want fs.ErrPermission and not ErrNoTPM", err)
	}
	for _, want := range []string{"opening TPM at /dev/tpmrm0: permission denied", "root"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
}
