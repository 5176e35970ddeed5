//go:build unix

package main

import (
	"errors"
	"fmt"
	"io"
	"sync"
	"syscall"
)

// fdConn is a blocking unix-socket descriptor, read and written with plain
// system calls, never registered with the runtime's poller.
type fdConn struct {
	mu     sync.Mutex // guards fd against Close during use by another thread
	fd     int
	closed bool
}

func dialRaw(path string) (rawConn, error) {
	fd, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("socket: %w", err)
	}
	for {
		err = syscall.Connect(fd, &syscall.SockaddrUnix{Name: path})
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		syscall.Close(fd)
		return nil, fmt.Errorf("connecting to %s: %w", path, err)
	}
	return &fdConn{fd: fd}, nil
}

func (c *fdConn) getfd() (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return -1, errors.New("connection closed")
	}
	return c.fd, nil
}

func (c *fdConn) Read(p []byte) (int, error) {
	fd, err := c.getfd()
	if err != nil {
		return 0, err
	}
	for {
		n, err := syscall.Read(fd, p)
		switch {
		case err == syscall.EINTR:
			continue
		case err != nil:
			return 0, err
		case n == 0 && len(p) > 0:
			return 0, io.EOF
		}
		return n, nil
	}
}

func (c *fdConn) Write(p []byte) (int, error) {
	fd, err := c.getfd()
	if err != nil {
		return 0, err
	}
	done := 0
	for done < len(p) {
		n, err := syscall.Write(fd, p[done:])
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return done, err
		}
		done += n
	}
	return done, nil
}

// Close shuts the socket down, which wakes a thread blocked reading it
// (close alone would not), and closes the descriptor.
func (c *fdConn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	_ = syscall.Shutdown(c.fd, syscall.SHUT_RDWR)
	return syscall.Close(c.fd)
}

// Abandon closes the descriptor only: after fork(2) the parent still uses
// the socket.
func (c *fdConn) Abandon() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.closed {
		c.closed = true
		_ = syscall.Close(c.fd)
	}
}

// fdFile is an append-only file written with plain system calls.
type fdFile int

func openAppend(path string) (io.WriteCloser, error) {
	fd, err := syscall.Open(path, syscall.O_WRONLY|syscall.O_APPEND|syscall.O_CREAT|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, err
	}
	return fdFile(fd), nil
}

func (f fdFile) Write(p []byte) (int, error) { return syscall.Write(int(f), p) }
func (f fdFile) Close() error                { return syscall.Close(int(f)) }
