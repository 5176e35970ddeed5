package tpmcard

import (
	"crypto/sha256"
	"fmt"

	"github.com/google/go-tpm/tpm2"
	"github.com/tpmcard/tpmcard/tpmcard/adminkey"
)

// The policies of a card, all SHA-256 (TPM 2.0 Part 1 §19.7, Part 3 §23).
//
// PUK index U:  PolicyOR{ provision, approved(refPUKChange) }
// PIN index I:  PolicyOR{ resetByPUK, setByPUK,        (cards with a PUK)
//                         provision,                    (cards without one)
//                         approved(refPINChange),
//                         adminSet, adminReset }        (cards with an admin key)
// each key:     PolicySecret(I)                       (PINOnce)
//               PolicyCommandCode(Sign) +
//               PolicySecret(I, "tpmcard sign always")  (PINAlways)
//
//	provision     PolicyCommandCode(NV_Write) + PolicySigned(approval key,
//	              "tpmcard provision"): the first write, signed by the card's
//	              approval key over the session's nonce; nobody can satisfy
//	              it once the TPM has forgotten that key
//	resetByPUK    PolicyCommandCode(NV_Write) + PolicySecret(U): unblock
//	setByPUK      PolicyCommandCode(NV_ChangeAuth) + PolicySecret(U): new PIN
//	adminSet      PolicyCommandCode(NV_ChangeAuth) + PolicySigned(admin key,
//	              "tpmcard unblock-pin SERIAL"): a new PIN, signed offline
//	adminReset    PolicyCommandCode(NV_Write) + PolicySigned(admin key,
//	              "tpmcard unblock-reset SERIAL"): the counter reset, in a
//	              second session with its own nonce and a signature bound to
//	              the one NV_Write of {0, pinLimit} (cpHashA)
//	approved(ref) PolicyAuthorize(approval key, ref), where the approval key
//	              signed exactly one policy per index before the TPM forgot
//	              it: PolicyCommandCode(NV_ChangeAuth) + PolicySecret(index
//	              itself).
//
// Why no branch may make an index WRITTEN without a secret or the approval
// key: an NV index's Name covers only its public area, WRITTEN bit included.
// Whoever holds the owner's authorization (empty by default) can undefine a
// card's indices and define look-alikes with the same attributes and
// policy; if some branch anyone can satisfy (say PolicyNvWritten(NO)) then
// writes them, they get the very Names the card's keys are bound to, and
// the keys sign with a PIN of their choice. Every way to WRITTEN here needs
// the PUK (whose own first write needs the approval key), the admin key, or
// the approval key, which exists only while the card is made.
//
// Why PolicyAuthorize instead of PolicyCommandCode(NV_ChangeAuth) +
// PolicyAuthValue: the TPM checks pinCount < pinLimit only when an index's
// authValue is used through an HMAC or password (PolicySecret), not through
// PolicyAuthValue in a policy session. A PolicyAuthValue branch would let
// anyone with TPM access keep guessing a locked PIN through NV_ChangeAuth,
// and a right guess would reset the counter. PolicySecret of the index itself
// cannot appear in the index's own policy (its Name covers the policy), so
// the approval key approves that policy at provisioning.
//
// No branch may authorize anything without proving a secret first: the
// TPM 2.0 reference implementation sets a PIN_FAIL index's pinCount to 0
// after any successful authorization of the index, policy sessions
// included, not only after a use of its authValue (libtpms does not). A
// "read the counter" policy branch would reset the count for anyone.
// Counters are read with the owner's authorization instead (OWNERREAD),
// which authorizes the owner, not the index, and leaves the count alone.

const (
	refPINChange = "tpmcard pin change"
	refPUKChange = "tpmcard puk change"
	refProvision = "tpmcard provision"
	// refSignAlways is the policyRef of the PIN proof a PINAlways key
	// takes: made for one TPM2_Sign (cpHashA) and used by it.
	refSignAlways = "tpmcard sign always"
	// refPINCheck is the policyRef of a PIN check that authorizes
	// nothing (ProvePIN): no policy of a card names it.
	refPINCheck = "tpmcard pin check"
)

type policyCalc struct{ pc *tpm2.PolicyCalculator }

func newCalc() policyCalc {
	pc, err := tpm2.NewPolicyCalculator(tpm2.TPMAlgSHA256)
	if err != nil {
		panic(err) // SHA-256 is always available
	}
	return policyCalc{pc}
}

func (c policyCalc) cc(code tpm2.TPMCC) policyCalc {
	must(tpm2.PolicyCommandCode{Code: code}.Update(c.pc))
	return c
}

func (c policyCalc) secret(name []byte) policyCalc {
	must(tpm2.PolicySecret{AuthHandle: tpm2.NamedHandle{Name: tpm2.TPM2BName{Buffer: name}}}.Update(c.pc))
	return c
}

func (c policyCalc) secretRef(name []byte, ref string) policyCalc {
	must(tpm2.PolicySecret{AuthHandle: tpm2.NamedHandle{Name: tpm2.TPM2BName{Buffer: name}}, PolicyRef: tpm2.TPM2BNonce{Buffer: []byte(ref)}}.Update(c.pc))
	return c
}

func (c policyCalc) signed(keyName, ref []byte) policyCalc {
	must(tpm2.PolicySigned{AuthObject: tpm2.NamedHandle{Name: tpm2.TPM2BName{Buffer: keyName}}, PolicyRef: tpm2.TPM2BNonce{Buffer: ref}}.Update(c.pc))
	return c
}

func (c policyCalc) authorize(keyName []byte, ref string) policyCalc {
	c.pc.Reset() // PolicyAuthorize starts from a zero digest (Part 3 §23.16)
	must(tpm2.PolicyAuthorize{KeySign: tpm2.TPM2BName{Buffer: keyName}, PolicyRef: tpm2.TPM2BDigest{Buffer: []byte(ref)}}.Update(c.pc))
	return c
}

func (c policyCalc) digest() []byte { return c.pc.Hash().Digest }

func must(err error) {
	if err != nil {
		panic(fmt.Sprintf("tpmcard: policy calculation: %v", err))
	}
}

// orDigest is the PolicyOR of branches (Part 3 §23.6).
func orDigest(branches [][]byte) []byte {
	c := newCalc()
	must(tpm2.PolicyOr{PHashList: digestList(branches)}.Update(c.pc))
	return c.digest()
}

func digestList(branches [][]byte) tpm2.TPMLDigest {
	l := tpm2.TPMLDigest{}
	for _, b := range branches {
		l.Digests = append(l.Digests, tpm2.TPM2BDigest{Buffer: b})
	}
	return l
}

// pukBranches lists U's PolicyOR branches in order.
func pukBranches(approvalName []byte) [][]byte {
	return [][]byte{
		provisionBranch(approvalName),
		newCalc().authorize(approvalName, refPUKChange).digest(),
	}
}

func provisionBranch(approvalName []byte) []byte {
	return newCalc().cc(tpm2.TPMCCNVWrite).signed(approvalName, []byte(refProvision)).digest()
}

// pinBranches lists I's PolicyOR branches in order. pukName is nil for a
// card without a PUK, adminName for a card without an admin key.
func pinBranches(approvalName, pukName, adminName []byte, serial string) [][]byte {
	var b [][]byte
	if pukName != nil {
		b = append(b,
			newCalc().cc(tpm2.TPMCCNVWrite).secret(pukName).digest(),
			newCalc().cc(tpm2.TPMCCNVChangeAuth).secret(pukName).digest())
	} else {
		b = append(b, provisionBranch(approvalName))
	}
	b = append(b, newCalc().authorize(approvalName, refPINChange).digest())
	if adminName != nil {
		b = append(b,
			newCalc().cc(tpm2.TPMCCNVChangeAuth).signed(adminName, adminkey.SetPINRef(serial)).digest(),
			newCalc().cc(tpm2.TPMCCNVWrite).signed(adminName, adminkey.ResetRef(serial)).digest())
	}
	return b
}

// approvedChange is the policy the approval key signs for an index:
// NV_ChangeAuth after proving the index's own authValue with PolicySecret.
func approvedChange(indexName []byte) []byte {
	return newCalc().cc(tpm2.TPMCCNVChangeAuth).secret(indexName).digest()
}

// keyPolicy is the authPolicy of a card key that needs the PIN once per
// login.
func keyPolicy(pinName []byte) []byte { return newCalc().secret(pinName).digest() }

// keyPolicyFor is a card key's authPolicy. A PINAlways key signs only
// through TPM2_Sign, after a PolicySecret of the PIN index whose policyRef
// no login proof carries: the proof that keeps a login's keys signing
// (PolicySecret(I) alone) never satisfies it, and Sign makes each such
// proof for its own command (cpHashA), so one proof is one signature.
func keyPolicyFor(pinName []byte, use PINUse) []byte {
	if use == PINAlways {
		return newCalc().cc(tpm2.TPMCCSign).secretRef(pinName, refSignAlways).digest()
	}
	return keyPolicy(pinName)
}

// approvalDigest is what PolicyAuthorize's ticket covers:
// aHash = H(approvedPolicy || policyRef) (Part 3 §23.16).
func approvalDigest(policy []byte, ref string) []byte {
	h := sha256.New()
	h.Write(policy)
	h.Write([]byte(ref))
	return h.Sum(nil)
}
