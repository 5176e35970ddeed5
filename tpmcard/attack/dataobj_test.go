package attack

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-tpm/tpm2"
	"github.com/tpmcard/tpmcard/tpmcard"
	"github.com/tpmcard/tpmcard/tpmcard/secret"
	"github.com/tpmcard/tpmcard/tpmcard/tpmtest"
)

// TestAttackPrivateDataObject: the victim keeps a private data object on
// the card. The attacker reads the state directory: the value is not
// there, only a ciphertext and the sealed data key. It loads that key's
// blobs under the owner SRK (owner authorization is empty) and asks the
// TPM to unseal: with a password (userWithAuth is clear:
// TPM_RC_AUTH_UNAVAILABLE), in a policy session without the PIN
// (TPM_RC_POLICY_FAIL), with a wrong guess of the PIN (TPM_RC_BAD_AUTH,
// counted). Only the PIN opens it.
func TestAttackPrivateDataObject(t *testing.T) {
	tpmtest.ForEachTPM(t, func(t *testing.T, b *tpmtest.Backend) {
		v := newVictim(t, b, withPUK)
		secretValue := []byte("the victim's private data object")
		if err := v.m.Login(v.serial, secret.FromString(victimPIN)); err != nil {
			t.Fatal(err)
		}
		if _, err := v.m.CreateDataObject(v.serial, tpmcard.DataObject{Private: true, Value: secretValue, Label: []byte("bank")}); err != nil {
			t.Fatalf("CreateDataObject: %v", err)
		}
		v.close()

		raw, err := os.ReadFile(filepath.Join(v.dir, "cards", v.serial+".json"))
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(raw, secretValue) || bytes.Contains(raw, []byte(base64.StdEncoding.EncodeToString(secretValue))) {
			t.Fatalf("ATTACK read-state-dir %s: SUCCEEDED: the record shows the private value", b.Name)
		}
		t.Logf("ATTACK read-state-dir %s: the record holds no private value, in clear or base64", b.Name)
		var rec struct {
			DataKey *struct {
				Public  []byte `json:"public"`
				Private []byte `json:"private"`
			} `json:"data_key"`
		}
		if err := json.Unmarshal(raw, &rec); err != nil || rec.DataKey == nil {
			t.Fatalf("the record has no sealed data key: %v\n%s", err, raw)
		}
		r := v.record(t)

		a := &attacker{t: t, tpm: b.TPM}
		srk, srkName := a.ownerSRK()
		defer a.flush(srk)
		load, err := tpm2.Load{
			ParentHandle: tpm2.AuthHandle{Handle: srk, Name: srkName, Auth: tpm2.PasswordAuth(nil)},
			InPrivate:    tpm2.TPM2BPrivate{Buffer: rec.DataKey.Private},
			InPublic:     tpm2.BytesAs2B[tpm2.TPMTPublic](rec.DataKey.Public),
		}.Execute(a.tpm)
		if err != nil {
			t.Fatalf("loading the sealed data key under the owner SRK: %v", err)
		}
		defer a.flush(load.ObjectHandle)
		unseal := func(auth tpm2.Session) error {
			_, err := tpm2.Unseal{ItemHandle: tpm2.AuthHandle{Handle: load.ObjectHandle, Name: load.Name, Auth: auth}}.Execute(a.tpm)
			return err
		}

		refused(t, b, "unseal-data-key-password", unseal(tpm2.PasswordAuth(nil)), tpm2.TPMRCAuthUnavailable)

		s, done := a.policySession()
		refused(t, b, "unseal-data-key-no-pin", unseal(s), tpm2.TPMRCPolicyFail)
		done()

		s, done = a.policySession()
		err = a.secretStep(r.PINIndex, r.PINName, r.pinAuth(t, "00000000"))(s)
		refused(t, b, "unseal-data-key-guessed-pin", err, tpm2.TPMRCBadAuth)
		done()

		// The control: the right PIN unseals it, so the refusals above
		// are the policy's.
		s, done = a.policySession()
		defer done()
		if err := a.secretStep(r.PINIndex, r.PINName, r.pinAuth(t, victimPIN))(s); err != nil {
			t.Fatalf("the right PIN: %v", err)
		}
		rsp, err := tpm2.Unseal{ItemHandle: tpm2.AuthHandle{Handle: load.ObjectHandle, Name: load.Name, Auth: s}}.Execute(a.tpm)
		if err != nil || len(rsp.OutData.Buffer) != 32 {
			t.Fatalf("unsealing with the right PIN: %v", err)
		}
	})
}
