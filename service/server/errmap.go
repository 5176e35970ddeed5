package server

import (
	"context"
	"errors"

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
	{tpmcard.ErrTPMUnreachable, wire.TPMUnreachable, "the TPM cannot be reached: the service reconnects by itself, then log in again", false},
	{tpmcard.ErrCardLost, wire.CardLost, "the card's TPM objects are gone", false},
	{tpmcard.ErrCardAltered, wire.CardAltered, "the card was altered behind the service: its TPM objects no longer match its record", false},
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
