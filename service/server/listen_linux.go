//go:build linux

package server

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// Permissions of what the server creates. Authorization is decided per
// request from the peer's kernel-reported credentials, so the socket is
// reachable by every local user: a denied peer gets PermissionDenied and an
// audit line instead of a silent EACCES, and the card group and the admin
// group may differ (a socket file has one group). Reaching the socket
// grants nothing by itself.
const (
	runtimeDirMode = 0o755
	socketMode     = 0o666
)

// listen prepares the socket's directory, removes a stale socket and
// listens.
//
// The directory is created 0755 if missing. An existing directory is left
// as it is (it may be shared, such as /run or a test's temporary
// directory), except that a world-writable one without the sticky bit is
// refused: anybody could replace the socket there.
//
// A file already at the socket path is removed only if it is a socket and
// nothing answers on it (a service that died without cleaning up); a live
// socket means another service is running, and anything that is not a
// socket is left alone. Both are errors.
func listen(path string) (*net.UnixListener, error) {
	dir := filepath.Dir(path)
	switch fi, err := os.Stat(dir); {
	case errors.Is(err, fs.ErrNotExist):
		if err := os.MkdirAll(dir, runtimeDirMode); err != nil {
			return nil, fmt.Errorf("creating socket directory: %w", err)
		}
		if err := os.Chmod(dir, runtimeDirMode); err != nil { // umask
			return nil, fmt.Errorf("creating socket directory: %w", err)
		}
	case err != nil:
		return nil, fmt.Errorf("socket directory: %w", err)
	case !fi.IsDir():
		return nil, fmt.Errorf("socket directory %s is not a directory", dir)
	case fi.Mode().Perm()&0o002 != 0 && fi.Mode()&fs.ModeSticky == 0:
		return nil, fmt.Errorf("socket directory %s is world-writable without the sticky bit", dir)
	}

	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != fs.ModeSocket {
			return nil, fmt.Errorf("%s exists and is not a socket: not removing it", path)
		}
		c, err := net.DialTimeout("unix", path, time.Second)
		if err == nil {
			c.Close()
			return nil, fmt.Errorf("%s: another service is listening on it", path)
		}
		if !errors.Is(err, syscall.ECONNREFUSED) {
			return nil, fmt.Errorf("%s: cannot tell whether it is in use: %w", path, err)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("removing stale socket: %w", err)
		}
	}

	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, err
	}
	// Closing the listener removes the file (net.UnixListener unlinks on
	// Close when it created the socket).
	if err := os.Chmod(path, socketMode); err != nil {
		l.Close()
		return nil, fmt.Errorf("setting socket permissions: %w", err)
	}
	return l, nil
}

// platformSupported is true where Start can run.
const platformSupported = true
