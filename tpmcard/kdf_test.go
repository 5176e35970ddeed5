package tpmcard

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"testing"

	"golang.org/x/crypto/argon2"
)

func TestAuthValueDerivation(t *testing.T) {
	p, err := newKDFParams()
	if err != nil {
		t.Fatal(err)
	}
	r := &record{Serial: "00", KDF: p}
	seen := map[string]bool{}
	for i := 0; i < 20; i++ {
		a := r.authValue("pin", []byte(fmt.Sprint(i)))
		if len(a) != 32 {
			t.Fatalf("authValue has %d bytes", len(a))
		}
		if bytes.IndexByte(a, 0) >= 0 {
			t.Fatalf("authValue of %d has a zero byte", i)
		}
		seen[string(a)] = true
	}
	if len(seen) != 20 {
		t.Fatal("two PINs share an authValue")
	}
	if !bytes.Equal(r.authValue("pin", []byte("x")), r.authValue("pin", []byte("x"))) {
		t.Fatal("the derivation is not deterministic")
	}
	if bytes.Equal(r.authValue("pin", []byte("x")), r.authValue("puk", []byte("x"))) {
		t.Fatal("PIN and PUK of the same text share an authValue")
	}
	q, err := newKDFParams()
	if err != nil {
		t.Fatal(err)
	}
	other := &record{Serial: "01", KDF: q}
	if bytes.Equal(r.authValue("pin", []byte("x")), other.authValue("pin", []byte("x"))) {
		t.Fatal("two cards share the authValue of one PIN: the salt is not the card's")
	}
}

// A record without derivation parameters, or with parameters this build
// does not know or that make a guess cheap, fails: it never falls back to
// an unsalted derivation (the TPM would count that as a wrong PIN).
func TestAuthValueRefusesMissingParams(t *testing.T) {
	good, err := newKDFParams()
	if err != nil {
		t.Fatal(err)
	}
	for name, p := range map[string]kdfParams{
		"fail/none":      {},
		"fail/alg":       {Alg: "scrypt", Time: 1, Memory: kdfMemory, Threads: 1, Salt: good.Salt},
		"fail/no-salt":   {Alg: kdfArgon2id, Time: 1, Memory: kdfMemory, Threads: 1},
		"fail/no-time":   {Alg: kdfArgon2id, Memory: kdfMemory, Threads: 1, Salt: good.Salt},
		"fail/huge":      {Alg: kdfArgon2id, Time: 1, Memory: 1 << 30, Threads: 1, Salt: good.Salt},
		"fail/no-thread": {Alg: kdfArgon2id, Time: 1, Memory: kdfMemory, Salt: good.Salt},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := p.derive("pin", []byte("12345678")); err == nil {
				t.Fatal("derived an authValue")
			}
			defer func() {
				if recover() == nil {
					t.Fatal("record.authValue did not panic")
				}
			}()
			(&record{Serial: "00", KDF: p}).authValue("pin", []byte("12345678"))
		})
	}
}

// A new card's derivation costs each offline guess at least one pass over
// 16 MiB (kdfMinWorkKiB), and derive spends exactly the cost its record
// asks for: its output is argon2id's with those parameters, computed here
// without tpmcard's code. The CPU time that cost takes depends on the
// machine; BenchmarkAuthValue measures it (about 10-13 ms on a 2020s x86
// core).
func TestAuthValueCost(t *testing.T) {
	p, err := newKDFParams()
	if err != nil {
		t.Fatal(err)
	}
	if p.Alg != kdfArgon2id || p.Threads != 1 || uint64(p.Time)*uint64(p.Memory) < kdfMinWorkKiB {
		t.Fatalf("new cards derive with %s, %d passes over %d KiB, %d lanes: want argon2id, at least %d KiB of passes, one lane",
			p.Alg, p.Time, p.Memory, p.Threads, kdfMinWorkKiB)
	}
	for _, q := range []kdfParams{p, {Alg: kdfArgon2id, Time: 2, Memory: 8 * 1024, Threads: 1, Salt: p.Salt}} {
		got, err := q.derive("pin", []byte("12345678"))
		if err != nil {
			t.Fatal(err)
		}
		raw := argon2.IDKey([]byte("12345678"), append([]byte("tpmcard pin\x00"), q.Salt...), q.Time, q.Memory, q.Threads, 24)
		if want := base64.RawStdEncoding.EncodeToString(raw); string(got) != want {
			t.Fatalf("derive with %d passes over %d KiB gave %q, argon2id gives %q", q.Time, q.Memory, got, want)
		}
	}
}

func BenchmarkAuthValue(b *testing.B) {
	p, err := newKDFParams()
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		a, err := p.derive("pin", []byte("12345678"))
		if err != nil {
			b.Fatal(err)
		}
		wipe(a)
	}
}
