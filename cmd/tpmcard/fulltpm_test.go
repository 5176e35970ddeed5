package main

import (
	"crypto"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/tpmcard/tpmcard/service/client"
	"github.com/tpmcard/tpmcard/service/wire"
	"github.com/tpmcard/tpmcard/tpmcard/secret"
	"github.com/tpmcard/tpmcard/tpmcard/tpmtest"
)

// The real service on swtpm (3 object and 3 session slots) holds six
// loaded keys' worth of work and three logins, then changes a PIN and
// unblocks a card with the PUK through the CLI; afterwards every key of
// every card signs again.
func TestFullTPMThroughService(t *testing.T) {
	sw := tpmtest.StartSWTPM(t)
	env, _ := startServiceOn(t, sw.Spec(), t.TempDir())
	sock := strings.TrimPrefix(env[0], "TPMCARD_SOCKET=")
	type card struct {
		serial, pin, puk string
		ids              [][]byte
		c                *client.Client
		sess             uint32
		signers          []*client.Signer
	}
	var cards []*card
	for i := range 3 {
		cd := &card{pin: fmt.Sprintf("full TPM PIN %d", i), puk: fmt.Sprintf("FULLTPMPUK%d", i)}
		out, errs, code := cli(t, env, cd.pin+"\n"+cd.puk+"\n", "card", "create", "--pin-stdin", "--puk-stdin", "--label", fmt.Sprintf("full%d", i), "--json")
		if code != 0 {
			t.Fatalf("card create: %s", errs)
		}
		var created struct{ Serial string }
		if err := json.Unmarshal([]byte(out), &created); err != nil || created.Serial == "" {
			t.Fatalf("card create --json: %q %v", out, err)
		}
		cd.serial = created.Serial
		for range 2 {
			if _, errs, code := cli(t, env, "", "key", "generate", "--card", cd.serial); code != 0 {
				t.Fatalf("key generate: %s", errs)
			}
		}
		out, _, _ = cli(t, env, "", "key", "list", "--card", cd.serial, "--json")
		var keys []keyView
		if err := json.Unmarshal([]byte(out), &keys); err != nil || len(keys) != 2 {
			t.Fatalf("key list: %q %v", out, err)
		}
		for _, k := range keys {
			id, _ := hex.DecodeString(k.ID)
			cd.ids = append(cd.ids, id)
		}
		cards = append(cards, cd)
	}
	digest := sha256.Sum256([]byte("a full TPM"))
	signAll := func(when string) {
		t.Helper()
		for _, cd := range cards {
			for _, s := range cd.signers {
				if _, err := s.Sign(nil, digest[:], crypto.SHA256); err != nil {
					t.Fatalf("%s: card %s signs: %v", when, cd.serial, err)
				}
			}
		}
	}
	login := func(cd *card, pin string) {
		t.Helper()
		if err := cd.c.Login(cd.sess, wire.UserNormal, secret.FromString(pin)); err != nil {
			t.Fatalf("login to %s: %v", cd.serial, err)
		}
	}
	for _, cd := range cards {
		c, err := client.Dial(sock)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		cd.c = c
		if cd.sess, err = c.OpenSession(cd.serial, false); err != nil {
			t.Fatal(err)
		}
		for _, id := range cd.ids {
			s, err := c.Signer(cd.serial, id)
			if err != nil {
				t.Fatal(err)
			}
			cd.signers = append(cd.signers, s)
		}
		login(cd, cd.pin)
	}
	signAll("with every slot taken")

	// A PIN change on card 0.
	if _, errs, code := cli(t, env, cards[0].pin+"\nchanged full PIN 0\n", "pin", "change", "--card", cards[0].serial, "--pin-stdin", "--new-pin-stdin"); code != 0 {
		t.Fatalf("pin change on a full TPM: %s", errs)
	}
	// Card 1 locked, then unblocked with its PUK.
	for range 5 {
		cli(t, env, "wrong full PIN\n", "sign", "--card", cards[1].serial, "--pin-stdin", "--in", "/dev/null")
	}
	if _, errs, code := cli(t, env, cards[1].puk+"\nunblocked full PIN 1\n", "pin", "unblock", "--card", cards[1].serial, "--puk-stdin", "--new-pin-stdin"); code != 0 {
		t.Fatalf("pin unblock on a full TPM: %s", errs)
	}
	if _, errs, code := cli(t, env, "unblocked full PIN 1\nchanged full PIN 1\n", "pin", "change", "--card", cards[1].serial, "--pin-stdin", "--new-pin-stdin"); code != 0 {
		t.Fatalf("pin change after the unblock on a full TPM: %s", errs)
	}
	// The wrong PINs ended card 1's login: log in again.
	login(cards[1], "changed full PIN 1")
	signAll("after the PIN change and the unblock")
	if out, errs, code := cli(t, env, "", "service", "status"); code != 0 || !strings.Contains(out, "cards     3") {
		t.Fatalf("service status: %q %s", out, errs)
	}
}
