package attack

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"
	"github.com/tpmcard/tpmcard/tpmcard/tpmtest"
	"golang.org/x/crypto/argon2"
)

// cardRecord is what the attacker reads in STATEDIR/cards/SERIAL.json.
type cardRecord struct {
	Serial   string `json:"serial"`
	PINIndex uint32 `json:"pin_index"`
	PUKIndex uint32 `json:"puk_index"`
	PINName  []byte `json:"pin_name"`
	PUKName  []byte `json:"puk_name"`
	PINLimit uint32 `json:"pin_limit"`
	PUKLimit uint32 `json:"puk_limit"`
	NoPUK    bool   `json:"no_puk"`
	AdminKey []byte `json:"admin_key"`
	Approval struct {
		Public []byte `json:"public"`
		PINSig []byte `json:"pin_sig"`
		PUKSig []byte `json:"puk_sig"`
	} `json:"approval"`
	KDF *struct {
		Alg     string `json:"alg"`
		Time    uint32 `json:"time"`
		Memory  uint32 `json:"memory_kib"`
		Threads uint8  `json:"threads"`
		Salt    []byte `json:"salt"`
	} `json:"kdf"`
	Keys []struct {
		Public  []byte `json:"public"`
		Private []byte `json:"private"`
	} `json:"keys"`
}

func readRecord(t *testing.T, dir, serial string) *cardRecord {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "cards", serial+".json"))
	if err != nil {
		t.Fatalf("reading the card record: %v", err)
	}
	var r cardRecord
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("parsing the card record: %v", err)
	}
	if r.PINIndex == 0 || len(r.PINName) == 0 || len(r.Approval.Public) == 0 {
		t.Fatalf("the card record lacks the fields the attack reads: %s", b)
	}
	return &r
}

func objectName(t *testing.T, pub []byte) []byte {
	t.Helper()
	p, err := tpm2.Unmarshal[tpm2.TPMTPublic](pub)
	if err != nil {
		t.Fatalf("parsing a public area: %v", err)
	}
	n, err := tpm2.ObjectName(p)
	if err != nil {
		t.Fatalf("naming a public area: %v", err)
	}
	return n.Buffer
}

func (r *cardRecord) approvalName(t *testing.T) []byte { return objectName(t, r.Approval.Public) }

func (r *cardRecord) adminName(t *testing.T) []byte {
	if r.AdminKey == nil {
		return nil
	}
	return objectName(t, r.AdminKey)
}

// The policies, recomputed from policy.go's description (the attacker reads
// the source, not the package's unexported code).
const (
	refPINChange = "tpmcard pin change"
	refPUKChange = "tpmcard puk change"
	refProvision = "tpmcard provision"
)

func setPINRef(serial string) []byte { return []byte("tpmcard unblock-pin " + serial) }
func resetRef(serial string) []byte  { return []byte("tpmcard unblock-reset " + serial) }

type calc struct {
	t  *testing.T
	pc *tpm2.PolicyCalculator
}

func newCalc(t *testing.T) calc {
	pc, err := tpm2.NewPolicyCalculator(tpm2.TPMAlgSHA256)
	if err != nil {
		t.Fatal(err)
	}
	return calc{t, pc}
}

func (c calc) must(err error) calc {
	if err != nil {
		c.t.Fatalf("policy calculation: %v", err)
	}
	return c
}

func (c calc) cc(code tpm2.TPMCC) calc {
	return c.must(tpm2.PolicyCommandCode{Code: code}.Update(c.pc))
}

func (c calc) secret(name []byte) calc {
	return c.must(tpm2.PolicySecret{AuthHandle: tpm2.NamedHandle{Name: tpm2.TPM2BName{Buffer: name}}}.Update(c.pc))
}

func (c calc) signed(keyName, ref []byte) calc {
	return c.must(tpm2.PolicySigned{AuthObject: tpm2.NamedHandle{Name: tpm2.TPM2BName{Buffer: keyName}}, PolicyRef: tpm2.TPM2BNonce{Buffer: ref}}.Update(c.pc))
}

func (c calc) authorize(keyName []byte, ref string) calc {
	c.pc.Reset()
	return c.must(tpm2.PolicyAuthorize{KeySign: tpm2.TPM2BName{Buffer: keyName}, PolicyRef: tpm2.TPM2BDigest{Buffer: []byte(ref)}}.Update(c.pc))
}

func (c calc) digest() []byte { return c.pc.Hash().Digest }

// branch is one PolicyOR branch of an index, by name.
type branch struct {
	name   string
	digest []byte
}

func digests(bs []branch) [][]byte {
	var out [][]byte
	for _, b := range bs {
		out = append(out, b.digest)
	}
	return out
}

func (r *cardRecord) pukBranches(t *testing.T) []branch {
	a := r.approvalName(t)
	return []branch{
		{"provision", newCalc(t).cc(tpm2.TPMCCNVWrite).signed(a, []byte(refProvision)).digest()},
		{"approved", newCalc(t).authorize(a, refPUKChange).digest()},
	}
}

func (r *cardRecord) pinBranches(t *testing.T) []branch {
	a := r.approvalName(t)
	var b []branch
	if !r.NoPUK {
		b = append(b,
			branch{"resetByPUK", newCalc(t).cc(tpm2.TPMCCNVWrite).secret(r.PUKName).digest()},
			branch{"setByPUK", newCalc(t).cc(tpm2.TPMCCNVChangeAuth).secret(r.PUKName).digest()})
	} else {
		b = append(b, branch{"provision", newCalc(t).cc(tpm2.TPMCCNVWrite).signed(a, []byte(refProvision)).digest()})
	}
	b = append(b, branch{"approved", newCalc(t).authorize(a, refPINChange).digest()})
	if an := r.adminName(t); an != nil {
		b = append(b,
			branch{"adminSet", newCalc(t).cc(tpm2.TPMCCNVChangeAuth).signed(an, setPINRef(r.Serial)).digest()},
			branch{"adminReset", newCalc(t).cc(tpm2.TPMCCNVWrite).signed(an, resetRef(r.Serial)).digest()})
	}
	return b
}

func approvedChange(t *testing.T, indexName []byte) []byte {
	return newCalc(t).cc(tpm2.TPMCCNVChangeAuth).secret(indexName).digest()
}

func orDigest(t *testing.T, bs []branch) []byte {
	c := newCalc(t)
	return c.must(tpm2.PolicyOr{PHashList: digestList(digests(bs))}.Update(c.pc)).digest()
}

func digestList(ds [][]byte) tpm2.TPMLDigest {
	var l tpm2.TPMLDigest
	for _, d := range ds {
		l.Digests = append(l.Digests, tpm2.TPM2BDigest{Buffer: d})
	}
	return l
}

// approvalDigest is aHash of PolicyAuthorize: H(approvedPolicy || policyRef).
func approvalDigest(policy []byte, ref string) []byte {
	h := sha256.New()
	h.Write(policy)
	h.Write([]byte(ref))
	return h.Sum(nil)
}

// signedDigest is aHash of PolicySigned: H(nonceTPM || expiration ||
// cpHashA || policyRef) (Part 3 §23.3).
func signedDigest(nonce []byte, expiration int32, cpHash, ref []byte) []byte {
	h := sha256.New()
	h.Write(nonce)
	_ = binary.Write(h, binary.BigEndian, expiration)
	h.Write(cpHash)
	h.Write(ref)
	return h.Sum(nil)
}

// pinAuth is a PIN's authValue as docs/security.md gives it: with the
// record's argon2id parameters, base64(argon2id(PIN, "tpmcard pin\0" ||
// salt)[:24]); a record without them (the earlier derivation)
// base64(SHA-256("tpmcard pin\0" || PIN)[:24]).
func (r *cardRecord) pinAuth(t *testing.T, pin string) []byte {
	if r.KDF == nil {
		sum := sha256.Sum256(append([]byte("tpmcard pin\x00"), pin...))
		return []byte(base64.RawStdEncoding.EncodeToString(sum[:24]))
	}
	if r.KDF.Alg != "argon2id" {
		t.Fatalf("the record's PIN derivation is %q, the attack knows argon2id", r.KDF.Alg)
	}
	salt := append([]byte("tpmcard pin\x00"), r.KDF.Salt...)
	raw := argon2.IDKey([]byte(pin), salt, r.KDF.Time, r.KDF.Memory, r.KDF.Threads, 24)
	return []byte(base64.RawStdEncoding.EncodeToString(raw))
}

// --- the bus -------------------------------------------------------------

// exchange is one command and its response as they crossed the bus.
type exchange struct{ cmd, rsp []byte }

func (e exchange) cc() tpm2.TPMCC {
	if len(e.cmd) < 10 {
		return 0
	}
	return tpm2.TPMCC(binary.BigEndian.Uint32(e.cmd[6:10]))
}

func (e exchange) rc() tpm2.TPMRC {
	if len(e.rsp) < 10 {
		return 0xffffffff
	}
	return tpm2.TPMRC(binary.BigEndian.Uint32(e.rsp[6:10]))
}

// recorder is a bus tap: the transport tpmcard is opened on.
type recorder struct {
	transport.TPM
	mu  sync.Mutex
	log []exchange
}

func (r *recorder) Send(cmd []byte) ([]byte, error) {
	rsp, err := r.TPM.Send(cmd)
	r.mu.Lock()
	r.log = append(r.log, exchange{bytes.Clone(cmd), bytes.Clone(rsp)})
	r.mu.Unlock()
	return rsp, err
}

// take returns what was recorded since the last take.
func (r *recorder) take() []exchange {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.log
	r.log = nil
	return out
}

// --- reporting -----------------------------------------------------------

func rcName(rc tpm2.TPMRC) string {
	name, _, _ := strings.Cut(rc.Error(), ":")
	name, _, _ = strings.Cut(name, " (")
	return name
}

// refused asserts that err is the TPM's refusal want and prints the
// summary line. A nil err is an attack that worked.
func refused(t *testing.T, b *tpmtest.Backend, attack string, err error, want tpm2.TPMRC) {
	t.Helper()
	if err == nil {
		t.Errorf("ATTACK %s %s: SUCCEEDED (the TPM accepted it; want %s)", attack, b.Name, rcName(want))
		return
	}
	if !errors.Is(err, want) {
		t.Errorf("ATTACK %s %s: refused with %v, want %s", attack, b.Name, err, rcName(want))
		return
	}
	var r *refusal
	if errors.As(err, &r) {
		t.Logf("ATTACK %s %s: refused with %s", attack, b.Name, r.short())
		return
	}
	t.Logf("ATTACK %s %s: refused with %s", attack, b.Name, rcName(want))
}

// --- TPM helpers ---------------------------------------------------------

// attacker talks go-tpm to the TPM.
type attacker struct {
	t   *testing.T
	tpm transport.TPM
}

func (a *attacker) flush(h tpm2.TPMHandle) {
	_, _ = tpm2.FlushContext{FlushHandle: h}.Execute(a.tpm)
}

var ownerAuth = tpm2.AuthHandle{Handle: tpm2.TPMRHOwner, Auth: tpm2.PasswordAuth(nil)}

// policySession starts a policy session and flushes it when t ends (or
// at the returned closer).
func (a *attacker) policySession() (tpm2.Session, func()) {
	a.t.Helper()
	s, closer, err := tpm2.PolicySession(a.tpm, tpm2.TPMAlgSHA256, 16)
	if err != nil {
		a.t.Fatalf("starting a policy session: %v", err)
	}
	return s, func() { _ = closer() }
}

// ownerSRK creates the owner's ECC SRK, as tpmcard's keys' parent.
func (a *attacker) ownerSRK() (tpm2.TPMHandle, tpm2.TPM2BName) {
	a.t.Helper()
	rsp, err := tpm2.CreatePrimary{PrimaryHandle: ownerAuth, InPublic: tpm2.New2B(tpm2.ECCSRKTemplate)}.Execute(a.tpm)
	if err != nil {
		a.t.Fatalf("creating the owner SRK: %v", err)
	}
	return rsp.ObjectHandle, rsp.Name
}

// loadCardKey loads the record's first key under the owner SRK.
func (a *attacker) loadCardKey(r *cardRecord) (tpm2.TPMHandle, tpm2.TPM2BName) {
	a.t.Helper()
	if len(r.Keys) == 0 {
		a.t.Fatal("the card has no key")
	}
	srk, srkName := a.ownerSRK()
	defer a.flush(srk)
	rsp, err := tpm2.Load{
		ParentHandle: tpm2.AuthHandle{Handle: srk, Name: srkName, Auth: tpm2.PasswordAuth(nil)},
		InPrivate:    tpm2.TPM2BPrivate{Buffer: r.Keys[0].Private},
		InPublic:     tpm2.BytesAs2B[tpm2.TPMTPublic](r.Keys[0].Public),
	}.Execute(a.tpm)
	if err != nil {
		a.t.Fatalf("loading the card's key blobs under the owner SRK: %v", err)
	}
	return rsp.ObjectHandle, rsp.Name
}

// signWith has a loaded card key sign in a policy session in which the
// policy steps ran.
func (a *attacker) signWith(key tpm2.TPMHandle, name tpm2.TPM2BName, s tpm2.Session) error {
	digest := sha256.Sum256([]byte("attacker's message"))
	_, err := tpm2.Sign{
		KeyHandle:  tpm2.AuthHandle{Handle: key, Name: name, Auth: s},
		Digest:     tpm2.TPM2BDigest{Buffer: digest[:]},
		InScheme:   ecdsaScheme,
		Validation: tpm2.TPMTTKHashCheck{Tag: tpm2.TPMSTHashCheck, Hierarchy: tpm2.TPMRHNull},
	}.Execute(a.tpm)
	return err
}

var ecdsaScheme = tpm2.TPMTSigScheme{
	Scheme:  tpm2.TPMAlgECDSA,
	Details: tpm2.NewTPMUSigScheme(tpm2.TPMAlgECDSA, &tpm2.TPMSSchemeHash{HashAlg: tpm2.TPMAlgSHA256}),
}

// p256Public is the public area a P-256 verification key is loaded under,
// as tpmcard names the admin key.
func p256Public(pub *ecdsa.PublicKey) tpm2.TPMTPublic {
	pt, _ := pub.Bytes()
	return tpm2.TPMTPublic{
		Type:             tpm2.TPMAlgECC,
		NameAlg:          tpm2.TPMAlgSHA256,
		ObjectAttributes: tpm2.TPMAObject{SignEncrypt: true},
		Parameters: tpm2.NewTPMUPublicParms(tpm2.TPMAlgECC, &tpm2.TPMSECCParms{
			Symmetric: tpm2.TPMTSymDefObject{Algorithm: tpm2.TPMAlgNull},
			Scheme: tpm2.TPMTECCScheme{
				Scheme:  tpm2.TPMAlgECDSA,
				Details: tpm2.NewTPMUAsymScheme(tpm2.TPMAlgECDSA, &tpm2.TPMSSigSchemeECDSA{HashAlg: tpm2.TPMAlgSHA256}),
			},
			CurveID: tpm2.TPMECCNistP256,
			KDF:     tpm2.TPMTKDFScheme{Scheme: tpm2.TPMAlgNull},
		}),
		Unique: tpm2.NewTPMUPublicID(tpm2.TPMAlgECC, &tpm2.TPMSECCPoint{
			X: tpm2.TPM2BECCParameter{Buffer: pt[1:33]},
			Y: tpm2.TPM2BECCParameter{Buffer: pt[33:]},
		}),
	}
}

// loadExternal loads a public area (marshalled TPMT_PUBLIC) to verify
// signatures with; flushed at the closer.
func (a *attacker) loadExternal(pub []byte) (tpm2.NamedHandle, func()) {
	a.t.Helper()
	p, err := tpm2.Unmarshal[tpm2.TPMTPublic](pub)
	if err != nil {
		a.t.Fatalf("parsing a public area: %v", err)
	}
	rsp, err := tpm2.LoadExternal{InPublic: tpm2.New2B(*p), Hierarchy: tpm2.TPMRHOwner}.Execute(a.tpm)
	if err != nil {
		a.t.Fatalf("LoadExternal: %v", err)
	}
	return tpm2.NamedHandle{Handle: rsp.ObjectHandle, Name: rsp.Name}, func() { a.flush(rsp.ObjectHandle) }
}

// ownKey is a P-256 key of the attacker's, in software.
type ownKey struct{ priv *ecdsa.PrivateKey }

func newOwnKey(t *testing.T) ownKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return ownKey{k}
}

func (k ownKey) public() []byte { return tpm2.Marshal(p256Public(&k.priv.PublicKey)) }

func (k ownKey) sign(t *testing.T, digest []byte) tpm2.TPMTSignature {
	r, s, err := ecdsa.Sign(rand.Reader, k.priv, digest)
	if err != nil {
		t.Fatal(err)
	}
	raw := make([]byte, 64)
	r.FillBytes(raw[:32])
	s.FillBytes(raw[32:])
	return ecdsaSig(raw)
}

func ecdsaSig(raw []byte) tpm2.TPMTSignature {
	return tpm2.TPMTSignature{
		SigAlg: tpm2.TPMAlgECDSA,
		Signature: tpm2.NewTPMUSignature(tpm2.TPMAlgECDSA, &tpm2.TPMSSignatureECC{
			Hash:       tpm2.TPMAlgSHA256,
			SignatureR: tpm2.TPM2BECCParameter{Buffer: raw[:32]},
			SignatureS: tpm2.TPM2BECCParameter{Buffer: raw[32:]},
		}),
	}
}

// nvReadPublic returns an index's public area and Name.
func (a *attacker) nvReadPublic(h uint32) (*tpm2.TPMSNVPublic, []byte, error) {
	rsp, err := tpm2.NVReadPublic{NVIndex: tpm2.TPMHandle(h)}.Execute(a.tpm)
	if err != nil {
		return nil, nil, err
	}
	pub, err := rsp.NVPublic.Contents()
	if err != nil {
		return nil, nil, err
	}
	return pub, rsp.NVName.Buffer, nil
}

func nvName(t *testing.T, pub tpm2.TPMSNVPublic) []byte {
	n, err := tpm2.NVName(&pub)
	if err != nil {
		t.Fatal(err)
	}
	return n.Buffer
}

// nvWrite writes data at offset 0 of an index, authorized by the index
// itself through session s.
func (a *attacker) nvWrite(h uint32, name []byte, s tpm2.Session, data []byte) error {
	_, err := tpm2.NVWrite{
		AuthHandle: tpm2.AuthHandle{Handle: tpm2.TPMHandle(h), Name: tpm2.TPM2BName{Buffer: name}, Auth: s},
		NVIndex:    tpm2.NamedHandle{Handle: tpm2.TPMHandle(h), Name: tpm2.TPM2BName{Buffer: name}},
		Data:       tpm2.TPM2BMaxNVBuffer{Buffer: data},
	}.Execute(a.tpm)
	return err
}

func pinData(count, limit uint32) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint32(b, count)
	binary.BigEndian.PutUint32(b[4:], limit)
	return b
}

// nvChangeAuth sends TPM2_NV_ChangeAuth (Part 3 §31.7), which go-tpm has no
// struct for, authorized by session s alone (the attacker does not care
// who reads the new authValue on the bus).
func (a *attacker) nvChangeAuth(h uint32, name, newAuth []byte, s tpm2.Session) error {
	const cc = tpm2.TPMCCNVChangeAuth
	if err := s.Init(a.tpm); err != nil {
		return err
	}
	if err := s.NewNonceCaller(); err != nil {
		return err
	}
	params := tpm2.Marshal(tpm2.TPM2BAuth{Buffer: newAuth})
	auth, err := s.Authorize(cc, params, nil, []tpm2.TPM2BName{{Buffer: name}}, 0)
	if err != nil {
		return err
	}
	area := tpm2.Marshal(auth)
	var cmd bytes.Buffer
	_ = binary.Write(&cmd, binary.BigEndian, tpm2.TPMSTSessions)
	_ = binary.Write(&cmd, binary.BigEndian, uint32(10+4+4+len(area)+len(params)))
	_ = binary.Write(&cmd, binary.BigEndian, cc)
	_ = binary.Write(&cmd, binary.BigEndian, h)
	_ = binary.Write(&cmd, binary.BigEndian, uint32(len(area)))
	cmd.Write(area)
	cmd.Write(params)
	rsp, err := a.tpm.Send(cmd.Bytes())
	if err != nil {
		return err
	}
	if len(rsp) < 10 {
		return errors.New("NV_ChangeAuth: short response")
	}
	if rc := tpm2.TPMRC(binary.BigEndian.Uint32(rsp[6:10])); rc != tpm2.TPMRCSuccess {
		return rc
	}
	return nil
}

// handles lists the TPM's handles of one type (0x80: transient objects,
// 0x81: persistent, 0x01: NV, 0x02/0x03: sessions).
func (a *attacker) handles(first tpm2.TPMHandle) []tpm2.TPMHandle {
	a.t.Helper()
	var out []tpm2.TPMHandle
	next := first
	for {
		rsp, err := tpm2.GetCapability{Capability: tpm2.TPMCapHandles, Property: uint32(next), PropertyCount: 64}.Execute(a.tpm)
		if err != nil {
			a.t.Fatalf("GetCapability(handles %#x): %v", first, err)
		}
		hs, err := rsp.CapabilityData.Data.Handles()
		if err != nil {
			a.t.Fatal(err)
		}
		for _, h := range hs.Handle {
			if h>>24 == first>>24 {
				out = append(out, h)
			}
			next = h + 1
		}
		if !rsp.MoreData || len(hs.Handle) == 0 {
			return out
		}
	}
}
