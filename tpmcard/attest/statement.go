// Package attest defines tpmcard's key attestation statement and checks it
// offline, without a TPM: what a CA runs before it signs a card's
// certificate request. The format is described in docs/attestation.md; its
// core fields are those of the WebAuthn "tpm" attestation statement
// (WebAuthn Level 2 §8.3: ver, alg, sig, certInfo, pubArea, x5c).
//
// The TPM structures are those of TPM 2.0 Part 2: TPMS_ATTEST (§10.12.12),
// TPMT_SIGNATURE (§11.3.4), TPMT_PUBLIC (§12.2.4), TPMS_NV_PUBLIC (§13.5),
// TPMS_CREATION_DATA (§15.1).
package attest

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// Type names the statement format and its version. Version 2 added what
// the verifier needs to recompute the PIN index's authPolicy: the card's
// approval key, PUK index and admin key.
const Type = "tpmcard-key-attestation/2"

// typeV1 is the first format, which did not show the PIN index's policy.
const typeV1 = "tpmcard-key-attestation/1"

// MaxStatementSize bounds a statement file (an EK certificate is the
// largest part, at most a few kilobytes).
const MaxStatementSize = 64 << 10

// COSE algorithm identifiers (RFC 9053 §2.1) of the attestation key.
const (
	AlgES256 = -7
)

// Statement is one key attestation. Every field but X5C is covered by the
// attestation key's signatures: the TPM structures directly, the others
// through ExtraData (see BindingData).
//
// A card without a PUK has no PUK fields (PUKSig, PUKCertInfo, PUKPubArea,
// ApprovalPUKSig); a card without an admin key no AdminPubArea.
type Statement struct {
	Type string `json:"type"` // Type
	Ver  string `json:"ver"`  // "2.0", the TPM specification family
	Alg  int    `json:"alg"`  // COSE algorithm of Sig and NVSig (AlgES256)

	// TPM2_CertifyCreation of the card key by the attestation key (AK).
	Sig          []byte `json:"sig"`          // TPMT_SIGNATURE over CertInfo
	CertInfo     []byte `json:"certInfo"`     // TPMS_ATTEST, type TPM_ST_ATTEST_CREATION
	PubArea      []byte `json:"pubArea"`      // TPMT_PUBLIC of the card key
	CreationData []byte `json:"creationData"` // TPMS_CREATION_DATA of the card key

	// The attestation key: a restricted signing key of the same TPM.
	AKPubArea []byte   `json:"akPubArea"`     // TPMT_PUBLIC
	X5C       [][]byte `json:"x5c,omitempty"` // AK certificate chain, when a CA issued one (tpmcard makes none)

	// TPM2_NV_Certify of the card's PIN index by the same AK.
	NVSig      []byte `json:"nvSig"`      // TPMT_SIGNATURE over NVCertInfo
	NVCertInfo []byte `json:"nvCertInfo"` // TPMS_ATTEST, type TPM_ST_ATTEST_NV
	NVPubArea  []byte `json:"nvPubArea"`  // TPMS_NV_PUBLIC of the PIN index

	// TPM2_NV_Certify of the card's PUK index by the same AK.
	PUKSig      []byte `json:"pukSig,omitempty"`      // TPMT_SIGNATURE over PUKCertInfo
	PUKCertInfo []byte `json:"pukCertInfo,omitempty"` // TPMS_ATTEST, type TPM_ST_ATTEST_NV
	PUKPubArea  []byte `json:"pukPubArea,omitempty"`  // TPMS_NV_PUBLIC of the PUK index

	// The other keys the card's policies name.
	ApprovalPubArea []byte `json:"approvalPubArea"`          // TPMT_PUBLIC of the card's one-time approval key
	ApprovalPINSig  []byte `json:"approvalPinSig"`           // r||s: its approval of the PIN change policy
	ApprovalPUKSig  []byte `json:"approvalPukSig,omitempty"` // r||s: its approval of the PUK change policy
	AdminPubArea    []byte `json:"adminPubArea,omitempty"`   // TPMT_PUBLIC of the administrator's P-256 key

	// Context, bound into the attestations' extraData.
	Nonce  []byte `json:"nonce,omitempty"`  // the verifier's challenge, if any
	EKCert []byte `json:"ekCert,omitempty"` // the TPM's EK certificate (DER) when its NV holds one
	Card   string `json:"card"`             // card serial
	KeyID  []byte `json:"keyId"`            // the key's CKA_ID
}

// BindingData is the extraData (qualifyingData) every attestation of the
// statement carries: SHA-256 over a label and the fields the TPM does not
// sign itself, each with a length prefix. It ties the nonce, the EK
// certificate, the card serial, the key ID and the card's approval and
// admin keys to the AK's signatures, so that none of them can be changed.
func (s *Statement) BindingData() []byte {
	h := sha256.New()
	io.WriteString(h, Type+"\x00")
	for _, f := range [][]byte{s.Nonce, s.EKCert, []byte(s.Card), s.KeyID,
		s.ApprovalPubArea, s.ApprovalPINSig, s.ApprovalPUKSig, s.AdminPubArea} {
		var n [4]byte
		binary.BigEndian.PutUint32(n[:], uint32(len(f)))
		h.Write(n[:])
		h.Write(f)
	}
	return h.Sum(nil)
}

// Marshal encodes the statement as JSON (binary fields in base64).
func (s *Statement) Marshal() ([]byte, error) {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// Parse decodes a statement, refusing unknown fields, trailing data, other
// formats and oversized input.
func Parse(b []byte) (*Statement, error) {
	if len(b) > MaxStatementSize {
		return nil, fmt.Errorf("attestation statement: %d bytes, the limit is %d", len(b), MaxStatementSize)
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	var s Statement
	if err := d.Decode(&s); err != nil {
		return nil, fmt.Errorf("attestation statement: %w", err)
	}
	if _, err := d.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("attestation statement: trailing data after the JSON object")
	}
	if err := checkType(s.Type); err != nil {
		return nil, fmt.Errorf("attestation statement: %w", err)
	}
	return &s, nil
}

// errOldFormat refuses statements of the first format.
var errOldFormat = errors.New("format " + typeV1 + " does not show the PIN index's policy, so nothing in it " +
	"proves that only the PUK or the admin key can reset the PIN counter: make a new statement with this tpmcard")

func checkType(t string) error {
	switch t {
	case Type:
		return nil
	case typeV1:
		return errOldFormat
	}
	return fmt.Errorf("type %q, want %q", t, Type)
}
