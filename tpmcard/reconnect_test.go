package tpmcard

import (
	"crypto/sha256"
	"errors"
	"testing"
	"time"

	"github.com/google/go-tpm/tpm2/transport"
	"github.com/tpmcard/tpmcard/tpmcard/backend"
	"github.com/tpmcard/tpmcard/tpmcard/tpmtest"
)

// swtpm restarts under a logged-in card: the command that finds the
// connection broken fails with ErrTPMUnreachable, the Manager forgets its
// handles and logins, and once the link is back the card needs its PIN
// again and signs; the TPM's counters are as they were.
func TestTPMRestartUnderALogin(t *testing.T) {
	sw := tpmtest.StartSWTPM(t)
	spec, err := backend.Parse(sw.Spec())
	if err != nil {
		t.Fatal(err)
	}
	link, err := backend.NewLink(func() (transport.TPMCloser, error) { return backend.Open(spec) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { link.Close() })
	lost := make(chan struct{}, 4)
	m, err := Open(link, WithStateDir(t.TempDir()), WithTPMLost(func() { lost <- struct{}{} }))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	serial := newCard(t, m)
	k := mustGenerate(t, m, serial, ECDSAP256)
	wantPINError(t, m.Login(serial, wrongPIN(1)), 2)
	if err := m.Login(serial, testPIN); err != nil {
		t.Fatal(err)
	}
	before := status(t, m, serial).PINTriesLeft
	d := sha256.Sum256([]byte("before the restart"))
	if _, err := m.Sign(serial, k.ID, d[:], SignOptions{}); err != nil {
		t.Fatal(err)
	}

	sw.Restart(t)
	if _, err := m.Sign(serial, k.ID, d[:], SignOptions{}); !errors.Is(err, ErrTPMUnreachable) {
		t.Fatalf("sign across the restart: got %v, want ErrTPMUnreachable", err)
	}
	select {
	case <-lost:
	default:
		t.Fatal("the TPM-lost hook did not run")
	}
	if m.LoggedIn(serial) {
		t.Fatal("still logged in after the TPM was lost")
	}
	if st := link.State(); st.Up && st.Reconnects == 0 {
		t.Fatalf("link state after the break: %+v", st)
	}

	// The link comes back by itself; the card then wants its PIN.
	deadline := time.Now().Add(15 * time.Second)
	for {
		err = m.Login(serial, testPIN)
		if err == nil {
			break
		}
		if !errors.Is(err, ErrTPMUnreachable) || time.Now().After(deadline) {
			t.Fatalf("login after the restart: %v (link %+v)", err, link.State())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if st := link.State(); !st.Up || st.Reconnects != 1 {
		t.Fatalf("link state after the reconnection: %+v", st)
	}
	sig, err := m.Sign(serial, k.ID, d[:], SignOptions{})
	if err != nil {
		t.Fatalf("sign after logging in again: %v", err)
	}
	verify(t, k, d[:], sig, SignOptions{})
	if after := status(t, m, serial).PINTriesLeft; after != before {
		t.Fatalf("PIN tries left %d after the restart, %d before", after, before)
	}
}
