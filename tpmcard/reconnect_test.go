package tpmcard

import (
	"crypto/sha256"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-tpm/tpm2"
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

// faultyTPM fails one Send when told to, as a broken connection does.
type faultyTPM struct {
	transport.TPMCloser
	fail *atomic.Bool
}

func (f faultyTPM) Send(cmd []byte) ([]byte, error) {
	if f.fail.CompareAndSwap(true, false) {
		return nil, errors.New("connection reset by peer (injected)")
	}
	return f.TPMCloser.Send(cmd)
}

// The connection breaks while swtpm keeps running (no resource manager):
// the TPM still holds what the Manager had loaded, which forgetTPM could
// not flush while the link was down. Rebuilding flushes it, so the TPM
// holds no more than after a fresh start, however often it happens.
func TestLostConnectionLeavesNothingBehind(t *testing.T) {
	sw := tpmtest.StartSWTPM(t)
	spec, err := backend.Parse(sw.Spec())
	if err != nil {
		t.Fatal(err)
	}
	var fail atomic.Bool
	link, err := backend.NewLink(func() (transport.TPMCloser, error) {
		tpm, err := backend.Open(spec)
		if err != nil {
			return nil, err
		}
		return faultyTPM{tpm, &fail}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { link.Close() })
	m, err := Open(link, WithStateDir(t.TempDir()), WithFlushLeftovers())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	serial := newCard(t, m)
	k := mustGenerate(t, m, serial, ECDSAP256)
	d := sha256.Sum256([]byte("before the break"))
	held := func() (objects, sessions int) {
		for _, r := range []struct {
			first tpm2.TPMHandle
			n     *int
		}{{0x80000000, &objects}, {0x02000000, &sessions}, {0x03000000, &sessions}} {
			hs, err := listHandles(link, r.first)
			if err != nil {
				t.Fatal(err)
			}
			*r.n += len(hs)
		}
		return
	}
	if err := m.Login(serial, testPIN); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Sign(serial, k.ID, d[:], SignOptions{}); err != nil {
		t.Fatal(err)
	}
	o0, s0 := held()
	if o0 < 2 || s0 < 2 {
		t.Fatalf("the Manager holds %d objects and %d sessions: the test needs some", o0, s0)
	}
	for round := range 3 {
		fail.Store(true)
		if _, err := m.Sign(serial, k.ID, d[:], SignOptions{}); !errors.Is(err, ErrTPMUnreachable) {
			t.Fatalf("round %d: sign over the broken connection: %v", round, err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			err = m.Login(serial, testPIN)
			if err == nil {
				break
			}
			if !errors.Is(err, ErrTPMUnreachable) || time.Now().After(deadline) {
				t.Fatalf("round %d: login after the break: %v", round, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
		if _, err := m.Sign(serial, k.ID, d[:], SignOptions{}); err != nil {
			t.Fatalf("round %d: sign after the break: %v", round, err)
		}
		if o, s := held(); o > o0 || s > s0 {
			t.Fatalf("round %d: the TPM holds %d objects and %d sessions, %d and %d before the first break", round, o, s, o0, s0)
		}
	}
}
