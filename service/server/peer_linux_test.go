//go:build linux

package server

import (
	"net"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestPeerOf(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "s")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sc, err := l.AcceptUnix()
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()

	p, err := peerOf(sc)
	if err != nil {
		t.Fatal(err)
	}
	groups, _ := os.Getgroups()
	exe, _ := os.Executable()
	if p.UID != uint32(os.Geteuid()) || p.GID != uint32(os.Getegid()) || p.PID != int32(os.Getpid()) || p.Exe != exe {
		t.Errorf("peer %+v; want uid %d gid %d pid %d exe %s", p, os.Geteuid(), os.Getegid(), os.Getpid(), exe)
	}
	if !sameGroups(p.Groups, groups) {
		t.Errorf("SO_PEERGROUPS %v, getgroups %v", p.Groups, groups)
	}
	if pg := procGroups(p); !sameGroups(pg, groups) {
		t.Errorf("/proc groups %v, getgroups %v", pg, groups)
	}
	other := p
	other.UID++
	if pg := procGroups(other); pg != nil {
		t.Errorf("/proc groups of a process with another uid were trusted: %v", pg)
	}
}

func sameGroups(a []uint32, b []int) bool {
	x := slices.Clone(a)
	y := make([]uint32, 0, len(b))
	for _, g := range b {
		y = append(y, uint32(g))
	}
	slices.Sort(x)
	slices.Sort(y)
	return slices.Equal(slices.Compact(x), slices.Compact(y))
}
