package main

import (
	"errors"
	"flag"
	"fmt"
	"strings"

	"github.com/tpmcard/tpmcard/service/client"
	"github.com/tpmcard/tpmcard/service/wire"
)

// errUsage marks a mistake in how the command was called (exit status 2).
var errUsage = errors.New("usage")

// errShown marks a usage mistake already printed (by the flag package).
var errShown = fmt.Errorf("%w: shown", errUsage)

func exitCode(err error) int {
	switch {
	case errors.Is(err, flag.ErrHelp): // -h: asked for, and given
		return 0
	case errors.Is(err, errUsage):
		return 2
	case errors.Is(err, wire.StatusError{Status: wire.PINIncorrect}), errors.Is(err, wire.StatusError{Status: wire.PUKIncorrect}):
		return 3
	case errors.Is(err, wire.StatusError{Status: wire.PINLocked}), errors.Is(err, wire.StatusError{Status: wire.PUKLocked}),
		errors.Is(err, wire.StatusError{Status: wire.CardBlocked}):
		return 4
	}
	return 1
}

// describe says what went wrong and, where there is one, what to do next.
func describe(err error) string {
	var se *wire.StatusError
	if !errors.As(err, &se) {
		switch {
		case errors.Is(err, client.ErrServiceUnreachable):
			return strings.TrimPrefix(err.Error(), "tpmcard: ") + "\n  the tpmcard service is not running: start it with `tpmcard service start`, or `tpmcard service run` in the foreground"
		case errors.Is(err, client.ErrSocketForbidden):
			return strings.TrimPrefix(err.Error(), "tpmcard: ") + "\n  you may not use the service's socket: ask your administrator to add you to the card group"
		}
		if errors.Is(err, errUsage) {
			return unwrapUsage(err)
		}
		return strings.TrimPrefix(err.Error(), "tpmcard: ")
	}
	tries := func(what string) string {
		switch se.TriesLeft {
		case -1:
			return what + " incorrect"
		case 1:
			return what + " incorrect: 1 try left before the card locks"
		}
		return fmt.Sprintf("%s incorrect: %d tries left", what, se.TriesLeft)
	}
	switch se.Status {
	case wire.PINIncorrect:
		return tries("PIN")
	case wire.PUKIncorrect:
		return tries("PUK")
	case wire.PINLocked:
		return "card locked: unblock it with `tpmcard pin unblock` and the PUK, or ask your administrator (`tpmcard admin challenge`)"
	case wire.PUKLocked:
		return "PUK locked: the card can no longer be unblocked; an administrator can only destroy it (`tpmcard card destroy`)"
	case wire.CardBlocked:
		return "card blocked: PIN and PUK are both locked; an administrator can only destroy it (`tpmcard card destroy`)"
	case wire.PINExpired:
		return "the PIN must be changed first: run `tpmcard pin change`"
	case wire.PINLenRange, wire.PINInvalid:
		return "the new PIN is refused: " + se.Message
	case wire.PermissionDenied:
		return "permission denied: " + se.Message + " (administrators are root and the service's admin group)"
	case wire.CardNotFound:
		return "no such card: `tpmcard card list` shows the cards"
	case wire.KeyNotFound, wire.ObjectNotFound:
		return "no such key: `tpmcard key list` shows the card's keys"
	case wire.CardLost:
		return "card lost: its TPM objects are gone (TPM cleared, or the state directory moved to another machine); destroy it and create a new one"
	case wire.CardAltered:
		return "card altered: its TPM objects no longer match its record (someone with TPM access changed it); do not trust it: destroy it and create a new one"
	case wire.CardOutdated:
		return "card made by an earlier tpmcard, whose PIN policy whoever holds the TPM owner authorization can forge: move its certificates elsewhere, `tpmcard card destroy` it and create a new card"
	case wire.TPMUnreachable:
		return "the service cannot reach the TPM (`tpmcard service status` says since when); it reconnects by itself: try again in a moment, and log in again"
	case wire.TPMBusy:
		return "the TPM is busy: try again in a moment"
	case wire.NoPUK:
		return "the card has no PUK: ask your administrator for an offline unblock (`tpmcard admin challenge`)"
	case wire.NoAdminKey:
		return "the card has no admin key: unblock it with the PUK (`tpmcard pin unblock`)"
	case wire.NoChallenge:
		return "no challenge is pending for the card: start again with `tpmcard admin challenge`"
	case wire.ChallengeExpired:
		return "the challenge expired: start again with `tpmcard admin challenge`"
	case wire.ResponseInvalid:
		return "the response is refused: " + se.Message + "; start again with `tpmcard admin challenge`"
	case wire.NVSpaceExhausted:
		return "the TPM has no room for another card: destroy an unused card first"
	case wire.DestroyIncomplete:
		return "an earlier destroy of the card did not finish: run `tpmcard card destroy` again to finish it"
	case wire.StateDirFull, wire.StateDirReadOnly, wire.StateDirPermission:
		// The service's message names the directory and what to do.
		return se.Message + "\n  nothing was changed"
	}
	if se.Message != "" {
		return se.Message
	}
	return se.Status.String()
}

func unwrapUsage(err error) string {
	s := err.Error()
	const p = "usage: "
	if len(s) > len(p) && s[:len(p)] == p {
		return s[len(p):]
	}
	return s
}
