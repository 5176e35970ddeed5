package wire

// Card owners: a card belongs to a user and,
// optionally, a group. The service shows a card, and lets it be used, only
// to them and to administrators; to anyone else it answers CardNotFound,
// as for a card that does not exist.

// CardOwner names who a card belongs to by number: the kernel reports a
// peer's uid and groups, never names.
type CardOwner struct {
	UID uint32  `cbor:"1,keyasint"`
	GID *uint32 `cbor:"2,keyasint,omitempty"` // members of this group share the card
}

// SetOwner gives a card to another owner (administrators only). A nil
// Owner leaves the card to administrators alone. Connections of the old
// owner that may no longer use the card are logged out of it and lose
// their sessions on it.
type SetOwner struct {
	Serial string     `cbor:"1,keyasint,omitempty"`
	Owner  *CardOwner `cbor:"2,keyasint,omitempty"`
}
