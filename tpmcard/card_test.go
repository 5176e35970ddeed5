package tpmcard

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-tpm/tpm2/transport"
	"github.com/tpmcard/tpmcard/tpmcard/secret"
	"github.com/tpmcard/tpmcard/tpmcard/tpmtest"
)

var (
	testPIN = secret.FromString("correct horse")
	testPUK = secret.FromString("PUKPUKPUK123")
)

func openManager(t *testing.T, tpm transport.TPM, dir string) *Manager {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	m, err := Open(tpm, WithStateDir(dir))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// newCard creates a card with a known PIN and PUK, 3 PIN tries and 2 PUK
// tries.
func newCard(t *testing.T, m *Manager) string {
	t.Helper()
	c, err := m.Create(CreateOptions{Label: "test", PIN: testPIN, PUK: testPUK, PINTries: 3, PUKTries: 2})
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	if c.PUK != nil {
		t.Fatal("a PUK given by the caller was returned as generated")
	}
	return c.Card.Serial
}

func mustGenerate(t *testing.T, m *Manager, serial string, a Algorithm) KeyInfo {
	t.Helper()
	k, err := m.GenerateKey(context.Background(), serial, KeyOptions{Algorithm: a}, nil)
	if err != nil {
		t.Fatalf("GenerateKey(%s): %v", a, err)
	}
	return k
}

func verify(t *testing.T, k KeyInfo, digest, sig []byte, opts SignOptions) {
	t.Helper()
	switch pub := k.Public.(type) {
	case *ecdsa.PublicKey:
		asn, err := RawToASN1(sig)
		if err != nil {
			t.Fatal(err)
		}
		if len(sig) != 2*k.Algorithm.Bits()/8 {
			t.Fatalf("r||s has %d bytes", len(sig))
		}
		if !ecdsa.VerifyASN1(pub, digest, asn) {
			t.Fatalf("ECDSA signature does not verify")
		}
	case *rsa.PublicKey:
		var err error
		if opts.PSS {
			err = rsa.VerifyPSS(pub, opts.Hash, digest, sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthAuto})
		} else {
			err = rsa.VerifyPKCS1v15(pub, opts.Hash, digest, sig)
		}
		if err != nil {
			t.Fatalf("RSA signature does not verify: %v", err)
		}
	}
}

func wantPINError(t *testing.T, err error, left int) {
	t.Helper()
	var pe *PINError
	if !errors.As(err, &pe) || pe.TriesLeft != left {
		t.Fatalf("got %v, want PIN incorrect with %d tries left", err, left)
	}
}

func TestCardLifecycle(t *testing.T) {
	tpmtest.ForEachTPM(t, func(t *testing.T, b *tpmtest.Backend) {
		m := openManager(t, b.TPM, "")
		c, err := m.Create(CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		serial := c.Card.Serial
		if len(c.PUK) != pukLength || !c.Card.MustChange {
			t.Fatalf("default card: PUK %d chars, must change %v", len(c.PUK), c.Card.MustChange)
		}
		k := mustGenerate(t, m, serial, ECDSAP256)
		digest := sha256.Sum256([]byte("challenge"))

		if _, err := m.Sign(serial, k.ID, digest[:], SignOptions{Hash: crypto.SHA256}); !errors.Is(err, ErrNotLoggedIn) {
			t.Fatalf("sign before login: %v", err)
		}
		if err := m.Login(serial, secret.FromString(DefaultPIN)); err != nil {
			t.Fatalf("login with the default PIN: %v", err)
		}
		if _, err := m.Sign(serial, k.ID, digest[:], SignOptions{Hash: crypto.SHA256}); !errors.Is(err, ErrPINExpired) {
			t.Fatalf("sign with the default PIN: got %v, want ErrPINExpired", err)
		}
		if err := m.ChangePIN(serial, secret.FromString(DefaultPIN), secret.FromString("short")); err == nil {
			t.Fatal("a 5-character PIN passed the default policy")
		}
		if err := m.ChangePIN(serial, secret.FromString(DefaultPIN), testPIN); err != nil {
			t.Fatalf("ChangePIN: %v", err)
		}
		for i := 0; i < 3; i++ {
			sig, err := m.Sign(serial, k.ID, digest[:], SignOptions{Hash: crypto.SHA256})
			if err != nil {
				t.Fatalf("sign %d after the PIN change: %v", i, err)
			}
			verify(t, k, digest[:], sig, SignOptions{})
		}
		m.Logout(serial)
		if _, err := m.Sign(serial, k.ID, digest[:], SignOptions{Hash: crypto.SHA256}); !errors.Is(err, ErrNotLoggedIn) {
			t.Fatalf("sign after logout: %v", err)
		}
		if err := m.Login(serial, secret.FromString(DefaultPIN)); err == nil {
			t.Fatal("the old default PIN still logs in")
		}
		if err := m.Login(serial, testPIN); err != nil {
			t.Fatal(err)
		}
		st, err := m.Status(serial)
		if err != nil {
			t.Fatal(err)
		}
		if st.PINTriesLeft != DefaultPINTries || st.PUKTriesLeft != DefaultPUKTries || st.MustChange || !st.LoggedIn {
			t.Fatalf("status after a good login: %+v", st)
		}
		if err := m.Destroy(serial); err != nil {
			t.Fatal(err)
		}
		if _, err := m.Status(serial); !errors.Is(err, ErrCardNotFound) {
			t.Fatalf("status of a destroyed card: %v", err)
		}
	})
}

func TestSignAlgorithms(t *testing.T) {
	tpmtest.ForEachTPM(t, func(t *testing.T, b *tpmtest.Backend) {
		m := openManager(t, b.TPM, "")
		serial := newCard(t, m)
		if err := m.Login(serial, testPIN); err != nil {
			t.Fatal(err)
		}
		msg := []byte("sign me")
		for _, a := range []Algorithm{ECDSAP256, ECDSAP384, RSA2048} {
			k := mustGenerate(t, m, serial, a)
			for _, h := range []crypto.Hash{crypto.SHA256, crypto.SHA384, crypto.SHA512} {
				hh := h.New()
				hh.Write(msg)
				d := hh.Sum(nil)
				opts := []SignOptions{{Hash: h}}
				if a.IsRSA() {
					opts = append(opts, SignOptions{Hash: h, PSS: true})
				}
				for _, o := range opts {
					sig, err := m.Sign(serial, k.ID, d, o)
					if err != nil {
						t.Fatalf("%s %v pss=%v: %v", a, h, o.PSS, err)
					}
					verify(t, k, d, sig, o)
				}
			}
		}
		// CKM_ECDSA: raw digests of any length.
		k := mustGenerate(t, m, serial, ECDSAP256)
		for _, n := range []int{20, 28, 32, 48, 64} {
			d := sha512.Sum512([]byte{byte(n)})
			sig, err := m.Sign(serial, k.ID, d[:n], SignOptions{})
			if err != nil {
				t.Fatalf("raw ECDSA over %d bytes: %v", n, err)
			}
			verify(t, k, d[:n], sig, SignOptions{})
		}
	})
}

func TestKeyAlgorithmsAndProgress(t *testing.T) {
	tpmtest.ForEachTPM(t, func(t *testing.T, b *tpmtest.Backend) {
		m := openManager(t, b.TPM, "")
		m.progressEvery = time.Millisecond
		serial := newCard(t, m)
		var calls atomic.Int32
		k, err := m.GenerateKey(t.Context(), serial, KeyOptions{Algorithm: RSA3072, Label: "big", ID: []byte{1, 2}},
			func(p Progress) {
				if p.Algorithm != RSA3072 || p.Elapsed <= 0 {
					t.Errorf("progress %+v", p)
				}
				calls.Add(1)
			})
		switch b.Name {
		case "sim": // the reference TPM build has RSA-2048 only
			if !errors.Is(err, ErrUnsupported) {
				t.Fatalf("RSA-3072 on the simulator: got %v, want ErrUnsupported", err)
			}
			return
		default:
			if err != nil {
				t.Fatalf("RSA-3072: %v", err)
			}
		}
		if calls.Load() == 0 {
			t.Error("no progress reported during key generation")
		}
		if k.Label != "big" || string(k.ID) != "\x01\x02" || k.Public.(*rsa.PublicKey).N.BitLen() != 3072 {
			t.Fatalf("key %+v", k)
		}
		if _, err := m.GenerateKey(t.Context(), serial, KeyOptions{Algorithm: ECDSAP256, ID: []byte{1, 2}}, nil); !errors.Is(err, ErrInvalidOptions) {
			t.Fatalf("duplicate key ID: %v", err)
		}
		if err := m.DeleteKey(serial, k.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := m.Key(serial, k.ID); !errors.Is(err, ErrKeyNotFound) {
			t.Fatalf("deleted key: %v", err)
		}
	})
}

func TestRandom(t *testing.T) {
	m := openManager(t, tpmtest.Sim(t), "")
	a, err := m.Random(100)
	if err != nil || len(a) != 100 {
		t.Fatalf("Random(100): %d bytes, %v", len(a), err)
	}
	b, _ := m.Random(100)
	if string(a) == string(b) {
		t.Fatal("two random draws are equal")
	}
	if _, err := m.Random(maxRandom + 1); !errors.Is(err, ErrInvalidOptions) {
		t.Fatalf("oversized request: %v", err)
	}
	if z, err := m.Random(0); err != nil || len(z) != 0 {
		t.Fatalf("Random(0): %v %v", z, err)
	}
}

// A card listing reads only the counters once the card's indices were
// found in place: two TPM commands a card.
func TestStatusChecksNamesOnce(t *testing.T) {
	tpm := &countingTPM{TPM: tpmtest.Sim(t)}
	m := openManager(t, tpm, "")
	serial := newCard(t, m)
	for i, want := range []int64{4, 2, 2} {
		before := tpm.n.Load()
		if _, err := m.Status(serial); err != nil {
			t.Fatal(err)
		}
		if got := tpm.n.Load() - before; got != want {
			t.Fatalf("Status %d: %d TPM commands, want %d", i, got, want)
		}
	}
	wantPINError(t, m.Login(serial, wrongPIN(1)), 2)
	before := tpm.n.Load()
	if _, err := m.Status(serial); err != nil {
		t.Fatal(err)
	}
	if got := tpm.n.Load() - before; got != 4 {
		t.Fatalf("Status after a failed PIN: %d TPM commands, want 4 (names checked again)", got)
	}
}
