package client

import "github.com/tpmcard/tpmcard/service/wire"

// PIV readers (administrators only). Each call returns the cards in PIV
// readers as they are after it.

// PIVEnable puts a card in a PIV reader on vpcd's port (0: the first free
// one from 35963). anyLocalUser is the administrator's consent that any
// local user may use the card through the reader with its PIN.
func (c *Client) PIVEnable(serial string, port int, anyLocalUser bool) ([]wire.PIVCard, error) {
	return c.piv(&wire.PIVEnable{Serial: serial, Port: port, AnyLocalUser: anyLocalUser})
}

// PIVDisable takes a card out of its PIV reader.
func (c *Client) PIVDisable(serial string) ([]wire.PIVCard, error) {
	return c.piv(&wire.PIVDisable{Serial: serial})
}

// PIVAssign puts a card key in a PIV slot; a nil keyID empties the slot.
func (c *Client) PIVAssign(serial string, slot uint8, keyID []byte) ([]wire.PIVCard, error) {
	return c.piv(&wire.PIVAssign{Serial: serial, Slot: slot, KeyID: keyID})
}

// PIVStatus returns the cards in PIV readers.
func (c *Client) PIVStatus() ([]wire.PIVCard, error) { return c.piv(&wire.PIVStatus{}) }

func (c *Client) piv(req wire.PIVRequest) ([]wire.PIVCard, error) {
	var r wire.PIVCards
	if err := c.call(req, &r); err != nil {
		return nil, err
	}
	return r.Cards, nil
}
