package server

import (
	"errors"
	"time"

	"github.com/tpmcard/tpmcard/service/wire"
	"github.com/tpmcard/tpmcard/tpmcard"
)

// adminChallenge opens an offline unblock: the card's owner, its group
// and administrators may ask (the user at a locked machine is who needs
// it); only the administrator's key can answer. A new challenge replaces
// the pending one, so nobody else may ask.
func (c *conn) adminChallenge(m *wire.AdminChallenge) (any, error) {
	if err := c.needUser(wire.TypeAdminChallenge); err != nil {
		return nil, err
	}
	if _, err := c.visibleCard(wire.TypeAdminChallenge, m.Serial); err != nil {
		return nil, err
	}
	if m.ValiditySeconds < 0 {
		return nil, wire.NewError(wire.BadRequest, "negative validity")
	}
	ch, err := c.s.m.AdminChallenge(m.Serial, time.Duration(m.ValiditySeconds)*time.Second)
	if err != nil {
		return nil, err
	}
	c.log.Info().Str("event", "unblock_challenge").Str("card", m.Serial).Dur("validity", ch.Validity).Msg("unblock challenge issued")
	return &wire.Challenge{Text: ch.String(), Expires: time.Now().Add(ch.Validity).Unix()}, nil
}

// adminUnblock answers the pending challenge; the TPM checks the
// administrator's signature.
func (c *conn) adminUnblock(m *wire.AdminUnblock) (any, error) {
	if err := c.needUser(wire.TypeAdminUnblock); err != nil {
		return nil, err
	}
	if _, err := c.visibleCard(wire.TypeAdminUnblock, m.Serial); err != nil {
		return nil, err
	}
	err := c.s.logins.withCard(m.Serial, func() error { return c.s.m.AdminUnblock(m.Serial, m.Response, m.NewPIN) })
	if err != nil {
		ev := c.log.Warn().Str("event", "unblock_refused").Str("card", m.Serial)
		switch {
		case errors.Is(err, tpmcard.ErrBadResponse), errors.Is(err, tpmcard.ErrChallengeExpired),
			errors.Is(err, tpmcard.ErrNoChallenge), errors.Is(err, tpmcard.ErrNoAdminKey):
			ev.Str("reason", err.Error()).Msg("admin unblock refused")
		default:
			se, _ := toStatus(err)
			ev.Stringer("status", se.Status).Msg("admin unblock refused")
		}
		return nil, err
	}
	c.log.Info().Str("event", "unblock").Str("card", m.Serial).Msg("card unblocked with the admin key: the new PIN must be changed")
	return &wire.Ack{}, nil
}
