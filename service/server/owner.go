package server

import (
	"github.com/tpmcard/tpmcard/service/wire"
	"github.com/tpmcard/tpmcard/tpmcard"
)

// Who may see a card. A card belongs to a user and, optionally, a group
// (tpmcard.Owner). Only they and administrators see it in listings and
// events, open sessions on it, log in, sign, change or unblock its PIN, or
// start and answer an admin challenge. Anyone else gets CardNotFound, the
// very answer for a card that does not exist, so that a card's existence
// is not revealed either. A card with no owner recorded is for
// administrators alone.

// errHidden is what a peer who may not see a card gets: the same status
// and text as for a serial no card has (errmap.go).
func errHidden() error { return wire.NewError(wire.CardNotFound, "no such card") }

// mayUse reports whether the connection's peer may see and use the card.
func (c *conn) mayUse(owner *tpmcard.Owner) bool {
	return c.role.admin || owner.Allows(c.peer.UID, c.groups)
}

// visibleCard returns the card if the peer may see it, and CardNotFound
// if it does not exist or the peer may not see it.
func (c *conn) visibleCard(t wire.Type, serial string) (tpmcard.CardInfo, error) {
	ci, err := c.s.m.Card(serial)
	if err != nil {
		return tpmcard.CardInfo{}, err
	}
	if !c.mayUse(ci.Owner) {
		c.log.Warn().Stringer("request", t).Str("card", serial).Bool("ownerless", ci.Owner == nil).
			Msg("card hidden: the peer is not its owner, in its group or an administrator")
		return tpmcard.CardInfo{}, errHidden()
	}
	return ci, nil
}

// checkSession checks again, after an owner change, that the peer may
// still use the session's card; a session it may no longer use is closed.
func (c *conn) checkSession(id uint32, s *session) error {
	gen := c.s.ownerGen.Load()
	if s.gen == gen {
		return nil
	}
	ci, err := c.s.m.Card(s.serial)
	if err != nil || c.mayUse(ci.Owner) {
		// A destroyed card's sessions fail as they did before.
		s.gen = gen
		return nil
	}
	delete(c.sessions, id)
	c.logoutCard(s.serial, "the card was given to another owner")
	if c.sessionsOn(s.serial) == 0 {
		c.objects.dropCard(s.serial)
	}
	c.log.Info().Str("card", s.serial).Uint32("session", id).Msg("session closed: the card was given to another owner")
	return wire.Errorf(wire.SessionInvalid, "no session %d", id)
}

// ownerOf converts the wire form.
func ownerOf(o *wire.CardOwner) *tpmcard.Owner {
	if o == nil {
		return nil
	}
	out := &tpmcard.Owner{UID: o.UID}
	if o.GID != nil {
		g := *o.GID
		out.GID = &g
	}
	return out
}

// wireOwner converts to the wire form.
func wireOwner(o *tpmcard.Owner) *wire.CardOwner {
	if o == nil {
		return nil
	}
	out := &wire.CardOwner{UID: o.UID}
	if o.GID != nil {
		g := *o.GID
		out.GID = &g
	}
	return out
}

// provisionOwner decides who a new card belongs to: the one the request
// names, else the user who asked; AdminsOnly leaves it to administrators.
func (c *conn) provisionOwner(m *wire.Provision) (*tpmcard.Owner, error) {
	switch {
	case m.AdminsOnly && m.Owner != nil:
		return nil, wire.NewError(wire.BadRequest, "a card for administrators only has no owner")
	case m.AdminsOnly:
		return nil, nil
	case m.Owner != nil:
		return ownerOf(m.Owner), nil
	}
	return &tpmcard.Owner{UID: c.peer.UID}, nil
}

// setOwner gives a card to another owner (administrators only). Logins
// and sessions of peers who may no longer use the card end.
func (c *conn) setOwner(m *wire.SetOwner) (any, error) {
	if err := c.needAdmin(wire.TypeSetOwner); err != nil {
		return nil, err
	}
	o := ownerOf(m.Owner)
	old, err := c.s.m.Card(m.Serial)
	if err != nil {
		return nil, err
	}
	if err := c.s.m.SetOwner(m.Serial, o); err != nil {
		c.log.Warn().Str("card", m.Serial).Err(err).Msg("changing the card's owner failed")
		return nil, err
	}
	c.s.ownerGen.Add(1)
	if old.Owner != nil {
		// To the old owner's side the card is gone; publishAfter tells
		// the new side it changed.
		c.s.events.add(numbered{ev: wire.Event{Serial: m.Serial, Kind: wire.EventRemoved}, owner: o, lostBy: old.Owner})
	}
	dropped := c.s.logins.revoke(m.Serial, func(oc *conn) bool { return oc.mayUse(o) })
	for _, oc := range dropped {
		oc.log.Info().Str("card", m.Serial).Msg("logged out: the card was given to another owner")
	}
	ev := c.log.Info().Str("card", m.Serial).Int("logged_out", len(dropped))
	if o == nil {
		ev = ev.Bool("admins_only", true)
	} else {
		ev = ev.Uint32("owner_uid", o.UID)
		if o.GID != nil {
			ev = ev.Uint32("owner_gid", *o.GID)
		}
	}
	ev.Msg("card owner changed")
	return &wire.Ack{}, nil
}

// warnOwnerless says, at start, which cards only administrators can use
// because no owner is recorded for them (cards made before owners
// existed).
func (s *Server) warnOwnerless() {
	cards, err := s.m.Cards()
	if err != nil {
		s.log.Warn().Err(err).Msg("listing cards")
		return
	}
	for _, ci := range cards {
		if ci.Owner == nil {
			s.log.Warn().Str("card", ci.Serial).Str("label", ci.Label).
				Msg("card has no owner: only administrators may use it; give it to its user with `tpmcard card owner --card " + ci.Serial + " USER[:GROUP]`")
		}
	}
}
