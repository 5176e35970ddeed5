package main

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/sha256"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tpmcard/tpmcard/service/client"
	"github.com/tpmcard/tpmcard/service/wire"
	"github.com/tpmcard/tpmcard/tpmcard/secret"
	"github.com/tpmcard/tpmcard/tpmcard/tpmtest"
)

// The TPM goes away under four signing clients of the real service (swtpm
// stopped, then started again). The request that finds it gone answers
// TPMUnreachable (CKR_DEVICE_REMOVED) and every login ends: the others'
// signatures answer NotLoggedIn, and logging in answers TPMUnreachable
// until the TPM is back; `service status` says since when. Once swtpm
// runs again the service reconnects by itself and each client signs again
// after logging in again.
func TestTPMLostUnderSigningClients(t *testing.T) {
	sw := tpmtest.StartSWTPM(t)
	env, _ := startServiceOn(t, sw.Spec(), t.TempDir())
	sock := strings.TrimPrefix(env[0], "TPMCARD_SOCKET=")
	pin := "lost TPM PIN 1"
	id := cardWithKey(t, env, pin)
	admin, err := client.Dial(sock)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	cards, err := admin.ListCards()
	if err != nil || len(cards) != 1 {
		t.Fatalf("cards: %v %v", cards, err)
	}
	serial := cards[0].Serial

	type signer struct {
		c    *client.Client
		s    *client.Signer
		sess uint32
	}
	var signers []*signer
	for range 4 {
		c, err := client.Dial(sock)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		s, err := c.Signer(serial, id)
		if err != nil {
			t.Fatal(err)
		}
		sess, err := c.OpenSession(serial, false)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Login(sess, wire.UserNormal, secret.FromString(pin)); err != nil {
			t.Fatal(err)
		}
		signers = append(signers, &signer{c, s, sess})
	}
	digest := sha256.Sum256([]byte("sign through a TPM outage"))
	sign := func(s *signer) error {
		sig, err := s.s.Sign(nil, digest[:], crypto.SHA256)
		if err == nil && !ecdsa.VerifyASN1(s.s.Public().(*ecdsa.PublicKey), digest[:], sig) {
			t.Fatal("a signature does not verify")
		}
		return err
	}
	for _, s := range signers {
		if err := sign(s); err != nil {
			t.Fatalf("sign before the outage: %v", err)
		}
	}

	sw.Stop()
	if err := sign(signers[0]); !errors.Is(err, wire.StatusError{Status: wire.TPMUnreachable}) {
		t.Fatalf("the first sign after the TPM went away: got %v, want TPMUnreachable", err)
	}
	for _, s := range signers[1:] {
		if err := sign(s); !errors.Is(err, wire.StatusError{Status: wire.NotLoggedIn}) {
			t.Fatalf("sign while the TPM is gone: got %v, want NotLoggedIn (the logins ended)", err)
		}
		if err := s.c.Login(s.sess, wire.UserNormal, secret.FromString(pin)); !errors.Is(err, wire.StatusError{Status: wire.TPMUnreachable}) {
			t.Fatalf("login while the TPM is gone: got %v, want TPMUnreachable", err)
		}
	}
	st, errs, code := cli(t, env, "", "service", "status")
	if code != 0 || !strings.Contains(st, "UNREACHABLE since") {
		t.Fatalf("service status while the TPM is gone: %d %q %s", code, st, errs)
	}

	restarted := time.Now()
	sw.Restart(t)
	var wg sync.WaitGroup
	errs4 := make([]error, len(signers))
	for i, s := range signers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			relogged := false
			for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
				err := sign(s)
				switch {
				case err == nil:
					if !relogged {
						errs4[i] = errors.New("signed without logging in again")
					}
					return
				case errors.Is(err, wire.StatusError{Status: wire.NotLoggedIn}):
					if err := s.c.Login(s.sess, wire.UserNormal, secret.FromString(pin)); err != nil &&
						!errors.Is(err, wire.StatusError{Status: wire.TPMUnreachable}) {
						errs4[i] = err
						return
					}
					relogged = true
				case errors.Is(err, wire.StatusError{Status: wire.TPMUnreachable}):
				default:
					errs4[i] = err
					return
				}
			}
			errs4[i] = errors.New("did not sign again within 20 s")
		}()
	}
	wg.Wait()
	for i, err := range errs4 {
		if err != nil {
			t.Errorf("client %d: %v", i, err)
		}
	}
	t.Logf("all 4 clients signed again %v after swtpm started again", time.Since(restarted).Round(time.Millisecond))
	st, _, _ = cli(t, env, "", "service", "status")
	if !strings.Contains(st, "reconnected 1 times") {
		t.Fatalf("service status after the reconnection: %q", st)
	}
}
