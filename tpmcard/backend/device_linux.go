//go:build linux

package backend

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"strconv"
	"syscall"

	"github.com/google/go-tpm/tpm2/transport"
	"github.com/google/go-tpm/tpm2/transport/linuxtpm"
)

// defaultDevicePath is the kernel's resource-managed TPM device.
const defaultDevicePath = "/dev/tpmrm0"

// openDevice opens a TPM character device.
func openDevice(path string) (transport.TPMCloser, error) {
	if path == "" {
		path = defaultDevicePath
	}
	t, err := linuxtpm.Open(path)
	if err != nil {
		return nil, deviceError(path, err)
	}
	return t, nil
}

// deviceError says what to do about a device that would not open.
func deviceError(path string, err error) error {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if path == defaultDevicePath {
			if _, serr := os.Stat("/dev/tpm0"); serr == nil {
				return fmt.Errorf("%w at %s (the kernel resource manager) but /dev/tpm0 exists: use --tpm device:/dev/tpm0 if no other program uses the TPM, or %s: %w",
					ErrNoTPM, path, useInstead, err)
			}
		}
		return fmt.Errorf("%w at %s: %s: %w", ErrNoTPM, path, useInstead, err)
	case errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("opening TPM at %s: permission denied: %s: %w", path, permissionHint(path), err)
	case errors.Is(err, linuxtpm.ErrFileIsNotDevice):
		return fmt.Errorf("opening TPM at %s: not a TPM character device: %w", path, err)
	}
	return fmt.Errorf("opening TPM at %s: %w", path, err)
}

// permissionHint names the group that may use the device, when it can.
func permissionHint(path string) string {
	const generic = "run as root or as a member of the device's group (often tss)"
	fi, err := os.Stat(path)
	if err != nil {
		return generic
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || st.Gid == 0 || fi.Mode().Perm()&0o060 != 0o060 {
		return generic
	}
	g, err := user.LookupGroupId(strconv.FormatUint(uint64(st.Gid), 10))
	if err != nil {
		return generic
	}
	return fmt.Sprintf("run as root or add the user to group %q, which may read and write %s", g.Name, path)
}
