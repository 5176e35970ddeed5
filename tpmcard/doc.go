// Package tpmcard is a virtual smart card kept in a TPM 2.0.
//
// A card is a pair of NV indices of type TPM_NT_PIN_FAIL (TPM 2.0 Part 2
// §13.4, Part 1 §37.2.2): the PIN is the authValue of one, the PUK the
// authValue of the other. The TPM counts every failed use of either and
// refuses the right value once the index's pinLimit is reached, without
// touching the TPM-wide dictionary-attack counter. Keys are ordinary TPM
// signing keys under the owner's ECC P-256 storage root key, created with
// fixedTPM|fixedParent|sensitiveDataOrigin, userWithAuth clear and
// authPolicy = PolicySecret(PIN index): the private part never leaves the TPM
// and is usable only in a policy session in which the PIN was proved.
//
// The package returns errors and never logs; it takes an open
// transport.TPM and a state directory, and holds no global state. A Manager
// serializes its TPM commands, so one Manager must own one TPM connection.
//
// See docs/security.md in the repository for the policies each index
// carries and why.
package tpmcard
