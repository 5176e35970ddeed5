package tpmcard

import (
	"bytes"
	"fmt"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"
	"github.com/tpmcard/tpmcard/tpmcard/adminkey"
)

// approval is the public half of a card's one-time approval key and the
// two policies it approved before the TPM forgot it.
type approval struct {
	Public []byte `json:"public"`  // TPMT_PUBLIC of the ECC P-256 key
	PINSig []byte `json:"pin_sig"` // r||s over approvalDigest(approvedChange(I), refPINChange)
	PUKSig []byte `json:"puk_sig"` // r||s over approvalDigest(approvedChange(U), refPUKChange)
}

// approver is a card's approval key while the card is provisioned: an ECC
// P-256 signing key the TPM generates as a child of a primary key in the
// null hierarchy. Its private half exists only inside the TPM: the blob
// TPM2_CreateLoaded returns crosses the bus encrypted (the response's first
// parameter, under a salted session) and is wiped from memory at once; it
// was sealed to a parent that the next TPM reset makes unrecoverable. Once
// flushed, nothing anywhere can sign with it again: not this program, not
// whoever holds the disk, a memory image, the bus trace or the owner's
// authorization.
type approver struct {
	m      *Manager
	handle tpm2.TPMHandle
	pub    tpm2.TPMTPublic
	name   []byte
}

// approvalTemplate is the approval key's template: a P-256 ECDSA-SHA256
// signing key the TPM generates. The public area it comes out with is what
// the record keeps, and what LoadExternal loads later to check the
// approvals it made.
func approvalTemplate() tpm2.TPMTPublic {
	return tpm2.TPMTPublic{
		Type:    tpm2.TPMAlgECC,
		NameAlg: tpm2.TPMAlgSHA256,
		ObjectAttributes: tpm2.TPMAObject{
			FixedTPM:            true,
			FixedParent:         true,
			SensitiveDataOrigin: true,
			UserWithAuth:        true,
			NoDA:                true,
			SignEncrypt:         true,
		},
		Parameters: p256ECDSAParms(),
		Unique:     tpm2.NewTPMUPublicID(tpm2.TPMAlgECC, &tpm2.TPMSECCPoint{}),
	}
}

// newApprover has the TPM generate a fresh approval key.
func (m *Manager) newApprover() (*approver, error) {
	var parent *tpm2.CreatePrimaryResponse
	err := m.withRoom(func() (err error) {
		parent, err = tpm2.CreatePrimary{
			PrimaryHandle: tpm2.TPMRHNull,
			InPublic:      tpm2.New2B(tpm2.ECCSRKTemplate),
		}.Execute(m.tpm)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("creating the approval key's parent: %w", busy(err))
	}
	defer flush(m.tpm, parent.ObjectHandle)
	enc, encClose, err := m.saltedHMAC(nil, tpm2.AESEncryption(128, tpm2.EncryptOut))
	if err != nil {
		return nil, fmt.Errorf("opening session: %w", busy(err))
	}
	defer encClose()
	capture := &lastResponse{TPM: m.tpm}
	tmpl := approvalTemplate()
	var rsp *tpm2.CreateLoadedResponse
	err = m.withRoom(func() (err error) {
		rsp, err = tpm2.CreateLoaded{
			ParentHandle: tpm2.AuthHandle{Handle: parent.ObjectHandle, Name: parent.Name, Auth: tpm2.PasswordAuth(nil)},
			InPublic:     tpm2.New2BTemplate(&tmpl),
		}.Execute(capture, enc)
		return err
	})
	if err != nil {
		capture.wipe()
		return nil, fmt.Errorf("creating the approval key: %w", busy(err))
	}
	pub, perr := rsp.OutPublic.Contents()
	a := &approver{m: m, handle: rsp.ObjectHandle, name: bytes.Clone(rsp.Name.Buffer)}
	if perr == nil {
		a.pub = *pub
	}
	// The sealed private part is of no use to anyone: wipe both copies
	// (the response, decrypted in place, and the one unmarshalled from it).
	wipe(rsp.OutPrivate.Buffer)
	capture.wipe()
	if perr != nil {
		a.discard()
		return nil, fmt.Errorf("reading the approval key: %w", perr)
	}
	return a, nil
}

// p256ECDSAParms are the parameters of an ECC P-256 key whose scheme is
// fixed to ECDSA with SHA-256.
func p256ECDSAParms() tpm2.TPMUPublicParms {
	return tpm2.NewTPMUPublicParms(tpm2.TPMAlgECC, &tpm2.TPMSECCParms{
		Symmetric: tpm2.TPMTSymDefObject{Algorithm: tpm2.TPMAlgNull},
		Scheme: tpm2.TPMTECCScheme{
			Scheme:  tpm2.TPMAlgECDSA,
			Details: tpm2.NewTPMUAsymScheme(tpm2.TPMAlgECDSA, &tpm2.TPMSSigSchemeECDSA{HashAlg: tpm2.TPMAlgSHA256}),
		},
		CurveID: tpm2.TPMECCNistP256,
		KDF:     tpm2.TPMTKDFScheme{Scheme: tpm2.TPMAlgNull},
	})
}

// p256Public is the public area under which an ECDSA P-256 verification
// key is loaded (LoadExternal) and named: the approval key's, an
// administrator's.
func p256Public(x, y []byte) tpm2.TPMTPublic {
	return tpm2.TPMTPublic{
		Type:    tpm2.TPMAlgECC,
		NameAlg: tpm2.TPMAlgSHA256,
		ObjectAttributes: tpm2.TPMAObject{
			SignEncrypt: true,
		},
		Parameters: p256ECDSAParms(),
		Unique: tpm2.NewTPMUPublicID(tpm2.TPMAlgECC, &tpm2.TPMSECCPoint{
			X: tpm2.TPM2BECCParameter{Buffer: x},
			Y: tpm2.TPM2BECCParameter{Buffer: y},
		}),
	}
}

// sign has the TPM sign digest with the approval key.
func (a *approver) sign(digest []byte) ([]byte, error) {
	rsp, err := tpm2.Sign{
		KeyHandle:  tpm2.AuthHandle{Handle: a.handle, Name: tpm2.TPM2BName{Buffer: a.name}, Auth: tpm2.PasswordAuth(nil)},
		Digest:     tpm2.TPM2BDigest{Buffer: digest},
		InScheme:   tpm2.TPMTSigScheme{Scheme: tpm2.TPMAlgECDSA, Details: tpm2.NewTPMUSigScheme(tpm2.TPMAlgECDSA, &tpm2.TPMSSchemeHash{HashAlg: tpm2.TPMAlgSHA256})},
		Validation: tpm2.TPMTTKHashCheck{Tag: tpm2.TPMSTHashCheck, Hierarchy: tpm2.TPMRHNull},
	}.Execute(a.m.tpm)
	if err != nil {
		return nil, fmt.Errorf("signing approval: %w", busy(err))
	}
	ecc, err := rsp.Signature.Signature.ECDSA()
	if err != nil {
		return nil, fmt.Errorf("signing approval: %w", err)
	}
	out := make([]byte, 64)
	copy(out[32-len(ecc.SignatureR.Buffer):32], ecc.SignatureR.Buffer)
	copy(out[64-len(ecc.SignatureS.Buffer):], ecc.SignatureS.Buffer)
	return out, nil
}

// approve signs a policy for PolicyAuthorize (Part 3 §23.16).
func (a *approver) approve(policy []byte, ref string) ([]byte, error) {
	return a.sign(approvalDigest(policy, ref))
}

// provisionStep runs the provisioning branch of an index's policy in a
// policy session: PolicySigned by the approval key over the session's
// nonceTPM, with no expiration and no ticket (Part 3 §23.3). The signature
// is good in that session once; a copy of it is worth nothing.
func (a *approver) provisionStep(sess tpm2.Session) error {
	nonce := sess.NonceTPM().Buffer
	sig, err := a.sign(adminkey.PolicySignedDigest(nonce, 0, nil, []byte(refProvision)))
	if err != nil {
		return err
	}
	_, err = tpm2.PolicySigned{
		AuthObject:    tpm2.NamedHandle{Handle: a.handle, Name: tpm2.TPM2BName{Buffer: a.name}},
		PolicySession: sess.Handle(),
		NonceTPM:      tpm2.TPM2BNonce{Buffer: nonce},
		PolicyRef:     tpm2.TPM2BNonce{Buffer: []byte(refProvision)},
		Auth:          ecdsaSignature(sig),
	}.Execute(a.m.tpm)
	return err
}

// discard flushes the approval key: the TPM forgets it, and nothing
// can approve another policy for the card.
func (a *approver) discard() {
	if a.handle != 0 {
		flush(a.m.tpm, a.handle)
		a.handle = 0
	}
}

// ecdsaSignature wraps r||s as an ECDSA-SHA256 TPMT_SIGNATURE.
func ecdsaSignature(sig []byte) tpm2.TPMTSignature {
	return tpm2.TPMTSignature{
		SigAlg: tpm2.TPMAlgECDSA,
		Signature: tpm2.NewTPMUSignature(tpm2.TPMAlgECDSA, &tpm2.TPMSSignatureECC{
			Hash:       tpm2.TPMAlgSHA256,
			SignatureR: tpm2.TPM2BECCParameter{Buffer: sig[:32]},
			SignatureS: tpm2.TPM2BECCParameter{Buffer: sig[32:]},
		}),
	}
}

// lastResponse keeps the last response a command got, so that a response
// carrying a secret can be wiped once read.
type lastResponse struct {
	transport.TPM
	rsp []byte
}

func (l *lastResponse) Send(cmd []byte) ([]byte, error) {
	rsp, err := l.TPM.Send(cmd)
	l.rsp = rsp
	return rsp, err
}

func (l *lastResponse) wipe() { wipe(l.rsp) }

// authorize runs PolicyAuthorize for an approved policy in sess: the TPM
// checks the stored signature (LoadExternal + VerifySignature) and issues
// the ticket PolicyAuthorize needs (Part 3 §20.1, §23.16).
func (m *Manager) authorize(sess tpm2.TPMHandle, a approval, policy []byte, ref string, sig []byte) error {
	t := m.tpm
	pub, err := tpm2.Unmarshal[tpm2.TPMTPublic](a.Public)
	if err != nil {
		return fmt.Errorf("reading approval key: %w", err)
	}
	if len(sig) != 64 {
		return fmt.Errorf("approval signature has %d bytes, want 64", len(sig))
	}
	var loaded *tpm2.LoadExternalResponse
	err = m.withRoom(func() (err error) {
		loaded, err = tpm2.LoadExternal{InPublic: tpm2.New2B(*pub), Hierarchy: tpm2.TPMRHOwner}.Execute(t)
		return err
	})
	if err != nil {
		return fmt.Errorf("loading approval key: %w", err)
	}
	defer flush(t, loaded.ObjectHandle)
	digest := approvalDigest(policy, ref)
	v, err := tpm2.VerifySignature{
		KeyHandle: tpm2.NamedHandle{Handle: loaded.ObjectHandle, Name: loaded.Name},
		Digest:    tpm2.TPM2BDigest{Buffer: digest},
		Signature: ecdsaSignature(sig),
	}.Execute(t)
	if err != nil {
		return fmt.Errorf("verifying approval: %w", err)
	}
	_, err = tpm2.PolicyAuthorize{
		PolicySession:  sess,
		ApprovedPolicy: tpm2.TPM2BDigest{Buffer: policy},
		PolicyRef:      tpm2.TPM2BDigest{Buffer: []byte(ref)},
		KeySign:        loaded.Name,
		CheckTicket:    v.Validation,
	}.Execute(t)
	if err != nil {
		return fmt.Errorf("authorizing policy: %w", err)
	}
	return nil
}

func flush(t transport.TPM, h tpm2.TPMHandle) {
	_, _ = tpm2.FlushContext{FlushHandle: h}.Execute(t)
}
