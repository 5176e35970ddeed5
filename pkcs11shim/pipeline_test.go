//go:build linux

package main

import (
	"crypto/ecdsa"
	"crypto/sha256"
	"errors"
	"testing"
	"time"

	"github.com/tpmcard/tpmcard/service/p11"
)

var errTestDropped = errors.New("dropped by the test")

// heldSigner is the real service's Backend, except that its first Sign
// waits for release before it goes to the service.
type heldSigner struct {
	Backend
	held    chan struct{} // closed when the first Sign is waiting
	release chan struct{}
	first   bool
}

func (h *heldSigner) Sign(session uint32, object uint64, mechanism uint32, param, data []byte) ([]byte, error) {
	if !h.first {
		h.first = true
		close(h.held)
		<-h.release
	}
	return h.Backend.Sign(session, object, mechanism, param, data)
}

// TestSignLetsOtherSessionsIn: while one thread's signature is under way,
// another thread's calls are answered and its own signature is made; the
// held one then completes on the same connection.
func TestSignLetsOtherSessionsIn(t *testing.T) {
	s := startService(t)
	hs := &heldSigner{held: make(chan struct{}), release: make(chan struct{})}
	m := newModule(func(socket string) (Backend, error) {
		b, err := dialService(socket)
		if err != nil {
			return nil, err
		}
		hs.Backend = b
		return hs, nil
	})
	want(t, "C_Initialize", m.Initialize(nil), ckrOK)
	t.Cleanup(func() { m.Finalize(false) })
	a, b := openSession(t, m, false), openSession(t, m, false)
	want(t, "C_Login", m.Login(a, ckuUser, pinOf(testPIN)), ckrOK)
	key := privateKey(t, m, a)
	digest := sha256.Sum256([]byte("challenge"))

	type result struct {
		sig []byte
		r   rv
	}
	done := make(chan result, 1)
	want(t, "C_SignInit(a)", m.SignInit(a, p11.CKMECDSA, nil, key), ckrOK)
	go func() {
		out := make([]byte, 64)
		n, r := m.Sign(a, digest[:], out)
		done <- result{out[:n], r}
	}()
	<-hs.held

	// Session b, meanwhile: the module's lock is free.
	other := make(chan rv, 1)
	go func() {
		if _, r := m.GetSessionInfo(b); r != ckrOK {
			other <- r
			return
		}
		if r := m.SignInit(b, p11.CKMECDSA, nil, key); r != ckrOK {
			other <- r
			return
		}
		out := make([]byte, 64)
		n, r := m.Sign(b, digest[:], out)
		if r == ckrOK {
			verifyECDSA(t, s.key.Public.(*ecdsa.PublicKey), digest[:], out[:n])
		}
		other <- r
	}()
	select {
	case r := <-other:
		want(t, "session b's calls while a signs", r, ckrOK)
	case <-time.After(30 * time.Second):
		close(hs.release)
		t.Fatal("session b waited for session a's signature")
	}

	close(hs.release)
	res := <-done
	want(t, "C_Sign(a)", res.r, ckrOK)
	verifyECDSA(t, s.key.Public.(*ecdsa.PublicKey), digest[:], res.sig)
}

// TestSignAfterConnectionReplaced: a signature whose connection was
// dropped and replaced while it was under way fails with
// CKR_DEVICE_REMOVED and leaves the new connection alone.
func TestSignAfterConnectionReplaced(t *testing.T) {
	startService(t)
	hs := &heldSigner{held: make(chan struct{}), release: make(chan struct{})}
	dials := 0
	m := newModule(func(socket string) (Backend, error) {
		b, err := dialService(socket)
		if err != nil {
			return nil, err
		}
		dials++
		if dials == 1 {
			hs.Backend = b
			return hs, nil
		}
		return b, nil
	})
	want(t, "C_Initialize", m.Initialize(nil), ckrOK)
	t.Cleanup(func() { m.Finalize(false) })
	a := openSession(t, m, false)
	want(t, "C_Login", m.Login(a, ckuUser, pinOf(testPIN)), ckrOK)
	key := privateKey(t, m, a)
	want(t, "C_SignInit", m.SignInit(a, p11.CKMECDSA, nil, key), ckrOK)
	done := make(chan rv, 1)
	go func() {
		_, r := m.Sign(a, make([]byte, 32), make([]byte, 64))
		done <- r
	}()
	<-hs.held

	// Another thread finds the connection gone and the module reconnects.
	m.mu.Lock()
	m.lost(errTestDropped)
	m.mu.Unlock()
	c := openSession(t, m, false)
	close(hs.release)
	want(t, "C_Sign on the dropped connection", <-done, ckrDeviceRemoved)
	if dials != 2 {
		t.Fatalf("%d dials, want 2", dials)
	}
	if _, r := m.GetSessionInfo(c); r != ckrOK {
		t.Fatalf("the new connection's session after the old signature failed: %v", r)
	}
}
