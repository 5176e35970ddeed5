package attack

import (
	"errors"

	"github.com/google/go-tpm/tpm2"
)

// target is an NV index under attack: the card's own, or a look-alike.
type target struct {
	label    string // "pin" or "puk"
	h        uint32
	name     []byte // its Name in the TPM now
	recName  []byte // the Name the record (and the card's keys) expect
	branches []branch
	ref      string // its approval's policyRef
	sig      []byte // its stored approval signature
	auth     []byte // the attacker's authValue of a look-alike; nil for the card's own
}

// step is one policy command in the attacker's session.
type step func(s tpm2.Session) error

// refusal is the TPM's answer to one attempt: the command that refused
// first and, when that was a policy command, what the attempt's final
// command got.
type refusal struct {
	at      string
	err     error
	then    string
	thenErr error
}

func (r *refusal) Error() string {
	s := r.at + ": " + r.err.Error()
	if r.then != "" {
		s += " (then " + r.then + ": " + r.thenErr.Error() + ")"
	}
	return s
}

func (r *refusal) Unwrap() error { return r.err }

// short is the summary: "TPM_RC_VALUE at PolicyOR, then NV_Write TPM_RC_POLICY_FAIL".
func (r *refusal) short() string {
	s := rcOf(r.err) + " at " + r.at
	if r.then != "" {
		s += ", then " + r.then + " " + rcOf(r.thenErr)
	}
	return s
}

func rcOf(err error) string {
	var rc tpm2.TPMRC
	if errors.As(err, &rc) {
		return rcName(rc)
	}
	return err.Error()
}

// at names the command err came from, nil for nil.
func at(cmd string, err error) error {
	if err == nil {
		return nil
	}
	var r *refusal
	if errors.As(err, &r) {
		return err
	}
	return &refusal{at: cmd, err: err}
}

// finish notes the attempt's final command on its first refusal.
func finish(first error, cmd string, err error) error {
	if err == nil {
		return nil // the attack worked
	}
	if first == nil {
		return at(cmd, err)
	}
	var r *refusal
	if errors.As(first, &r) && r.then == "" {
		r.then, r.thenErr = cmd, err
	}
	return first
}

func (a *attacker) ccStep(code tpm2.TPMCC) step {
	return func(s tpm2.Session) error {
		_, err := tpm2.PolicyCommandCode{PolicySession: s.Handle(), Code: code}.Execute(a.tpm)
		return at("PolicyCommandCode", err)
	}
}

func (a *attacker) writtenStep(written bool) step {
	return func(s tpm2.Session) error {
		_, err := tpm2.PolicyNVWritten{PolicySession: s.Handle(), WrittenSet: tpm2.TPMIYesNo(written)}.Execute(a.tpm)
		return at("PolicyNvWritten", err)
	}
}

// secretStep runs PolicySecret on an index with an authValue as password.
func (a *attacker) secretStep(h uint32, name, auth []byte) step {
	return func(s tpm2.Session) error {
		_, err := tpm2.PolicySecret{
			AuthHandle:    tpm2.AuthHandle{Handle: tpm2.TPMHandle(h), Name: tpm2.TPM2BName{Buffer: name}, Auth: tpm2.PasswordAuth(auth)},
			PolicySession: s.Handle(),
			NonceTPM:      s.NonceTPM(),
		}.Execute(a.tpm)
		return at("PolicySecret", err)
	}
}

// signedStep runs PolicySigned with the public key pub (a marshalled
// TPMT_PUBLIC, loaded with LoadExternal) and the signature sign makes
// over the session's nonce; expiration 0, no cpHash.
func (a *attacker) signedStep(pub, ref []byte, sign func(aHash []byte) tpm2.TPMTSignature) step {
	return func(s tpm2.Session) error {
		k, done := a.loadExternal(pub)
		defer done()
		return a.policySigned(s, k, s.NonceTPM().Buffer, nil, ref, 0, sign(signedDigest(s.NonceTPM().Buffer, 0, nil, ref)))
	}
}

// tpmSignedStep is signedStep with a key loaded in the TPM that signs.
func (a *attacker) tpmSignedStep(k tpm2.NamedHandle, ref []byte) step {
	return func(s tpm2.Session) error {
		sig := a.tpmSign(k, signedDigest(s.NonceTPM().Buffer, 0, nil, ref))
		return a.policySigned(s, k, s.NonceTPM().Buffer, nil, ref, 0, sig)
	}
}

func (a *attacker) policySigned(s tpm2.Session, k tpm2.NamedHandle, nonce, cpHash, ref []byte, exp int32, sig tpm2.TPMTSignature) error {
	_, err := tpm2.PolicySigned{
		AuthObject:    k,
		PolicySession: s.Handle(),
		NonceTPM:      tpm2.TPM2BNonce{Buffer: nonce},
		CPHashA:       tpm2.TPM2BDigest{Buffer: cpHash},
		PolicyRef:     tpm2.TPM2BNonce{Buffer: ref},
		Expiration:    exp,
		Auth:          sig,
	}.Execute(a.tpm)
	return at("PolicySigned", err)
}

// authorizeStep runs PolicyAuthorize of policy under the record's
// approval key, with the ticket VerifySignature gives for sig.
func (a *attacker) authorizeStep(r *cardRecord, policy []byte, ref string, sig []byte) step {
	return func(s tpm2.Session) error {
		k, done := a.loadExternal(r.Approval.Public)
		defer done()
		v, err := tpm2.VerifySignature{KeyHandle: k, Digest: tpm2.TPM2BDigest{Buffer: approvalDigest(policy, ref)}, Signature: ecdsaSig(sig)}.Execute(a.tpm)
		if err != nil {
			return at("VerifySignature", err)
		}
		_, err = tpm2.PolicyAuthorize{
			PolicySession:  s.Handle(),
			ApprovedPolicy: tpm2.TPM2BDigest{Buffer: policy},
			PolicyRef:      tpm2.TPM2BDigest{Buffer: []byte(ref)},
			KeySign:        k.Name,
			CheckTicket:    v.Validation,
		}.Execute(a.tpm)
		return at("PolicyAuthorize", err)
	}
}

// authorizeOwnStep asks the approval key's stored signature to cover the
// policy the session holds now, whatever it is.
func (a *attacker) authorizeOwnStep(r *cardRecord, ref string, sig []byte) step {
	return func(s tpm2.Session) error {
		d, err := tpm2.PolicyGetDigest{PolicySession: s.Handle()}.Execute(a.tpm)
		if err != nil {
			return at("PolicyGetDigest", err)
		}
		return a.authorizeStep(r, d.PolicyDigest.Buffer, ref, sig)(s)
	}
}

// Data and authValue the attacker would like to write.
var (
	attackerData = pinData(0, 200)
	attackerAuth = []byte("attacker's PIN")
)

// try runs steps in a fresh policy session, then PolicyOR over the
// target's branches, then cmd (NV_Write of attackerData, or NV_ChangeAuth
// to attackerAuth) on the target. It returns nil if cmd succeeded, and
// otherwise the first refusal, with cmd's own refusal noted.
func (a *attacker) try(tg target, cmd tpm2.TPMCC, data []byte, steps ...step) error {
	s, done := a.policySession()
	defer done()
	var first error
	for _, st := range steps {
		if err := st(s); err != nil && first == nil {
			first = err
		}
	}
	if _, err := (tpm2.PolicyOr{PolicySession: s.Handle(), PHashList: digestList(digests(tg.branches))}).Execute(a.tpm); err != nil && first == nil {
		first = at("PolicyOR", err)
	}
	var err error
	switch cmd {
	case tpm2.TPMCCNVWrite:
		err = a.nvWrite(tg.h, tg.name, s, data)
	case tpm2.TPMCCNVChangeAuth:
		err = a.nvChangeAuth(tg.h, tg.name, attackerAuth, s)
	default:
		a.t.Fatalf("try: command %v", cmd)
	}
	return finish(first, ccName(cmd), err)
}

func ccName(cc tpm2.TPMCC) string {
	if cc == tpm2.TPMCCNVWrite {
		return "NV_Write"
	}
	return "NV_ChangeAuth"
}

// trySign loads the card's key and has it sign in a policy session in
// which steps ran. It returns the first refusal, nil if the key signed.
func (a *attacker) trySign(r *cardRecord, steps ...step) error {
	key, name := a.loadCardKey(r)
	defer a.flush(key)
	s, done := a.policySession()
	defer done()
	var first error
	for _, st := range steps {
		if err := st(s); err != nil && first == nil {
			first = err
		}
	}
	return finish(first, "TPM2_Sign", a.signWith(key, name, s))
}
