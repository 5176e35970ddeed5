package piv

import (
	"crypto/sha256"
)

// The card's data objects (SP 800-73-4 Part 1 §3.1, Appendix A). Each is
// derived from the card's serial, so it stays the same across service
// restarts and is different for each card.

// applicationProperties is SELECT's answer (Part 2 §3.1.1, Table 3): the
// PIX with its version, the coexistent tag allocation authority, the
// application label and the algorithms the card signs with.
func applicationProperties() []byte {
	var v []byte
	v = tlv(v, 0x4F, pivAID[5:])
	v = tlv(v, 0x79, tlv(nil, 0x4F, pivAID[:9]))
	v = tlv(v, 0x50, []byte("tpmcard PIV"))
	var algs []byte
	for _, a := range []byte{algRSA2048, algP256, algP384} {
		algs = tlv(algs, 0x80, []byte{a})
	}
	algs = tlv(algs, 0x06, nil)
	v = tlv(v, 0xAC, algs)
	return tlv(nil, 0x61, v)
}

// discoveryObject (Part 1 §3.3.2): the PIV AID and the PIN usage policy:
// the PIV Card Application PIN only, no global PIN.
func discoveryObject() []byte {
	var v []byte
	v = tlv(v, 0x4F, pivAID)
	v = tlv(v, 0x5F2F, []byte{0x40, 0x00})
	return tlv(nil, 0x7E, v)
}

// fascn is a FASC-N with agency, system and credential codes 9999 and
// the rest zero, the pattern of credentials issued outside the federal
// government (SP 800-73-4 Part 1 §3.1.2 names the GUID the identifier
// then), encoded in the 5-bit BCD of TIG SCEPACS.
var fascn = func() []byte {
	const (
		ss = 0x1A // start sentinel
		fs = 0x16 // field separator
		es = 0x1F // end sentinel
	)
	digits := func(s string) []byte {
		out := make([]byte, len(s))
		for i := range s {
			out[i] = s[i] - '0'
		}
		return out
	}
	var chars []byte
	chars = append(chars, ss)
	chars = append(chars, digits("9999")...) // agency code
	chars = append(chars, fs)
	chars = append(chars, digits("9999")...) // system code
	chars = append(chars, fs)
	chars = append(chars, digits("999999")...) // credential number
	chars = append(chars, fs)
	chars = append(chars, digits("0")...) // credential series
	chars = append(chars, fs)
	chars = append(chars, digits("1")...) // individual credential issue
	chars = append(chars, fs)
	chars = append(chars, digits("0000000000")...) // person identifier
	chars = append(chars, digits("1")...)          // organizational category
	chars = append(chars, digits("0000")...)       // organizational identifier
	chars = append(chars, digits("1")...)          // person/organization association
	chars = append(chars, es)
	lrc := byte(0)
	for _, c := range chars {
		lrc ^= c & 0x0F
	}
	chars = append(chars, lrc)
	// Each character: 4 data bits, least significant first, then odd parity.
	var bits []byte
	for _, c := range chars {
		ones := 0
		for i := 0; i < 4; i++ {
			b := (c >> i) & 1
			bits = append(bits, b)
			ones += int(b)
		}
		bits = append(bits, byte(1-ones%2))
	}
	out := make([]byte, (len(bits)+7)/8)
	for i, b := range bits {
		out[i/8] |= b << (7 - i%8)
	}
	return out[:25]
}()

// guid is the card's 16-byte GUID, an RFC 9562 version 8 UUID made of the
// serial's SHA-256: stable for the card, different between cards.
func guid(serial string) []byte {
	h := sha256.Sum256([]byte("tpmcard PIV GUID\x00" + serial))
	g := h[:16]
	g[6] = g[6]&0x0F | 0x80
	g[8] = g[8]&0x3F | 0x80
	return g
}

// chuid is the Card Holder Unique Identifier (Part 1 §3.1.2, Table 9):
// FASC-N, GUID, an expiration date, and an empty issuer signature (the
// card is not issued by a PIV issuer: nothing could verify one).
func chuid(serial string) []byte {
	var v []byte
	v = tlv(v, 0x30, fascn)
	v = tlv(v, 0x34, guid(serial))
	v = tlv(v, 0x35, []byte("99991231"))
	v = tlv(v, 0x3E, nil)
	v = tlv(v, 0xFE, nil)
	return tlv(nil, 0x53, v)
}

// ccc is the Card Capability Container (Part 1 §3.1.1, Table 8).
func ccc(serial string) []byte {
	g := guid(serial)
	id := append([]byte{0xA0, 0x00, 0x00, 0x01, 0x16, 0xFF, 0x02}, g[:14]...)
	var v []byte
	v = tlv(v, 0xF0, id)           // card identifier
	v = tlv(v, 0xF1, []byte{0x21}) // capability container version
	v = tlv(v, 0xF2, []byte{0x21}) // capability grammar version
	v = tlv(v, 0xF3, nil)          // applications CardURL
	v = tlv(v, 0xF4, []byte{0x00}) // PKCS#15
	v = tlv(v, 0xF5, []byte{0x10}) // registered data model number
	v = tlv(v, 0xF6, nil)          // access control rule table
	v = tlv(v, 0xF7, nil)          // card APDUs
	v = tlv(v, 0xFA, nil)          // redirection tag
	v = tlv(v, 0xFB, nil)          // capability tuples
	v = tlv(v, 0xFC, nil)          // status tuples
	v = tlv(v, 0xFD, nil)          // next CCC
	v = tlv(v, 0xFE, nil)          // error detection code
	return tlv(nil, 0x53, v)
}

// keyHistory (Part 1 §3.3.3): no retired key management keys.
func keyHistory() []byte {
	var v []byte
	v = tlv(v, 0xC1, []byte{0x00})
	v = tlv(v, 0xC2, []byte{0x00})
	v = tlv(v, 0xFE, nil)
	return tlv(nil, 0x53, v)
}
