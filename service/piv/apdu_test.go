package piv

import (
	"bytes"
	"encoding/hex"
	"errors"
	"testing"

	"github.com/tpmcard/tpmcard/tpmcard"
	"github.com/tpmcard/tpmcard/tpmcard/secret"
)

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseCommand(t *testing.T) {
	tests := []struct {
		name, apdu string
		want       Command
		sw         uint16
	}{
		{"ok/case1", "00a40400", Command{INS: 0xA4, P1: 4}, 0},
		{"ok/case2-short", "00cb3fff00", Command{INS: 0xCB, P1: 0x3F, P2: 0xFF, Ne: 256}, 0},
		{"ok/case3-short", "0020008008313233343536ffff", Command{INS: 0x20, P2: 0x80, Data: []byte("123456\xff\xff")}, 0},
		{"ok/case4-short", "00a4040005a00000030800", Command{INS: 0xA4, P1: 4, Data: mustHex(t, "a000000308"), Ne: 256}, 0},
		{"ok/case2-extended", "00cb3fff000000", Command{INS: 0xCB, P1: 0x3F, P2: 0xFF, Ne: 65536, Extended: true}, 0},
		{"ok/case3-extended", "0087119a0000037c0101", Command{INS: 0x87, P1: 0x11, P2: 0x9A, Data: mustHex(t, "7c0101"), Extended: true}, 0},
		{"ok/case4-extended", "0087119a0000037c01010100", Command{INS: 0x87, P1: 0x11, P2: 0x9A, Data: mustHex(t, "7c0101"), Ne: 256, Extended: true}, 0},
		{"ok/chained", "10db3fff0101", Command{CLA: 0x10, INS: 0xDB, P1: 0x3F, P2: 0xFF, Data: []byte{1}}, 0},
		{"fail/short-header", "00a404", Command{}, swWrongLength},
		{"fail/empty", "", Command{}, swWrongLength},
		{"fail/lc-too-long", "0020008008313233", Command{}, swWrongLength},
		{"fail/lc-too-short", "002000800131323334", Command{}, swWrongLength},
		{"fail/extended-half", "00cb3fff0000", Command{}, swWrongLength},
		{"fail/extended-lc-zero", "00cb3fff00000000", Command{}, swWrongLength},
		{"fail/extended-lc-wrong", "00cb3fff0000057c", Command{}, swWrongLength},
		{"fail/class-proprietary", "80a40400", Command{}, swCLANotSupported},
		{"fail/class-ff", "ffa40400", Command{}, swCLANotSupported},
		{"fail/secure-messaging", "0ca40400", Command{}, swCLANotSupported},
		{"fail/channel", "01a40400", Command{}, swCLANotSupported},
		{"fail/ins-6x", "00600000", Command{}, swINSNotSupported},
		{"fail/ins-9x", "00900000", Command{}, swINSNotSupported},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := mustHex(t, tt.apdu)
			c, err := ParseCommand(b)
			if tt.sw != 0 {
				if err == nil || SW(err) != tt.sw {
					t.Fatalf("ParseCommand(%s) = %+v, %v; want status %04X", tt.apdu, c, err, tt.sw)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseCommand(%s): %v", tt.apdu, err)
			}
			if c.CLA != tt.want.CLA || c.INS != tt.want.INS || c.P1 != tt.want.P1 || c.P2 != tt.want.P2 ||
				!bytes.Equal(c.Data, tt.want.Data) || c.Ne != tt.want.Ne || c.Extended != tt.want.Extended {
				t.Fatalf("ParseCommand(%s) = %+v, want %+v", tt.apdu, *c, tt.want)
			}
			if got := c.Bytes(); !bytes.Equal(got, b) {
				t.Fatalf("Bytes() = %x, want %x", got, b)
			}
		})
	}
}

func TestSWOfOtherErrors(t *testing.T) {
	if sw := SW(errors.New("x")); sw != swUnknown {
		t.Fatalf("SW = %04X, want 6F00", sw)
	}
}

// FuzzParseCommand: whatever ParseCommand accepts encodes back to exactly
// the bytes it read, and whatever it refuses it answers with a status word
// of the errors class (67, 6E, 6D).
func FuzzParseCommand(f *testing.F) {
	for _, s := range []string{
		"00a4040009a00000030800001000", "00cb3fff055c035fc10500", "0020008008313233343536ffff",
		"00cb3fff000000", "0087119a0000037c01010100", "10db3fff0101", "00c0000000", "002000ff", "00",
	} {
		f.Add(mustHex(f, s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseCommand(b)
		if err != nil {
			switch SW(err) {
			case swWrongLength, swCLANotSupported, swINSNotSupported:
			default:
				t.Fatalf("ParseCommand(%x): status %04X", b, SW(err))
			}
			return
		}
		if got := c.Bytes(); !bytes.Equal(got, b) {
			t.Fatalf("ParseCommand(%x) re-encodes as %x", b, got)
		}
		if len(c.Data) > 65535 || c.Ne > 65536 {
			t.Fatalf("ParseCommand(%x): %d data bytes, Ne %d", b, len(c.Data), c.Ne)
		}
	})
}

// refusingCard answers every card call with an error: the fuzz test of
// the applet drives its parsing of APDUs and TLVs, and no security
// property (those are tested on the TPM simulator, applet_test.go).
type refusingCard struct{}

var errRefused = errors.New("refused")

func (refusingCard) Verify(secret.Secret) error           { return &tpmcard.PINError{TriesLeft: 2} }
func (refusingCard) Verified() bool                       { return false }
func (refusingCard) Logout()                              {}
func (refusingCard) Status() (*tpmcard.CardStatus, error) { return nil, errRefused }
func (refusingCard) ChangePIN(_, _ secret.Secret) error   { return tpmcard.ErrPINLocked }
func (refusingCard) ChangePUK(_, _ secret.Secret) error   { return errRefused }
func (refusingCard) Unblock(_, _ secret.Secret) error     { return errRefused }
func (refusingCard) Certificate([]byte) ([]byte, error)   { return []byte{0x30, 0x00}, nil }
func (refusingCard) Key([]byte) (tpmcard.KeyInfo, error) {
	return tpmcard.KeyInfo{Algorithm: tpmcard.RSA2048}, nil
}
func (refusingCard) Sign(_, _ []byte, _ tpmcard.SignOptions) ([]byte, error) { return nil, errRefused }

// FuzzApplet: any sequence of APDUs gets a response of at least a status
// word, never a panic, and never more data than a short Le allows.
func FuzzApplet(f *testing.F) {
	f.Add(mustHex(f, "00a4040009a00000030800001000"), mustHex(f, "00cb3fff055c035fc10500"))
	f.Add(mustHex(f, "1087079a04"+"7c820000"), mustHex(f, "0087079a04"+"81020102"))
	f.Add(mustHex(f, "0020008008313233343536ffff"), mustHex(f, "00c0000000"))
	f.Add(mustHex(f, "002c008010"+"3132333435363738"+"31323334ffffffff"), mustHex(f, "0024008110"+"ff"))
	f.Fuzz(func(t *testing.T, a, b []byte) {
		ap := NewApplet("fuzz", refusingCard{}, map[byte][]byte{SlotAuthentication: {1}, SlotSignature: {2}})
		for _, apdu := range [][]byte{a, b, a, {0x00, 0xC0, 0, 0, 0}} {
			r := ap.Process(apdu)
			if len(r) < 2 || len(r) > 256+2 && len(apdu) < 7 {
				t.Fatalf("Process(%x) = %x", apdu, r)
			}
		}
	})
}
