package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"os/user"
	"strconv"
	"strings"

	"github.com/tpmcard/tpmcard/service/wire"
)

func init() {
	register("card", "owner", "give a card to a user and optionally a group: card owner --card S USER[:GROUP] (administrators)", cardOwner)
}

// parseOwner reads USER[:GROUP], each a name or a number.
func parseOwner(s string) (*wire.CardOwner, error) {
	name, group, hasGroup := strings.Cut(s, ":")
	if name == "" {
		return nil, fmt.Errorf("%w: owner %q: want USER or USER:GROUP", errUsage, s)
	}
	uid, err := lookupID(name, false)
	if err != nil {
		return nil, err
	}
	o := &wire.CardOwner{UID: uid}
	if hasGroup {
		if group == "" {
			return nil, fmt.Errorf("%w: owner %q: the group after ':' is empty", errUsage, s)
		}
		gid, err := lookupID(group, true)
		if err != nil {
			return nil, err
		}
		o.GID = &gid
	}
	return o, nil
}

// lookupID turns a user or group name, or a number, into a uid or gid.
func lookupID(s string, group bool) (uint32, error) {
	if n, err := strconv.ParseUint(s, 10, 32); err == nil {
		return uint32(n), nil
	}
	kind := "user"
	var id string
	if group {
		kind = "group"
		g, err := user.LookupGroup(s)
		if err != nil {
			return 0, fmt.Errorf("%w: no %s %q", errUsage, kind, s)
		}
		id = g.Gid
	} else {
		u, err := user.Lookup(s)
		if err != nil {
			return 0, fmt.Errorf("%w: no %s %q", errUsage, kind, s)
		}
		id = u.Uid
	}
	n, err := strconv.ParseUint(id, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("%s %q has no numeric id (%s): give the number", kind, s, id)
	}
	return uint32(n), nil
}

// defaultOwner is who a new card belongs to when --owner is not given:
// the user who ran sudo, when root runs the command through sudo; nil
// otherwise, which the service reads as the user who asks.
func defaultOwner() (*wire.CardOwner, error) {
	if os.Getuid() != 0 {
		return nil, nil
	}
	if s := os.Getenv("SUDO_UID"); s != "" {
		if n, err := strconv.ParseUint(s, 10, 32); err == nil {
			return &wire.CardOwner{UID: uint32(n)}, nil
		}
	}
	if s := os.Getenv("SUDO_USER"); s != "" {
		uid, err := lookupID(s, false)
		if err != nil {
			return nil, fmt.Errorf("SUDO_USER: %w", err)
		}
		return &wire.CardOwner{UID: uid}, nil
	}
	return nil, nil
}

// ownerFor is the owner that card create and card owner send: spec
// (USER[:GROUP]), none with adminsOnly, else the default.
func ownerFor(spec string, adminsOnly bool) (*wire.CardOwner, error) {
	switch {
	case spec != "" && adminsOnly:
		return nil, fmt.Errorf("%w: --admins-only and an owner exclude each other", errUsage)
	case spec != "":
		return parseOwner(spec)
	case adminsOnly:
		return nil, nil
	}
	return defaultOwner()
}

// ownerView is a card's owner as the CLI shows it; nil is administrators
// only.
type ownerView struct {
	UID   uint32  `json:"uid"`
	User  string  `json:"user,omitempty"`
	GID   *uint32 `json:"gid,omitempty"`
	Group string  `json:"group,omitempty"`
}

func ownerViewOf(o *wire.CardOwner) *ownerView {
	if o == nil {
		return nil
	}
	v := &ownerView{UID: o.UID, GID: o.GID}
	if u, err := user.LookupId(strconv.FormatUint(uint64(o.UID), 10)); err == nil {
		v.User = u.Username
	}
	if o.GID != nil {
		if g, err := user.LookupGroupId(strconv.FormatUint(uint64(*o.GID), 10)); err == nil {
			v.Group = g.Name
		}
	}
	return v
}

func (v *ownerView) String() string {
	if v == nil {
		return "administrators only"
	}
	s := strconv.FormatUint(uint64(v.UID), 10)
	if v.User != "" {
		s = v.User + " (uid " + s + ")"
	} else {
		s = "uid " + s
	}
	if v.GID != nil {
		g := "gid " + strconv.FormatUint(uint64(*v.GID), 10)
		if v.Group != "" {
			g = v.Group + " (" + g + ")"
		}
		s += ", group " + g
	}
	return s
}

func cardOwner(e *env, args []string) error {
	fs := flags(e, "card owner")
	var c common
	c.add(fs, true, false)
	adminsOnly := fs.Bool("admins-only", false, "leave the card to administrators alone")
	fs.Usage = func() {
		fmt.Fprintln(e.stderr, "usage: tpmcard card owner --card SERIAL USER[:GROUP]   (or --admins-only)")
		fmt.Fprintln(e.stderr, "Only the owner, members of the group and administrators see and use the card.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %w", errShown, err)
	}
	// The owner comes after the flags.
	var spec string
	switch fs.NArg() {
	case 0:
	case 1:
		spec = fs.Arg(0)
	default:
		return fmt.Errorf("%w: unexpected argument %q (flags go before the owner)", errUsage, fs.Arg(1))
	}
	if c.card == "" {
		return fmt.Errorf("%w: name the card with --card SERIAL", errUsage)
	}
	if spec == "" && !*adminsOnly {
		return fmt.Errorf("%w: name the new owner (USER[:GROUP]) or give --admins-only", errUsage)
	}
	o, err := ownerFor(spec, *adminsOnly)
	if err != nil {
		return err
	}
	cl, t, err := c.open()
	if err != nil {
		return err
	}
	defer cl.Close()
	if err := cl.SetOwner(t.Serial, o); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "card %s now belongs to %s\n", t.Serial, ownerViewOf(o))
	return nil
}
