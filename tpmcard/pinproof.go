package tpmcard

import (
	"fmt"

	"github.com/google/go-tpm/tpm2"
	"github.com/tpmcard/tpmcard/tpmcard/secret"
)

// PINProof is one entry of the PIN, checked by the TPM, for one signature
// with a PINAlways key: PKCS#11's C_Login(CKU_CONTEXT_SPECIFIC) between
// C_SignInit and C_Sign. It holds the PIN's authValue until Sign uses it
// (SignOptions.PIN) or Wipe; it never prints it.
type PINProof struct {
	serial string
	auth   []byte
}

// Wipe forgets the proof. A nil proof is fine.
func (p *PINProof) Wipe() {
	if p != nil {
		wipe(p.auth)
		p.auth = nil
	}
}

func (p *PINProof) String() string   { return "PINProof(REDACTED)" }
func (p *PINProof) GoString() string { return p.String() }

// ProvePIN checks the card's PIN in the TPM, counted as any PIN entry, and
// returns a proof for one signature with a PINAlways key. The check is a
// PolicySecret of the PIN index whose policyRef ("tpmcard pin check") no
// policy of the card names: it authorizes nothing. A wrong PIN gives a
// *PINError and ends the card's login, as a wrong PIN at Login does.
func (m *Manager) ProvePIN(serial string, pin secret.Secret) (*PINProof, error) {
	auth, err := m.deriveUnlocked(serial, "pin", pin)
	if err != nil {
		return nil, err
	}
	r, err := m.lockCard(serial)
	if err != nil {
		wipe(auth)
		return nil, err
	}
	defer m.unlock()
	hs, closer, err := m.saltedHMAC(auth)
	if err != nil {
		wipe(auth)
		return nil, busy(err)
	}
	defer closer()
	if err := m.prepareSignSession(); err != nil {
		wipe(auth)
		return nil, err
	}
	m.sig.dirty = true // the check's digest, restarted before the next use
	err = m.withRoom(func() error {
		_, err := tpm2.PolicySecret{
			AuthHandle:    tpm2.AuthHandle{Handle: tpm2.TPMHandle(r.PINIndex), Name: tpm2.TPM2BName{Buffer: r.PINName}, Auth: hs},
			PolicySession: m.sig.sess.Handle(),
			PolicyRef:     tpm2.TPM2BNonce{Buffer: []byte(refPINCheck)},
		}.Execute(m.tpm)
		return err
	})
	if err != nil {
		wipe(auth)
		err = m.secretError(r, pinProof, err)
		if isPINFailure(err) {
			m.logoutLocked(serial) // as Login: a wrong PIN ends the card's login
		}
		return nil, err
	}
	return &PINProof{serial: serial, auth: auth}, nil
}

// armFor puts into the sign session the PIN proof of a PINAlways key for
// the one TPM2_Sign cmd: PolicyCommandCode(Sign), then PolicySecret of the
// PIN index with the policyRef of such keys and cpHashA, the hash of cmd's
// parameters (Part 3 §23.4): the session then authorizes that command, on
// that key, over that digest, once. The proof's authValue travels in a
// salted HMAC session of its own and is wiped here, whatever happens.
func (m *Manager) armFor(r *record, p *PINProof, cmd tpm2.Sign) error {
	auth := p.auth
	p.auth = nil
	defer wipe(auth)
	kh, ok := cmd.KeyHandle.(tpm2.AuthHandle)
	if !ok {
		return fmt.Errorf("signing: key handle %T", cmd.KeyHandle)
	}
	cmd.KeyHandle = tpm2.NamedHandle{Handle: kh.Handle, Name: kh.Name}
	cp, err := tpm2.CPHash[tpm2.SignResponse](tpm2.TPMAlgSHA256, cmd)
	if err != nil {
		return fmt.Errorf("signing: %w", err)
	}
	hs, closer, err := m.saltedHMAC(auth)
	if err != nil {
		return busy(err)
	}
	defer closer()
	if err := m.prepareSignSession(); err != nil {
		return err
	}
	m.sig.dirty = true // until the signature uses the digest
	if _, err := (tpm2.PolicyCommandCode{PolicySession: m.sig.sess.Handle(), Code: tpm2.TPMCCSign}).Execute(m.tpm); err != nil {
		return fmt.Errorf("policy: %w", busy(err))
	}
	err = m.withRoom(func() error {
		_, err := tpm2.PolicySecret{
			AuthHandle:    tpm2.AuthHandle{Handle: tpm2.TPMHandle(r.PINIndex), Name: tpm2.TPM2BName{Buffer: r.PINName}, Auth: hs},
			PolicySession: m.sig.sess.Handle(),
			CPHashA:       *cp,
			PolicyRef:     tpm2.TPM2BNonce{Buffer: []byte(refSignAlways)},
		}.Execute(m.tpm)
		return err
	})
	if err != nil {
		err = m.secretError(r, pinProof, err)
		if isPINFailure(err) {
			// The PIN changed between the proof and the signature.
			m.logoutLocked(r.Serial)
		}
		return err
	}
	return nil
}
