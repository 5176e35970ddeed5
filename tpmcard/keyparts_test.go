package tpmcard

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/tpmcard/tpmcard/tpmcard/tpmtest"
)

// TestKeyHalves: a key's private and public halves are destroyed one at a
// time, the record says which are left across a restart of the Manager,
// the key leaves with its second half and its certificate stays; an ID
// whose public key is left is not taken again.
func TestKeyHalves(t *testing.T) {
	tpm := tpmtest.Sim(t)
	dir := t.TempDir()
	m := openManager(t, tpm, dir)
	serial := newCard(t, m)
	k := mustGenerate(t, m, serial, ECDSAP256)
	if err := m.DeletePublicKey(serial, k.ID); err != nil {
		t.Fatal(err)
	}
	if err := m.DeletePublicKey(serial, k.ID); !errors.Is(err, ErrKeyNotFound) {
		t.Fatalf("a public key destroyed twice: %v", err)
	}
	if err := m.Login(serial, testPIN); err != nil {
		t.Fatal(err)
	}
	d := sha256.Sum256([]byte("halves"))
	sig, err := m.Sign(serial, k.ID, d[:], SignOptions{})
	if err != nil {
		t.Fatalf("the private key without its public object: %v", err)
	}
	verify(t, k, d[:], sig, SignOptions{})
	if err := m.DeletePrivateKey(serial, k.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Key(serial, k.ID); !errors.Is(err, ErrKeyNotFound) {
		t.Fatalf("the key after both halves went: %v", err)
	}

	k = mustGenerate(t, m, serial, ECDSAP256)
	if err := m.DeletePrivateKey(serial, k.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Sign(serial, k.ID, d[:], SignOptions{}); !errors.Is(err, ErrKeyNotFound) {
		t.Fatalf("signing with a destroyed private key: %v", err)
	}
	m.Close()
	m = openManager(t, tpm, dir)
	got, err := m.Key(serial, k.ID)
	if err != nil || !got.PrivateDestroyed || got.PublicDestroyed || !got.Public.(interface{ Equal(crypto.PublicKey) bool }).Equal(k.Public) {
		t.Fatalf("the public key after a restart: %+v, %v", got, err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "cards", serial+".json"))
	if err != nil || !bytes.Contains(b, []byte(`"private": null`)) {
		t.Fatalf("the record keeps a private blob: %v", err)
	}
	_, err = m.GenerateKey(context.Background(), serial, KeyOptions{Algorithm: ECDSAP256, ID: k.ID}, nil)
	if !errors.Is(err, ErrInvalidOptions) {
		t.Fatalf("a new key with the ID of a public key left: %v", err)
	}
	if err := m.DeletePublicKey(serial, k.ID); err != nil {
		t.Fatal(err)
	}
	if keys, _ := m.Keys(serial); len(keys) != 0 {
		t.Fatalf("keys left: %+v", keys)
	}
}

// TestPINAlways: a PINAlways key signs only with a PIN proof of its own,
// each proof once; a PINOnce key refuses one; a wrong PIN is counted and
// ends the login; the PIN use survives a restart.
func TestPINAlways(t *testing.T) {
	tpm := tpmtest.Sim(t)
	dir := t.TempDir()
	m := openManager(t, tpm, dir)
	serial := newCard(t, m)
	k, err := m.GenerateKey(context.Background(), serial, KeyOptions{Algorithm: ECDSAP256, PINUse: PINAlways}, nil)
	if err != nil || k.PINUse != PINAlways {
		t.Fatalf("GenerateKey: %+v, %v", k, err)
	}
	once := mustGenerate(t, m, serial, ECDSAP256)
	d := sha256.Sum256([]byte("always"))
	p, err := m.ProvePIN(serial, testPIN)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Sign(serial, k.ID, d[:], SignOptions{PIN: p}); !errors.Is(err, ErrNotLoggedIn) {
		t.Fatalf("a proof without a login: %v", err)
	}
	if err := m.Login(serial, testPIN); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Sign(serial, k.ID, d[:], SignOptions{}); !errors.Is(err, ErrNotLoggedIn) {
		t.Fatalf("no proof: %v", err)
	}
	if _, err := m.Sign(serial, k.ID, d[:], SignOptions{PIN: p}); !errors.Is(err, ErrNotLoggedIn) {
		t.Fatalf("a proof used already: %v", err)
	}
	for i := 0; i < 2; i++ {
		p, err := m.ProvePIN(serial, testPIN)
		if err != nil {
			t.Fatal(err)
		}
		sig, err := m.Sign(serial, k.ID, d[:], SignOptions{PIN: p})
		if err != nil {
			t.Fatalf("signature %d: %v", i, err)
		}
		verify(t, k, d[:], sig, SignOptions{})
		if p.auth != nil {
			t.Fatal("the proof was not wiped")
		}
		// The login's keys sign in between, and the next always
		// signature still needs its own proof.
		if _, err := m.Sign(serial, once.ID, d[:], SignOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	p, _ = m.ProvePIN(serial, testPIN)
	if _, err := m.Sign(serial, once.ID, d[:], SignOptions{PIN: p}); !errors.Is(err, ErrInvalidOptions) {
		t.Fatalf("a proof for a key that needs none: %v", err)
	}
	_, err = m.ProvePIN(serial, []byte("wrong PIN!"))
	wantPINError(t, err, 2)
	if m.LoggedIn(serial) {
		t.Fatal("a wrong PIN proof left the card logged in")
	}
	m.Close()
	m = openManager(t, tpm, dir)
	if got, err := m.Key(serial, k.ID); err != nil || got.PINUse != PINAlways {
		t.Fatalf("after a restart: %+v, %v", got, err)
	}
}

// TestSessionKey: a session key signs after the card's PIN as its keys
// do, leaves nothing in the state directory, and signs no more once
// dropped or with its card destroyed.
func TestSessionKey(t *testing.T) {
	m := openManager(t, tpmtest.Sim(t), "")
	serial := newCard(t, m)
	rec := func() []byte {
		b, err := os.ReadFile(filepath.Join(m.StateDir(), "cards", serial+".json"))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	before := rec()
	sk, err := m.GenerateSessionKey(context.Background(), serial, KeyOptions{Algorithm: ECDSAP256}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, rec()) {
		t.Fatal("a session key changed the card record")
	}
	if keys, _ := m.Keys(serial); len(keys) != 0 {
		t.Fatalf("the card lists a session key: %+v", keys)
	}
	d := sha256.Sum256([]byte("session"))
	if _, err := m.SignSessionKey(sk, d[:], SignOptions{}); !errors.Is(err, ErrNotLoggedIn) {
		t.Fatalf("before login: %v", err)
	}
	if err := m.Login(serial, testPIN); err != nil {
		t.Fatal(err)
	}
	sig, err := m.SignSessionKey(sk, d[:], SignOptions{})
	if err != nil {
		t.Fatal(err)
	}
	verify(t, sk.Info(), d[:], sig, SignOptions{})
	m.DropSessionKey(sk)
	if _, err := m.SignSessionKey(sk, d[:], SignOptions{}); !errors.Is(err, ErrKeyNotFound) {
		t.Fatalf("a dropped session key: %v", err)
	}
	sk, err = m.GenerateSessionKey(context.Background(), serial, KeyOptions{Algorithm: ECDSAP256}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Destroy(serial); err != nil {
		t.Fatal(err)
	}
	if _, err := m.SignSessionKey(sk, d[:], SignOptions{}); !errors.Is(err, ErrCardNotFound) {
		t.Fatalf("a session key of a destroyed card: %v", err)
	}
}
