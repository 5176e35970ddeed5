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

// Type names the statement format and its version.
const Type = "tpmcard-key-attestation/1"

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

	// Context, bound into the attestations' extraData.
	Nonce  []byte `json:"nonce,omitempty"`  // the verifier's challenge, if any
	EKCert []byte `json:"ekCert,omitempty"` // the TPM's EK certificate (DER) when its NV holds one
	Card   string `json:"card"`             // card serial
	KeyID  []byte `json:"keyId"`            // the key's CKA_ID
}

// BindingData is the extraData (qualifyingData) both attestations carry:
// SHA-256 over a label and the statement's context fields, each with a
// length prefix. It ties the nonce, the EK certificate, the card serial and
// the key ID to the AK's signatures, so that none of them can be changed.
func BindingData(nonce, ekCert []byte, card string, keyID []byte) []byte {
	h := sha256.New()
	io.WriteString(h, Type+"\x00")
	for _, f := range [][]byte{nonce, ekCert, []byte(card), keyID} {
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
	if s.Type != Type {
		return nil, fmt.Errorf("attestation statement: type %q, want %q", s.Type, Type)
	}
	return &s, nil
}
