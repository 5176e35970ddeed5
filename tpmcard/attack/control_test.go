package attack

import (
	"bytes"
	"testing"

	"github.com/google/go-tpm/tpm2"
	"github.com/tpmcard/tpmcard/tpmcard/tpmtest"
)

// TestControlOldDesignFalls runs the owner rebuild against the policy
// shape of the old design (the commit before 923df8e): a PUK index whose
// first write was PolicyCommandCode(NV_Write) + PolicyNvWritten(NO), and a
// PIN index trusting it. The attack machinery of this package then
// succeeds: the look-alikes get WRITTEN and with it the Names a card's keys
// are bound to, and such a key signs with the attacker's PIN. So the
// refusals TestAttackOwnerRebuild logs come from the card's policies, not
// from a broken attack.
func TestControlOldDesignFalls(t *testing.T) {
	tpmtest.ForEachTPM(t, func(t *testing.T, b *tpmtest.Backend) {
		a := &attacker{t: t, tpm: b.TPM}
		const hU, hI = 0x013FF000, 0x013FF001
		define := func(h uint32, branches []branch) (tpm2.TPMSNVPublic, []byte) {
			pub := tpm2.TPMSNVPublic{
				NVIndex:    tpm2.TPMHandle(h),
				NameAlg:    tpm2.TPMAlgSHA256,
				Attributes: tpm2.TPMANV{NT: tpm2.TPMNTPinFail, NoDA: true, PolicyWrite: true, OwnerRead: true},
				AuthPolicy: tpm2.TPM2BDigest{Buffer: orDigest(t, branches)},
				DataSize:   8,
			}
			if _, err := (tpm2.NVDefineSpace{AuthHandle: ownerAuth, Auth: tpm2.TPM2BAuth{Buffer: attackerAuth}, PublicInfo: tpm2.New2B(pub)}).Execute(a.tpm); err != nil {
				t.Fatalf("defining %#x: %v", h, err)
			}
			unwritten := nvName(t, pub)
			pub.Attributes.Written = true
			return pub, unwritten
		}

		// The old PUK look-alike, written through its first-write branch.
		uBranches := []branch{
			{"firstWrite", firstWriteDigest(t)},
			{"approved", newCalc(t).authorize(newOwnKeyName(t), refPUKChange).digest()},
		}
		uPub, uName := define(hU, uBranches)
		u := target{label: "puk", h: hU, name: uName, recName: nvName(t, uPub), branches: uBranches}
		if err := a.try(u, tpm2.TPMCCNVWrite, pinData(0, 3), a.ccStep(tpm2.TPMCCNVWrite), a.writtenStep(false)); err != nil {
			t.Fatalf("control: the old first-write branch refuses the attacker (%v): the attack machinery is broken", err)
		}
		if _, name, err := a.nvReadPublic(hU); err != nil || !bytes.Equal(name, u.recName) {
			t.Fatalf("control: the written old-design look-alike does not have the card's Name (%v)", err)
		}

		// The PIN look-alike trusts U by Name: the attacker's PUK works.
		iBranches := []branch{
			{"resetByPUK", newCalc(t).cc(tpm2.TPMCCNVWrite).secret(u.recName).digest()},
			{"setByPUK", newCalc(t).cc(tpm2.TPMCCNVChangeAuth).secret(u.recName).digest()},
		}
		iPub, iName := define(hI, iBranches)
		pin := target{label: "pin", h: hI, name: iName, recName: nvName(t, iPub), branches: iBranches}
		if err := a.try(pin, tpm2.TPMCCNVWrite, pinData(0, 5), a.ccStep(tpm2.TPMCCNVWrite), a.secretStep(hU, u.recName, attackerAuth)); err != nil {
			t.Fatalf("control: resetByPUK with the attacker's PUK look-alike: %v", err)
		}

		// A card key bound to that PIN Name signs with the attacker's PIN.
		r := &cardRecord{}
		r.Keys = append(r.Keys, a.keyBoundTo(t, pin.recName))
		if err := a.trySign(r, a.secretStep(hI, pin.recName, attackerAuth)); err != nil {
			t.Fatalf("control: the key bound to the old-design PIN Name does not sign: %v", err)
		}
		t.Logf("CONTROL old-design %s: the rebuild succeeds against PolicyNvWritten(NO) first writes: look-alikes WRITTEN with the card's Names, the key signs with the attacker's PIN", b.Name)
	})
}

func firstWriteDigest(t *testing.T) []byte {
	c := newCalc(t).cc(tpm2.TPMCCNVWrite)
	return c.must(tpm2.PolicyNVWritten{WrittenSet: false}.Update(c.pc)).digest()
}

func newOwnKeyName(t *testing.T) []byte { return objectName(t, newOwnKey(t).public()) }

// keyBoundTo creates a key as tpmcard makes a card's keys: a P-256 signing
// key under the owner SRK, userWithAuth clear, authPolicy PolicySecret(pin).
func (a *attacker) keyBoundTo(t *testing.T, pinName []byte) struct {
	Public  []byte `json:"public"`
	Private []byte `json:"private"`
} {
	srk, srkName := a.ownerSRK()
	defer a.flush(srk)
	tmpl := tpm2.TPMTPublic{
		Type:    tpm2.TPMAlgECC,
		NameAlg: tpm2.TPMAlgSHA256,
		ObjectAttributes: tpm2.TPMAObject{
			FixedTPM: true, FixedParent: true, SensitiveDataOrigin: true,
			AdminWithPolicy: true, SignEncrypt: true,
		},
		AuthPolicy: tpm2.TPM2BDigest{Buffer: newCalc(t).secret(pinName).digest()},
		Parameters: tpm2.NewTPMUPublicParms(tpm2.TPMAlgECC, &tpm2.TPMSECCParms{
			Symmetric: tpm2.TPMTSymDefObject{Algorithm: tpm2.TPMAlgNull},
			KDF:       tpm2.TPMTKDFScheme{Scheme: tpm2.TPMAlgNull},
			Scheme: tpm2.TPMTECCScheme{
				Scheme:  tpm2.TPMAlgECDSA,
				Details: tpm2.NewTPMUAsymScheme(tpm2.TPMAlgECDSA, &tpm2.TPMSSigSchemeECDSA{HashAlg: tpm2.TPMAlgSHA256}),
			},
			CurveID: tpm2.TPMECCNistP256,
		}),
	}
	rsp, err := tpm2.Create{
		ParentHandle: tpm2.AuthHandle{Handle: srk, Name: srkName, Auth: tpm2.PasswordAuth(nil)},
		InPublic:     tpm2.New2B(tmpl),
	}.Execute(a.tpm)
	if err != nil {
		t.Fatalf("creating a key: %v", err)
	}
	return struct {
		Public  []byte `json:"public"`
		Private []byte `json:"private"`
	}{tpm2.Marshal(rsp.OutPublic)[2:], tpm2.Marshal(rsp.OutPrivate)[2:]} // contents, as tpmcard stores them
}

// TestControlTicketOnBus shows the ticket check of
// TestAttackAdminUnblockReplay can fail: a PolicySigned with a negative
// expiration, as the old design sent, returns a ticket, and the bus parser
// sees it.
func TestControlTicketOnBus(t *testing.T) {
	tpmtest.ForEachTPM(t, func(t *testing.T, b *tpmtest.Backend) {
		bus := &recorder{TPM: b.TPM}
		a := &attacker{t: t, tpm: bus}
		own := newOwnKey(t)
		k, done := a.loadExternal(own.public())
		defer done()
		s, closeS := a.policySession()
		defer closeS()
		nonce := s.NonceTPM().Buffer
		ref := []byte("tpmcard unblock 0123456789abcdef")
		if err := a.policySigned(s, k, nonce, nil, ref, -600, own.sign(t, signedDigest(nonce, -600, nil, ref))); err != nil {
			t.Fatalf("PolicySigned: %v", err)
		}
		seen := policySignedOnBus(t, bus.take())
		if len(seen) != 1 || seen[0].ticketDigest == 0 || seen[0].expiration != -600 {
			t.Fatalf("control: a negative expiration's ticket is not seen on the bus: %+v", seen)
		}
		t.Logf("CONTROL ticket-on-bus %s: expiration -600 returns a %d-byte ticket the bus parser sees", b.Name, seen[0].ticketDigest)
	})
}
