package attack

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"testing"

	"github.com/tpmcard/tpmcard/tpmcard"
	"github.com/tpmcard/tpmcard/tpmcard/secret"
	"github.com/tpmcard/tpmcard/tpmcard/tpmtest"
)

// victimPIN is the victim's PIN; the attacker never uses it, except in the
// controls that show the attack's own machinery works.
const victimPIN = "24681357"

type cardKind int

const (
	withPUK     cardKind = iota // PUK, no admin key
	adminOnly                   // admin key, NoPUK
	pukAndAdmin                 // both
)

func (k cardKind) String() string {
	return [...]string{"puk", "admin-only", "puk+admin"}[k]
}

// victim is a card set up through tpmcard's public API alone, on a
// recorded bus.
type victim struct {
	dir    string
	serial string
	bus    *recorder
	m      *tpmcard.Manager
	admin  *ecdsa.PrivateKey // nil without an admin key
	keyID  []byte
}

// newVictim opens tpmcard on b's TPM through a bus recorder, creates a card
// of kind with one ECDSA key, logs in and signs once.
func newVictim(t *testing.T, b *tpmtest.Backend, kind cardKind) *victim {
	t.Helper()
	v := &victim{dir: t.TempDir(), bus: &recorder{TPM: b.TPM}}
	m, err := tpmcard.Open(v.bus, tpmcard.WithStateDir(v.dir))
	if err != nil {
		t.Fatalf("tpmcard.Open: %v", err)
	}
	v.m = m
	t.Cleanup(v.close)
	opts := tpmcard.CreateOptions{PIN: secret.FromString(victimPIN), PINTries: 5}
	if kind != withPUK {
		v.admin, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		opts.AdminKey = &v.admin.PublicKey
	}
	if kind == adminOnly {
		opts.NoPUK = true
	}
	c, err := m.Create(opts)
	if err != nil {
		t.Fatalf("Create(%v): %v", kind, err)
	}
	v.serial = c.Card.Serial
	ki, err := m.GenerateKey(context.Background(), v.serial, tpmcard.KeyOptions{Algorithm: tpmcard.ECDSAP256}, nil)
	if err != nil {
		t.Fatalf("GenerateKey: %v", err)
	}
	v.keyID = ki.ID
	if err := m.Login(v.serial, secret.FromString(victimPIN)); err != nil {
		t.Fatalf("Login: %v", err)
	}
	d := sha256.Sum256([]byte("victim's message"))
	if _, err := m.Sign(v.serial, v.keyID, d[:], tpmcard.SignOptions{}); err != nil {
		t.Fatalf("Sign: %v", err)
	}
	m.Logout(v.serial)
	return v
}

// close stops the victim's service (a stolen laptop, a service stopped):
// the Manager flushes what it holds, the TPM keeps the card.
func (v *victim) close() {
	if v.m != nil {
		_ = v.m.Close()
		v.m = nil
	}
}

func (v *victim) record(t *testing.T) *cardRecord { return readRecord(t, v.dir, v.serial) }
