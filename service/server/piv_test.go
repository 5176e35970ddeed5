//go:build linux

package server

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/binary"
	"testing"

	"github.com/tpmcard/tpmcard/service/piv"
	"github.com/tpmcard/tpmcard/tpmcard"
	"github.com/tpmcard/tpmcard/tpmcard/secret"
	"github.com/tpmcard/tpmcard/tpmcard/tpmtest"
)

// pinField8 pads a PIV PIN or PUK to 8 bytes with 0xFF.
func pinField8(s string) []byte {
	b := bytes.Repeat([]byte{0xFF}, 8)
	copy(b, s)
	return b
}

func apdu(cla, ins, p1, p2 byte, data []byte) []byte {
	out := []byte{cla, ins, p1, p2}
	if len(data) > 0 {
		out = append(out, byte(len(data)))
		out = append(out, data...)
	}
	return out
}

// transmit sends one command, gathers 61xx parts with GET RESPONSE and
// returns the data and the status word.
func transmit(t *testing.T, a *piv.Applet, cmd []byte) ([]byte, uint16) {
	t.Helper()
	r := a.Process(cmd)
	var data []byte
	for {
		if len(r) < 2 {
			t.Fatalf("response %x is shorter than a status word", r)
		}
		data = append(data, r[:len(r)-2]...)
		sw := binary.BigEndian.Uint16(r[len(r)-2:])
		if sw>>8 != 0x61 {
			return data, sw
		}
		r = a.Process([]byte{0x00, 0xC0, 0x00, 0x00, 0x00})
	}
}

// generalAuthenticate sends a 7C template with the challenge, in a
// chain when it is long, and returns the signature from 7C 82.
func generalAuthenticate(t *testing.T, a *piv.Applet, alg, slot byte, challenge []byte) ([]byte, uint16) {
	t.Helper()
	inner := append([]byte{0x82, 0x00, 0x81}, berLen(len(challenge))...)
	inner = append(inner, challenge...)
	tmpl := append([]byte{0x7C}, berLen(len(inner))...)
	tmpl = append(tmpl, inner...)
	for len(tmpl) > 255 {
		if _, sw := transmit(t, a, apdu(0x10, 0x87, alg, slot, tmpl[:255])); sw != 0x9000 {
			return nil, sw
		}
		tmpl = tmpl[255:]
	}
	data, sw := transmit(t, a, append(apdu(0x00, 0x87, alg, slot, tmpl), 0x00))
	if sw != 0x9000 {
		return nil, sw
	}
	// 7C L 82 L sig
	_, rest := berTL(t, data)
	_, sig := berTL(t, rest)
	return sig, sw
}

func berLen(n int) []byte {
	switch {
	case n < 0x80:
		return []byte{byte(n)}
	case n < 0x100:
		return []byte{0x81, byte(n)}
	}
	return []byte{0x82, byte(n >> 8), byte(n)}
}

func berTL(t *testing.T, b []byte) (byte, []byte) {
	t.Helper()
	if len(b) < 2 {
		t.Fatalf("TLV %x too short", b)
	}
	tag, l, off := b[0], int(b[1]), 2
	switch b[1] {
	case 0x81:
		l, off = int(b[2]), 3
	case 0x82:
		l, off = int(b[2])<<8|int(b[3]), 4
	}
	if off+l != len(b) {
		t.Fatalf("TLV %x: length %d, %d bytes", b, l, len(b)-off)
	}
	return tag, b[off:]
}

// TestPIVCard drives the PIV applet over the service's card: every PIN
// and PUK check is the TPM's, tries left come from its counter, and the
// signatures verify with the card keys' public keys.
func TestPIVCard(t *testing.T) {
	tpmtest.ForEachTPM(t, func(t *testing.T, b *tpmtest.Backend) {
		e := newEnv(t, b.TPM, nil)
		const pin, puk = "123456", "87654321"
		e.secrets = append(e.secrets, pin, puk, "654321", "24682468")
		created, err := e.m.Create(tpmcard.CreateOptions{
			PIN: secret.FromString(pin), PUK: secret.FromString(puk),
			PINPolicy: &tpmcard.PINPolicy{MinLength: 6, MaxLength: 8}, PINTries: 3,
		})
		if err != nil {
			t.Fatalf("Create: %v", err)
		}
		serial := created.Card.Serial
		ctx := context.Background()
		ec, err := e.m.GenerateKey(ctx, serial, tpmcard.KeyOptions{Algorithm: tpmcard.ECDSAP256}, nil)
		if err != nil {
			t.Fatalf("GenerateKey P-256: %v", err)
		}
		rk, err := e.m.GenerateKey(ctx, serial, tpmcard.KeyOptions{Algorithm: tpmcard.RSA2048}, nil)
		if err != nil {
			t.Fatalf("GenerateKey RSA-2048: %v", err)
		}
		always, err := e.m.GenerateKey(ctx, serial, tpmcard.KeyOptions{Algorithm: tpmcard.ECDSAP256, PINUse: tpmcard.PINAlways}, nil)
		if err != nil {
			t.Fatalf("GenerateKey always: %v", err)
		}
		p384, err := e.m.GenerateKey(ctx, serial, tpmcard.KeyOptions{Algorithm: tpmcard.ECDSAP384}, nil)
		if err != nil {
			t.Fatalf("GenerateKey P-384: %v", err)
		}
		slots := map[byte][]byte{piv.SlotAuthentication: ec.ID, piv.SlotKeyManagement: rk.ID, piv.SlotCardAuth: always.ID, piv.SlotSignature: p384.ID}
		card := e.s.newPIVCard(serial, "test reader", slots)
		a := piv.NewApplet(serial, card, slots)

		if _, sw := transmit(t, a, apdu(0x00, 0xA4, 0x04, 0x00, []byte{0xA0, 0x00, 0x00, 0x03, 0x08})); sw != 0x9000 {
			t.Fatalf("SELECT: %04x", sw)
		}
		digest := sha256.Sum256([]byte("PIV challenge"))
		if _, sw := generalAuthenticate(t, a, 0x11, 0x9A, digest[:]); sw != 0x6982 {
			t.Errorf("ok/sign before VERIFY: %04x, want 6982", sw)
		}
		if _, sw := transmit(t, a, apdu(0x00, 0x20, 0x00, 0x80, nil)); sw != 0x63C3 {
			t.Errorf("ok/VERIFY status: %04x, want 63C3", sw)
		}
		if _, sw := transmit(t, a, apdu(0x00, 0x20, 0x00, 0x80, pinField8("000000"))); sw != 0x63C2 {
			t.Errorf("fail/wrong PIN: %04x, want 63C2 (the TPM's counter)", sw)
		}
		if st, _ := e.m.Status(serial); st.PINTriesLeft != 2 {
			t.Errorf("the TPM says %d tries left, want 2", st.PINTriesLeft)
		}
		if _, sw := transmit(t, a, apdu(0x00, 0x20, 0x00, 0x80, pinField8(pin))); sw != 0x9000 {
			t.Fatalf("ok/right PIN: %04x", sw)
		}
		if _, sw := transmit(t, a, apdu(0x00, 0x20, 0x00, 0x80, nil)); sw != 0x9000 {
			t.Errorf("ok/VERIFY status after VERIFY: %04x", sw)
		}

		// ECDSA P-256 in 9A.
		sig, sw := generalAuthenticate(t, a, 0x11, 0x9A, digest[:])
		if sw != 0x9000 {
			t.Fatalf("ok/ECDSA: %04x", sw)
		}
		if !ecdsa.VerifyASN1(ec.Public.(*ecdsa.PublicKey), digest[:], sig) {
			t.Errorf("ok/ECDSA: the signature does not verify")
		}

		// RSA-2048 PKCS #1 v1.5 in 9D: the block the host pads.
		rsaPub := rk.Public.(*rsa.PublicKey)
		info := append([]byte{0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20}, digest[:]...)
		block := append([]byte{0x00, 0x01}, bytes.Repeat([]byte{0xFF}, rsaPub.Size()-3-len(info))...)
		block = append(append(block, 0x00), info...)
		sig, sw = generalAuthenticate(t, a, 0x07, 0x9D, block)
		if sw != 0x9000 {
			t.Fatalf("ok/RSA: %04x", sw)
		}
		if err := rsa.VerifyPKCS1v15(rsaPub, crypto.SHA256, digest[:], sig); err != nil {
			t.Errorf("ok/RSA: %v", err)
		}

		// ECDSA P-384 in 9c, the digital signature key: once per VERIFY.
		d384 := sha512.Sum384([]byte("PIV challenge"))
		if sig, sw = generalAuthenticate(t, a, 0x14, 0x9C, d384[:]); sw != 0x9000 || !ecdsa.VerifyASN1(p384.Public.(*ecdsa.PublicKey), d384[:], sig) {
			t.Errorf("ok/ECDSA P-384 in 9c: %04x", sw)
		}
		if _, sw = generalAuthenticate(t, a, 0x14, 0x9C, d384[:]); sw != 0x6982 {
			t.Errorf("fail/9c twice after one VERIFY: %04x, want 6982", sw)
		}
		if _, sw = generalAuthenticate(t, a, 0x11, 0x9C, d384[:]); sw != 0x6A86 {
			t.Errorf("fail/9c with the P-256 algorithm: %04x, want 6A86", sw)
		}
		if _, sw := transmit(t, a, apdu(0x00, 0x20, 0x00, 0x80, pinField8(pin))); sw != 0x9000 {
			t.Fatalf("ok/VERIFY for the always key: %04x", sw)
		}

		// A key that needs the PIN for every signature: once per VERIFY.
		if sig, sw = generalAuthenticate(t, a, 0x11, 0x9E, digest[:]); sw != 0x9000 || !ecdsa.VerifyASN1(always.Public.(*ecdsa.PublicKey), digest[:], sig) {
			t.Errorf("ok/always key after VERIFY: %04x", sw)
		}
		if _, sw = generalAuthenticate(t, a, 0x11, 0x9E, digest[:]); sw != 0x6982 {
			t.Errorf("fail/always key twice: %04x, want 6982", sw)
		}
		if _, sw := transmit(t, a, apdu(0x00, 0x20, 0x00, 0x80, pinField8(pin))); sw != 0x9000 {
			t.Fatalf("ok/VERIFY again: %04x", sw)
		}
		if _, sw = generalAuthenticate(t, a, 0x11, 0x9E, digest[:]); sw != 0x9000 {
			t.Errorf("ok/always key after a second VERIFY: %04x", sw)
		}

		// Wrong PINs until locked: the login ends at the first.
		for i, want := range []uint16{0x63C2, 0x63C1, 0x6983, 0x6983} {
			if _, sw := transmit(t, a, apdu(0x00, 0x20, 0x00, 0x80, pinField8("999999"))); sw != want {
				t.Errorf("fail/wrong PIN %d: %04x, want %04x", i+1, sw, want)
			}
		}
		if _, sw := generalAuthenticate(t, a, 0x11, 0x9A, digest[:]); sw != 0x6982 {
			t.Errorf("fail/sign after a wrong PIN: %04x, want 6982", sw)
		}
		if _, sw := transmit(t, a, apdu(0x00, 0x20, 0x00, 0x80, pinField8(pin))); sw != 0x6983 {
			t.Errorf("fail/right PIN when locked: %04x, want 6983", sw)
		}
		if st, _ := e.m.Status(serial); !st.PINLocked {
			t.Errorf("the TPM does not say the PIN is locked")
		}

		// RESET RETRY COUNTER: a wrong PUK costs a PUK try, the right one
		// unblocks, and the new PIN must change before any signature.
		if _, sw := transmit(t, a, apdu(0x00, 0x2C, 0x00, 0x80, append(pinField8("11111111"), pinField8("654321")...))); sw != 0x63C2 {
			t.Errorf("fail/wrong PUK: %04x, want 63C2", sw)
		}
		if _, sw := transmit(t, a, apdu(0x00, 0x2C, 0x00, 0x80, append(pinField8(puk), pinField8("654321")...))); sw != 0x9000 {
			t.Fatalf("ok/RESET RETRY COUNTER: %04x", sw)
		}
		if _, sw := transmit(t, a, apdu(0x00, 0x20, 0x00, 0x80, pinField8("654321"))); sw != 0x9000 {
			t.Fatalf("ok/VERIFY new PIN: %04x", sw)
		}
		if _, sw := generalAuthenticate(t, a, 0x11, 0x9A, digest[:]); sw != 0x6982 {
			t.Errorf("fail/sign with a PIN that must change: %04x, want 6982", sw)
		}
		if _, sw := transmit(t, a, apdu(0x00, 0x24, 0x00, 0x80, append(pinField8("654321"), pinField8(pin)...))); sw != 0x9000 {
			t.Fatalf("ok/CHANGE REFERENCE DATA: %04x", sw)
		}
		if _, sw := transmit(t, a, apdu(0x00, 0x20, 0x00, 0x80, pinField8(pin))); sw != 0x9000 {
			t.Fatalf("ok/VERIFY changed PIN: %04x", sw)
		}
		if sig, sw = generalAuthenticate(t, a, 0x11, 0x9A, digest[:]); sw != 0x9000 || !ecdsa.VerifyASN1(ec.Public.(*ecdsa.PublicKey), digest[:], sig) {
			t.Errorf("ok/sign after the change: %04x", sw)
		}
		// CHANGE REFERENCE DATA of the PUK: the TPM checks the old one.
		if _, sw := transmit(t, a, apdu(0x00, 0x24, 0x00, 0x81, append(pinField8("00000000"), pinField8("24682468")...))); sw != 0x63C2 {
			t.Errorf("fail/PUK change with a wrong PUK: %04x, want 63C2 (the unblock reset the count)", sw)
		}
		if _, sw := transmit(t, a, apdu(0x00, 0x24, 0x00, 0x81, append(pinField8(puk), pinField8("24682468")...))); sw != 0x9000 {
			t.Errorf("ok/PUK change: %04x", sw)
		}
		if err := e.m.CheckPUK(serial, secret.FromString("24682468")); err != nil {
			t.Errorf("the new PUK: %v", err)
		}
		// A reset ends the security status.
		a.Reset()
		if _, sw := generalAuthenticate(t, a, 0x11, 0x9A, digest[:]); sw != 0x6982 {
			t.Errorf("fail/sign after reset: %04x, want 6982", sw)
		}
	})
}
