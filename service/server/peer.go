package server

import (
	"fmt"
	"os/user"
	"slices"
	"strconv"
)

// Peer is the process at the other end of a connection, as the kernel
// reports it when the connection is accepted (SO_PEERCRED and
// SO_PEERGROUPS on Linux). The credentials are those of the process that
// called connect(2); a process that later changes its uid keeps the
// identity it connected with.
type Peer struct {
	UID    uint32
	GID    uint32
	PID    int32
	Groups []uint32 // supplementary groups; may be empty
	Exe    string   // /proc/PID/exe, best effort, for the log only
}

// inGroup reports whether the peer's primary or a supplementary group is g.
func (p Peer) inGroup(g uint32) bool { return p.GID == g || slices.Contains(p.Groups, g) }

// groupSpec is a group named in the Config, resolved to a gid.
type groupSpec struct {
	set bool
	gid uint32
}

// resolveGroup accepts a numeric gid or a group name; "" means none.
func resolveGroup(s string) (groupSpec, error) {
	if s == "" {
		return groupSpec{}, nil
	}
	if n, err := strconv.ParseUint(s, 10, 32); err == nil {
		return groupSpec{set: true, gid: uint32(n)}, nil
	}
	g, err := user.LookupGroup(s)
	if err != nil {
		return groupSpec{}, fmt.Errorf("group %q: %w", s, err)
	}
	n, err := strconv.ParseUint(g.Gid, 10, 32)
	if err != nil {
		return groupSpec{}, fmt.Errorf("group %q has a non-numeric gid %q", s, g.Gid)
	}
	return groupSpec{set: true, gid: uint32(n)}, nil
}

// role is what a peer may do.
type role struct {
	admin bool // provision, destroy, generate and delete keys, service status
	user  bool // use cards: list, sessions, login, sign, PIN changes
}

// roleOf decides once per connection, from the peer's credentials:
//   - uid 0 and members of the admin group are admins;
//   - admins, members of the card group and, when no card group is
//     configured, everyone may use cards.
func roleOf(p Peer, cardGroup, adminGroup groupSpec) role {
	var r role
	r.admin = p.UID == 0 || (adminGroup.set && p.inGroup(adminGroup.gid))
	r.user = r.admin || !cardGroup.set || p.inGroup(cardGroup.gid)
	return r
}
