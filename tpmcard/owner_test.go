package tpmcard

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"
	"github.com/tpmcard/tpmcard/tpmcard/tpmtest"
)

// busRecorder keeps a copy of every command sent to the TPM, as someone
// probing the bus (LPC/SPI) or the TPM's device file would see them.
type busRecorder struct {
	transport.TPM
	mu   sync.Mutex
	cmds [][]byte
}

func (b *busRecorder) Send(cmd []byte) ([]byte, error) {
	b.mu.Lock()
	b.cmds = append(b.cmds, append([]byte(nil), cmd...))
	b.mu.Unlock()
	return b.TPM.Send(cmd)
}

// seen counts the commands that contain secret, and the commands that name
// TPM_RH_OWNER in their handle area (so that a test knows owner-authorized
// commands went by).
func (b *busRecorder) seen(secret []byte) (withSecret, ownerCmds int, codes map[tpm2.TPMCC]int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	codes = map[tpm2.TPMCC]int{}
	for _, c := range b.cmds {
		if bytes.Contains(c, secret) {
			withSecret++
		}
		if len(c) >= 14 && binary.BigEndian.Uint32(c[10:14]) == uint32(tpm2.TPMRHOwner) {
			ownerCmds++
			codes[tpm2.TPMCC(binary.BigEndian.Uint32(c[6:10]))]++
		}
	}
	return
}

func setOwnerAuth(t *testing.T, tpm transport.TPM, old, pw []byte) {
	t.Helper()
	_, err := tpm2.HierarchyChangeAuth{
		AuthHandle: tpm2.AuthHandle{Handle: tpm2.TPMRHOwner, Auth: tpm2.PasswordAuth(old)},
		NewAuth:    tpm2.TPM2BAuth{Buffer: pw},
	}.Execute(tpm)
	if err != nil {
		t.Fatalf("setting the owner password: %v", err)
	}
}

// An owner password set on the TPM never crosses the bus in clear: a card
// is created, listed, used and destroyed, and no command carries the
// password. The recorder does see it when a command sends it as a
// password session, so the check can fail.
func TestAttackOwnerPasswordOnTheBus(t *testing.T) {
	tpmtest.ForEachTPM(t, func(t *testing.T, b *tpmtest.Backend) {
		pw := []byte("owner password 7c1e0b")
		setOwnerAuth(t, b.TPM, nil, pw)
		bus := &busRecorder{TPM: b.TPM}
		m, err := Open(bus, WithStateDir(t.TempDir()), WithOwnerAuth(pw))
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		serial := newCard(t, m)
		k := mustGenerate(t, m, serial, ECDSAP256)
		for range 3 {
			if _, err := m.Status(serial); err != nil {
				t.Fatal(err)
			}
		}
		if err := m.Login(serial, testPIN); err != nil {
			t.Fatal(err)
		}
		digest := sha256.Sum256([]byte("x"))
		if _, err := m.Sign(serial, k.ID, digest[:], SignOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := m.Status(serial); err != nil {
			t.Fatal(err)
		}
		if _, err := m.Attest(serial, k.ID, AttestOptions{}); err != nil { // NV_Certify of both indices
			t.Fatal(err)
		}
		if err := m.Destroy(serial); err != nil {
			t.Fatal(err)
		}
		withPW, ownerCmds, codes := bus.seen(pw)
		t.Logf("%d commands, %d owner-authorized %v, %d with the password", len(bus.cmds), ownerCmds, codes, withPW)
		if withPW != 0 {
			t.Errorf("%d commands carry the owner password in clear", withPW)
		}
		for _, cc := range []tpm2.TPMCC{tpm2.TPMCCCreatePrimary, tpm2.TPMCCNVDefineSpace, tpm2.TPMCCNVRead, tpm2.TPMCCNVUndefineSpace} {
			if codes[cc] == 0 {
				t.Errorf("no owner-authorized %v went by: the recorder saw nothing to check", cc)
			}
		}
		// Three listings, one after login: one owner session for all of
		// them, not one per read.
		starts := 0
		for _, c := range bus.cmds {
			if binary.BigEndian.Uint32(c[6:10]) == uint32(tpm2.TPMCCStartAuthSession) {
				starts++
			}
		}
		t.Logf("%d sessions started", starts)

		// The control: the old way, a password session, is seen.
		_, _ = tpm2.HierarchyChangeAuth{
			AuthHandle: tpm2.AuthHandle{Handle: tpm2.TPMRHOwner, Auth: tpm2.PasswordAuth(pw)},
			NewAuth:    tpm2.TPM2BAuth{Buffer: pw},
		}.Execute(bus)
		if n, _, _ := bus.seen(pw); n == 0 {
			t.Fatal("the recorder misses a password session: the check above proves nothing")
		}
	})
}

// With the wrong owner password, or one changed behind the Manager's back,
// every owner-authorized step says so, and the Manager recovers once the
// password is right again.
func TestOwnerAuthorizationRefused(t *testing.T) {
	tpmtest.ForEachTPM(t, func(t *testing.T, b *tpmtest.Backend) {
		pw := []byte("owner password 7c1e0b")
		setOwnerAuth(t, b.TPM, nil, pw)
		dir := t.TempDir()
		if _, err := Open(b.TPM, WithStateDir(dir), WithOwnerAuth([]byte("wrong"))); err == nil || !strings.Contains(err.Error(), "owner authorization refused") {
			t.Fatalf("Open with a wrong owner password: %v", err)
		}
		if _, err := Open(b.TPM, WithStateDir(dir)); err == nil || !strings.Contains(err.Error(), "owner authorization refused") {
			t.Fatalf("Open without the owner password: %v", err)
		}
		m, err := Open(b.TPM, WithStateDir(dir), WithOwnerAuth(pw))
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		serial := newCard(t, m)

		// The owner changes the password; the Manager still has the old.
		other := []byte("another owner password")
		setOwnerAuth(t, b.TPM, pw, other)
		if _, err := m.Status(serial); err == nil || !strings.Contains(err.Error(), "owner authorization refused") {
			t.Errorf("Status: %v", err)
		}
		if _, err := m.Create(CreateOptions{PIN: testPIN, PUK: testPUK}); err == nil || !strings.Contains(err.Error(), "owner authorization refused") {
			t.Errorf("Create: %v", err)
		}
		if err := m.Destroy(serial); err == nil || !strings.Contains(err.Error(), "owner authorization refused") {
			t.Errorf("Destroy: %v", err)
		}
		// Back to the password the Manager knows: a new owner session
		// works.
		setOwnerAuth(t, b.TPM, other, pw)
		if _, err := m.Status(serial); err != nil {
			t.Errorf("Status with the right password again: %v", err)
		}
		if err := m.Destroy(serial); err != nil {
			t.Errorf("Destroy with the right password again: %v", err)
		}
	})
}

// The owner session takes one of the TPM's few session slots; it yields
// its slot like any other session (the simulator has three) and comes back
// for the next owner-authorized read.
func TestOwnerSessionEvicted(t *testing.T) {
	m := openManager(t, tpmtest.Sim(t), "")
	var serials []string
	for range 3 {
		serials = append(serials, newCard(t, m))
	}
	for range 2 {
		for _, s := range serials {
			if err := m.Login(s, testPIN); err != nil {
				t.Fatal(err)
			}
			if _, err := m.Status(s); err != nil {
				t.Fatal(err)
			}
		}
	}
}
