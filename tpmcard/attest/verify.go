package attest

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"math/big"

	"github.com/google/go-tpm/tpm2"
)

// ErrInvalid is wrapped by every verification failure.
var ErrInvalid = errors.New("attestation does not verify")

// Options add checks to Verify.
type Options struct {
	// PublicKey, when set, must equal the attested key's public key (the
	// key of the certificate request the statement came with).
	PublicKey crypto.PublicKey
	// Nonce, when set, must equal the statement's nonce.
	Nonce []byte
	// AKPubArea, when set, pins the attestation key: the statement's AK
	// public area must be this one (a CA that enrolled the AK earlier).
	AKPubArea []byte
}

// Result is what a verified statement shows.
type Result struct {
	Card      string
	KeyID     []byte
	PublicKey crypto.PublicKey
	KeyName   []byte // TPM Name of the card key
	AKName    []byte // TPM Name of the attestation key
	PINIndex  uint32 // NV handle of the PIN index
	PINName   []byte
	PINLimit  uint32 // wrong PINs the TPM accepts before it locks the key
	PINCount  uint32 // wrong PINs counted when the statement was made
	// HasPUK: the PIN counter is reset with the PUK, whose own index the
	// TPM counts as well (PUKLimit, PUKCount). Without one, only the admin
	// key resets it.
	HasPUK   bool
	PUKIndex uint32
	PUKName  []byte
	PUKLimit uint32 // wrong PUKs the TPM accepts; the PUK counter is never reset
	PUKCount uint32
	// AdminKey is the administrator's key that can unblock the card (reset
	// the counter and set a new PIN) without the PUK; nil if none can.
	AdminKey     *ecdsa.PublicKey
	ApprovalName []byte // TPM Name of the card's one-time approval key
	EKCert       *x509.Certificate
	// Checked lists what the verification established; NotProved what it
	// cannot establish and a CA must settle by other means.
	Checked   []string
	NotProved []string
}

// NotProved is what a statement alone cannot prove.
var NotProved = []string{
	"that the attestation key (AK) belongs to a genuine hardware TPM: nothing in the statement binds the AK to the " +
		"endorsement key or its certificate; that needs TPM2_ActivateCredential with the EK (a credential the CA " +
		"encrypts to the EK and the TPM decrypts only for this AK) or an AK certificate from a CA that did it. A software " +
		"TPM (swtpm, the simulator) produces statements that verify",
	"that the EK certificate, if present, is this TPM's: it is bound to the statement, not to the AK",
	"that the card's approval key was generated in the TPM and forgotten once the card was made: its public area " +
		"says so (fixedTPM, sensitiveDataOrigin), but no TPM certified it and no statement can show that it was " +
		"flushed. Whoever could still sign with it could write the card's indices (or look-alikes the TPM owner " +
		"defines in their place) and approve other PIN and PUK change policies; tpmcard has the TPM generate it under " +
		"a null-hierarchy parent and flushes it at the end of provisioning, so this rests on trusting whoever made the card",
	"that the admin key, if any, is your administrator's: compare the admin key reported with the one you expect",
}

func fail(format string, a ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, a...)...)
}

// strict decodes a TPM structure and refuses trailing or non-canonical
// bytes: the encoding must be exactly what the structure re-encodes to.
func strict[T tpm2.Marshallable, P interface {
	*T
	tpm2.Unmarshallable
}](what string, b []byte) (*T, error) {
	v, err := tpm2.Unmarshal[T, P](b)
	if err != nil {
		return nil, fail("%s: %v", what, err)
	}
	if !bytes.Equal(tpm2.Marshal(*v), b) {
		return nil, fail("%s: malformed (trailing or non-canonical bytes)", what)
	}
	return v, nil
}

// Verify checks a statement offline. It returns an error wrapping
// ErrInvalid on the first check that fails.
func Verify(s *Statement, opts Options) (*Result, error) {
	if err := checkType(s.Type); err != nil {
		return nil, fail("%v", err)
	}
	if s.Ver != "2.0" {
		return nil, fail("ver %q, want \"2.0\"", s.Ver)
	}
	if s.Alg != AlgES256 {
		return nil, fail("alg %d: only ES256 (-7) attestation keys are supported", s.Alg)
	}
	res := &Result{Card: s.Card, KeyID: s.KeyID, NotProved: NotProved}
	ok := func(what string) { res.Checked = append(res.Checked, what) }

	// The attestation key.
	if opts.AKPubArea != nil && !bytes.Equal(opts.AKPubArea, s.AKPubArea) {
		return nil, fail("the attestation key is not the pinned one")
	}
	ak, err := strict[tpm2.TPMTPublic]("akPubArea", s.AKPubArea)
	if err != nil {
		return nil, err
	}
	a := ak.ObjectAttributes
	if !a.Restricted || !a.SignEncrypt || a.Decrypt || !a.FixedTPM || !a.FixedParent || !a.SensitiveDataOrigin {
		return nil, fail("the attestation key is not a restricted signing key generated in and fixed to its TPM")
	}
	if ak.Type != tpm2.TPMAlgECC || ak.NameAlg != tpm2.TPMAlgSHA256 {
		return nil, fail("the attestation key is not an ECC key with a SHA-256 name")
	}
	akPub, err := tpm2.Pub(*ak)
	if err != nil {
		return nil, fail("akPubArea: %v", err)
	}
	akECDSA, isEC := akPub.(*ecdsa.PublicKey)
	if !isEC {
		return nil, fail("the attestation key is not an ECDSA key")
	}
	akName, err := tpm2.ObjectName(ak)
	if err != nil {
		return nil, fail("akPubArea: %v", err)
	}
	res.AKName = akName.Buffer
	ok("the attestation key is a restricted signing key, fixedTPM, fixedParent, sensitiveDataOrigin")

	binding := s.BindingData()
	if opts.Nonce != nil && !bytes.Equal(opts.Nonce, s.Nonce) {
		return nil, fail("the statement answers another nonce")
	}

	// The card key's creation, certified by the AK.
	info, err := attestation("certInfo", s.CertInfo, s.Sig, akECDSA, akName.Buffer, binding, tpm2.TPMSTAttestCreation)
	if err != nil {
		return nil, err
	}
	ci, err := info.Attested.Creation()
	if err != nil {
		return nil, fail("certInfo: %v", err)
	}
	ok("the AK signed certInfo (TPM_GENERATED, TPM_ST_ATTEST_CREATION, signer and extraData match)")
	pub, err := strict[tpm2.TPMTPublic]("pubArea", s.PubArea)
	if err != nil {
		return nil, err
	}
	if pub.NameAlg != tpm2.TPMAlgSHA256 {
		return nil, fail("pubArea: name algorithm is not SHA-256")
	}
	keyName, err := tpm2.ObjectName(pub)
	if err != nil {
		return nil, fail("pubArea: %v", err)
	}
	if !bytes.Equal(ci.ObjectName.Buffer, keyName.Buffer) {
		return nil, fail("certInfo certifies another key than pubArea")
	}
	res.KeyName = keyName.Buffer
	if _, err := strict[tpm2.TPMSCreationData]("creationData", s.CreationData); err != nil {
		return nil, err
	}
	if sum := sha256.Sum256(s.CreationData); !bytes.Equal(ci.CreationHash.Buffer, sum[:]) {
		return nil, fail("creationData is not the data the TPM certified")
	}
	ok("certInfo names pubArea; the TPM created that key (creation ticket checked by the TPM, creationData hash matches)")
	o := pub.ObjectAttributes
	switch {
	case !o.FixedTPM || !o.FixedParent || !o.SensitiveDataOrigin:
		return nil, fail("the key is not generated in and fixed to the TPM (fixedTPM, fixedParent, sensitiveDataOrigin)")
	case !o.SignEncrypt || o.Decrypt || o.Restricted:
		return nil, fail("the key is not an unrestricted signing key")
	case o.UserWithAuth:
		return nil, fail("the key has userWithAuth set: it can be used with its authValue instead of the PIN policy")
	case !o.AdminWithPolicy:
		return nil, fail("the key has adminWithPolicy clear")
	}
	ok("pubArea: fixedTPM, fixedParent, sensitiveDataOrigin, sign; userWithAuth clear, adminWithPolicy set")
	res.PublicKey, err = tpm2.Pub(*pub)
	if err != nil {
		return nil, fail("pubArea: %v", err)
	}

	// The PIN index, certified by the same AK.
	nvInfo, err := attestation("nvCertInfo", s.NVCertInfo, s.NVSig, akECDSA, akName.Buffer, binding, tpm2.TPMSTAttestNV)
	if err != nil {
		return nil, err
	}
	nv, err := nvInfo.Attested.NV()
	if err != nil {
		return nil, fail("nvCertInfo: %v", err)
	}
	ok("the AK signed nvCertInfo (TPM_GENERATED, TPM_ST_ATTEST_NV, signer and extraData match)")
	nvPub, err := strict[tpm2.TPMSNVPublic]("nvPubArea", s.NVPubArea)
	if err != nil {
		return nil, err
	}
	nvName, err := tpm2.NVName(nvPub)
	if err != nil {
		return nil, fail("nvPubArea: %v", err)
	}
	if !bytes.Equal(nv.IndexName.Buffer, nvName.Buffer) {
		return nil, fail("nvCertInfo certifies another index than nvPubArea")
	}
	if err := counterIndex("PIN", nvPub, nv); err != nil {
		return nil, err
	}
	res.PINIndex = uint32(nvPub.NVIndex)
	res.PINName = nvName.Buffer
	res.PINCount = binary.BigEndian.Uint32(nv.NVContents.Buffer)
	res.PINLimit = binary.BigEndian.Uint32(nv.NVContents.Buffer[4:])
	ok(fmt.Sprintf("nvPubArea: PIN index %#x is TPM_NT_PIN_FAIL, NO_DA, POLICYWRITE, OWNERREAD, written, no other attribute; limit %d",
		res.PINIndex, res.PINLimit))

	// The PIN index's policy, recomputed from the keys and the PUK index
	// it names.
	if err := verifyPolicies(s, res, nvPub, binding, akECDSA, akName.Buffer, ok); err != nil {
		return nil, err
	}

	// The key's policy: one of tpmcard's two, on the certified PIN index.
	switch keyPolicy(pub.AuthPolicy.Buffer, nvName.Buffer) {
	case pinOnce:
		ok("the key's authPolicy is PolicySecret(PIN index): the key signs only after the PIN the TPM counts")
	case pinAlways:
		ok("the key's authPolicy is PolicyCommandCode(Sign) + PolicySecret(PIN index, \"" + refSignAlways + "\"): " +
			"PIN policy always: the key only signs, each signature after a PIN proof of its own that the TPM counts")
	default:
		return nil, fail("the key's authPolicy is neither PolicySecret of the certified PIN index nor " +
			"PolicyCommandCode(Sign) + PolicySecret(PIN index, \"" + refSignAlways + "\")")
	}

	if s.EKCert != nil {
		if res.EKCert, err = x509.ParseCertificate(s.EKCert); err != nil {
			return nil, fail("ekCert: %v", err)
		}
	}
	if opts.PublicKey != nil {
		e, isEq := res.PublicKey.(interface{ Equal(crypto.PublicKey) bool })
		if !isEq || !e.Equal(opts.PublicKey) {
			return nil, fail("the attested key is not the key of the certificate request")
		}
		ok("the attested key is the certificate request's key")
	}
	return res, nil
}

// attestation checks one TPMS_ATTEST and the AK's signature over it.
func attestation(what string, info, sig []byte, ak *ecdsa.PublicKey, akName, binding []byte, typ tpm2.TPMST) (*tpm2.TPMSAttest, error) {
	ts, err := strict[tpm2.TPMTSignature](what+" signature", sig)
	if err != nil {
		return nil, err
	}
	if ts.SigAlg != tpm2.TPMAlgECDSA {
		return nil, fail("%s: signature is not ECDSA", what)
	}
	es, err := ts.Signature.ECDSA()
	if err != nil {
		return nil, fail("%s: %v", what, err)
	}
	if es.Hash != tpm2.TPMAlgSHA256 {
		return nil, fail("%s: signature hash is not SHA-256", what)
	}
	digest := sha256.Sum256(info)
	r := new(big.Int).SetBytes(es.SignatureR.Buffer)
	sv := new(big.Int).SetBytes(es.SignatureS.Buffer)
	if !ecdsa.Verify(ak, digest[:], r, sv) {
		return nil, fail("%s: the attestation key's signature does not verify", what)
	}
	at, err := strict[tpm2.TPMSAttest](what, info)
	if err != nil {
		return nil, err
	}
	if at.Magic != tpm2.TPMGeneratedValue {
		return nil, fail("%s: not TPM_GENERATED", what)
	}
	if at.Type != typ {
		return nil, fail("%s: attestation type %#x, want %#x", what, at.Type, typ)
	}
	if !bytes.Equal(at.QualifiedSigner.Buffer, endorsementQN(akName)) {
		return nil, fail("%s: signed by another key than the AK of akPubArea", what)
	}
	if !bytes.Equal(at.ExtraData.Buffer, binding) {
		return nil, fail("%s: extraData does not bind this statement's nonce, EK certificate, card and key", what)
	}
	return at, nil
}

// endorsementQN is the Qualified Name of a primary key of the endorsement
// hierarchy (Part 1 §16.6): nameAlg || H(QN(TPM_RH_ENDORSEMENT) || Name),
// where a hierarchy's QN is its handle.
func endorsementQN(name []byte) []byte {
	h := sha256.New()
	var hier [4]byte
	binary.BigEndian.PutUint32(hier[:], uint32(tpm2.TPMRHEndorsement))
	h.Write(hier[:])
	h.Write(name)
	return h.Sum([]byte{0x00, 0x0b})
}
