package adminkey

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-tpm/tpm2"
)

func pinPublic(index tpm2.TPMHandle, written bool) []byte {
	return tpm2.Marshal(tpm2.TPMSNVPublic{
		NVIndex: index, NameAlg: tpm2.TPMAlgSHA256,
		Attributes: tpm2.TPMANV{NT: tpm2.TPMNTPinFail, NoDA: true, PolicyWrite: true, OwnerRead: true, Written: written},
		AuthPolicy: tpm2.TPM2BDigest{Buffer: bytes.Repeat([]byte{7}, 32)},
		DataSize:   8,
	})
}

func testChallenge() *Challenge {
	return &Challenge{
		Op: Unblock, Serial: "0123456789abcdef", Validity: 10 * time.Minute,
		SetNonce: []byte("0123456789ABCDEF"), ResetNonce: []byte("FEDCBA9876543210"),
		PINLimit: 5, PINPublic: pinPublic(0x013CA001, true),
	}
}

// A challenge naming a PIN index that was never written is not a card's:
// it is what someone who replaced the card's index with a look-alike
// would send, so that the reset makes the look-alike WRITTEN.
func TestUnwrittenIndexRefused(t *testing.T) {
	c := testChallenge()
	c.PINPublic = pinPublic(0x013CA001, false)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if _, err := Respond(key, c); !errors.Is(err, ErrFormat) {
		t.Fatalf("Respond to a challenge for an unwritten index: %v", err)
	}
	if !strings.HasPrefix(c.String(), "invalid challenge") {
		t.Fatal("an unwritten index encodes")
	}
}

func TestChallengeRoundTrip(t *testing.T) {
	c := testChallenge()
	text := c.String()
	for _, variant := range []string{text, strings.ToLower(text), strings.ReplaceAll(text, "-", " "), strings.ReplaceAll(text, "-", "")} {
		got, err := ParseChallenge(variant)
		if err != nil {
			t.Fatalf("ParseChallenge(%q): %v", variant, err)
		}
		if got.String() != text || got.Expiration() != 600 || got.PINLimit != 5 || !bytes.Equal(got.PINName(), c.PINName()) {
			t.Fatalf("round trip: %+v", got)
		}
	}
}

// The reset signature binds exactly one NV_Write: its cpHash must be the
// one the TPM computes for NV_Write({0, limit}) to the PIN index.
func TestResetCpHashIsTheTPMs(t *testing.T) {
	c := testChallenge()
	name := tpm2.TPM2BName{Buffer: c.PINName()}
	want, err := tpm2.CPHash(tpm2.TPMAlgSHA256, tpm2.NVWrite{
		AuthHandle: tpm2.NamedHandle{Handle: 0x01000000, Name: name},
		NVIndex:    tpm2.NamedHandle{Handle: 0x01000000, Name: name},
		Data:       tpm2.TPM2BMaxNVBuffer{Buffer: []byte{0, 0, 0, 0, 0, 0, 0, 5}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(c.ResetCpHash(), want.Buffer) {
		t.Fatalf("cpHash %x, the TPM's %x", c.ResetCpHash(), want.Buffer)
	}
	c.PINLimit = 6
	if bytes.Equal(c.ResetCpHash(), want.Buffer) {
		t.Fatal("cpHash does not cover the limit")
	}
}

func TestTypingMistakesAreCaught(t *testing.T) {
	text := testChallenge().String()
	for i := 0; i < len(text); i++ {
		if text[i] == '-' {
			continue
		}
		b := []byte(text)
		b[i] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"[(strings.IndexByte("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", b[i])+1)%32]
		if _, err := ParseChallenge(string(b)); !errors.Is(err, ErrChecksum) && !errors.Is(err, ErrFormat) {
			t.Fatalf("a changed character %d went unnoticed: %v", i, err)
		}
	}
	if _, err := ParseChallenge("not a challenge"); err == nil {
		t.Fatal("garbage parsed")
	}
}

func TestRespondVerify(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	c := testChallenge()
	text, err := Respond(key, c)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := ParseResponse(text)
	if err != nil {
		t.Fatal(err)
	}
	if !Verify(&key.PublicKey, c, resp) {
		t.Fatal("response does not verify")
	}
	if Verify(&other.PublicKey, c, resp) {
		t.Fatal("response verifies under another key")
	}
	swapped := &Response{SetSig: resp.ResetSig, ResetSig: resp.SetSig}
	if Verify(&key.PublicKey, c, swapped) {
		t.Fatal("the two signatures are interchangeable")
	}
	for name, change := range map[string]func(*Challenge){
		"other card":        func(c *Challenge) { c.Serial = "fedcba9876543210" },
		"other set nonce":   func(c *Challenge) { c.SetNonce = []byte("XXXXXXXXXXXXXXXX") },
		"other reset nonce": func(c *Challenge) { c.ResetNonce = []byte("XXXXXXXXXXXXXXXX") },
		"other time":        func(c *Challenge) { c.Validity = time.Hour },
		"other limit":       func(c *Challenge) { c.PINLimit = 200 },
		"other index":       func(c *Challenge) { c.PINPublic = pinPublic(0x013CA003, true) },
	} {
		d := testChallenge()
		change(d)
		if Verify(&key.PublicKey, d, resp) {
			t.Errorf("%s: the response still verifies", name)
		}
	}
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if _, err := Respond(p384, c); err == nil {
		t.Fatal("a P-384 key signed a response")
	}
}
