package tpmcard

import (
	"bytes"
	"fmt"

	"github.com/google/go-tpm/tpm2"
	"github.com/tpmcard/tpmcard/tpmcard/attest"
)

// Key attestation (docs/attestation.md).
//
// Why TPM2_CertifyCreation and not TPM2_Certify: TPM2_Certify needs the
// ADMIN role of the certified object (Part 3 §18.2), and a key with
// adminWithPolicy set grants it only to a policy session whose policy
// includes PolicyCommandCode(TPM2_Certify) (Part 1 §19.7.4; the reference
// implementation answers TPM_RC_POLICY_FAIL otherwise). A card key's policy
// is PolicySecret(PIN index) alone, by design, so it cannot be certified.
// TPM2_CertifyCreation (Part 3 §18.5) needs no authorization of the object:
// the TPM checks the creation ticket it issued in TPM2_Create and signs the
// key's Name with the creation data's hash. So GenerateKey keeps the
// creation data, hash and ticket, and only keys that have them can be
// attested.
//
// The attestation key (AK) is a primary key of the endorsement hierarchy
// with the attributes of go-tpm-tools' AKTemplateECC (restricted, sign,
// fixedTPM, fixedParent, sensitiveDataOrigin, userWithAuth; ECDSA P-256
// with SHA-256): primaries are derived from the hierarchy's seed, so the
// same TPM gives the same AK every time (a CA can pin it), and the
// endorsement hierarchy is the one whose EK a CA would use to check the AK
// by credential activation. Its authorization is assumed empty, as TPMs
// ship.

// keyCreation is what TPM2_Create returned about a key's creation.
type keyCreation struct {
	Data   []byte `json:"data"`   // TPMS_CREATION_DATA
	Hash   []byte `json:"hash"`   // SHA-256 of Data
	Ticket []byte `json:"ticket"` // TPMT_TK_CREATION
}

func newKeyCreation(rsp *tpm2.CreateResponse) *keyCreation {
	d := tpm2.Marshal(rsp.CreationData)
	return &keyCreation{Data: d[2:], Hash: rsp.CreationHash.Buffer, Ticket: tpm2.Marshal(rsp.CreationTicket)}
}

// EK certificate NV indices (TCG EK Credential Profile 2.0 §2.2.1.4):
// the low range (RSA 2048, ECC P-256) first, then the high range (ECC
// P-256, P-384, P-521, RSA 2048, 3072, 4096), where swtpm_setup puts its
// ECC certificate.
const (
	ekCertECCIndex = 0x01c0000a
	ekCertRSAIndex = 0x01c00002
	maxEKCert      = 4096
)

var ekCertIndices = []tpm2.TPMHandle{
	ekCertECCIndex, ekCertRSAIndex,
	0x01c00014, 0x01c00016, 0x01c00018, 0x01c00012, 0x01c0001c, 0x01c0001e,
}

// akTemplate is the attestation key's template.
var akTemplate = tpm2.TPMTPublic{
	Type:    tpm2.TPMAlgECC,
	NameAlg: tpm2.TPMAlgSHA256,
	ObjectAttributes: tpm2.TPMAObject{
		FixedTPM:            true,
		FixedParent:         true,
		SensitiveDataOrigin: true,
		UserWithAuth:        true,
		Restricted:          true,
		SignEncrypt:         true,
	},
	Parameters: p256ECDSAParms(),
	Unique: tpm2.NewTPMUPublicID(tpm2.TPMAlgECC, &tpm2.TPMSECCPoint{
		X: tpm2.TPM2BECCParameter{Buffer: make([]byte, 32)},
		Y: tpm2.TPM2BECCParameter{Buffer: make([]byte, 32)},
	}),
}

// AttestOptions qualify a statement.
type AttestOptions struct {
	// Nonce is the verifier's challenge, up to 64 bytes; it is bound into
	// the statement.
	Nonce []byte
}

// Attest makes a key attestation statement for a card key: the AK's
// TPM2_CertifyCreation of the key and TPM2_NV_Certify of the card's PIN
// and PUK indices, with the public areas a verifier needs to recompute the
// PIN index's policy (the approval key, the admin key), the approval key's
// two approvals, and the TPM's EK certificate when its NV holds one. It
// needs no PIN. attest.Verify checks the statement offline.
func (m *Manager) Attest(serial string, keyID []byte, opts AttestOptions) (*attest.Statement, error) {
	if len(opts.Nonce) > 64 {
		return nil, fmt.Errorf("%w: an attestation nonce is limited to 64 bytes", ErrInvalidOptions)
	}
	r, err := m.lockCard(serial)
	if err != nil {
		return nil, err
	}
	defer m.unlock()
	k := r.key(keyID)
	if k == nil {
		return nil, fmt.Errorf("%w: card %s has no key %x", ErrKeyNotFound, serial, keyID)
	}
	if k.Creation == nil {
		return nil, fmt.Errorf("%w: key %x was generated before tpmcard kept creation tickets: generate a new key to attest it", ErrUnsupported, keyID)
	}
	ticket, err := tpm2.Unmarshal[tpm2.TPMTTKCreation](k.Creation.Ticket)
	if err != nil {
		return nil, fmt.Errorf("key %x: creation ticket: %w", keyID, err)
	}
	if err := m.checkNames(r); err != nil {
		return nil, fmt.Errorf("card %s: %w", serial, err)
	}
	nvPub, err := tpm2.NVReadPublic{NVIndex: tpm2.TPMHandle(r.PINIndex)}.Execute(m.tpm)
	if err != nil {
		return nil, fmt.Errorf("reading the PIN index: %w", busy(err))
	}
	var pukPub *tpm2.NVReadPublicResponse
	if !r.NoPUK {
		if pukPub, err = (tpm2.NVReadPublic{NVIndex: tpm2.TPMHandle(r.PUKIndex)}).Execute(m.tpm); err != nil {
			return nil, fmt.Errorf("reading the PUK index: %w", busy(err))
		}
	}
	ekCert := m.ekCertificate() // before the AK takes an object slot
	st := &attest.Statement{
		Type: attest.Type, Ver: "2.0", Alg: attest.AlgES256,
		PubArea: bytes.Clone(k.Public), CreationData: bytes.Clone(k.Creation.Data),
		NVPubArea:       nvPub.NVPublic.Bytes(),
		ApprovalPubArea: bytes.Clone(r.Approval.Public), ApprovalPINSig: bytes.Clone(r.Approval.PINSig),
		AdminPubArea: bytes.Clone(r.AdminKey),
		Nonce:        bytes.Clone(opts.Nonce), EKCert: ekCert, Card: serial, KeyID: bytes.Clone(k.ID),
	}
	if pukPub != nil {
		st.PUKPubArea, st.ApprovalPUKSig = pukPub.NVPublic.Bytes(), bytes.Clone(r.Approval.PUKSig)
	}
	binding := st.BindingData()

	var ak *tpm2.CreatePrimaryResponse
	err = m.withRoom(func() (err error) {
		ak, err = tpm2.CreatePrimary{
			PrimaryHandle: tpm2.AuthHandle{Handle: tpm2.TPMRHEndorsement, Auth: tpm2.PasswordAuth(nil)},
			InPublic:      tpm2.New2B(akTemplate),
		}.Execute(m.tpm)
		return err
	})
	if err != nil {
		if isAuthFailure(err) {
			return nil, fmt.Errorf("creating the attestation key: the endorsement hierarchy has a password: %w", err)
		}
		return nil, fmt.Errorf("creating the attestation key: %w", busy(err))
	}
	defer flush(m.tpm, ak.ObjectHandle)
	st.AKPubArea = ak.OutPublic.Bytes()
	akAuth := tpm2.AuthHandle{Handle: ak.ObjectHandle, Name: ak.Name, Auth: tpm2.PasswordAuth(nil)}

	lk, err := m.loadKey(r, k)
	if err != nil {
		return nil, err
	}
	cc, err := tpm2.CertifyCreation{
		SignHandle:     akAuth,
		ObjectHandle:   tpm2.NamedHandle{Handle: lk.handle, Name: lk.name},
		QualifyingData: tpm2.TPM2BData{Buffer: binding},
		CreationHash:   tpm2.TPM2BDigest{Buffer: k.Creation.Hash},
		InScheme:       tpm2.TPMTSigScheme{Scheme: tpm2.TPMAlgNull},
		CreationTicket: *ticket,
	}.Execute(m.tpm)
	if err != nil {
		return nil, fmt.Errorf("certifying key %x: %w", keyID, busy(err))
	}
	st.CertInfo = cc.CertifyInfo.Bytes()
	st.Sig = tpm2.Marshal(cc.Signature)

	if st.NVCertInfo, st.NVSig, err = m.certifyIndex(akAuth, r.PINIndex, nvPub.NVName, binding); err != nil {
		return nil, fmt.Errorf("certifying the PIN index: %w", busy(err))
	}
	if pukPub != nil {
		if st.PUKCertInfo, st.PUKSig, err = m.certifyIndex(akAuth, r.PUKIndex, pukPub.NVName, binding); err != nil {
			return nil, fmt.Errorf("certifying the PUK index: %w", busy(err))
		}
	}
	return st, nil
}

// certifyIndex has the AK certify the 8 bytes {count, limit} of a card's
// PIN or PUK index (TPM2_NV_Certify, Part 3 §31.16). Owner authorization
// reads the index (OWNERREAD) without authorizing the index itself, so
// its counter is neither reset nor moved.
func (m *Manager) certifyIndex(ak tpm2.AuthHandle, h uint32, name tpm2.TPM2BName, binding []byte) (info, sig []byte, err error) {
	owner, err := m.ownerAuth()
	if err != nil {
		return nil, nil, err
	}
	nc, err := tpm2.NVCertify{
		SignHandle:     ak,
		AuthHandle:     tpm2.AuthHandle{Handle: tpm2.TPMRHOwner, Auth: owner},
		NVIndex:        tpm2.NamedHandle{Handle: tpm2.TPMHandle(h), Name: name},
		QualifyingData: tpm2.TPM2BData{Buffer: binding},
		InScheme:       tpm2.TPMTSigScheme{Scheme: tpm2.TPMAlgNull},
		Size:           8,
	}.Execute(m.tpm)
	if err != nil {
		if isAuthFailure(err) {
			m.dropOwnerSession()
			return nil, nil, fmt.Errorf("certifying NV index %#x: owner authorization refused: %w", h, err)
		}
		return nil, nil, err
	}
	return nc.CertifyInfo.Bytes(), tpm2.Marshal(nc.Signature), nil
}

// ekCertificate reads the first EK certificate found in the TPM's NV
// (ekCertIndices order), or returns nil when there is none or it cannot be read: the
// statement is complete without it.
func (m *Manager) ekCertificate() []byte {
	for _, h := range ekCertIndices {
		pub, err := tpm2.NVReadPublic{NVIndex: h}.Execute(m.tpm)
		if err != nil {
			continue
		}
		p, err := pub.NVPublic.Contents()
		if err != nil || p.DataSize == 0 || p.DataSize > maxEKCert {
			continue
		}
		var out []byte
		for off := uint16(0); off < p.DataSize; {
			n := min(p.DataSize-off, 512)
			rsp, err := tpm2.NVRead{
				AuthHandle: tpm2.AuthHandle{Handle: h, Name: pub.NVName, Auth: tpm2.PasswordAuth(nil)},
				NVIndex:    tpm2.NamedHandle{Handle: h, Name: pub.NVName},
				Size:       n,
				Offset:     off,
			}.Execute(m.tpm)
			if err != nil {
				out = nil
				break
			}
			out = append(out, rsp.Data.Buffer...)
			off += n
		}
		if out != nil {
			return trimDER(out)
		}
	}
	return nil
}

// trimDER cuts the padding some TPMs leave after the certificate's DER
// SEQUENCE.
func trimDER(b []byte) []byte {
	if len(b) < 4 || b[0] != 0x30 {
		return b
	}
	var n int
	switch {
	case b[1] < 0x80:
		n = 2 + int(b[1])
	case b[1] == 0x81:
		n = 3 + int(b[2])
	case b[1] == 0x82:
		n = 4 + (int(b[2])<<8 | int(b[3]))
	default:
		return b
	}
	if n <= len(b) {
		return b[:n]
	}
	return b
}
