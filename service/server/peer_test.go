package server

import "testing"

func TestRoleOf(t *testing.T) {
	card, admin := groupSpec{set: true, gid: 100}, groupSpec{set: true, gid: 200}
	none := groupSpec{}
	for _, c := range []struct {
		name        string
		peer        Peer
		card, admin groupSpec
		want        role
	}{
		{"ok/root-is-admin", Peer{UID: 0, GID: 0}, card, admin, role{admin: true, user: true}},
		{"ok/admin-group-primary", Peer{UID: 1000, GID: 200}, card, admin, role{admin: true, user: true}},
		{"ok/admin-group-supplementary", Peer{UID: 1000, GID: 1000, Groups: []uint32{5, 200}}, card, admin, role{admin: true, user: true}},
		{"ok/card-group", Peer{UID: 1000, GID: 1000, Groups: []uint32{100}}, card, admin, role{user: true}},
		{"ok/no-card-group-everyone-uses", Peer{UID: 1000, GID: 1000}, none, admin, role{user: true}},
		{"fail/outsider", Peer{UID: 1000, GID: 1000, Groups: []uint32{5}}, card, admin, role{}},
		{"fail/no-admin-group-only-root", Peer{UID: 1000, GID: 0}, none, none, role{user: true}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := roleOf(c.peer, c.card, c.admin); got != c.want {
				t.Errorf("roleOf(%+v) = %+v, want %+v", c.peer, got, c.want)
			}
		})
	}
}

func TestResolveGroup(t *testing.T) {
	if g, err := resolveGroup(""); err != nil || g.set {
		t.Errorf(`resolveGroup("") = %+v, %v`, g, err)
	}
	if g, err := resolveGroup("4242"); err != nil || !g.set || g.gid != 4242 {
		t.Errorf(`resolveGroup("4242") = %+v, %v`, g, err)
	}
	if g, err := resolveGroup("root"); err != nil || !g.set || g.gid != 0 {
		t.Errorf(`resolveGroup("root") = %+v, %v`, g, err)
	}
	if _, err := resolveGroup("no-such-group-tpmcard"); err == nil {
		t.Error("an unknown group name resolved")
	}
}
