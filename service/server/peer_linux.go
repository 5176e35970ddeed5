//go:build linux

package server

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// peerOf reads the credentials of the process at the other end of c.
//
// uid, gid and pid come from SO_PEERCRED (socket(7)), captured by the
// kernel at connect(2). The supplementary groups come from SO_PEERGROUPS
// (Linux 4.13), captured at the same moment, so they cannot be swapped by
// a process that exits and whose pid is reused. On an older kernel the
// groups are read from the "Groups:" line of /proc/PID/status, and only if
// that file still shows the same uid and gid (a reused pid would not). We
// do not use os/user lookups of the uid: they report the groups configured
// in /etc/group, not those of the process (a process may have dropped
// them, or gained one with newgrp), and they need NSS.
func peerOf(c *net.UnixConn) (Peer, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return Peer{}, err
	}
	var cred *unix.Ucred
	var groups []uint32
	var credErr, groupsErr error
	err = rc.Control(func(fd uintptr) {
		cred, credErr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
		if credErr == nil {
			groups, groupsErr = peerGroups(int(fd))
		}
	})
	if err != nil {
		return Peer{}, err
	}
	if credErr != nil {
		return Peer{}, fmt.Errorf("reading peer credentials: %w", credErr)
	}
	p := Peer{UID: cred.Uid, GID: cred.Gid, PID: cred.Pid}
	if groupsErr != nil {
		groups = procGroups(p)
	}
	p.Groups = groups
	if p.PID > 0 {
		p.Exe, _ = os.Readlink("/proc/" + strconv.Itoa(int(p.PID)) + "/exe")
	}
	return p, nil
}

// peerGroups reads SO_PEERGROUPS: an array of gid_t.
func peerGroups(fd int) ([]uint32, error) {
	buf := make([]byte, 64*4)
	for {
		n := uint32(len(buf))
		_, _, errno := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_SOCKET, unix.SO_PEERGROUPS,
			uintptr(unsafe.Pointer(&buf[0])), uintptr(unsafe.Pointer(&n)), 0)
		switch {
		case errno == unix.ERANGE && int(n) > len(buf) && n <= 65536*4:
			buf = make([]byte, n)
			continue
		case errno != 0:
			return nil, errno
		}
		out := make([]uint32, 0, n/4)
		for i := 0; i+4 <= int(n); i += 4 {
			out = append(out, binary.NativeEndian.Uint32(buf[i:]))
		}
		return out, nil
	}
}

// procGroups reads the Groups: line of /proc/PID/status, if the file still
// belongs to a process with p's uid and gid. It returns nil otherwise.
func procGroups(p Peer) []uint32 {
	if p.PID <= 0 {
		return nil
	}
	f, err := os.Open("/proc/" + strconv.Itoa(int(p.PID)) + "/status")
	if err != nil {
		return nil
	}
	defer f.Close()
	var groups []uint32
	var uidOK, gidOK bool
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		fields := strings.Fields(val)
		switch key {
		case "Uid":
			uidOK = len(fields) > 1 && fields[1] == strconv.FormatUint(uint64(p.UID), 10)
		case "Gid":
			gidOK = len(fields) > 1 && fields[1] == strconv.FormatUint(uint64(p.GID), 10)
		case "Groups":
			for _, f := range fields {
				if g, err := strconv.ParseUint(f, 10, 32); err == nil {
					groups = append(groups, uint32(g))
				}
			}
		}
	}
	if !uidOK || !gidOK {
		return nil
	}
	return groups
}
