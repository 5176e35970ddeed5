package adminkey

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"strings"
	"testing"
	"time"
)

func testChallenge() *Challenge {
	return &Challenge{Op: Unblock, Serial: "0123456789abcdef", Nonce: []byte("0123456789ABCDEF"), Validity: 10 * time.Minute}
}

func TestChallengeRoundTrip(t *testing.T) {
	c := testChallenge()
	text := c.String()
	if len(strings.ReplaceAll(text, "-", "")) != 52 {
		t.Fatalf("challenge %q: %d characters", text, len(text))
	}
	for _, variant := range []string{text, strings.ToLower(text), strings.ReplaceAll(text, "-", " "), strings.ReplaceAll(text, "-", "")} {
		got, err := ParseChallenge(variant)
		if err != nil {
			t.Fatalf("ParseChallenge(%q): %v", variant, err)
		}
		if got.String() != text || got.Expiration() != -600 {
			t.Fatalf("round trip: %+v", got)
		}
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
	resp, err := Respond(key, c)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := ParseResponse(resp)
	if err != nil {
		t.Fatal(err)
	}
	if !Verify(&key.PublicKey, c, sig) {
		t.Fatal("response does not verify")
	}
	if Verify(&other.PublicKey, c, sig) {
		t.Fatal("response verifies under another key")
	}
	for name, change := range map[string]func(*Challenge){
		"other card":  func(c *Challenge) { c.Serial = "fedcba9876543210" },
		"other nonce": func(c *Challenge) { c.Nonce = []byte("XXXXXXXXXXXXXXXX") },
		"other time":  func(c *Challenge) { c.Validity = time.Hour },
		"other op":    func(c *Challenge) { c.Op = 2 },
	} {
		d := testChallenge()
		change(d)
		if Verify(&key.PublicKey, d, sig) {
			t.Errorf("%s: the response still verifies", name)
		}
	}
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if _, err := Respond(p384, c); err == nil {
		t.Fatal("a P-384 key signed a response")
	}
}
