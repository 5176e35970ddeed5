package attack

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/google/go-tpm/tpm2"
	"github.com/tpmcard/tpmcard/tpmcard/adminkey"
	"github.com/tpmcard/tpmcard/tpmcard/tpmtest"
)

// TestAttackOwnerRebuild is the stolen device: disk and TPM, the (empty)
// owner authorization, no PIN, PUK or admin key. The attacker undefines
// the card's indices, defines look-alikes (same handle, attributes, policy
// and size, an authValue of its choice) and tries every write path a
// stranger has. One write would make a look-alike WRITTEN and give it the
// card's very Name (the test checks that it would), and the card's keys,
// bound by PolicySecret to that Name, would then sign with the attacker's
// PIN.
//
// Against the old design this test fails: the PUK index's policy had a
// PolicyNvWritten(NO) first-write branch, so the "nvwritten-no" attempt on
// the PUK look-alike would have succeeded, the PIN look-alike then written
// through resetByPUK with the attacker's PUK, and the key would have signed;
// its software approval key was recoverable, and a recovered key makes the
// "provision" attempts succeed (the test cannot recover one here: none is
// left, see TestAttackApprovalKeyGone).
func TestAttackOwnerRebuild(t *testing.T) {
	for _, kind := range []cardKind{withPUK, adminOnly, pukAndAdmin} {
		t.Run(kind.String(), func(t *testing.T) {
			tpmtest.ForEachTPM(t, func(t *testing.T, b *tpmtest.Backend) { rebuild(t, b, kind) })
		})
	}
}

func rebuild(t *testing.T, b *tpmtest.Backend, kind cardKind) {
	v := newVictim(t, b, kind)
	v.close()
	r := v.record(t)
	a := &attacker{t: t, tpm: b.TPM}
	prefix := "rebuild/" + kind.String() + "/"
	own := newOwnKey(t)

	// The card's indices, checked against the recomputed policies.
	var tgts []*target
	if !r.NoPUK {
		tgts = append(tgts, &target{label: "puk", h: r.PUKIndex, name: r.PUKName, recName: r.PUKName,
			branches: r.pukBranches(t), ref: refPUKChange, sig: r.Approval.PUKSig})
	}
	tgts = append(tgts, &target{label: "pin", h: r.PINIndex, name: r.PINName, recName: r.PINName,
		branches: r.pinBranches(t), ref: refPINChange, sig: r.Approval.PINSig})
	pubs := map[string]tpm2.TPMSNVPublic{}
	for _, tg := range tgts {
		pub, name, err := a.nvReadPublic(tg.h)
		if err != nil {
			t.Fatalf("NV_ReadPublic(%s %#x): %v", tg.label, tg.h, err)
		}
		if !bytes.Equal(name, tg.recName) {
			t.Fatalf("the %s index's Name is not the record's", tg.label)
		}
		if !bytes.Equal(pub.AuthPolicy.Buffer, orDigest(t, tg.branches)) {
			t.Fatalf("the %s index's policy is not the one recomputed from policy.go's description: the attack's branches would be wrong", tg.label)
		}
		pubs[tg.label] = *pub
	}
	pin := tgts[len(tgts)-1]
	var puk *target
	if !r.NoPUK {
		puk = tgts[0]
	}

	// Control: with the right PIN (derived as docs/security.md says) the
	// attack's own key loading and signing work.
	if err := a.trySign(r, a.secretStep(pin.h, pin.name, r.pinAuth(t, victimPIN))); err != nil {
		t.Fatalf("control: the card's key does not sign with the right PIN through go-tpm (is the PIN derivation what docs/security.md says?): %v", err)
	}

	// 1. The card's own indices, in place.
	for _, tg := range tgts {
		p := prefix + "in-place/" + tg.label + "/"
		_, err := tpm2.NVWrite{
			AuthHandle: ownerAuth,
			NVIndex:    tpm2.NamedHandle{Handle: tpm2.TPMHandle(tg.h), Name: tpm2.TPM2BName{Buffer: tg.name}},
			Data:       tpm2.TPM2BMaxNVBuffer{Buffer: attackerData},
		}.Execute(a.tpm)
		refused(t, b, p+"owner-NV_Write", at("NV_Write", err), tpm2.TPMRCNVAuthorization)
		a.writePaths(b, p, r, *tg, own)
	}
	if puk != nil {
		// A guess at the PUK is counted and refused.
		err := a.try(*pin, tpm2.TPMCCNVWrite, attackerData, a.ccStep(tpm2.TPMCCNVWrite), a.secretStep(puk.h, puk.name, attackerAuth))
		refused(t, b, prefix+"in-place/pin/resetByPUK-guess/NV_Write", err, tpm2.TPMRCBadAuth)
	}

	// 2. Undefine, define look-alikes.
	for _, tg := range tgts {
		if _, err := (tpm2.NVUndefineSpace{AuthHandle: ownerAuth, NVIndex: tpm2.NamedHandle{Handle: tpm2.TPMHandle(tg.h), Name: tpm2.TPM2BName{Buffer: tg.name}}}).Execute(a.tpm); err != nil {
			t.Fatalf("the owner cannot undefine the %s index (the attack assumes it can): %v", tg.label, err)
		}
	}
	for _, tg := range tgts {
		pub := pubs[tg.label]
		_, err := tpm2.NVDefineSpace{AuthHandle: ownerAuth, Auth: tpm2.TPM2BAuth{Buffer: attackerAuth}, PublicInfo: tpm2.New2B(pub)}.Execute(a.tpm)
		refused(t, b, prefix+"define-written/"+tg.label, err, tpm2.TPMRCAttributes)

		pub.Attributes.Written = false
		if _, err := (tpm2.NVDefineSpace{AuthHandle: ownerAuth, Auth: tpm2.TPM2BAuth{Buffer: attackerAuth}, PublicInfo: tpm2.New2B(pub)}).Execute(a.tpm); err != nil {
			t.Fatalf("defining the %s look-alike: %v", tg.label, err)
		}
		_, name, err := a.nvReadPublic(tg.h)
		if err != nil {
			t.Fatal(err)
		}
		pub.Attributes.Written = true
		if !bytes.Equal(nvName(t, pub), tg.recName) {
			t.Fatalf("the %s look-alike, once written, would not have the card's Name: the attack is not the real one", tg.label)
		}
		tg.name, tg.auth = name, attackerAuth
	}

	// 3. Every write path, on each look-alike.
	for _, tg := range tgts {
		p := prefix + "look-alike/" + tg.label + "/"
		_, err := tpm2.NVWrite{
			AuthHandle: tpm2.AuthHandle{Handle: tpm2.TPMHandle(tg.h), Name: tpm2.TPM2BName{Buffer: tg.name}, Auth: tpm2.PasswordAuth(attackerAuth)},
			NVIndex:    tpm2.NamedHandle{Handle: tpm2.TPMHandle(tg.h), Name: tpm2.TPM2BName{Buffer: tg.name}},
			Data:       tpm2.TPM2BMaxNVBuffer{Buffer: attackerData},
		}.Execute(a.tpm)
		refused(t, b, p+"password-NV_Write", at("NV_Write", err), tpm2.TPMRCAuthUnavailable)
		_, err = tpm2.NVWrite{
			AuthHandle: ownerAuth,
			NVIndex:    tpm2.NamedHandle{Handle: tpm2.TPMHandle(tg.h), Name: tpm2.TPM2BName{Buffer: tg.name}},
			Data:       tpm2.TPM2BMaxNVBuffer{Buffer: attackerData},
		}.Execute(a.tpm)
		refused(t, b, p+"owner-NV_Write", at("NV_Write", err), tpm2.TPMRCNVAuthorization)
		a.writePaths(b, p, r, *tg, own)
	}
	if puk != nil {
		for _, cc := range []tpm2.TPMCC{tpm2.TPMCCNVWrite, tpm2.TPMCCNVChangeAuth} {
			err := a.try(*pin, cc, attackerData, a.ccStep(cc), a.secretStep(puk.h, puk.name, attackerAuth))
			refused(t, b, prefix+"look-alike/pin/byPUK-look-alike/"+ccName(cc), err, tpm2.TPMRCAuthUnavailable)
		}
	}
	if v.admin != nil {
		// The administrator is talked into signing a reset for sessions
		// the attacker holds (a phished response). The signature binds the
		// NV_Write through cpHashA, which names the card's written PIN
		// index: on the unwritten look-alike the command's cpHash differs.
		// A challenge doctored to carry the look-alike's public area (not
		// written, so its cpHash would match the look-alike's NV_Write) is
		// refused by the administrator's tool: a card's PIN index is
		// always written.
		s, done := a.policySession()
		lookAlike := pubs["pin"]
		lookAlike.Attributes.Written = false
		doctored := &adminkey.Challenge{
			Op: adminkey.Unblock, Serial: r.Serial, Validity: 600 * time.Second,
			SetNonce: bytes.Repeat([]byte{1}, 16), ResetNonce: s.NonceTPM().Buffer,
			PINLimit: uint8(r.PINLimit), PINPublic: tpm2.Marshal(lookAlike),
		}
		if _, err := adminkey.Respond(v.admin, doctored); !errors.Is(err, adminkey.ErrFormat) {
			t.Fatalf("ATTACK %slook-alike/pin/adminReset/doctored-challenge %s: the admin tool signed a challenge for an unwritten index: %v", prefix, b.Name, err)
		}
		t.Logf("ATTACK %slook-alike/pin/adminReset/doctored-challenge %s: refused by the admin tool: %v", prefix, b.Name, adminkey.ErrFormat)
		c := &adminkey.Challenge{
			Op: adminkey.Unblock, Serial: r.Serial, Validity: 600 * time.Second,
			SetNonce: bytes.Repeat([]byte{1}, 16), ResetNonce: s.NonceTPM().Buffer,
			PINLimit: uint8(r.PINLimit), PINPublic: tpm2.Marshal(pubs["pin"]),
		}
		sig, err := adminkey.SignDigest(v.admin, c.ResetDigest())
		if err != nil {
			t.Fatal(err)
		}
		admin, doneAdmin := a.loadExternal(r.AdminKey)
		first := a.ccStep(tpm2.TPMCCNVWrite)(s)
		if first == nil {
			first = a.policySigned(s, admin, c.ResetNonce, c.ResetCpHash(), resetRef(r.Serial), c.Expiration(), ecdsaSig(sig))
		}
		doneAdmin()
		if first == nil {
			_, first = tpm2.PolicyOr{PolicySession: s.Handle(), PHashList: digestList(digests(pin.branches))}.Execute(a.tpm)
		}
		if first != nil {
			t.Fatalf("control: the phished genuine reset signature does not pass the policy: %v", first)
		}
		err = a.nvWrite(pin.h, pin.name, s, pinData(0, r.PINLimit))
		done()
		refused(t, b, prefix+"look-alike/pin/adminReset/phished-genuine-sig/NV_Write", at("NV_Write", err), tpm2.TPMRCPolicyFail)
	}
	a.namesDiffer(b, prefix+"look-alike-names", tgts)

	// 4. The card's key, with the look-alike PIN index.
	err := a.trySign(r, a.secretStep(pin.h, pin.name, attackerAuth))
	refused(t, b, prefix+"sign/look-alike-pin", err, tpm2.TPMRCAuthUnavailable)

	// The best a look-alike can do: an index the attacker can write
	// (OWNERWRITE), same handle and policy. PolicySecret on it works;
	// its Name is not the card's, so the key does not sign.
	if _, err := (tpm2.NVUndefineSpace{AuthHandle: ownerAuth, NVIndex: tpm2.NamedHandle{Handle: tpm2.TPMHandle(pin.h), Name: tpm2.TPM2BName{Buffer: pin.name}}}).Execute(a.tpm); err != nil {
		t.Fatal(err)
	}
	decoy := pubs["pin"]
	decoy.Attributes.Written, decoy.Attributes.OwnerWrite = false, true
	if _, err := (tpm2.NVDefineSpace{AuthHandle: ownerAuth, Auth: tpm2.TPM2BAuth{Buffer: attackerAuth}, PublicInfo: tpm2.New2B(decoy)}).Execute(a.tpm); err != nil {
		t.Fatalf("defining the decoy: %v", err)
	}
	decoy.Attributes.Written = true
	dname := nvName(t, decoy)
	if bytes.Equal(dname, r.PINName) {
		t.Fatalf("ATTACK %ssign/owner-writable-decoy-pin %s: SUCCEEDED: the decoy has the card's PIN Name", prefix, b.Name)
	}
	if _, err := (tpm2.NVWrite{AuthHandle: ownerAuth, NVIndex: tpm2.NamedHandle{Handle: tpm2.TPMHandle(pin.h), Name: tpm2.TPM2BName{Buffer: nvName(t, func() tpm2.TPMSNVPublic { d := decoy; d.Attributes.Written = false; return d }())}}, Data: tpm2.TPM2BMaxNVBuffer{Buffer: attackerData}}).Execute(a.tpm); err != nil {
		t.Fatalf("writing the decoy: %v", err)
	}
	signDecoy := func(name string) {
		// Control: PolicySecret on the attacker's own written index works.
		s, done := a.policySession()
		err := a.secretStep(pin.h, dname, attackerAuth)(s)
		done()
		if err != nil {
			t.Fatalf("control: PolicySecret on the attacker's own written index: %v", err)
		}
		refused(t, b, name, a.trySign(r, a.secretStep(pin.h, dname, attackerAuth)), tpm2.TPMRCPolicyFail)
	}
	signDecoy(prefix + "sign/owner-writable-decoy-pin")

	if b.Restart == nil {
		return
	}
	a.tpm = b.Restart(t)
	if puk != nil {
		a.writePaths(b, prefix+"after-restart/look-alike/puk/", r, *puk, own)
		a.namesDiffer(b, prefix+"after-restart/look-alike-names", []*target{puk})
	}
	signDecoy(prefix + "after-restart/sign/owner-writable-decoy-pin")

	// A fresh PIN look-alike after the restart (the null hierarchy's seed,
	// and with it any recreated approval key, changed).
	if _, err := (tpm2.NVUndefineSpace{AuthHandle: ownerAuth, NVIndex: tpm2.NamedHandle{Handle: tpm2.TPMHandle(pin.h), Name: tpm2.TPM2BName{Buffer: dname}}}).Execute(a.tpm); err != nil {
		t.Fatalf("undefining the decoy: %v", err)
	}
	look := pubs["pin"]
	look.Attributes.Written = false
	if _, err := (tpm2.NVDefineSpace{AuthHandle: ownerAuth, Auth: tpm2.TPM2BAuth{Buffer: attackerAuth}, PublicInfo: tpm2.New2B(look)}).Execute(a.tpm); err != nil {
		t.Fatalf("defining the PIN look-alike again: %v", err)
	}
	pin.name = nvName(t, look)
	a.writePaths(b, prefix+"after-restart/look-alike/pin/", r, *pin, own)
	a.namesDiffer(b, prefix+"after-restart/look-alike-names", tgts)
	refused(t, b, prefix+"after-restart/sign/look-alike-pin", a.trySign(r, a.secretStep(pin.h, pin.name, attackerAuth)), tpm2.TPMRCAuthUnavailable)
}

// namesDiffer checks that no look-alike got the card's Name.
func (a *attacker) namesDiffer(b *tpmtest.Backend, attack string, tgts []*target) {
	a.t.Helper()
	for _, tg := range tgts {
		pub, name, err := a.nvReadPublic(tg.h)
		if err != nil {
			a.t.Fatalf("NV_ReadPublic(%#x): %v", tg.h, err)
		}
		if bytes.Equal(name, tg.recName) || pub.Attributes.Written {
			a.t.Errorf("ATTACK %s %s: SUCCEEDED: the %s look-alike is written and has the card's Name", attack, b.Name, tg.label)
			return
		}
	}
	a.t.Logf("ATTACK %s %s: refused: no look-alike is WRITTEN, none has the card's Name", attack, b.Name)
}

// writePaths tries every way a stranger has to write tg or change its
// authValue: each PolicyOR branch with what the attacker can bring, and
// PolicyNvWritten(NO) that the old design's first write used.
func (a *attacker) writePaths(b *tpmtest.Backend, p string, r *cardRecord, tg target, own ownKey) {
	t := a.t
	t.Helper()
	write, change := tpm2.TPMCCNVWrite, tpm2.TPMCCNVChangeAuth
	ownSign := func(d []byte) tpm2.TPMTSignature { return own.sign(t, d) }

	// A password or HMAC use of the index itself: no AUTHWRITE, and
	// NV_ChangeAuth needs the ADMIN role, a policy session.
	pw := tpm2.PasswordAuth(tg.auth)
	refused(t, b, p+"password-NV_ChangeAuth", at("NV_ChangeAuth", a.nvChangeAuth(tg.h, tg.name, attackerAuth, pw)), tpm2.TPMRCAuthType)

	// PolicyNvWritten(NO): the old first-write branch.
	refused(t, b, p+"nvwritten-no/NV_Write", a.try(tg, write, attackerData, a.ccStep(write), a.writtenStep(false)), tpm2.TPMRCValue)

	// The provisioning branch, with the attacker's key, a TPM-made
	// approval key, or the approval key's stored signatures.
	refused(t, b, p+"provision/own-key/NV_Write", a.try(tg, write, attackerData, a.ccStep(write), a.signedStep(own.public(), []byte(refProvision), ownSign)), tpm2.TPMRCValue)
	k := a.recreateApprovalKey(r)
	if bytes.Equal(k.Name.Buffer, r.approvalName(t)) {
		t.Fatalf("ATTACK %sprovision/recreated-approval-key %s: SUCCEEDED: the recreated key has the card's approval key's Name", p, b.Name)
	}
	err := a.try(tg, write, attackerData, a.ccStep(write), a.tpmSignedStep(k, []byte(refProvision)))
	a.flush(k.Handle)
	refused(t, b, p+"provision/recreated-approval-key/NV_Write", err, tpm2.TPMRCValue)
	for i, sig := range [][]byte{r.Approval.PINSig, r.Approval.PUKSig} {
		if sig == nil {
			continue
		}
		stored := func([]byte) tpm2.TPMTSignature { return ecdsaSig(sig) }
		refused(t, b, p+"provision/stored-"+[]string{"pin", "puk"}[i]+"-approval-sig/NV_Write", a.try(tg, write, attackerData, a.ccStep(write), a.signedStep(r.Approval.Public, []byte(refProvision), stored)), tpm2.TPMRCSignature)
	}
	refused(t, b, p+"provision/approval-key-own-sig/NV_Write", a.try(tg, write, attackerData, a.ccStep(write), a.signedStep(r.Approval.Public, []byte(refProvision), ownSign)), tpm2.TPMRCSignature)

	// The approved branch: PolicyAuthorize with the stored approval.
	approved := approvedChange(t, tg.recName)
	for _, cc := range []tpm2.TPMCC{write, change} {
		steps := []step{a.ccStep(cc)}
		if tg.auth != nil {
			steps = append(steps, a.secretStep(tg.h, tg.name, tg.auth))
		}
		want := tpm2.TPMRCValue
		if tg.auth != nil {
			want = tpm2.TPMRCAuthUnavailable // PolicySecret on an unwritten PIN index
		}
		refused(t, b, p+"approved/stored-sig/"+ccName(cc), a.try(tg, cc, attackerData, append(steps, a.authorizeStep(r, approved, tg.ref, tg.sig))...), want)
		if tg.auth != nil {
			// Without the PolicySecret the look-alike refuses.
			refused(t, b, p+"approved/stored-sig-no-secret/"+ccName(cc), a.try(tg, cc, attackerData, a.ccStep(cc), a.authorizeStep(r, approved, tg.ref, tg.sig)), tpm2.TPMRCValue)
		}
		refused(t, b, p+"approved/stored-sig-own-policy/"+ccName(cc), a.try(tg, cc, attackerData, a.ccStep(cc), a.authorizeOwnStep(r, tg.ref, tg.sig)), tpm2.TPMRCSignature)
	}

	if tg.label != "pin" {
		return
	}
	// The admin branches: the attacker's key, or a forged signature
	// under the card's admin key.
	refused(t, b, p+"adminSet/own-key/NV_ChangeAuth", a.try(tg, change, nil, a.ccStep(change), a.signedStep(own.public(), setPINRef(r.Serial), ownSign)), tpm2.TPMRCValue)
	refused(t, b, p+"adminReset/own-key/NV_Write", a.try(tg, write, attackerData, a.ccStep(write), a.signedStep(own.public(), resetRef(r.Serial), ownSign)), tpm2.TPMRCValue)
	if r.AdminKey != nil {
		refused(t, b, p+"adminSet/forged-sig/NV_ChangeAuth", a.try(tg, change, nil, a.ccStep(change), a.signedStep(r.AdminKey, setPINRef(r.Serial), ownSign)), tpm2.TPMRCSignature)
		refused(t, b, p+"adminReset/forged-sig/NV_Write", a.try(tg, write, attackerData, a.ccStep(write), a.signedStep(r.AdminKey, resetRef(r.Serial), ownSign)), tpm2.TPMRCSignature)
	}
}
