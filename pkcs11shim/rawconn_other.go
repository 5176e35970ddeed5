//go:build !unix

package main

import (
	"io"
	"net"
	"os"
)

// netConn is the fallback where there is no fork(2).
type netConn struct{ net.Conn }

func (c netConn) Abandon() { _ = c.Conn.Close() }

func dialRaw(path string) (rawConn, error) {
	nc, err := net.Dial("unix", path)
	if err != nil {
		return nil, err
	}
	return netConn{nc}, nil
}

func openAppend(path string) (io.WriteCloser, error) {
	return os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
}
