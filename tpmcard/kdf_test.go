package tpmcard

import (
	"bytes"
	"fmt"
	"testing"
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
