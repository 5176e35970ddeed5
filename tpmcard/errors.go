package tpmcard

import (
	"errors"
	"fmt"

	"github.com/google/go-tpm/tpm2"
)

// Sentinel errors. Use errors.Is; the wrapped message says more.
var (
	ErrNotFound       = errors.New("not found")
	ErrCardNotFound   = fmt.Errorf("card %w", ErrNotFound)
	ErrKeyNotFound    = fmt.Errorf("key %w", ErrNotFound)
	ErrPINLocked      = errors.New("PIN locked: unblock the card with the PUK")
	ErrPUKLocked      = errors.New("PUK locked: the card can no longer be unblocked")
	ErrCardBlocked    = errors.New("card blocked: PIN and PUK are both locked, the card can only be destroyed")
	ErrPINExpired     = errors.New("PIN must be changed before the card can be used")
	ErrNotLoggedIn    = errors.New("not logged in: verify the PIN first")
	ErrCardLost       = errors.New("card lost: its TPM objects are gone")
	ErrNVSpace        = errors.New("the TPM has no NV space left for another card: destroy an unused card first")
	ErrTPMBusy        = errors.New("the TPM is busy: try again later")
	ErrUnsupported    = errors.New("not supported by this TPM")
	ErrInvalidOptions = errors.New("invalid options")
	ErrNoPUK          = errors.New("card has no PUK")
	// ErrTPMUnreachable: a command could not reach the TPM (the connection
	// broke, a device error). Logins have ended; the transport may
	// reconnect, and the next call then starts over.
	ErrTPMUnreachable = errors.New("the TPM cannot be reached")
	// ErrTPMFull: the TPM has no room for another object or session, and
	// none of its slots holds anything of tpmcard's that could go.
	ErrTPMFull = errors.New("the TPM has no room left: another program or an earlier run of the service holds its slots")
	// ErrCardAltered: the TPM's objects no longer match the card's record
	// (a replaced index, another limit): someone changed the card behind
	// the service.
	ErrCardAltered = errors.New("card altered: its TPM objects no longer match its record")
	// ErrCardOutdated: a card made by an earlier tpmcard, whose policy an
	// owner-authorization holder can forge and whose PIN derivation is
	// fast and unsalted (docs/security.md).
	// ErrDestroyIncomplete: a destroy of the card began and did not finish;
	// destroying it again finishes the job.
	ErrDestroyIncomplete = errors.New("card half destroyed: an earlier destroy did not finish; destroy it again")
	ErrCardOutdated      = errors.New("card made by an earlier tpmcard, whose PIN policy whoever holds the TPM owner authorization can forge: move its certificates elsewhere, destroy it and create a new card")
)

// PINError reports a wrong PIN or PUK and how many tries are left before
// the TPM locks it.
type PINError struct {
	PUK       bool // the PUK, not the PIN, was wrong
	TriesLeft int  // -1 when the count could not be read
}

func (e *PINError) Error() string {
	what := "PIN"
	if e.PUK {
		what = "PUK"
	}
	switch {
	case e.TriesLeft < 0:
		return what + " incorrect"
	case e.TriesLeft == 1:
		return what + " incorrect: 1 try left"
	default:
		return fmt.Sprintf("%s incorrect: %d tries left", what, e.TriesLeft)
	}
}

// PolicyError reports a new PIN or PUK that the card's PIN policy refuses.
type PolicyError struct {
	Length bool   // the length is outside the policy's range
	Reason string // what is wrong, without the secret
}

func (e *PolicyError) Error() string { return "PIN does not meet the card's policy: " + e.Reason }

// isTPM reports whether err is, or wraps, the TPM response code rc
// (parameter, handle and session numbers ignored).
func isTPM(err error, rc tpm2.TPMRC) bool { return errors.Is(err, rc) }

// isAuthFailure reports a wrong authValue (TPM 2.0 Part 1 §19.6.16).
func isAuthFailure(err error) bool {
	return isTPM(err, tpm2.TPMRCBadAuth) || isTPM(err, tpm2.TPMRCAuthFail)
}

// isMemory reports that the TPM has no room for another object or session.
func isMemory(err error) bool {
	return isTPM(err, tpm2.TPMRCObjectMemory) || isTPM(err, tpm2.TPMRCSessionMemory) ||
		isTPM(err, tpm2.TPMRCMemory) || isTPM(err, tpm2.TPMRCObjectHandles) ||
		isTPM(err, tpm2.TPMRCSessionHandles)
}

// isGone reports that a handle or blob no longer matches this TPM: the
// index was undefined, the TPM was cleared, or the blob belongs to another
// TPM.
func isGone(err error) bool {
	return isTPM(err, tpm2.TPMRCHandle) || isTPM(err, tpm2.TPMRCIntegrity) ||
		isTPM(err, tpm2.TPMRCNVUninitialized)
}

// isBusy reports a warning the retrying transport gave up on.
func isBusy(err error) bool {
	return isTPM(err, tpm2.TPMRCRetry) || isTPM(err, tpm2.TPMRCYielded) ||
		isTPM(err, tpm2.TPMRCNVRate) || isTPM(err, tpm2.TPMRCTesting) ||
		isTPM(err, tpm2.TPMRCNVUnavailable)
}

// busy wraps err as ErrTPMBusy when the TPM asked to be called back later.
func busy(err error) error {
	if isBusy(err) {
		return fmt.Errorf("%w (%v)", ErrTPMBusy, err)
	}
	return err
}
