package tpmcard

import (
	"crypto"
	"crypto/sha256"
	"testing"
	"time"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"
	"github.com/tpmcard/tpmcard/tpmcard/tpmtest"
)

// countHandles counts the transient objects and the loaded and saved
// sessions the TPM lists.
func countHandles(t *testing.T, tpm transport.TPM) (objects, sessions int) {
	t.Helper()
	for _, first := range []uint32{0x80000000, 0x02000000, 0x03000000} {
		rsp, err := tpm2.GetCapability{Capability: tpm2.TPMCapHandles, Property: first, PropertyCount: 64}.Execute(tpm)
		if err != nil {
			t.Fatal(err)
		}
		hs, err := rsp.CapabilityData.Data.Handles()
		if err != nil {
			t.Fatal(err)
		}
		if first == 0x80000000 {
			objects += len(hs.Handle)
		} else {
			sessions += len(hs.Handle)
		}
	}
	return objects, sessions
}

// A Manager dropped with everything it holds, as a killed service leaves
// it on a TPM without a resource manager: its SRK, a card key, its owner,
// login and sign sessions, and the two saved sessions of a pending admin
// challenge. Without WithFlushLeftovers the next run starts and cannot
// log in, and the one after cannot start; with it, Open flushes them,
// says how many, and the card signs; and so again after another death.
func TestFlushLeftovers(t *testing.T) {
	tpmtest.ForEachTPM(t, func(t *testing.T, b *tpmtest.Backend) {
		dir := t.TempDir()
		admin := adminKey(t)
		killed, err := Open(b.TPM, WithStateDir(dir))
		if err != nil {
			t.Fatal(err)
		}
		serial := newAdminCard(t, killed, admin, false)
		k := mustGenerate(t, killed, serial, ECDSAP256)
		d := sha256.Sum256([]byte("leftovers"))
		use := func(m *Manager) {
			t.Helper()
			if err := m.Login(serial, testPIN); err != nil {
				t.Fatal(err)
			}
			sig, err := m.Sign(serial, k.ID, d[:], SignOptions{Hash: crypto.SHA256})
			if err != nil {
				t.Fatal(err)
			}
			verify(t, k, d[:], sig, SignOptions{})
			if _, err := m.AdminChallenge(serial, time.Minute); err != nil {
				t.Fatal(err)
			}
		}
		use(killed) // and never closed
		objects, sessions := countHandles(t, b.TPM)
		t.Logf("left by the first run: %d objects, %d sessions", objects, sessions)

		// Without flushing, the second run starts, and cannot log in: the
		// first's sessions take its slots.
		second, err := Open(b.TPM, WithStateDir(dir))
		if err != nil {
			t.Fatalf("the second run: %v", err)
		}
		if err := second.Login(serial, testPIN); err == nil {
			t.Fatal("the second run logged in on a TPM full of the first's sessions: the test does not fill it")
		} else {
			t.Logf("the second run's login: %v", err)
		}
		// Killed too: the third cannot start.
		objects, sessions = countHandles(t, b.TPM)
		t.Logf("left by two runs: %d objects, %d sessions", objects, sessions)
		if _, err := Open(b.TPM, WithStateDir(dir)); err == nil {
			t.Fatal("the third run started on a TPM full of leftovers: the test does not fill it")
		} else {
			t.Logf("the third run without flushing: %v", err)
		}

		for run := 3; run <= 4; run++ {
			m, err := Open(b.TPM, WithStateDir(dir), WithFlushLeftovers())
			if err != nil {
				t.Fatalf("run %d: Open with flushing: %v", run, err)
			}
			if got := m.Leftovers(); got.Objects != objects || got.Sessions != sessions {
				t.Fatalf("run %d: flushed %+v, want %d objects and %d sessions", run, got, objects, sessions)
			}
			if o, s := countHandles(t, b.TPM); o != 1 || s != 1 {
				t.Fatalf("run %d: after Open the TPM holds %d objects and %d sessions, want the new SRK and owner session", run, o, s)
			}
			use(m)
			objects, sessions = countHandles(t, b.TPM)
			if run == 4 {
				m.Close()
			}
		}

		// On a TPM that holds nothing, nothing is flushed.
		m, err := Open(b.TPM, WithStateDir(dir), WithFlushLeftovers())
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		if got := m.Leftovers(); got != (Leftovers{}) {
			t.Fatalf("flushed %+v from an empty TPM", got)
		}
	})
}
