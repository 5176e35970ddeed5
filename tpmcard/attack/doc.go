// Package attack attacks tpmcard cards the way an outsider would, and
// checks that the TPM refuses.
//
// The tests set up a victim card only through tpmcard's public API and then
// attack it only through go-tpm, talking to the same TPM, and through what
// the state directory shows (the JSON card records). The attacker may hold
// the owner authorization (empty), restart the TPM and record every command
// and response on the bus, and knows the PIN derivation docs/security.md
// describes; it knows no PIN, no PUK and no admin private key. Each attack
// asserts the exact TPM response code of the refusal and logs a line
//
//	ATTACK <name> <backend>: refused with TPM_RC_...
//
// on the reference simulator and on swtpm (after a TPM restart too, where a
// restart changes anything). The package holds tests only.
package attack
