package attest

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"strings"
	"testing"
)

// testdata/statement.json was made by tpmcard.Manager.Attest on the
// reference TPM simulator for the key in testdata/key.pem, with the nonce
// "golden". The verifier needs no TPM.
func golden(t *testing.T) (*Statement, any) {
	t.Helper()
	b, err := os.ReadFile("testdata/statement.json")
	if err != nil {
		t.Fatal(err)
	}
	st, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := os.ReadFile("testdata/key.pem")
	blk, _ := pem.Decode(kb)
	pub, err := x509.ParsePKIXPublicKey(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return st, pub
}

func TestVerifyGolden(t *testing.T) {
	st, pub := golden(t)
	res, err := Verify(st, Options{PublicKey: pub, Nonce: []byte("golden"), AKPubArea: st.AKPubArea})
	if err != nil {
		t.Fatal(err)
	}
	if res.PINLimit != 3 || len(res.Checked) < 6 || len(res.NotProved) == 0 || !strings.Contains(res.NotProved[0], "ActivateCredential") {
		t.Fatalf("result %+v", res)
	}
	for _, tc := range []struct {
		name string
		opts Options
	}{
		{"fail/nonce", Options{Nonce: []byte("other")}},
		{"fail/pinned AK", Options{AKPubArea: []byte{1}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Verify(st, tc.opts); !errors.Is(err, ErrInvalid) {
				t.Fatal(err)
			}
		})
	}
}

func TestParse(t *testing.T) {
	b, _ := os.ReadFile("testdata/statement.json")
	for _, tc := range []struct {
		name string
		in   []byte
	}{
		{"fail/empty", nil},
		{"fail/not JSON", []byte("-----BEGIN")},
		{"fail/trailing", append(bytes.Clone(b), []byte("{}")...)},
		{"fail/unknown field", bytes.Replace(b, []byte(`"ver"`), []byte(`"vers"`), 1)},
		{"fail/other type", bytes.Replace(b, []byte(Type), []byte("webauthn"), 1)},
		{"fail/oversize", append(bytes.Clone(b), bytes.Repeat([]byte(" "), MaxStatementSize)...)},
		{"fail/bad base64", bytes.Replace(b, []byte(`"sig": "`), []byte(`"sig": "!`), 1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Parse(tc.in); err == nil {
				t.Fatal("parsed")
			}
		})
	}
	if _, err := Parse(b); err != nil {
		t.Fatal(err)
	}
}

func TestBindingDataIsUnambiguous(t *testing.T) {
	a := BindingData([]byte("ab"), nil, "c", nil)
	b := BindingData([]byte("a"), nil, "bc", nil)
	c := BindingData([]byte("a"), []byte("b"), "c", nil)
	if bytes.Equal(a, b) || bytes.Equal(a, c) || bytes.Equal(b, c) {
		t.Fatal("length prefixes do not separate the fields")
	}
}

func TestVerifyEmpty(t *testing.T) {
	if _, err := Verify(&Statement{Type: Type, Ver: "2.0", Alg: AlgES256}, Options{}); !errors.Is(err, ErrInvalid) {
		t.Fatal(err)
	}
}
