package piv

import "errors"

// BER-TLV as SP 800-73-4 Part 1 §3 and ISO/IEC 7816-4 §5.2 use it: tags of
// one to three bytes, definite lengths of up to three bytes.

var errTLV = errors.New("malformed BER-TLV")

// tlv appends one data object to out.
func tlv(out []byte, tag uint32, value []byte) []byte {
	switch {
	case tag > 0xFFFF:
		out = append(out, byte(tag>>16), byte(tag>>8), byte(tag))
	case tag > 0xFF:
		out = append(out, byte(tag>>8), byte(tag))
	default:
		out = append(out, byte(tag))
	}
	n := len(value)
	switch {
	case n < 0x80:
		out = append(out, byte(n))
	case n <= 0xFF:
		out = append(out, 0x81, byte(n))
	case n <= 0xFFFF:
		out = append(out, 0x82, byte(n>>8), byte(n))
	default:
		out = append(out, 0x83, byte(n>>16), byte(n>>8), byte(n))
	}
	return append(out, value...)
}

// readTLV reads the first data object of b and returns its tag, value
// and what follows it.
func readTLV(b []byte) (tag uint32, value, rest []byte, err error) {
	if len(b) == 0 {
		return 0, nil, nil, errTLV
	}
	tag = uint32(b[0])
	i := 1
	if b[0]&0x1F == 0x1F { // more tag bytes follow, each with b8 set but the last
		for {
			if i >= len(b) || i > 2 {
				return 0, nil, nil, errTLV
			}
			tag = tag<<8 | uint32(b[i])
			i++
			if b[i-1]&0x80 == 0 {
				break
			}
		}
	}
	if i >= len(b) {
		return 0, nil, nil, errTLV
	}
	n := int(b[i])
	i++
	if n >= 0x80 {
		k := n & 0x7F
		if k == 0 || k > 3 || i+k > len(b) {
			return 0, nil, nil, errTLV
		}
		n = 0
		for _, c := range b[i : i+k] {
			n = n<<8 | int(c)
		}
		i += k
	}
	if n > len(b)-i {
		return 0, nil, nil, errTLV
	}
	return tag, b[i : i+n], b[i+n:], nil
}
