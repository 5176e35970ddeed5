package client

import "github.com/tpmcard/tpmcard/service/wire"

// The slot requests of a PKCS#11 module (docs/wire.md): slots by slot ID,
// CK_SLOT_INFO and CK_TOKEN_INFO ready to copy, C_OpenSession's raw flags.

// SlotList returns the slot IDs (C_GetSlotList).
func (c *Client) SlotList(tokenPresent bool) ([]uint64, error) {
	var r wire.SlotList
	err := c.call(&wire.GetSlotList{TokenPresent: tokenPresent}, &r)
	return r.Slots, err
}

// SlotInfo returns a slot's CK_SLOT_INFO (C_GetSlotInfo).
func (c *Client) SlotInfo(slot uint64) (wire.SlotDescription, error) {
	var r wire.SlotDescription
	err := c.call(&wire.GetSlotInfo{Slot: slot}, &r)
	return r, err
}

// TokenInfo returns the CK_TOKEN_INFO of a slot's card (C_GetTokenInfo).
func (c *Client) TokenInfo(slot uint64) (wire.TokenDescription, error) {
	var r wire.TokenDescription
	err := c.call(&wire.GetTokenInfo{Slot: slot}, &r)
	return r, err
}

// SlotMechanisms returns the mechanisms of a slot's card.
func (c *Client) SlotMechanisms(slot uint64) ([]wire.MechanismInfo, error) {
	var r wire.MechanismList
	err := c.call(&wire.Mechanisms{Slot: slot}, &r)
	return r.Mechanisms, err
}

// OpenSlotSession is C_OpenSession: flags are the raw CK_FLAGS.
func (c *Client) OpenSlotSession(slot, flags uint64) (uint32, error) {
	var r wire.SessionOpened
	err := c.call(&wire.OpenSession{Slot: slot, Flags: flags}, &r)
	return r.Session, err
}

// CloseSlotSessions is C_CloseAllSessions.
func (c *Client) CloseSlotSessions(slot uint64) error {
	return c.call(&wire.CloseAllSessions{Slot: slot}, nil)
}
