package client

import "github.com/tpmcard/tpmcard/service/wire"

// SetOwner gives a card to another owner (administrators only); nil leaves
// it to administrators alone.
func (c *Client) SetOwner(serial string, owner *wire.CardOwner) error {
	return c.call(&wire.SetOwner{Serial: serial, Owner: owner}, &wire.Ack{})
}
