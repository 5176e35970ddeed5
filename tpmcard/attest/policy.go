package attest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math/big"

	"github.com/google/go-tpm/tpm2"
)

// The card's policies, recomputed here from the statement alone (TPM 2.0
// Part 3 §23; tpmcard/policy.go has the reasons). This package shares no
// code with tpmcard's provisioning on purpose: a statement verifies only
// when both computations agree.
//
//	PUK index U: PolicyOR{ provision, PolicyAuthorize(A, "tpmcard puk change") }
//	PIN index I: PolicyOR{ NV_Write + PolicySecret(U), NV_ChangeAuth + PolicySecret(U),   with a PUK
//	                       provision,                                                     without one
//	                       PolicyAuthorize(A, "tpmcard pin change"),
//	                       NV_ChangeAuth + PolicySigned(admin, "tpmcard unblock-pin SERIAL"),   with an admin key
//	                       NV_Write + PolicySigned(admin, "tpmcard unblock-reset SERIAL") }
//	provision:   NV_Write + PolicySigned(A, "tpmcard provision")
//	A approves, for each index X: NV_ChangeAuth + PolicySecret(X)
//	key, PIN once:   PolicySecret(I)
//	key, PIN always: Sign + PolicySecret(I, "tpmcard sign always")
const (
	refProvision = "tpmcard provision"
	refPINChange = "tpmcard pin change"
	refPUKChange = "tpmcard puk change"
	refSetPIN    = "tpmcard unblock-pin "
	refResetPIN  = "tpmcard unblock-reset "
	// refSignAlways is the policyRef of a PIN-always key's PIN proof.
	refSignAlways = "tpmcard sign always"
)

// counterAttributes are the attributes of a card's PIN and PUK indices
// once written, and no others: in particular neither OWNERWRITE nor
// PPWRITE (the owner or the platform could reset the counter), nor
// AUTHWRITE (the PIN itself could), nor POLICY_DELETE.
var counterAttributes = tpm2.TPMANV{
	NT:          tpm2.TPMNTPinFail,
	NoDA:        true,
	PolicyWrite: true,
	OwnerRead:   true,
	Written:     true,
}

// counterIndex checks a certified PIN_FAIL index of the card: what names
// it ("PIN", "PUK"), its public area and what NV_Certify read of it.
func counterIndex(what string, pub *tpm2.TPMSNVPublic, nv *tpm2.TPMSNVCertifyInfo) error {
	na := pub.Attributes
	switch {
	case na.NT != tpm2.TPMNTPinFail:
		return fail("the %s index is not of type TPM_NT_PIN_FAIL", what)
	case !na.NoDA:
		return fail("the %s index lacks TPMA_NV_NO_DA", what)
	case na.OwnerWrite:
		return fail("the %s index has OWNERWRITE: the owner could reset its counter", what)
	case na.PPWrite:
		return fail("the %s index has PPWRITE: the platform could reset its counter", what)
	case na.AuthWrite:
		return fail("the %s index has AUTHWRITE", what)
	case !na.Written:
		return fail("the %s index was never written", what)
	case !bytes.Equal(tpm2.Marshal(na), tpm2.Marshal(counterAttributes)):
		return fail("the %s index's attributes %#08x are not tpmcard's %#08x", what,
			binary.BigEndian.Uint32(tpm2.Marshal(na)), binary.BigEndian.Uint32(tpm2.Marshal(counterAttributes)))
	case pub.NameAlg != tpm2.TPMAlgSHA256 || pub.DataSize != 8:
		return fail("the %s index is not an 8-byte index with a SHA-256 name", what)
	}
	if nv.Offset != 0 || len(nv.NVContents.Buffer) != 8 {
		return fail("the %s index's certification does not cover its counter (offset %d, %d bytes)", what, nv.Offset, len(nv.NVContents.Buffer))
	}
	if binary.BigEndian.Uint32(nv.NVContents.Buffer[4:]) == 0 {
		return fail("the %s index has a zero limit", what)
	}
	return nil
}

// verifyPolicies recomputes the PUK and PIN indices' policies from the
// statement's approval key, PUK index, admin key and serial, and checks the
// PIN index's authPolicy (certified through its Name) against them.
func verifyPolicies(s *Statement, res *Result, pin *tpm2.TPMSNVPublic, binding []byte, ak *ecdsa.PublicKey, akName []byte, ok func(string)) error {
	// The approval key: its Name is in both indices' policies.
	ap, err := strict[tpm2.TPMTPublic]("approvalPubArea", s.ApprovalPubArea)
	if err != nil {
		return err
	}
	a := ap.ObjectAttributes
	if ap.Type != tpm2.TPMAlgECC || ap.NameAlg != tpm2.TPMAlgSHA256 || !a.FixedTPM || !a.FixedParent || !a.SensitiveDataOrigin ||
		!a.SignEncrypt || a.Decrypt || a.Restricted {
		return fail("approvalPubArea is not the public area of an ECC signing key generated in and fixed to a TPM, as tpmcard's approval key is")
	}
	approvalKey, err := p256Key("approvalPubArea", ap)
	if err != nil {
		return err
	}
	approvalName, err := tpm2.ObjectName(ap)
	if err != nil {
		return fail("approvalPubArea: %v", err)
	}
	res.ApprovalName = approvalName.Buffer

	// The PUK index, certified by the same AK.
	var pukName []byte
	if s.PUKPubArea != nil || s.PUKCertInfo != nil || s.PUKSig != nil {
		info, err := attestation("pukCertInfo", s.PUKCertInfo, s.PUKSig, ak, akName, binding, tpm2.TPMSTAttestNV)
		if err != nil {
			return err
		}
		nv, err := info.Attested.NV()
		if err != nil {
			return fail("pukCertInfo: %v", err)
		}
		pub, err := strict[tpm2.TPMSNVPublic]("pukPubArea", s.PUKPubArea)
		if err != nil {
			return err
		}
		name, err := tpm2.NVName(pub)
		if err != nil {
			return fail("pukPubArea: %v", err)
		}
		if !bytes.Equal(nv.IndexName.Buffer, name.Buffer) {
			return fail("pukCertInfo certifies another index than pukPubArea")
		}
		if err := counterIndex("PUK", pub, nv); err != nil {
			return err
		}
		want := or(provisionBranch(approvalName.Buffer), newCalc().authorize(approvalName.Buffer, refPUKChange).digest())
		if !samePolicy(pub.AuthPolicy.Buffer, want) {
			return fail("the PUK index's authPolicy is not tpmcard's PUK policy for this approval key: " +
				"someone other than the approval key's holder may be able to write it")
		}
		pukName = name.Buffer
		res.HasPUK, res.PUKIndex, res.PUKName = true, uint32(pub.NVIndex), pukName
		res.PUKCount = binary.BigEndian.Uint32(nv.NVContents.Buffer)
		res.PUKLimit = binary.BigEndian.Uint32(nv.NVContents.Buffer[4:])
		ok(fmt.Sprintf("the AK signed pukCertInfo; pukPubArea: PUK index %#x is TPM_NT_PIN_FAIL, NO_DA, POLICYWRITE, OWNERREAD, written, "+
			"no other attribute; limit %d", res.PUKIndex, res.PUKLimit))
		ok("the PUK index's authPolicy is tpmcard's: only the approval key's signature writes it (its counter is never reset), " +
			"and its PUK changes only through policies the approval key approved")
	} else if s.ApprovalPUKSig != nil {
		return fail("approvalPukSig without a PUK index")
	}

	// The admin key.
	var adminName []byte
	if s.AdminPubArea != nil {
		pub, err := strict[tpm2.TPMTPublic]("adminPubArea", s.AdminPubArea)
		if err != nil {
			return err
		}
		if pub.NameAlg != tpm2.TPMAlgSHA256 {
			return fail("adminPubArea: name algorithm is not SHA-256")
		}
		if res.AdminKey, err = p256Key("adminPubArea", pub); err != nil {
			return err
		}
		n, err := tpm2.ObjectName(pub)
		if err != nil {
			return fail("adminPubArea: %v", err)
		}
		adminName = n.Buffer
	}

	// The PIN index's policy.
	var branches [][]byte
	if pukName != nil {
		branches = append(branches,
			newCalc().cc(tpm2.TPMCCNVWrite).secret(pukName).digest(),
			newCalc().cc(tpm2.TPMCCNVChangeAuth).secret(pukName).digest())
	} else {
		branches = append(branches, provisionBranch(approvalName.Buffer))
	}
	branches = append(branches, newCalc().authorize(approvalName.Buffer, refPINChange).digest())
	if adminName != nil {
		branches = append(branches,
			newCalc().cc(tpm2.TPMCCNVChangeAuth).signed(adminName, []byte(refSetPIN+s.Card)).digest(),
			newCalc().cc(tpm2.TPMCCNVWrite).signed(adminName, []byte(refResetPIN+s.Card)).digest())
	}
	if !samePolicy(pin.AuthPolicy.Buffer, or(branches...)) {
		return fail("the PIN index's authPolicy is not tpmcard's PIN policy for this card's PUK index, approval key, " +
			"admin key and serial: someone may be able to reset its counter or set its PIN without them")
	}
	var resetters string
	switch {
	case pukName != nil && adminName != nil:
		resetters = "with the PUK (PolicySecret of the certified PUK index) or the admin key's signature for this card"
	case pukName != nil:
		resetters = "with the PUK (PolicySecret of the certified PUK index)"
	default:
		resetters = "with the admin key's signature for this card; its first write needed the approval key"
	}
	ok("the PIN index's authPolicy is tpmcard's, recomputed from the approval key, the PUK index and the admin key: " +
		"the counter is reset and a new PIN set only " + resetters + "; the PIN changes only through policies the " +
		"approval key approved; no branch anyone can satisfy")

	// What the approval key approved for PolicyAuthorize.
	if err := approved(approvalKey, "approvalPinSig", s.ApprovalPINSig, res.PINName, refPINChange); err != nil {
		return err
	}
	if pukName != nil {
		if err := approved(approvalKey, "approvalPukSig", s.ApprovalPUKSig, pukName, refPUKChange); err != nil {
			return err
		}
		ok("the approval key approved NV_ChangeAuth after PolicySecret of the index itself for the PIN and the PUK index: " +
			"changing the PIN (PUK) needs the current one, counted by the TPM")
	} else {
		ok("the approval key approved NV_ChangeAuth after PolicySecret of the PIN index itself: " +
			"changing the PIN needs the current one, counted by the TPM")
	}
	return nil
}

// A key's PIN policy, as keyPolicy reads it from its authPolicy.
const (
	pinNone   = iota // not one of tpmcard's key policies
	pinOnce          // PolicySecret(PIN): the PIN unlocks the key for a session
	pinAlways        // PolicyCommandCode(Sign) + PolicySecret(PIN, refSignAlways): one PIN proof per signature
)

// keyPolicy says which of tpmcard's key policies on the PIN index named
// pinName the authPolicy is, recomputing both.
func keyPolicy(authPolicy, pinName []byte) int {
	switch {
	case samePolicy(authPolicy, newCalc().secret(pinName).digest()):
		return pinOnce
	case samePolicy(authPolicy, newCalc().cc(tpm2.TPMCCSign).secretRef(pinName, refSignAlways).digest()):
		return pinAlways
	}
	return pinNone
}

// approved checks the approval key's signature of the change policy of
// the index named indexName: aHash = H(approvedPolicy || policyRef) (Part 3
// §23.16), as r||s.
func approved(key *ecdsa.PublicKey, what string, sig, indexName []byte, ref string) error {
	if len(sig) != 64 {
		return fail("%s: %d bytes, want r||s (64)", what, len(sig))
	}
	h := sha256.New()
	h.Write(newCalc().cc(tpm2.TPMCCNVChangeAuth).secret(indexName).digest())
	h.Write([]byte(ref))
	r, sv := new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])
	if !ecdsa.Verify(key, h.Sum(nil), r, sv) {
		return fail("%s: the approval key did not approve tpmcard's change policy for this index", what)
	}
	return nil
}

// p256Key is the ECDSA P-256 key of a public area.
func p256Key(what string, pub *tpm2.TPMTPublic) (*ecdsa.PublicKey, error) {
	k, err := tpm2.Pub(*pub)
	if err != nil {
		return nil, fail("%s: %v", what, err)
	}
	ek, isEC := k.(*ecdsa.PublicKey)
	if !isEC || ek.Curve != elliptic.P256() {
		return nil, fail("%s is not an ECDSA P-256 key", what)
	}
	return ek, nil
}

func provisionBranch(approvalName []byte) []byte {
	return newCalc().cc(tpm2.TPMCCNVWrite).signed(approvalName, []byte(refProvision)).digest()
}

// calc chains policy commands into a digest from zero. The inputs are
// well-formed by construction, so an error of go-tpm's calculator (which
// only fails on an unknown hash) yields a digest that matches nothing.
type calc struct {
	pc  *tpm2.PolicyCalculator
	err error
}

func newCalc() *calc {
	pc, err := tpm2.NewPolicyCalculator(tpm2.TPMAlgSHA256)
	return &calc{pc: pc, err: err}
}

func (c *calc) update(u interface {
	Update(*tpm2.PolicyCalculator) error
}) *calc {
	if c.err == nil {
		c.err = u.Update(c.pc)
	}
	return c
}

func (c *calc) cc(code tpm2.TPMCC) *calc {
	return c.update(tpm2.PolicyCommandCode{Code: code})
}

func (c *calc) secret(name []byte) *calc {
	return c.update(tpm2.PolicySecret{AuthHandle: tpm2.NamedHandle{Name: tpm2.TPM2BName{Buffer: name}}})
}

func (c *calc) secretRef(name []byte, ref string) *calc {
	return c.update(tpm2.PolicySecret{AuthHandle: tpm2.NamedHandle{Name: tpm2.TPM2BName{Buffer: name}},
		PolicyRef: tpm2.TPM2BNonce{Buffer: []byte(ref)}})
}

func (c *calc) signed(keyName, ref []byte) *calc {
	return c.update(tpm2.PolicySigned{AuthObject: tpm2.NamedHandle{Name: tpm2.TPM2BName{Buffer: keyName}},
		PolicyRef: tpm2.TPM2BNonce{Buffer: ref}})
}

func (c *calc) authorize(keyName []byte, ref string) *calc {
	return c.update(tpm2.PolicyAuthorize{KeySign: tpm2.TPM2BName{Buffer: keyName}, PolicyRef: tpm2.TPM2BDigest{Buffer: []byte(ref)}})
}

func (c *calc) or(branches [][]byte) *calc {
	l := tpm2.TPMLDigest{}
	for _, b := range branches {
		l.Digests = append(l.Digests, tpm2.TPM2BDigest{Buffer: b})
	}
	return c.update(tpm2.PolicyOr{PHashList: l})
}

func (c *calc) digest() []byte {
	if c.err != nil {
		return nil
	}
	return c.pc.Hash().Digest
}

// samePolicy compares an authPolicy with a computed one, which must be a
// SHA-256 digest (nil if the calculation failed).
func samePolicy(got, want []byte) bool {
	return len(want) == sha256.Size && bytes.Equal(got, want)
}

// or is the PolicyOR of branches (Part 3 §23.6).
func or(branches ...[]byte) []byte { return newCalc().or(branches).digest() }
