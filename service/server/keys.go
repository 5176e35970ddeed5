package server

import (
	"github.com/tpmcard/tpmcard/service/wire"
)

// deleteKey removes a key from the card, both halves and its certificate
// (wire.DeleteKey: the CLI's `key delete`). Administrators only; it needs
// no login, as the key's private object need not be seen.
func (c *conn) deleteKey(m *wire.DeleteKey) (any, error) {
	if err := c.needAdmin(wire.TypeDeleteKey); err != nil {
		return nil, err
	}
	ci, err := c.visibleCard(wire.TypeDeleteKey, m.Serial)
	if err != nil {
		return nil, err
	}
	if err := c.s.m.DeleteKey(m.Serial, m.ID); err != nil {
		return nil, err
	}
	for _, kind := range []objKind{objPublic, objPrivate, objCert} {
		if h, ok := c.objects.byRef[objRef{serial: m.Serial, id: string(m.ID), kind: kind}]; ok {
			c.objects.forget(h)
		}
	}
	c.log.Info().Str("card", m.Serial).Hex("key_id", m.ID).Msg("key deleted")
	c.s.events.publish(m.Serial, wire.EventChanged, ci.Owner)
	return &wire.Ack{}, nil
}
