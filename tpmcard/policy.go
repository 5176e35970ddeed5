package tpmcard

import (
	"crypto/sha256"
	"fmt"

	"github.com/google/go-tpm/tpm2"
)

// The policies of a card, all SHA-256 (TPM 2.0 Part 1 §19.7, Part 3 §23).
//
// PUK index U:  PolicyOR{ firstWrite, approved(refPUKChange) }
// PIN index I:  PolicyOR{ resetByPUK, setByPUK,        (cards with a PUK)
//                         firstWrite,                   (cards without one)
//                         approved(refPINChange),
//                         adminSet, adminReset }        (cards with an admin key)
// each key:     PolicySecret(I)
//
//	firstWrite    PolicyCommandCode(NV_Write) + PolicyNvWritten(NO): only the
//	              first write of U, dead once U is written
//	resetByPUK    PolicyCommandCode(NV_Write) + PolicySecret(U): unblock
//	setByPUK      PolicyCommandCode(NV_ChangeAuth) + PolicySecret(U): new PIN
//	adminSet      PolicyCommandCode(NV_ChangeAuth) + PolicySigned(admin key,
//	              "tpmcard unblock SERIAL"): a new PIN, signed for offline
//	adminReset    PolicyCommandCode(NV_Write) + the same PolicySigned: the
//	              counter reset, through the ticket of the first
//	approved(ref) PolicyAuthorize(approval key, ref), where the approval key
//	              signed exactly one policy per index, then was discarded:
//	              PolicyCommandCode(NV_ChangeAuth) + PolicySecret(index itself).
//
// Why PolicyAuthorize instead of PolicyCommandCode(NV_ChangeAuth) +
// PolicyAuthValue: the TPM checks pinCount < pinLimit only when an index's
// authValue is used through an HMAC or password (PolicySecret), not through
// PolicyAuthValue in a policy session. A PolicyAuthValue branch would let
// anyone with TPM access keep guessing a locked PIN through NV_ChangeAuth,
// and a right guess would reset the counter. PolicySecret of the index itself
// cannot appear in the index's own policy (its Name covers the policy), so
// a one-time key approves that policy at provisioning and is then destroyed:
// no one, not even this program, can approve another.
//
// No branch may authorize anything without proving a secret first: the
// TPM 2.0 reference implementation sets a PIN_FAIL index's pinCount to 0
// after any successful authorization of the index, policy sessions
// included, not only after a use of its authValue. A "read the counter"
// policy branch would reset the count for anyone. Counters are read with
// the owner's authorization instead (OWNERREAD), which authorizes the
// owner, not the index, and leaves the count alone.

const (
	refPINChange = "tpmcard pin change"
	refPUKChange = "tpmcard puk change"
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

func (c policyCalc) signed(keyName, ref []byte) policyCalc {
	must(tpm2.PolicySigned{AuthObject: tpm2.NamedHandle{Name: tpm2.TPM2BName{Buffer: keyName}}, PolicyRef: tpm2.TPM2BNonce{Buffer: ref}}.Update(c.pc))
	return c
}

func (c policyCalc) nvWritten(written bool) policyCalc {
	must(tpm2.PolicyNVWritten{WrittenSet: tpm2.TPMIYesNo(written)}.Update(c.pc))
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
		newCalc().cc(tpm2.TPMCCNVWrite).nvWritten(false).digest(),
		newCalc().authorize(approvalName, refPUKChange).digest(),
	}
}

// pinBranches lists I's PolicyOR branches in order. pukName is nil for a
// card without a PUK, adminName for a card without an admin key.
func pinBranches(approvalName, pukName, adminName, adminRef []byte) [][]byte {
	var b [][]byte
	if pukName != nil {
		b = append(b,
			newCalc().cc(tpm2.TPMCCNVWrite).secret(pukName).digest(),
			newCalc().cc(tpm2.TPMCCNVChangeAuth).secret(pukName).digest())
	} else {
		b = append(b, newCalc().cc(tpm2.TPMCCNVWrite).nvWritten(false).digest())
	}
	b = append(b, newCalc().authorize(approvalName, refPINChange).digest())
	if adminName != nil {
		b = append(b,
			newCalc().cc(tpm2.TPMCCNVChangeAuth).signed(adminName, adminRef).digest(),
			newCalc().cc(tpm2.TPMCCNVWrite).signed(adminName, adminRef).digest())
	}
	return b
}

// approvedChange is the policy the approval key signs for an index:
// NV_ChangeAuth after proving the index's own authValue with PolicySecret.
func approvedChange(indexName []byte) []byte {
	return newCalc().cc(tpm2.TPMCCNVChangeAuth).secret(indexName).digest()
}

// keyPolicy is every card key's authPolicy.
func keyPolicy(pinName []byte) []byte { return newCalc().secret(pinName).digest() }

// approvalDigest is what PolicyAuthorize's ticket covers:
// aHash = H(approvedPolicy || policyRef) (Part 3 §23.16).
func approvalDigest(policy []byte, ref string) []byte {
	h := sha256.New()
	h.Write(policy)
	h.Write([]byte(ref))
	return h.Sum(nil)
}
