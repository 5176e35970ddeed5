package server

import (
	"context"
	"errors"
	"io/fs"

	"github.com/tpmcard/tpmcard/service/wire"
	"github.com/tpmcard/tpmcard/tpmcard"
	"github.com/tpmcard/tpmcard/tpmcard/adminkey"
)

// toStatus maps an error from tpmcard (or from the server itself) to what
// the client sees. It is the one place where tpmcard errors become wire
// statuses. A *wire.StatusError passes through unchanged. generic is true
// when the detail must stay in the service log: the client then gets a
// generic message, never err's text.
func toStatus(err error) (se *wire.StatusError, generic bool) {
	var ws *wire.StatusError
	if errors.As(err, &ws) {
		return ws, false
	}
	var pe *tpmcard.PINError
	if errors.As(err, &pe) {
		if pe.PUK {
			return &wire.StatusError{Status: wire.PUKIncorrect, TriesLeft: pe.TriesLeft, Message: "wrong PUK"}, false
		}
		return &wire.StatusError{Status: wire.PINIncorrect, TriesLeft: pe.TriesLeft, Message: "wrong PIN"}, false
	}
	var st *tpmcard.StateError
	if errors.As(err, &st) {
		if se := stateDirStatus(st); se != nil {
			if errors.Is(err, tpmcard.ErrDestroyIncomplete) {
				// The TPM part is done: nothing else is "unchanged".
				return wire.NewError(wire.DestroyIncomplete, "the card's TPM objects are destroyed, its record is not: "+se.Message), false
			}
			return se, false
		}
	}
	var pol *tpmcard.PolicyError
	if errors.As(err, &pol) {
		if pol.Length {
			return wire.NewError(wire.PINLenRange, pol.Reason), false
		}
		return wire.NewError(wire.PINInvalid, pol.Reason), false
	}
	for _, m := range sentinels {
		if errors.Is(err, m.err) {
			msg := m.msg
			if msg == "" {
				// tpmcard's argument errors name no secret and no handle,
				// and they tell the caller what to fix.
				msg = err.Error()
			}
			se := wire.NewError(m.status, msg)
			if m.locked {
				se.TriesLeft = 0
			}
			return se, false
		}
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return wire.NewError(wire.Timeout, "request timed out"), false
	}
	return wire.NewError(wire.Internal, "internal error: see the service log"), true
}

// sentinels maps tpmcard's sentinel errors, in the order they are tried.
// Messages are fixed texts, since a wrapped tpmcard error may name TPM
// handles, which stay in the log; an empty one passes err's text on.
var sentinels = []struct {
	err    error
	status wire.Status
	msg    string
	locked bool // TriesLeft is known to be 0
}{
	{tpmcard.ErrCardBlocked, wire.CardBlocked, "PIN and PUK are locked: the card can only be destroyed", true},
	{tpmcard.ErrPINLocked, wire.PINLocked, "PIN locked: unblock the card with the PUK", true},
	{tpmcard.ErrPUKLocked, wire.PUKLocked, "PUK locked", true},
	{tpmcard.ErrPINExpired, wire.PINExpired, "the PIN must be changed first", false},
	{tpmcard.ErrNotLoggedIn, wire.NotLoggedIn, "not logged in", false},
	{tpmcard.ErrTPMFull, wire.TPMFailure, "the TPM has no room left: another program or an earlier run of the service holds its slots; stop that program, or restart the service on a TPM without a resource manager", false},
	{tpmcard.ErrTPMUnreachable, wire.TPMUnreachable, "the TPM cannot be reached: the service reconnects by itself, then log in again", false},
	{tpmcard.ErrCardLost, wire.CardLost, "the card's TPM objects are gone", false},
	{tpmcard.ErrCardAltered, wire.CardAltered, "the card was altered behind the service: its TPM objects no longer match its record", false},
	{tpmcard.ErrDestroyIncomplete, wire.DestroyIncomplete, "an earlier destroy of the card did not finish: destroy it again", false},
	{tpmcard.ErrCardOutdated, wire.CardOutdated, "the card was made by an earlier tpmcard whose PIN policy the TPM owner can forge: destroy it and create a new card", false},
	{tpmcard.ErrNVSpace, wire.NVSpaceExhausted, "the TPM has no NV space left", false},
	{tpmcard.ErrTPMBusy, wire.TPMBusy, "the TPM is busy: try again later", false},
	{tpmcard.ErrCardNotFound, wire.CardNotFound, "no such card", false},
	{tpmcard.ErrKeyNotFound, wire.KeyNotFound, "no such key", false},
	{tpmcard.ErrInvalidOptions, wire.BadRequest, "", false},
	{tpmcard.ErrUnsupported, wire.UnsupportedAlgorithm, "", false},
	{tpmcard.ErrNoPUK, wire.NoPUK, "the card has no PUK: ask the administrator for an unblock with the admin key", false},
	{tpmcard.ErrNoAdminKey, wire.NoAdminKey, "the card has no admin key", false},
	{tpmcard.ErrNoChallenge, wire.NoChallenge, "no challenge is pending for this card: ask for a new one", false},
	{tpmcard.ErrChallengeExpired, wire.ChallengeExpired, "the challenge expired: ask for a new one", false},
	{tpmcard.ErrBadResponse, wire.ResponseInvalid, "the response was not signed for this challenge by this card's admin key", false},
	{adminkey.ErrChecksum, wire.ResponseInvalid, "the response has a typing mistake (checksum mismatch): read it again", false},
	{adminkey.ErrFormat, wire.ResponseInvalid, "not a tpmcard response", false},
}

// stateDirStatus names what keeps the service from writing its state
// directory and what to do about it; nil for an error it cannot name. The
// directory's path is the administrator's own configuration, no secret.
func stateDirStatus(st *tpmcard.StateError) *wire.StatusError {
	switch {
	case isNoSpace(st.Err):
		return wire.Errorf(wire.StateDirFull, "the state directory %s is full: free space on its file system, then try again", st.Dir)
	case isReadOnly(st.Err):
		return wire.Errorf(wire.StateDirReadOnly, "the state directory %s is on a read-only file system: remount it read-write, then try again", st.Dir)
	case errors.Is(st.Err, fs.ErrPermission):
		return wire.Errorf(wire.StateDirPermission, "the service may not write its state directory %s (permission denied): make the service's user own it (chown -R), then try again", st.Dir)
	}
	return nil
}

// serverSide reports statuses about the service's own machine, which its
// log records although the client is told what happened.
func serverSide(s wire.Status) bool {
	switch s {
	case wire.StateDirFull, wire.StateDirReadOnly, wire.StateDirPermission:
		return true
	}
	return false
}

// notRecorded turns a request that succeeded in the TPM but whose record
// could not be written (tpmcard.NotRecordedError) into its warning.
func notRecorded(err error) (warning string, ok bool) {
	var nr *tpmcard.NotRecordedError
	if !errors.As(err, &nr) {
		return "", false
	}
	why := "the state directory could not be written"
	var st *tpmcard.StateError
	if errors.As(nr.Err, &st) {
		if se := stateDirStatus(st); se != nil {
			why = se.Message
		}
	}
	return nr.Done + "; but " + nr.Undone + " (" + why + ")", true
}

// cardState is what a card listing says of a card whose Status returned
// err.
func cardState(ci tpmcard.CardInfo, err error) wire.CardState {
	switch {
	case ci.DestroyIncomplete || errors.Is(err, tpmcard.ErrDestroyIncomplete):
		return wire.CardStateDestroyIncomplete
	case errors.Is(err, tpmcard.ErrCardLost):
		return wire.CardStateLost
	case errors.Is(err, tpmcard.ErrCardAltered):
		return wire.CardStateAltered
	case ci.Outdated || errors.Is(err, tpmcard.ErrCardOutdated):
		return wire.CardStateOutdated
	case err != nil:
		return wire.CardStateUnknown
	}
	return wire.CardReady
}
