package piv

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Status words (ISO/IEC 7816-4 §5.1.3, SP 800-73-4 Part 2 §3).
const (
	swOK                 uint16 = 0x9000
	swBytesRemaining     uint16 = 0x6100 // | the count, 00 for 256 or more
	swWarnTries          uint16 = 0x63C0 // | the tries left
	swWrongLength        uint16 = 0x6700
	swLastCommandInChain uint16 = 0x6883 // a chain was interrupted
	swSecurityStatus     uint16 = 0x6982
	swAuthBlocked        uint16 = 0x6983
	swConditions         uint16 = 0x6985
	swIncorrectData      uint16 = 0x6A80
	swFuncNotSupported   uint16 = 0x6A81
	swNotFound           uint16 = 0x6A82
	swMemoryFull         uint16 = 0x6A84
	swIncorrectP1P2      uint16 = 0x6A86
	swRefNotFound        uint16 = 0x6A88
	swINSNotSupported    uint16 = 0x6D00
	swCLANotSupported    uint16 = 0x6E00
	swUnknown            uint16 = 0x6F00
)

// Command is a parsed command APDU (ISO/IEC 7816-4 §5.1). Ne is the
// number of response bytes the reader can take: 0 when the APDU had no Le
// field, 256 (short) or 65536 (extended) for an Le of zero.
type Command struct {
	CLA, INS, P1, P2 byte
	Data             []byte
	Ne               int
	Extended         bool
}

// Chained reports whether the command is a part of a chain that more
// commands continue (CLA bit b5, ISO/IEC 7816-4 §5.4.1).
func (c *Command) Chained() bool { return c.CLA&0x10 != 0 }

// apduError is a malformed APDU and the status word that answers it.
type apduError struct {
	sw  uint16
	why string
}

func (e *apduError) Error() string { return fmt.Sprintf("APDU %04X: %s", e.sw, e.why) }

// SW returns the status word that answers a parse error, or 6F00.
func SW(err error) uint16 {
	var ae *apduError
	if errors.As(err, &ae) {
		return ae.sw
	}
	return swUnknown
}

// ParseCommand parses one command APDU in its short or extended form
// (ISO/IEC 7816-4 §5.1, cases 1 to 4). The data field aliases b. An
// APDU whose length fields disagree with its size is refused with 6700;
// a class byte of an interindustry class other than the first (b8 set,
// or 0xFF) with 6E00, and secure messaging or a logical channel other than
// the basic one with 6E00 too: the card has neither.
func ParseCommand(b []byte) (*Command, error) {
	if len(b) < 4 {
		return nil, &apduError{swWrongLength, fmt.Sprintf("%d bytes, shorter than a header", len(b))}
	}
	c := &Command{CLA: b[0], INS: b[1], P1: b[2], P2: b[3]}
	if c.CLA&^0x10 != 0 {
		return nil, &apduError{swCLANotSupported, fmt.Sprintf("class %02X", c.CLA)}
	}
	if c.INS&0xF0 == 0x60 || c.INS&0xF0 == 0x90 {
		// 6X and 9X are status word bytes, never instructions (§5.1.2).
		return nil, &apduError{swINSNotSupported, fmt.Sprintf("instruction %02X", c.INS)}
	}
	body := b[4:]
	switch {
	case len(body) == 0: // case 1
		return c, nil
	case len(body) == 1: // case 2 short
		c.Ne = int(body[0])
		if c.Ne == 0 {
			c.Ne = 256
		}
		return c, nil
	case body[0] != 0: // case 3 or 4 short
		lc := int(body[0])
		switch len(body) - 1 - lc {
		case 0:
		case 1:
			c.Ne = int(body[len(body)-1])
			if c.Ne == 0 {
				c.Ne = 256
			}
		default:
			return nil, &apduError{swWrongLength, fmt.Sprintf("Lc %d with %d bytes after it", lc, len(body)-1)}
		}
		c.Data = body[1 : 1+lc]
		return c, nil
	}
	// Extended: a zero byte, then two-byte fields.
	c.Extended = true
	if len(body) < 3 {
		return nil, &apduError{swWrongLength, fmt.Sprintf("extended length field of %d bytes", len(body)-1)}
	}
	n := int(binary.BigEndian.Uint16(body[1:3]))
	if len(body) == 3 { // case 2 extended
		c.Ne = n
		if c.Ne == 0 {
			c.Ne = 65536
		}
		return c, nil
	}
	if n == 0 {
		return nil, &apduError{swWrongLength, "extended Lc of 0"}
	}
	rest := body[3:]
	switch len(rest) - n {
	case 0:
	case 2:
		c.Ne = int(binary.BigEndian.Uint16(rest[n:]))
		if c.Ne == 0 {
			c.Ne = 65536
		}
	default:
		return nil, &apduError{swWrongLength, fmt.Sprintf("extended Lc %d with %d bytes after it", n, len(rest))}
	}
	c.Data = rest[:n]
	return c, nil
}

// Bytes encodes the command again, short when it fits, as ParseCommand
// reads it. It serves the tests and the fuzz test's round trip.
func (c *Command) Bytes() []byte {
	out := []byte{c.CLA, c.INS, c.P1, c.P2}
	ext := c.Extended || len(c.Data) > 255 || c.Ne > 256
	if !ext {
		if len(c.Data) > 0 {
			out = append(out, byte(len(c.Data)))
			out = append(out, c.Data...)
		}
		if c.Ne > 0 {
			out = append(out, byte(c.Ne)) // 256 -> 0
		}
		return out
	}
	if len(c.Data) == 0 && c.Ne == 0 {
		return out
	}
	out = append(out, 0)
	if len(c.Data) > 0 {
		out = binary.BigEndian.AppendUint16(out, uint16(len(c.Data)))
		out = append(out, c.Data...)
	}
	if c.Ne > 0 {
		out = binary.BigEndian.AppendUint16(out, uint16(c.Ne)) // 65536 -> 0
	}
	return out
}

// response is a response APDU body and status word.
func response(data []byte, sw uint16) []byte {
	out := make([]byte, 0, len(data)+2)
	out = append(out, data...)
	return binary.BigEndian.AppendUint16(out, sw)
}
