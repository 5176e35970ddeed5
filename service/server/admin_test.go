//go:build linux

package server

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"strings"
	"testing"

	"github.com/tpmcard/tpmcard/service/wire"
	"github.com/tpmcard/tpmcard/tpmcard/adminkey"
	"github.com/tpmcard/tpmcard/tpmcard/secret"
)

func TestAdminUnblockOverSocket(t *testing.T) {
	e := newEnv(t, nil, nil)
	c := e.dial()
	defer c.Close()
	admin, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalPKIXPublicKey(&admin.PublicKey)
	p, err := c.Provision(wire.Provision{Label: "fleet", PIN: testPIN.Clone(), PINTries: 3, AdminKey: der, NoPUK: true})
	if err != nil {
		t.Fatal(err)
	}
	cards, _ := c.ListCards()
	if len(cards) != 1 || cards[0].HasPUK || !cards[0].HasAdminKey || cards[0].PUKTriesMax != 0 {
		t.Fatalf("token info of an admin-key card: %+v", cards)
	}
	s := mustOpen(t, c, p.Serial, false)
	for i := 0; i < 3; i++ {
		c.Login(s, wire.UserNormal, secret.FromString("wrong PIN 000"))
	}
	wantStatus(t, "PUK unblock of a card without PUK", c.Unblock(p.Serial, testPUK.Clone(), secret.FromString("new PIN 1234")), wire.NoPUK)

	ch, err := c.AdminChallenge(p.Serial, 0)
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := adminkey.ParseChallenge(ch.Text)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	bad, _ := adminkey.Respond(other, parsed)
	wantStatus(t, "a response from another key", c.AdminUnblock(p.Serial, bad, secret.FromString("new PIN 1234")), wire.ResponseInvalid)
	wantStatus(t, "the challenge after a refusal", c.AdminUnblock(p.Serial, bad, secret.FromString("new PIN 1234")), wire.NoChallenge)

	ch, _ = c.AdminChallenge(p.Serial, 0)
	parsed, _ = adminkey.ParseChallenge(ch.Text)
	good, _ := adminkey.Respond(admin, parsed)
	typo := []byte(good)
	typo[3] ^= 1
	wantStatus(t, "a mistyped response", c.AdminUnblock(p.Serial, string(typo), secret.FromString("new PIN 1234")), wire.ResponseInvalid)
	if err := c.AdminUnblock(p.Serial, good, secret.FromString("new PIN 1234")); err != nil {
		t.Fatalf("admin unblock: %v", err)
	}
	cards, _ = c.ListCards()
	if cards[0].Flags&wire.FlagUserPINLocked != 0 || cards[0].Flags&wire.FlagUserPINToBeChanged == 0 {
		t.Fatalf("after the unblock: flags %#x", cards[0].Flags)
	}
	if err := c.Login(s, wire.UserNormal, secret.FromString("new PIN 1234")); err != nil {
		t.Fatal(err)
	}
	logs := e.logs.String()
	for _, want := range []string{"unblock challenge issued", "admin unblock refused", "card unblocked with the admin key"} {
		if !strings.Contains(logs, want) {
			t.Errorf("audit log lacks %q", want)
		}
	}
}
