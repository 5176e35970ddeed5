package attest

import (
	"bytes"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"os"
	"strings"
	"testing"
)

// testdata/statement.json was made by tpmcard.Manager.Attest on the
// reference TPM simulator for the key in testdata/key.pem of a card with a
// PUK and an admin key, with the nonce "golden" (go test ./tpmcard -run
// TestAttestGolden -update-attest-golden rewrites both). The verifier
// needs no TPM. testdata/statement-v1.json is a statement of the first
// format.
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
	if res.PINLimit != 3 || !res.HasPUK || res.PUKLimit != 2 || res.AdminKey == nil || len(res.Checked) < 9 ||
		len(res.NotProved) == 0 || !strings.Contains(res.NotProved[0], "ActivateCredential") {
		t.Fatalf("result %+v", res)
	}
	for _, want := range []string{"the PIN index's authPolicy is tpmcard's", "the PUK index's authPolicy is tpmcard's", "the approval key approved"} {
		found := false
		for _, c := range res.Checked {
			found = found || strings.HasPrefix(c, want)
		}
		if !found {
			t.Errorf("checked %q: nothing starts with %q", res.Checked, want)
		}
	}
	if !strings.Contains(strings.Join(res.NotProved, "\n"), "approval key was generated in the TPM and forgotten") {
		t.Errorf("not proved %q: nothing about the approval key", res.NotProved)
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
	a := (&Statement{Nonce: []byte("ab"), Card: "c"}).BindingData()
	b := (&Statement{Nonce: []byte("a"), Card: "bc"}).BindingData()
	c := (&Statement{Nonce: []byte("a"), EKCert: []byte("b"), Card: "c"}).BindingData()
	d := (&Statement{Nonce: []byte("a"), Card: "c", AdminPubArea: []byte("b")}).BindingData()
	e := (&Statement{Nonce: []byte("a"), Card: "c", ApprovalPUKSig: []byte("b")}).BindingData()
	all := [][]byte{a, b, c, d, e}
	for i := range all {
		for j := range i {
			if bytes.Equal(all[i], all[j]) {
				t.Fatalf("length prefixes do not separate the fields (%d, %d)", i, j)
			}
		}
	}
}

// TestVerifyRefusesV1 checks that a statement of the first format, which
// did not show the PIN index's policy, is refused with a message that
// says so, by Parse and by Verify.
func TestVerifyRefusesV1(t *testing.T) {
	b, err := os.ReadFile("testdata/statement-v1.json")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Parse(b); err == nil || !strings.Contains(err.Error(), "does not show the PIN index's policy") {
		t.Fatalf("Parse: %v", err)
	}
	var st Statement
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(&st, Options{}); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "make a new statement") {
		t.Fatalf("Verify: %v", err)
	}
}

// TestVerifyRefusesEdits swaps and drops the golden statement's card
// fields. Most edits are refused by the AK's signatures (extraData, the
// certified Names) before any policy check; the policy checks themselves
// are tested with genuine signatures in tpmcard
// (TestAttestRefusesWeakPINIndex).
func TestVerifyRefusesEdits(t *testing.T) {
	st, _ := golden(t)
	for _, tc := range []struct {
		name string
		mod  func(s *Statement)
	}{
		{"fail/no PUK", func(s *Statement) { s.PUKPubArea, s.PUKCertInfo, s.PUKSig, s.ApprovalPUKSig = nil, nil, nil, nil }},
		{"fail/no admin key", func(s *Statement) { s.AdminPubArea = nil }},
		{"fail/approval key is the AK", func(s *Statement) { s.ApprovalPubArea = s.AKPubArea }},
		{"fail/PUK index is the PIN index", func(s *Statement) { s.PUKPubArea, s.PUKCertInfo, s.PUKSig = s.NVPubArea, s.NVCertInfo, s.NVSig }},
		{"fail/approvals swapped", func(s *Statement) { s.ApprovalPINSig, s.ApprovalPUKSig = s.ApprovalPUKSig, s.ApprovalPINSig }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := *st
			tc.mod(&c)
			if _, err := Verify(&c, Options{}); !errors.Is(err, ErrInvalid) {
				t.Fatal(err)
			}
		})
	}
}

func TestVerifyEmpty(t *testing.T) {
	if _, err := Verify(&Statement{Type: Type, Ver: "2.0", Alg: AlgES256}, Options{}); !errors.Is(err, ErrInvalid) {
		t.Fatal(err)
	}
}
