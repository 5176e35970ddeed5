package piv

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// quickACK has the next segment from vpcd acknowledged at once. vpcd
// writes a message's length and its bytes in two writes; with Nagle's
// algorithm on its side the second waits for the ACK of the first, which
// Linux delays (up to 40 ms) hoping to send it with an answer: every
// APDU waited that long. TCP_QUICKACK (tcp(7)) is not sticky, so it is
// set again after each answer.
func quickACK(rw io.ReadWriter) {
	tc, ok := rw.(*net.TCPConn)
	if !ok {
		return
	}
	if rc, err := tc.SyscallConn(); err == nil {
		_ = rc.Control(func(fd uintptr) {
			_ = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_QUICKACK, 1)
		})
	}
}

// CheckListener refuses to connect to a vpcd port that a process other
// than root's listens on: pcscd and its vpcd driver run as root, and an
// unprivileged process that took the port first would otherwise receive
// the PINs of whoever uses the reader. It reads the listening sockets'
// owners from /proc/net/tcp and /proc/net/tcp6 (proc(5)).
func CheckListener(port int) error {
	found := false
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		uids, err := listeners(f, port)
		if err != nil {
			continue // no IPv6, say
		}
		for _, uid := range uids {
			if uid != 0 {
				return fmt.Errorf("piv: port %d is held by a process of uid %d, not root's vpcd: not connecting (stop that process, or enable the card on another port)", port, uid)
			}
			found = true
		}
	}
	if !found {
		return fmt.Errorf("piv: nothing listens on port %d (is pcscd with vsmartcard-vpcd running?)", port)
	}
	return nil
}

// listeners returns the uids of the sockets listening on port in a
// /proc/net/tcp table.
func listeners(path string, port int) ([]uint32, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var uids []uint32
	sc := bufio.NewScanner(f)
	sc.Scan() // header
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 8 || fields[3] != "0A" { // TCP_LISTEN
			continue
		}
		i := strings.LastIndexByte(fields[1], ':')
		if i < 0 {
			continue
		}
		p, err := strconv.ParseUint(fields[1][i+1:], 16, 16)
		if err != nil || int(p) != port {
			continue
		}
		uid, err := strconv.ParseUint(fields[7], 10, 32)
		if err != nil {
			continue
		}
		uids = append(uids, uint32(uid))
	}
	return uids, sc.Err()
}
