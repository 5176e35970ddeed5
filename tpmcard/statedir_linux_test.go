package tpmcard

import (
	"context"
	"crypto"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"
	"github.com/tpmcard/tpmcard/tpmcard/secret"
	"github.com/tpmcard/tpmcard/tpmcard/tpmtest"
)

// nvIndices lists the TPM's defined NV indices.
func nvIndices(t *testing.T, tpm transport.TPM) []tpm2.TPMHandle {
	t.Helper()
	rsp, err := tpm2.GetCapability{Capability: tpm2.TPMCapHandles, Property: uint32(tpm2.TPMHTNVIndex) << 24, PropertyCount: 256}.Execute(tpm)
	if err != nil {
		t.Fatal(err)
	}
	hs, err := rsp.CapabilityData.Data.Handles()
	if err != nil {
		t.Fatal(err)
	}
	return hs.Handle
}

func wantENOSPC(t *testing.T, what string, err error) {
	t.Helper()
	var se *StateError
	if !errors.Is(err, syscall.ENOSPC) || !errors.As(err, &se) || se.Dir == "" {
		t.Fatalf("%s on a full state directory: %v, want a *StateError wrapping ENOSPC", what, err)
	}
}

// A full state directory refuses card creation, key generation, a PIN
// change that must be recorded, unblock and destroy with ENOSPC, before the
// TPM changes anything: no index without a record, no try spent. Once
// there is space again, each works.
func TestFullStateDirChangesNothing(t *testing.T) {
	tpmtest.ForEachTPM(t, func(t *testing.T, b *tpmtest.Backend) {
		dir := tpmtest.Tmpfs(t, 1<<20)
		m := openManager(t, b.TPM, dir)
		serial := newCard(t, m)
		fresh, err := m.Create(CreateOptions{PUK: testPUK}) // default PIN, must change
		if err != nil {
			t.Fatal(err)
		}
		nv := nvIndices(t, b.TPM)
		records, _ := m.st.list()
		free := tpmtest.Fill(t, dir)

		_, err = m.Create(CreateOptions{PIN: testPIN, PUK: testPUK})
		wantENOSPC(t, "Create", err)
		_, err = m.GenerateKey(context.Background(), serial, KeyOptions{Algorithm: ECDSAP256}, nil)
		wantENOSPC(t, "GenerateKey", err)
		newPIN := secret.FromString("the new PIN 1")
		wantENOSPC(t, "ChangePIN of a must-change card", m.ChangePIN(fresh.Card.Serial, secret.FromString(DefaultPIN), newPIN))
		wantENOSPC(t, "Unblock", m.Unblock(serial, testPUK, newPIN))
		wantENOSPC(t, "Destroy", m.Destroy(serial))
		// A change the record does not note needs no disk.
		if err := m.ChangePUK(serial, testPUK, secret.FromString("ANOTHERPUK99")); err != nil {
			t.Fatalf("ChangePUK on a full disk: %v", err)
		}
		if err := m.ChangePUK(serial, secret.FromString("ANOTHERPUK99"), testPUK); err != nil {
			t.Fatal(err)
		}

		if got := nvIndices(t, b.TPM); !slices.Equal(got, nv) {
			t.Fatalf("NV indices after the refusals: %v, before %v", got, nv)
		}
		if got, _ := m.st.list(); !slices.Equal(got, records) {
			t.Fatalf("records after the refusals: %v, before %v", got, records)
		}
		for _, s := range []string{serial, fresh.Card.Serial} {
			st, err := m.Status(s)
			if err != nil {
				t.Fatal(err)
			}
			if st.PINTriesLeft != st.PINTries || st.PUKTriesLeft != st.PUKTries {
				t.Fatalf("card %s: tries %d/%d PIN, %d/%d PUK after the refusals", s, st.PINTriesLeft, st.PINTries, st.PUKTriesLeft, st.PUKTries)
			}
			if st.MustChange != (s == fresh.Card.Serial) || len(st.Keys) != 0 {
				t.Fatalf("card %s changed: must change %v, %d keys", s, st.MustChange, len(st.Keys))
			}
		}
		if err := m.Login(serial, testPIN); err != nil {
			t.Fatalf("the old PIN after a refused unblock: %v", err)
		}
		m.Logout(serial)

		free()
		if _, err := m.Create(CreateOptions{PIN: testPIN, PUK: testPUK}); err != nil {
			t.Fatalf("Create after freeing space: %v", err)
		}
		mustGenerate(t, m, serial, ECDSAP256)
		if err := m.ChangePIN(fresh.Card.Serial, secret.FromString(DefaultPIN), newPIN); err != nil {
			t.Fatal(err)
		}
		if err := m.Unblock(serial, testPUK, newPIN); err != nil {
			t.Fatal(err)
		}
		if err := m.Destroy(serial); err != nil {
			t.Fatal(err)
		}
		ents, _ := os.ReadDir(m.st.cardsDir())
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), tmpPrefix) {
				t.Fatalf("temporary file left: %s", e.Name())
			}
		}
	})
}

// A PIN change that the TPM made but whose record write then failed is a
// success that says so: the new PIN works, and the Manager knows the PIN
// no longer must change.
func TestPINChangedButNotRecorded(t *testing.T) {
	tpm := tpmtest.Sim(t)
	dir := t.TempDir()
	m := openManager(t, tpm, dir)
	c, err := m.Create(CreateOptions{PUK: testPUK})
	if err != nil {
		t.Fatal(err)
	}
	serial := c.Card.Serial
	renames := 0
	m.st.rename = func(o, n string) error {
		if renames++; renames > 1 { // the check before passes, the record after fails
			return &os.LinkError{Op: "rename", Old: o, New: n, Err: syscall.ENOSPC}
		}
		return os.Rename(o, n)
	}
	newPIN := secret.FromString("the new PIN 1")
	err = m.ChangePIN(serial, secret.FromString(DefaultPIN), newPIN)
	var nr *NotRecordedError
	if !errors.As(err, &nr) || !errors.Is(err, syscall.ENOSPC) || !strings.Contains(nr.Done, "PIN was changed") {
		t.Fatalf("ChangePIN whose record write fails: %v, want a NotRecordedError", err)
	}
	m.st.rename = os.Rename
	if ci, _ := m.Card(serial); ci.MustChange {
		t.Fatal("the Manager still asks for a PIN change")
	}
	if err := m.Login(serial, newPIN); err != nil {
		t.Fatalf("the new PIN: %v", err)
	}
	m.Close()
	// After a restart the record asks for the change again, which the new
	// PIN makes.
	m2 := openManager(t, tpm, dir)
	if ci, _ := m2.Card(serial); !ci.MustChange {
		t.Fatal("the record was written after all")
	}
	if err := m2.ChangePIN(serial, newPIN, secret.FromString("a newer PIN 2")); err != nil {
		t.Fatal(err)
	}
}

// A destroy cut short after the TPM part lists as "destroy incomplete",
// refuses use, and the next destroy finishes it; so does one whose indices
// someone else undefined.
func TestDestroyIncomplete(t *testing.T) {
	tpmtest.ForEachTPM(t, func(t *testing.T, b *tpmtest.Backend) {
		m := openManager(t, b.TPM, "")
		nv := nvIndices(t, b.TPM)
		serial := newCard(t, m)
		m.st.remove = func(name string) error {
			return &os.PathError{Op: "remove", Path: name, Err: syscall.EROFS}
		}
		err := m.Destroy(serial)
		if !errors.Is(err, ErrDestroyIncomplete) || !errors.Is(err, syscall.EROFS) {
			t.Fatalf("Destroy whose record removal fails: %v", err)
		}
		m.st.remove = os.Remove
		if got := nvIndices(t, b.TPM); !slices.Equal(got, nv) {
			t.Fatalf("NV indices after the TPM part of a destroy: %v, want %v", got, nv)
		}
		cards, err := m.Cards()
		if err != nil || len(cards) != 1 || !cards[0].DestroyIncomplete {
			t.Fatalf("Cards: %+v %v", cards, err)
		}
		if _, err := m.Status(serial); !errors.Is(err, ErrDestroyIncomplete) {
			t.Fatalf("Status: %v", err)
		}
		if err := m.Login(serial, testPIN); !errors.Is(err, ErrDestroyIncomplete) {
			t.Fatalf("Login: %v", err)
		}
		m.Close()
		m = openManager(t, b.TPM, m.st.dir) // it stays so across restarts
		if cards, _ := m.Cards(); len(cards) != 1 || !cards[0].DestroyIncomplete {
			t.Fatalf("Cards after a restart: %+v", cards)
		}
		if err := m.Destroy(serial); err != nil {
			t.Fatalf("the second destroy: %v", err)
		}
		if cards, _ := m.Cards(); len(cards) != 0 {
			t.Fatalf("Cards after the second destroy: %+v", cards)
		}

		// Undefined behind the service: lost, and destroy removes it.
		serial = newCard(t, m)
		r, _ := m.record(serial)
		if err := m.undefine(r); err != nil {
			t.Fatal(err)
		}
		delete(m.namesOK, serial)
		if _, err := m.Status(serial); !errors.Is(err, ErrCardLost) {
			t.Fatalf("Status of a card whose indices are gone: %v", err)
		}
		if err := m.Destroy(serial); err != nil {
			t.Fatalf("Destroy of a lost card: %v", err)
		}
		if got := nvIndices(t, b.TPM); !slices.Equal(got, nv) {
			t.Fatalf("NV indices at the end: %v, want %v", got, nv)
		}
	})
}

// Open removes the temporary files of killed writes and says how many.
func TestStaleTempFilesRemoved(t *testing.T) {
	tpm := tpmtest.Sim(t)
	dir := t.TempDir()
	m := openManager(t, tpm, dir)
	serial := newCard(t, m)
	m.Close()
	for _, n := range []string{tmpPrefix + serial + "-123", tmpPrefix + serial + "-456"} {
		if err := os.WriteFile(filepath.Join(dir, "cards", n), []byte(`{"half":`), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	m = openManager(t, tpm, dir)
	if n := m.StaleFilesRemoved(); n != 2 {
		t.Fatalf("StaleFilesRemoved = %d, want 2", n)
	}
	ents, _ := os.ReadDir(filepath.Join(dir, "cards"))
	if len(ents) != 1 {
		t.Fatalf("cards directory after Open: %v", ents)
	}
	if _, err := m.Status(serial); err != nil {
		t.Fatal(err)
	}
}

// GenerateKey with an ID the card has, for the same algorithm, returns
// that key: a client that retries after losing the answer gets no second
// key. Another algorithm is refused.
func TestGenerateKeyIdempotentForID(t *testing.T) {
	m := openManager(t, tpmtest.Sim(t), "")
	serial := newCard(t, m)
	id := []byte("retried key")
	k1, err := m.GenerateKey(context.Background(), serial, KeyOptions{Algorithm: ECDSAP256, ID: id}, nil)
	if err != nil {
		t.Fatal(err)
	}
	k2, err := m.GenerateKey(context.Background(), serial, KeyOptions{Algorithm: ECDSAP256, ID: id}, nil)
	if err != nil {
		t.Fatalf("the retry: %v", err)
	}
	if !k1.Public.(interface{ Equal(crypto.PublicKey) bool }).Equal(k2.Public) {
		t.Fatal("the retry made another key")
	}
	if keys, _ := m.Keys(serial); len(keys) != 1 {
		t.Fatalf("%d keys after a retry", len(keys))
	}
	_, err = m.GenerateKey(context.Background(), serial, KeyOptions{Algorithm: ECDSAP384, ID: id}, nil)
	if !errors.Is(err, ErrInvalidOptions) || !strings.Contains(err.Error(), "already has a ecdsa-p256 key") {
		t.Fatalf("the same ID for another algorithm: %v", err)
	}
}
