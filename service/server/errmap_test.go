package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/tpmcard/tpmcard/service/wire"
	"github.com/tpmcard/tpmcard/tpmcard"
)

func TestToStatus(t *testing.T) {
	wrap := func(err error) error { return fmt.Errorf("card 0123: doing things with NV index 0x1500016: %w", err) }
	for _, c := range []struct {
		name      string
		err       error
		status    wire.Status
		triesLeft int
		generic   bool
	}{
		{"ok/pin-incorrect", &tpmcard.PINError{TriesLeft: 2}, wire.PINIncorrect, 2, false},
		{"ok/pin-incorrect-unknown-tries", &tpmcard.PINError{TriesLeft: -1}, wire.PINIncorrect, -1, false},
		{"ok/puk-incorrect", wrap(&tpmcard.PINError{PUK: true, TriesLeft: 1}), wire.PUKIncorrect, 1, false},
		{"ok/pin-locked", tpmcard.ErrPINLocked, wire.PINLocked, 0, false},
		{"ok/puk-locked", wrap(tpmcard.ErrPUKLocked), wire.PUKLocked, 0, false},
		{"ok/card-blocked", tpmcard.ErrCardBlocked, wire.CardBlocked, 0, false},
		{"ok/pin-expired", tpmcard.ErrPINExpired, wire.PINExpired, -1, false},
		{"ok/not-logged-in", fmt.Errorf("%w (the PIN was changed elsewhere)", tpmcard.ErrNotLoggedIn), wire.NotLoggedIn, -1, false},
		{"ok/card-lost", wrap(tpmcard.ErrCardLost), wire.CardLost, -1, false},
		{"ok/tpm-full", wrap(tpmcard.ErrTPMFull), wire.TPMFailure, -1, false},
		{"ok/tpm-unreachable", wrap(tpmcard.ErrTPMUnreachable), wire.TPMUnreachable, -1, false},
		{"ok/nv-space", tpmcard.ErrNVSpace, wire.NVSpaceExhausted, -1, false},
		{"ok/tpm-busy", wrap(tpmcard.ErrTPMBusy), wire.TPMBusy, -1, false},
		{"ok/card-not-found", wrap(tpmcard.ErrCardNotFound), wire.CardNotFound, -1, false},
		{"ok/key-not-found", wrap(tpmcard.ErrKeyNotFound), wire.KeyNotFound, -1, false},
		{"ok/policy-length", &tpmcard.PolicyError{Length: true, Reason: "length must be 8 to 127 characters"}, wire.PINLenRange, -1, false},
		{"ok/policy-chars", &tpmcard.PolicyError{Reason: "digits are required"}, wire.PINInvalid, -1, false},
		{"ok/invalid-options", fmt.Errorf("%w: label longer than 32 bytes", tpmcard.ErrInvalidOptions), wire.BadRequest, -1, false},
		{"ok/unsupported", fmt.Errorf("generating rsa-3072 key: %w", tpmcard.ErrUnsupported), wire.UnsupportedAlgorithm, -1, false},
		{"ok/status-passes-through", wire.NewError(wire.SessionInvalid, "no session 4"), wire.SessionInvalid, -1, false},
		{"ok/deadline", context.DeadlineExceeded, wire.Timeout, -1, false},
		{"fail/unknown-is-internal", wrap(io.ErrUnexpectedEOF), wire.Internal, -1, true},
		{"fail/plain-is-internal", errors.New("TPM_RC_FAILURE at handle 0x80000001"), wire.Internal, -1, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			se, generic := toStatus(c.err)
			if se.Status != c.status || se.TriesLeft != c.triesLeft || generic != c.generic {
				t.Errorf("toStatus(%v) = %v, tries %d, generic %v; want %v, tries %d, generic %v",
					c.err, se.Status, se.TriesLeft, generic, c.status, c.triesLeft, c.generic)
			}
			if c.generic && (strings.Contains(se.Message, "0x") || strings.Contains(se.Message, "EOF")) {
				t.Errorf("generic message leaks the detail: %q", se.Message)
			}
		})
	}
}
