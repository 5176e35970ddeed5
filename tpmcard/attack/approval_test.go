package attack

import (
	"bytes"
	"testing"

	"github.com/google/go-tpm/tpm2"
	"github.com/tpmcard/tpmcard/tpmcard/tpmtest"
)

// TestAttackApprovalKeyGone looks for the card's approval key in the TPM
// after provisioning, with the service still running and after it stopped,
// and (swtpm) after a TPM restart. An approval key left loaded would sign
// PolicyAuthorize approvals of a secret-free policy: unlimited PIN resets.
// The old design kept it in software (a memory image recovered it); a
// design that forgot to flush it would leave a transient object whose
// Name is the record's approval Name, and this test would find it.
func TestAttackApprovalKeyGone(t *testing.T) {
	tpmtest.ForEachTPM(t, func(t *testing.T, b *tpmtest.Backend) {
		v := newVictim(t, b, withPUK)
		r := v.record(t)
		want := r.approvalName(t)
		a := &attacker{t: t, tpm: b.TPM}

		look := func(when string) {
			h, seen := a.findObject(want)
			if h != 0 {
				t.Errorf("ATTACK approval-key-%s %s: SUCCEEDED: the approval key is still in the TPM at %#x", when, b.Name, h)
				return
			}
			t.Logf("ATTACK approval-key-%s %s: refused: none of the %d transient/persistent objects is the approval key", when, b.Name, seen)
		}
		look("service-running") // the SRK at least is loaded
		v.close()
		look("service-stopped")

		// A secret-free policy the attacker would like approved, say
		// NV_Write alone (reset the PIN counter at will).
		wish := newCalc(t).cc(tpm2.TPMCCNVWrite).digest()
		forge := func(when string) {
			k := a.recreateApprovalKey(r)
			defer a.flush(k.Handle)
			if bytes.Equal(k.Name.Buffer, want) {
				t.Fatalf("ATTACK approval-key-recreate-%s %s: SUCCEEDED: the TPM made the same approval key again", when, b.Name)
			}
			t.Logf("recreated approval key %x, the card's %x", k.Name.Buffer, want)
			// Control: the search finds a key that is there.
			if h, _ := a.findObject(k.Name.Buffer); h != k.Handle {
				t.Fatalf("control: the object search does not find the loaded key %#x (found %#x)", k.Handle, h)
			}
			sig := a.tpmSign(k, approvalDigest(wish, refPINChange))
			appr, done := a.loadExternal(r.Approval.Public)
			defer done()
			// Control: the stored approval does verify for what it covers.
			if _, err := (tpm2.VerifySignature{KeyHandle: appr, Digest: tpm2.TPM2BDigest{Buffer: approvalDigest(approvedChange(t, r.PINName), refPINChange)}, Signature: ecdsaSig(r.Approval.PINSig)}).Execute(a.tpm); err != nil {
				t.Fatalf("control: the stored PIN approval does not verify for its own policy: %v", err)
			}
			_, err := tpm2.VerifySignature{KeyHandle: appr, Digest: tpm2.TPM2BDigest{Buffer: approvalDigest(wish, refPINChange)}, Signature: sig}.Execute(a.tpm)
			refused(t, b, "approval-key-recreate-"+when+"/verify-approval", err, tpm2.TPMRCSignature)

			// The stored approval signatures cover only the two change
			// policies; under another policy they do not verify.
			_, err = tpm2.VerifySignature{KeyHandle: appr, Digest: tpm2.TPM2BDigest{Buffer: approvalDigest(wish, refPINChange)}, Signature: ecdsaSig(r.Approval.PINSig)}.Execute(a.tpm)
			refused(t, b, "approval-key-"+when+"/stored-sig-other-policy", err, tpm2.TPMRCSignature)
		}
		forge("running")

		// The approval key's public area with a private part of the
		// attacker's: the TPM checks that they belong together.
		apub, err := tpm2.Unmarshal[tpm2.TPMTPublic](r.Approval.Public)
		if err != nil {
			t.Fatal(err)
		}
		d, err := newOwnKey(t).priv.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		_, err = tpm2.LoadExternal{
			InPrivate: tpm2.New2B(tpm2.TPMTSensitive{
				SensitiveType: tpm2.TPMAlgECC,
				Sensitive:     tpm2.NewTPMUSensitiveComposite(tpm2.TPMAlgECC, &tpm2.TPM2BECCParameter{Buffer: d}),
			}),
			InPublic:  tpm2.New2B(*apub),
			Hierarchy: tpm2.TPMRHNull,
		}.Execute(a.tpm)
		refused(t, b, "approval-key-load-with-own-private", at("LoadExternal", err), tpm2.TPMRCAttributes)

		if b.Restart == nil {
			return
		}
		a.tpm = b.Restart(t)
		look("after-restart")
		forge("after-restart")
	})
}

// recreateApprovalKey does what provisioning did: a primary of the null
// hierarchy with the ECC SRK template, and a fresh signing key under it
// with the approval key's own public area as template.
func (a *attacker) recreateApprovalKey(r *cardRecord) tpm2.NamedHandle {
	a.t.Helper()
	parent, err := tpm2.CreatePrimary{PrimaryHandle: tpm2.TPMRHNull, InPublic: tpm2.New2B(tpm2.ECCSRKTemplate)}.Execute(a.tpm)
	if err != nil {
		a.t.Fatalf("CreatePrimary(null): %v", err)
	}
	defer a.flush(parent.ObjectHandle)
	tmpl, err := tpm2.Unmarshal[tpm2.TPMTPublic](r.Approval.Public)
	if err != nil {
		a.t.Fatal(err)
	}
	tmpl.Unique = tpm2.NewTPMUPublicID(tpm2.TPMAlgECC, &tpm2.TPMSECCPoint{})
	rsp, err := tpm2.CreateLoaded{
		ParentHandle: tpm2.AuthHandle{Handle: parent.ObjectHandle, Name: parent.Name, Auth: tpm2.PasswordAuth(nil)},
		InPublic:     tpm2.New2BTemplate(tmpl),
	}.Execute(a.tpm)
	if err != nil {
		a.t.Fatalf("CreateLoaded: %v", err)
	}
	return tpm2.NamedHandle{Handle: rsp.ObjectHandle, Name: rsp.Name}
}

// tpmSign signs a digest with a loaded key that needs no authorization.
func (a *attacker) tpmSign(k tpm2.NamedHandle, digest []byte) tpm2.TPMTSignature {
	a.t.Helper()
	rsp, err := tpm2.Sign{
		KeyHandle:  tpm2.AuthHandle{Handle: k.Handle, Name: k.Name, Auth: tpm2.PasswordAuth(nil)},
		Digest:     tpm2.TPM2BDigest{Buffer: digest},
		InScheme:   ecdsaScheme,
		Validation: tpm2.TPMTTKHashCheck{Tag: tpm2.TPMSTHashCheck, Hierarchy: tpm2.TPMRHNull},
	}.Execute(a.tpm)
	if err != nil {
		a.t.Fatalf("Sign: %v", err)
	}
	return rsp.Signature
}

// findObject looks for an object by Name among the TPM's transient and
// persistent objects; it returns its handle (0: none) and how many
// objects it read.
func (a *attacker) findObject(name []byte) (tpm2.TPMHandle, int) {
	a.t.Helper()
	seen := 0
	for _, first := range []tpm2.TPMHandle{0x80000000, 0x81000000} {
		for _, h := range a.handles(first) {
			rsp, err := tpm2.ReadPublic{ObjectHandle: h}.Execute(a.tpm)
			if err != nil {
				a.t.Fatalf("ReadPublic(%#x): %v", h, err)
			}
			seen++
			if bytes.Equal(rsp.Name.Buffer, name) {
				return h, seen
			}
		}
	}
	return 0, seen
}
