package tpmcard

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"
	"github.com/tpmcard/tpmcard/tpmcard/attest"
	"github.com/tpmcard/tpmcard/tpmcard/tpmtest"
)

func TestAttest(t *testing.T) {
	tpmtest.ForEachTPM(t, func(t *testing.T, b *tpmtest.Backend) {
		m := openManager(t, b.TPM, "")
		serial := newCard(t, m)
		for _, a := range []Algorithm{ECDSAP256, RSA2048} {
			t.Run("ok/"+string(a), func(t *testing.T) {
				k := mustGenerate(t, m, serial, a)
				nonce := []byte("ca challenge")
				st, err := m.Attest(serial, k.ID, AttestOptions{Nonce: nonce})
				if err != nil {
					t.Fatal(err)
				}
				js, err := st.Marshal()
				if err != nil {
					t.Fatal(err)
				}
				st2, err := attest.Parse(js)
				if err != nil {
					t.Fatal(err)
				}
				res, err := attest.Verify(st2, attest.Options{PublicKey: k.Public, Nonce: nonce, AKPubArea: st.AKPubArea})
				if err != nil {
					t.Fatal(err)
				}
				if res.PINLimit != 3 || res.PINCount != 0 || res.Card != serial || !bytes.Equal(res.KeyID, k.ID) ||
					!res.HasPUK || res.PUKLimit != 2 || res.PUKCount != 0 || res.AdminKey != nil {
					t.Fatalf("result %+v", res)
				}
				checkPolicyChecked(t, res, "with the PUK (")
				other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
				if _, err := attest.Verify(st2, attest.Options{PublicKey: &other.PublicKey}); !errors.Is(err, attest.ErrInvalid) {
					t.Fatalf("another request's key: %v", err)
				}
				if _, err := attest.Verify(st2, attest.Options{Nonce: []byte("old")}); !errors.Is(err, attest.ErrInvalid) {
					t.Fatalf("another nonce: %v", err)
				}
				// Neither counter was touched: login still works with 3 tries.
				stt, err := m.Status(serial)
				if err != nil || stt.PINTriesLeft != 3 || stt.PUKTriesLeft != 2 {
					t.Fatalf("status after attest: %+v %v", stt, err)
				}
			})
		}
		t.Run("ok/PIN always", func(t *testing.T) {
			k, err := m.GenerateKey(context.Background(), serial, KeyOptions{Algorithm: ECDSAP256, PINUse: PINAlways}, nil)
			if err != nil {
				t.Fatal(err)
			}
			st, err := m.Attest(serial, k.ID, AttestOptions{})
			if err != nil {
				t.Fatal(err)
			}
			res, err := attest.Verify(st, attest.Options{PublicKey: k.Public})
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(strings.Join(res.Checked, "\n"), "PIN policy always") {
				t.Fatalf("checked %q: nothing says PIN policy always", res.Checked)
			}
		})
		admin, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		for _, noPUK := range []bool{false, true} {
			t.Run(fmt.Sprintf("ok/admin key, no PUK %v", noPUK), func(t *testing.T) {
				serial := newAdminCard(t, m, admin, noPUK)
				k := mustGenerate(t, m, serial, ECDSAP256)
				st, err := m.Attest(serial, k.ID, AttestOptions{})
				if err != nil {
					t.Fatal(err)
				}
				res, err := attest.Verify(st, attest.Options{PublicKey: k.Public})
				if err != nil {
					t.Fatal(err)
				}
				if res.HasPUK == noPUK || res.AdminKey == nil || !res.AdminKey.Equal(&admin.PublicKey) || res.PINLimit != 3 {
					t.Fatalf("result %+v", res)
				}
				if noPUK {
					checkPolicyChecked(t, res, "only with the admin key's signature")
					if st.PUKPubArea != nil || st.PUKCertInfo != nil || st.ApprovalPUKSig != nil {
						t.Fatal("a card without a PUK has PUK fields in its statement")
					}
				} else {
					checkPolicyChecked(t, res, "with the PUK (PolicySecret of the certified PUK index) or the admin key's signature")
				}
			})
		}
	})
}

// checkPolicyChecked asserts that the result lists the PIN index's policy
// as checked, with the way to reset it.
func checkPolicyChecked(t *testing.T, res *attest.Result, resetBy string) {
	t.Helper()
	for _, c := range res.Checked {
		if strings.HasPrefix(c, "the PIN index's authPolicy is tpmcard's") {
			if !strings.Contains(c, resetBy) {
				t.Fatalf("checked %q, want it to say %q", c, resetBy)
			}
			return
		}
	}
	t.Fatalf("the PIN index's policy is not among the checks: %q", res.Checked)
}

func TestAttestRefusesNoKey(t *testing.T) {
	m := openManager(t, tpmtest.Sim(t), "")
	serial := newCard(t, m)
	if _, err := m.Attest(serial, []byte{1}, AttestOptions{}); !errors.Is(err, ErrKeyNotFound) {
		t.Fatal(err)
	}
	k := mustGenerate(t, m, serial, ECDSAP256)
	if _, err := m.Attest(serial, k.ID, AttestOptions{Nonce: make([]byte, 65)}); !errors.Is(err, ErrInvalidOptions) {
		t.Fatal(err)
	}
	// A key recorded before creation tickets were kept.
	r, _ := m.record(serial)
	c := r.clone()
	c.Keys[0].Creation = nil
	if err := m.saveRecord(c); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Attest(serial, k.ID, AttestOptions{}); !errors.Is(err, ErrUnsupported) {
		t.Fatal(err)
	}
}

// TestAttestTampered flips bytes in every field of a good statement: each
// flip must make verification fail.
func TestAttestTampered(t *testing.T) {
	m := openManager(t, tpmtest.Sim(t), "")
	serial := newCard(t, m)
	k := mustGenerate(t, m, serial, ECDSAP256)
	// The simulator has no EK certificate: store one where TPMs keep it,
	// so that the statement carries one.
	ekCert := issue(t, k.Public, "EK")
	defineEKCert(t, m, ekCert)
	st, err := m.Attest(serial, k.ID, AttestOptions{Nonce: []byte{1, 2, 3}})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(st.EKCert, ekCert) {
		t.Fatalf("EK certificate %x, want the one in NV", st.EKCert)
	}
	if res, err := attest.Verify(st, attest.Options{}); err != nil || res.EKCert == nil {
		t.Fatalf("with an EK certificate: %v", err)
	}
	v := reflect.ValueOf(st).Elem()
	tried := 0
	for i := 0; i < v.NumField(); i++ {
		f := v.Field(i)
		name := v.Type().Field(i).Name
		if f.Kind() != reflect.Slice || f.Type().Elem().Kind() != reflect.Uint8 {
			continue
		}
		orig := f.Bytes()
		if len(orig) == 0 {
			continue
		}
		for j := range orig {
			for _, mask := range []byte{0x01, 0x80} {
				c := *st
				bad := bytes.Clone(orig)
				bad[j] ^= mask
				reflect.ValueOf(&c).Elem().Field(i).SetBytes(bad)
				tried++
				if _, err := attest.Verify(&c, attest.Options{}); !errors.Is(err, attest.ErrInvalid) {
					t.Fatalf("%s byte %d ^ %#x: verified (%v)", name, j, mask, err)
				}
			}
		}
	}
	for _, mod := range []func(s *attest.Statement){
		func(s *attest.Statement) { s.Card += "0" },
		func(s *attest.Statement) { s.KeyID = append(s.KeyID, 0) },
		func(s *attest.Statement) { s.Nonce = nil },
		func(s *attest.Statement) { s.EKCert = nil },
		func(s *attest.Statement) { s.Ver = "1.2" },
		func(s *attest.Statement) { s.Alg = -257 },
		func(s *attest.Statement) { s.CertInfo, s.NVCertInfo = s.NVCertInfo, s.CertInfo },
		// A card without a PUK, as far as the statement says.
		func(s *attest.Statement) {
			s.PUKPubArea, s.PUKCertInfo, s.PUKSig, s.ApprovalPUKSig = nil, nil, nil, nil
		},
		// The PIN index as the PUK index and the other way round.
		func(s *attest.Statement) {
			s.PUKPubArea, s.PUKCertInfo, s.PUKSig, s.NVPubArea, s.NVCertInfo, s.NVSig =
				s.NVPubArea, s.NVCertInfo, s.NVSig, s.PUKPubArea, s.PUKCertInfo, s.PUKSig
		},
		func(s *attest.Statement) { s.ApprovalPubArea = s.AKPubArea },
		func(s *attest.Statement) { s.ApprovalPINSig, s.ApprovalPUKSig = s.ApprovalPUKSig, s.ApprovalPINSig },
		func(s *attest.Statement) { s.AdminPubArea = s.ApprovalPubArea },
		func(s *attest.Statement) { s.Type = "tpmcard-key-attestation/1" },
	} {
		c := *st
		mod(&c)
		if _, err := attest.Verify(&c, attest.Options{}); !errors.Is(err, attest.ErrInvalid) {
			t.Fatalf("modified statement verified: %v", err)
		}
	}
	if tried < 1000 {
		t.Fatalf("only %d flips tried", tried)
	}
	c := *st
	if _, err := attest.Verify(&c, attest.Options{}); err != nil {
		t.Fatalf("the untouched statement: %v", err)
	}
}

// TestAttestRefusesWeakKeys builds statements whose AK signatures are
// genuine but whose key is not a card key: a software key, and a TPM key
// with userWithAuth set, certified by the same AK.
func TestAttestRefusesWeakKeys(t *testing.T) {
	m := openManager(t, tpmtest.Sim(t), "")
	serial := newCard(t, m)
	k := mustGenerate(t, m, serial, ECDSAP256)
	st, err := m.Attest(serial, k.ID, AttestOptions{})
	if err != nil {
		t.Fatal(err)
	}
	r, _ := m.record(serial)

	t.Run("fail/software key", func(t *testing.T) {
		// The same public area but a key generated outside the TPM.
		sw, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		pub, err := tpm2.Unmarshal[tpm2.TPMTPublic](st.PubArea)
		if err != nil {
			t.Fatal(err)
		}
		pub.Unique = tpm2.NewTPMUPublicID(tpm2.TPMAlgECC, &tpm2.TPMSECCPoint{
			X: tpm2.TPM2BECCParameter{Buffer: sw.X.FillBytes(make([]byte, 32))},
			Y: tpm2.TPM2BECCParameter{Buffer: sw.Y.FillBytes(make([]byte, 32))},
		})
		c := *st
		c.PubArea = tpm2.Marshal(pub)
		_, err = attest.Verify(&c, attest.Options{PublicKey: &sw.PublicKey})
		if !errors.Is(err, attest.ErrInvalid) || !strings.Contains(err.Error(), "another key") {
			t.Fatalf("software key: %v", err)
		}
	})

	t.Run("fail/userWithAuth", func(t *testing.T) {
		tmpl, err := ECDSAP256.template(keyPolicy(r.PINName))
		if err != nil {
			t.Fatal(err)
		}
		tmpl.ObjectAttributes.UserWithAuth = true
		m.mu.Lock()
		defer m.mu.Unlock()
		var cr *tpm2.CreateResponse
		err = m.withRoom(func() (err error) {
			cr, err = tpm2.Create{
				ParentHandle: tpm2.AuthHandle{Handle: m.srk.handle, Name: m.srk.name, Auth: tpm2.PasswordAuth(nil)},
				InPublic:     tpm2.New2B(tmpl),
			}.Execute(m.tpm)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		var ld *tpm2.LoadResponse
		err = m.withRoom(func() (err error) {
			ld, err = tpm2.Load{
				ParentHandle: tpm2.AuthHandle{Handle: m.srk.handle, Name: m.srk.name, Auth: tpm2.PasswordAuth(nil)},
				InPrivate:    cr.OutPrivate, InPublic: cr.OutPublic,
			}.Execute(m.tpm)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		defer flush(m.tpm, ld.ObjectHandle)
		var ak *tpm2.CreatePrimaryResponse
		err = m.withRoom(func() (err error) {
			ak, err = tpm2.CreatePrimary{
				PrimaryHandle: tpm2.AuthHandle{Handle: tpm2.TPMRHEndorsement, Auth: tpm2.PasswordAuth(nil)},
				InPublic:      tpm2.New2B(akTemplate),
			}.Execute(m.tpm)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		defer flush(m.tpm, ak.ObjectHandle)
		if !bytes.Equal(ak.OutPublic.Bytes(), st.AKPubArea) {
			t.Fatal("the AK is not the statement's AK")
		}
		cc, err := tpm2.CertifyCreation{
			SignHandle:     tpm2.AuthHandle{Handle: ak.ObjectHandle, Name: ak.Name, Auth: tpm2.PasswordAuth(nil)},
			ObjectHandle:   tpm2.NamedHandle{Handle: ld.ObjectHandle, Name: ld.Name},
			QualifyingData: tpm2.TPM2BData{Buffer: st.BindingData()},
			CreationHash:   cr.CreationHash,
			InScheme:       tpm2.TPMTSigScheme{Scheme: tpm2.TPMAlgNull},
			CreationTicket: cr.CreationTicket,
		}.Execute(m.tpm)
		if err != nil {
			t.Fatal(err)
		}
		c := *st
		c.PubArea = cr.OutPublic.Bytes()
		c.CreationData = cr.CreationData.Bytes()
		c.CertInfo = cc.CertifyInfo.Bytes()
		c.Sig = tpm2.Marshal(cc.Signature)
		_, err = attest.Verify(&c, attest.Options{})
		if !errors.Is(err, attest.ErrInvalid) || !strings.Contains(err.Error(), "userWithAuth") {
			t.Fatalf("userWithAuth key: %v", err)
		}
		// The same construction with the attributes of a card key passes:
		// the failure above is the attribute, not the construction.
		c.PubArea = st.PubArea
		c.CreationData, c.CertInfo, c.Sig = st.CreationData, st.CertInfo, st.Sig
		if _, err := attest.Verify(&c, attest.Options{}); err != nil {
			t.Fatal(err)
		}
	})
}

// TestCertifyNeedsAdminPolicy pins why attestation uses
// TPM2_CertifyCreation: TPM2_Certify of a card key (adminWithPolicy set,
// policy PolicySecret(PIN) without PolicyCommandCode) fails, even with the
// PIN proved in the policy session.
func TestCertifyNeedsAdminPolicy(t *testing.T) {
	m := openManager(t, tpmtest.Sim(t), "")
	serial := newCard(t, m)
	k := mustGenerate(t, m, serial, ECDSAP256)
	if err := m.Login(serial, testPIN); err != nil {
		t.Fatal(err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	r, _ := m.record(serial)
	lk, err := m.loadKey(r, r.key(k.ID))
	if err != nil {
		t.Fatal(err)
	}
	ak, err := tpm2.CreatePrimary{
		PrimaryHandle: tpm2.AuthHandle{Handle: tpm2.TPMRHEndorsement, Auth: tpm2.PasswordAuth(nil)},
		InPublic:      tpm2.New2B(akTemplate),
	}.Execute(m.tpm)
	if err != nil {
		t.Fatal(err)
	}
	defer flush(m.tpm, ak.ObjectHandle)
	m.dropOwnerSession() // the reference TPM has 3 session slots: Certify's policy session needs one
	l := m.logins[serial]
	if l.sess == nil {
		t.Skip("login session evicted")
	}
	_, err = tpm2.Certify{
		ObjectHandle: tpm2.AuthHandle{Handle: lk.handle, Name: lk.name,
			Auth: tpm2.Policy(tpm2.TPMAlgSHA256, 16, func(tpm transport.TPM, h tpm2.TPMISHPolicy, _ tpm2.TPM2BNonce) error {
				_, err := tpm2.PolicySecret{
					AuthHandle:    tpm2.AuthHandle{Handle: tpm2.TPMHandle(r.PINIndex), Name: tpm2.TPM2BName{Buffer: r.PINName}, Auth: l.sess},
					PolicySession: h,
				}.Execute(tpm)
				if err != nil {
					return err
				}
				// The digest is the key's authPolicy: what fails is the
				// ADMIN role's missing PolicyCommandCode, not the policy.
				d, err := tpm2.PolicyGetDigest{PolicySession: h}.Execute(tpm)
				if err != nil {
					return err
				}
				if !bytes.Equal(d.PolicyDigest.Buffer, keyPolicy(r.PINName)) {
					t.Errorf("policy digest %x, want the key's policy", d.PolicyDigest.Buffer)
				}
				return nil
			})},
		SignHandle: tpm2.AuthHandle{Handle: ak.ObjectHandle, Name: ak.Name, Auth: tpm2.PasswordAuth(nil)},
		InScheme:   tpm2.TPMTSigScheme{Scheme: tpm2.TPMAlgNull},
	}.Execute(m.tpm)
	if !errors.Is(err, tpm2.TPMRCPolicyFail) {
		t.Fatalf("TPM2_Certify of a card key: %v, want TPM_RC_POLICY_FAIL", err)
	}
}

// defineEKCert writes der to the ECC EK certificate index, as a TPM
// manufacturer would.
func defineEKCert(t *testing.T, m *Manager, der []byte) {
	t.Helper()
	pub := tpm2.TPMSNVPublic{
		NVIndex: ekCertECCIndex, NameAlg: tpm2.TPMAlgSHA256,
		Attributes: tpm2.TPMANV{OwnerWrite: true, OwnerRead: true, AuthRead: true, NoDA: true, NT: tpm2.TPMNTOrdinary},
		DataSize:   uint16(len(der)),
	}
	owner := tpm2.AuthHandle{Handle: tpm2.TPMRHOwner, Auth: tpm2.PasswordAuth(nil)}
	if _, err := (tpm2.NVDefineSpace{AuthHandle: owner, PublicInfo: tpm2.New2B(pub)}).Execute(m.tpm); err != nil {
		t.Fatalf("defining the EK certificate index: %v", err)
	}
	name := tpm2.TPM2BName{Buffer: nvName(pub)}
	t.Cleanup(func() {
		pub.Attributes.Written = true
		tpm2.NVUndefineSpace{AuthHandle: owner, NVIndex: tpm2.NamedHandle{Handle: ekCertECCIndex, Name: tpm2.TPM2BName{Buffer: nvName(pub)}}}.Execute(m.tpm)
	})
	for off := 0; off < len(der); off += 512 {
		end := min(off+512, len(der))
		_, err := tpm2.NVWrite{AuthHandle: owner, NVIndex: tpm2.NamedHandle{Handle: ekCertECCIndex, Name: name},
			Data: tpm2.TPM2BMaxNVBuffer{Buffer: der[off:end]}, Offset: uint16(off)}.Execute(m.tpm)
		if err != nil {
			t.Fatalf("writing the EK certificate: %v", err)
		}
		pub.Attributes.Written = true
		name = tpm2.TPM2BName{Buffer: nvName(pub)}
	}
}

// TestAttestSWTPMEKCertificate manufactures an swtpm with EK certificates
// (swtpm_setup and its local CA, as a TPM vendor would) and checks that
// the statement carries one.
func TestAttestSWTPMEKCertificate(t *testing.T) {
	setup, err := exec.LookPath("swtpm_setup")
	if err != nil {
		t.Skip("swtpm_setup not installed")
	}
	s := tpmtest.StartSWTPM(t)
	s.Stop()
	// A local CA of the test's own, not the system's (/var/lib/swtpm-localca).
	ca := t.TempDir()
	conf := filepath.Join(ca, "swtpm_setup.conf")
	caConf := filepath.Join(ca, "swtpm-localca.conf")
	os.WriteFile(caConf, []byte(fmt.Sprintf("statedir = %[1]s\nsigningkey = %[1]s/signkey.pem\nissuercert = %[1]s/issuercert.pem\ncertserial = %[1]s/certserial\n", ca)), 0o600)
	os.WriteFile(conf, []byte("create_certs_tool = swtpm_localca\ncreate_certs_tool_config = "+caConf+"\n"), 0o600)
	out, err := exec.Command(setup, "--tpm2", "--tpmstate", s.StateDir(), "--config", conf, "--create-ek-cert", "--overwrite").CombinedOutput()
	if err != nil {
		t.Skipf("swtpm_setup cannot make EK certificates here: %v\n%s", err, out)
	}
	s.Restart(t)
	m := openManager(t, s.TPM(), "")
	serial := newCard(t, m)
	k := mustGenerate(t, m, serial, ECDSAP256)
	st, err := m.Attest(serial, k.ID, AttestOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if st.EKCert == nil {
		t.Fatalf("no EK certificate in the statement; swtpm_setup said:\n%s", out)
	}
	res, err := attest.Verify(st, attest.Options{PublicKey: k.Public})
	if err != nil {
		t.Fatal(err)
	}
	if res.EKCert == nil || len(res.EKCert.Raw) != len(st.EKCert) {
		t.Fatalf("EK certificate not parsed: %+v", res.EKCert)
	}
	t.Logf("EK certificate: subject %q, issuer %q", res.EKCert.Subject, res.EKCert.Issuer)
}

// TestAttestRefusesWeakPINIndex makes genuine statements, signed by the
// TPM's AK through Manager.Attest, for keys bound to PIN indices that are
// not tpmcard's: PIN_FAIL indices with the card's attributes whose policy
// has a branch too many, names another approval key, or trusts a PUK index
// whose own policy anyone can satisfy. Each one would verify as "locks
// after 3 wrong PINs" if the verifier did not recompute the policies.
func TestAttestRefusesWeakPINIndex(t *testing.T) {
	tpmtest.ForEachTPM(t, func(t *testing.T, b *tpmtest.Backend) {
		m := openManager(t, b.TPM, "")
		serial := newCard(t, m)
		r, err := m.record(serial)
		if err != nil {
			t.Fatal(err)
		}
		pukAuth := r.authValue("puk", testPUK)
		anyone := newCalc().cc(tpm2.TPMCCNVWrite).digest()
		authValue := newCalc().cc(tpm2.TPMCCNVChangeAuth)
		must(tpm2.PolicyAuthValue{}.Update(authValue.pc))
		// A card's PUK branch with the genuine PUK index: the first write
		// of a look-alike PIN index goes through it.
		byPUK := func(pukIndex uint32, pukName []byte, pukAuth []byte) func(tpm2.TPMHandle) error {
			return func(s tpm2.TPMHandle) error {
				if _, err := (tpm2.PolicyCommandCode{PolicySession: s, Code: tpm2.TPMCCNVWrite}).Execute(m.tpm); err != nil {
					return err
				}
				_, err := tpm2.PolicySecret{
					AuthHandle:    tpm2.AuthHandle{Handle: tpm2.TPMHandle(pukIndex), Name: tpm2.TPM2BName{Buffer: pukName}, Auth: tpm2.PasswordAuth(pukAuth)},
					PolicySession: s,
				}.Execute(m.tpm)
				return err
			}
		}
		byAnyone := func(s tpm2.TPMHandle) error {
			_, err := (tpm2.PolicyCommandCode{PolicySession: s, Code: tpm2.TPMCCNVWrite}).Execute(m.tpm)
			return err
		}
		otherApproval := newCalc().secret([]byte{0x40, 0x00, 0x00, 0x01}).digest() // any Name but the card's approval key's
		otherApproval = append([]byte{0x00, 0x0b}, otherApproval...)

		for _, tc := range []struct {
			name     string
			branches [][]byte // the look-alike PIN index's PolicyOR
			write    func(tpm2.TPMHandle) error
			// reset: the counter can be reset by anyone afterwards
			reset bool
			want  string
		}{
			{"fail/NV_Write for anyone", append(m.pinBranches(r), anyone), byAnyone, true,
				"the PIN index's authPolicy is not tpmcard's"},
			{"fail/NV_ChangeAuth with PolicyAuthValue", append(m.pinBranches(r), authValue.digest()), byPUK(r.PUKIndex, r.PUKName, pukAuth), false,
				"the PIN index's authPolicy is not tpmcard's"},
			{"fail/another approval key", pinBranches(otherApproval, r.PUKName, nil, serial), byPUK(r.PUKIndex, r.PUKName, pukAuth), false,
				"the PIN index's authPolicy is not tpmcard's"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				c, wk := weakCard(t, m, r, tc.branches, tc.write)
				st, err := m.Attest(serial, wk.ID, AttestOptions{})
				if err != nil {
					t.Fatal(err)
				}
				_, err = attest.Verify(st, attest.Options{})
				if !errors.Is(err, attest.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("a key bound to a weak PIN index: %v, want %q", err, tc.want)
				}
				if tc.reset {
					// The weakness is real: anyone resets the counter.
					m.mu.Lock()
					defer m.mu.Unlock()
					writeCounter(t, m, c.PINIndex, c.PINName, tc.branches, tc.write, pinData{0, 1000})
				}
			})
		}

		t.Run("fail/PUK index anyone can write", func(t *testing.T) {
			// A look-alike PUK index with the card's attributes, written
			// by anyone, and a PIN index whose PUK branches name it: the
			// PIN index's policy is tpmcard's for that PUK index, which
			// is not a card's.
			m.mu.Lock()
			uPub, uName := defineCounter(t, m, orDigest([][]byte{anyone, newCalc().authorize(approvalName(r), refPUKChange).digest()}),
				[]byte("attacker's PUK"))
			writeCounter(t, m, uint32(uPub.NVIndex), uName, [][]byte{anyone, newCalc().authorize(approvalName(r), refPUKChange).digest()},
				byAnyone, pinData{0, 1000})
			uPub.Attributes.Written = true
			r2 := r.clone()
			r2.PUKIndex, r2.PUKName = uint32(uPub.NVIndex), nvName(uPub)
			m.mu.Unlock()
			_, wk := weakCard(t, m, r2, m.pinBranches(r2), byPUK(r2.PUKIndex, r2.PUKName, []byte("attacker's PUK")))
			st, err := m.Attest(serial, wk.ID, AttestOptions{})
			if err != nil {
				t.Fatal(err)
			}
			_, err = attest.Verify(st, attest.Options{})
			if !errors.Is(err, attest.ErrInvalid) || !strings.Contains(err.Error(), "the PUK index's authPolicy is not tpmcard's") {
				t.Fatalf("a PIN index trusting a weak PUK index: %v", err)
			}
		})

		t.Run("fail/approval key swapped", func(t *testing.T) {
			// The record names another approval key: the statement
			// carries it, genuinely signed, and the PIN index's policy
			// does not match it.
			other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			pt, _ := other.PublicKey.Bytes()
			pub := approvalTemplate()
			pub.Unique = tpm2.NewTPMUPublicID(tpm2.TPMAlgECC, &tpm2.TPMSECCPoint{
				X: tpm2.TPM2BECCParameter{Buffer: pt[1:33]}, Y: tpm2.TPM2BECCParameter{Buffer: pt[33:]},
			})
			k := mustGenerate(t, m, serial, ECDSAP256)
			orig, _ := m.record(serial)
			c := orig.clone()
			c.Approval.Public = tpm2.Marshal(pub)
			if err := m.saveRecord(c); err != nil {
				t.Fatal(err)
			}
			defer m.saveRecord(orig)
			st, err := m.Attest(serial, k.ID, AttestOptions{})
			if err != nil {
				t.Fatal(err)
			}
			_, err = attest.Verify(st, attest.Options{})
			if !errors.Is(err, attest.ErrInvalid) || !strings.Contains(err.Error(), "index's authPolicy is not tpmcard's") {
				t.Fatalf("another approval key: %v", err)
			}
		})

		t.Run("fail/PUK index swapped", func(t *testing.T) {
			// The record names the PIN index as the PUK index: the AK
			// certifies it, and it is not the PUK index the PIN index's
			// policy names.
			k := mustGenerate(t, m, serial, ECDSAP256)
			orig, _ := m.record(serial)
			c := orig.clone()
			c.PUKIndex, c.PUKName = c.PINIndex, c.PINName
			if err := m.saveRecord(c); err != nil {
				t.Fatal(err)
			}
			defer m.saveRecord(orig)
			st, err := m.Attest(serial, k.ID, AttestOptions{})
			if err != nil {
				t.Fatal(err)
			}
			_, err = attest.Verify(st, attest.Options{})
			if !errors.Is(err, attest.ErrInvalid) || !strings.Contains(err.Error(), "the PUK index's authPolicy is not tpmcard's") {
				t.Fatalf("the PIN index as the PUK index: %v", err)
			}
		})

		// After all this, the genuine card still attests.
		k := mustGenerate(t, m, serial, ECDSAP256)
		st, err := m.Attest(serial, k.ID, AttestOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := attest.Verify(st, attest.Options{PublicKey: k.Public}); err != nil {
			t.Fatal(err)
		}
	})
}

// weakCard defines a PIN index with the card's attributes and the policy
// PolicyOR(branches), writes it through write, creates a key bound to it
// the way GenerateKey binds keys, and saves a record of r's card that
// names that index and key, until t ends. It returns the record and the
// key.
func weakCard(t *testing.T, m *Manager, r *record, branches [][]byte, write func(tpm2.TPMHandle) error) (*record, keyRecord) {
	t.Helper()
	orig, err := m.record(r.Serial)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.saveRecord(orig) })
	m.mu.Lock()
	defer m.mu.Unlock()
	pub, name := defineCounter(t, m, orDigest(branches), []byte("attacker's PIN"))
	writeCounter(t, m, uint32(pub.NVIndex), name, branches, write, pinData{0, 3})
	pub.Attributes.Written = true
	pinName := nvName(pub)

	tmpl, err := ECDSAP256.template(keyPolicy(pinName))
	if err != nil {
		t.Fatal(err)
	}
	var cr *tpm2.CreateResponse
	err = m.withRoom(func() (err error) {
		cr, err = tpm2.Create{
			ParentHandle: tpm2.AuthHandle{Handle: m.srk.handle, Name: m.srk.name, Auth: tpm2.PasswordAuth(nil)},
			InPublic:     tpm2.New2B(tmpl),
		}.Execute(m.tpm)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	kr := keyRecord{
		ID: []byte(fmt.Sprintf("weak %x", pub.NVIndex)), Label: "weak", Algorithm: ECDSAP256,
		Public: tpm2.Marshal(cr.OutPublic)[2:], Private: tpm2.Marshal(cr.OutPrivate)[2:],
		Creation: newKeyCreation(cr),
	}
	c := r.clone()
	c.PINIndex, c.PINName = uint32(pub.NVIndex), pinName
	c.Keys = append(c.Keys, kr)
	if err := m.saveRecord(c); err != nil {
		t.Fatal(err)
	}
	return c, kr
}

// defineCounter defines, straight with go-tpm and the (empty) owner
// authorization, an unwritten PIN_FAIL index with the attributes of a
// card's and the given policy, and returns its public area and Name.
func defineCounter(t *testing.T, m *Manager, policy, auth []byte) (tpm2.TPMSNVPublic, []byte) {
	t.Helper()
	hs, err := freeNVHandles(m.tpm, 1)
	if err != nil {
		t.Fatal(err)
	}
	pub := pinIndexPublic(hs[0], policy, false)
	_, err = tpm2.NVDefineSpace{
		AuthHandle: tpm2.AuthHandle{Handle: tpm2.TPMRHOwner, Auth: tpm2.PasswordAuth(nil)},
		Auth:       tpm2.TPM2BAuth{Buffer: auth},
		PublicInfo: tpm2.New2B(pub),
	}.Execute(m.tpm)
	if err != nil {
		t.Fatalf("defining a look-alike index: %v", err)
	}
	return pub, nvName(pub)
}

// writeCounter writes data to a PIN_FAIL index in a policy session
// through the branch that steps satisfies, straight with go-tpm.
func writeCounter(t *testing.T, m *Manager, h uint32, name []byte, branches [][]byte, steps func(tpm2.TPMHandle) error, data pinData) {
	t.Helper()
	var sess tpm2.Session
	var closer func() error
	err := m.withRoom(func() (err error) {
		sess, closer, err = tpm2.PolicySession(m.tpm, tpm2.TPMAlgSHA256, 16)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer closer()
	if err := steps(sess.Handle()); err != nil {
		t.Fatalf("policy: %v", err)
	}
	if _, err := (tpm2.PolicyOr{PolicySession: sess.Handle(), PHashList: digestList(branches)}).Execute(m.tpm); err != nil {
		t.Fatalf("PolicyOR: %v", err)
	}
	_, err = tpm2.NVWrite{
		AuthHandle: tpm2.AuthHandle{Handle: tpm2.TPMHandle(h), Name: tpm2.TPM2BName{Buffer: name}, Auth: sess},
		NVIndex:    tpm2.NamedHandle{Handle: tpm2.TPMHandle(h), Name: tpm2.TPM2BName{Buffer: name}},
		Data:       tpm2.TPM2BMaxNVBuffer{Buffer: data.bytes()},
	}.Execute(m.tpm)
	if err != nil {
		t.Fatalf("writing index %#x: %v", h, err)
	}
}

var updateAttestGolden = flag.Bool("update-attest-golden", false, "rewrite attest/testdata/statement.json and key.pem")

// TestAttestGolden writes the attest package's golden statement (a card
// with a PUK and an admin key, the nonce "golden") when asked to, on the
// fixed-seed simulator.
func TestAttestGolden(t *testing.T) {
	if !*updateAttestGolden {
		t.Skip("-update-attest-golden not given")
	}
	m := openManager(t, tpmtest.SimFixedSeed(t, 1), "")
	admin, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	serial := newAdminCard(t, m, admin, false)
	k := mustGenerate(t, m, serial, ECDSAP256)
	st, err := m.Attest(serial, k.ID, AttestOptions{Nonce: []byte("golden")})
	if err != nil {
		t.Fatal(err)
	}
	js, err := st.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	spki, err := x509.MarshalPKIXPublicKey(k.Public)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile("attest/testdata/statement.json", js, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile("attest/testdata/key.pem", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: spki}), 0o644); err != nil {
		t.Fatal(err)
	}
}
