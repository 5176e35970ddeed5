//go:build !linux

package server

import (
	"errors"
	"net"
	"runtime"
)

// platformSupported is true where Start can run.
const platformSupported = false

var errPlatform = errors.New("tpmcard service: the socket server is not supported on " + runtime.GOOS + " yet (it needs SO_PEERCRED; Windows will use a named pipe with an ACL)")

func listen(string) (*net.UnixListener, error) { return nil, errPlatform }

func peerOf(*net.UnixConn) (Peer, error) { return Peer{}, errPlatform }
