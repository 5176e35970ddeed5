package client

import (
	"time"

	"github.com/tpmcard/tpmcard/service/wire"
	"github.com/tpmcard/tpmcard/tpmcard/secret"
)

// AdminChallenge opens an offline unblock for a card with an admin key and
// returns the challenge text to read to the administrator. validity 0
// means the service's default (10 minutes).
func (c *Client) AdminChallenge(serial string, validity time.Duration) (*wire.Challenge, error) {
	var r wire.Challenge
	if err := c.call(&wire.AdminChallenge{Serial: serial, ValiditySeconds: int(validity / time.Second)}, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// AdminUnblock answers the card's pending challenge with the
// administrator's response and sets newPIN, which must then be changed.
func (c *Client) AdminUnblock(serial, response string, newPIN secret.Secret) error {
	return c.call(&wire.AdminUnblock{Serial: serial, Response: response, NewPIN: newPIN}, &wire.Ack{})
}
