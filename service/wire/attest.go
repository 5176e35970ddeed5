package wire

// Enrollment: key attestation through the service.

// AttestKey asks for a key attestation statement (administrators only):
// the TPM certifies the card key and the card's PIN index with its
// attestation key. See tpmcard/attest and docs/attestation.md.
type AttestKey struct {
	Serial string `cbor:"1,keyasint,omitempty"`
	KeyID  []byte `cbor:"2,keyasint,omitempty"`
	Nonce  []byte `cbor:"3,keyasint,omitempty"` // the verifier's challenge, up to 64 bytes
}

// Attestation answers AttestKey.
type Attestation struct {
	Statement []byte `cbor:"1,keyasint,omitempty"` // the statement's JSON encoding (attest.Statement.Marshal)
}
