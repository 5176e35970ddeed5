package tpmcard

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"
)

// approval is the public half of a card's one-time approval key and the
// two signatures it made before its private half was discarded.
type approval struct {
	Public []byte `json:"public"`  // TPMT_PUBLIC of the ECC P-256 key
	PINSig []byte `json:"pin_sig"` // r||s over approvalDigest(approvedChange(I), refPINChange)
	PUKSig []byte `json:"puk_sig"` // r||s over approvalDigest(approvedChange(U), refPUKChange)
}

// approver holds a fresh approval key during provisioning only.
type approver struct {
	key  *ecdsa.PrivateKey
	pub  tpm2.TPMTPublic
	name []byte
}

func newApprover() (*approver, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generating approval key: %w", err)
	}
	pub := p256Public(key.X.FillBytes(make([]byte, 32)), key.Y.FillBytes(make([]byte, 32)))
	name, err := tpm2.ObjectName(&pub)
	if err != nil {
		return nil, err
	}
	return &approver{key: key, pub: pub, name: name.Buffer}, nil
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

func (a *approver) sign(policy []byte, ref string) ([]byte, error) {
	r, s, err := ecdsa.Sign(rand.Reader, a.key, approvalDigest(policy, ref))
	if err != nil {
		return nil, fmt.Errorf("signing approval: %w", err)
	}
	return append(r.FillBytes(make([]byte, 32)), s.FillBytes(make([]byte, 32))...), nil
}

// discard drops the private key, which was never written anywhere: once
// collected, nothing can approve another policy.
func (a *approver) discard() { a.key = nil }

// authorize runs PolicyAuthorize for an approved policy in sess: the TPM
// checks the stored signature (LoadExternal + VerifySignature) and issues
// the ticket PolicyAuthorize needs (Part 3 §20.1, §23.16).
func authorize(t transport.TPM, sess tpm2.TPMHandle, a approval, policy []byte, ref string, sig []byte) error {
	pub, err := tpm2.Unmarshal[tpm2.TPMTPublic](a.Public)
	if err != nil {
		return fmt.Errorf("reading approval key: %w", err)
	}
	if len(sig) != 64 {
		return fmt.Errorf("approval signature has %d bytes, want 64", len(sig))
	}
	loaded, err := tpm2.LoadExternal{InPublic: tpm2.New2B(*pub), Hierarchy: tpm2.TPMRHOwner}.Execute(t)
	if err != nil {
		return fmt.Errorf("loading approval key: %w", err)
	}
	defer flush(t, loaded.ObjectHandle)
	digest := approvalDigest(policy, ref)
	v, err := tpm2.VerifySignature{
		KeyHandle: tpm2.NamedHandle{Handle: loaded.ObjectHandle, Name: loaded.Name},
		Digest:    tpm2.TPM2BDigest{Buffer: digest},
		Signature: tpm2.TPMTSignature{
			SigAlg: tpm2.TPMAlgECDSA,
			Signature: tpm2.NewTPMUSignature(tpm2.TPMAlgECDSA, &tpm2.TPMSSignatureECC{
				Hash:       tpm2.TPMAlgSHA256,
				SignatureR: tpm2.TPM2BECCParameter{Buffer: sig[:32]},
				SignatureS: tpm2.TPM2BECCParameter{Buffer: sig[32:]},
			}),
		},
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
