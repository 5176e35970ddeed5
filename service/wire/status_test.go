package wire

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// statusGolden pins every status number. A renumbering fails here; adding
// a status means adding a row (with a new, never used number).
var statusGolden = []struct {
	s    Status
	num  uint16
	name string
}{
	{OK, 0, "OK"},
	{Unsupported, 1, "Unsupported"},
	{BadRequest, 2, "BadRequest"},
	{Internal, 3, "Internal"},
	{VersionMismatch, 4, "VersionMismatch"},
	{ServiceStopping, 5, "ServiceStopping"},
	{TooManyConnections, 6, "TooManyConnections"},
	{Timeout, 7, "Timeout"},
	{PermissionDenied, 8, "PermissionDenied"},
	{NotFound, 10, "NotFound"},
	{CardNotFound, 11, "CardNotFound"},
	{KeyNotFound, 12, "KeyNotFound"},
	{ObjectNotFound, 13, "ObjectNotFound"},
	{SlotInvalid, 14, "SlotInvalid"},
	{PINIncorrect, 20, "PINIncorrect"},
	{PINLocked, 21, "PINLocked"},
	{PINExpired, 22, "PINExpired"},
	{PINLenRange, 23, "PINLenRange"},
	{PINInvalid, 24, "PINInvalid"},
	{PUKIncorrect, 25, "PUKIncorrect"},
	{PUKLocked, 26, "PUKLocked"},
	{CardBlocked, 27, "CardBlocked"},
	{NotLoggedIn, 30, "NotLoggedIn"},
	{AlreadyLoggedIn, 31, "AlreadyLoggedIn"},
	{AnotherUserLoggedIn, 32, "AnotherUserLoggedIn"},
	{SessionInvalid, 33, "SessionInvalid"},
	{OperationActive, 34, "OperationActive"},
	{OperationNotInitialized, 35, "OperationNotInitialized"},
	{SessionReadOnly, 36, "SessionReadOnly"},
	{UserTypeInvalid, 37, "UserTypeInvalid"},
	{TooManySessions, 38, "TooManySessions"},
	{SessionParallel, 39, "SessionParallel"},
	{MechanismInvalid, 40, "MechanismInvalid"},
	{MechanismParamInvalid, 41, "MechanismParamInvalid"},
	{KeyTypeInconsistent, 42, "KeyTypeInconsistent"},
	{UnsupportedAlgorithm, 43, "UnsupportedAlgorithm"},
	{AttributeSensitive, 50, "AttributeSensitive"},
	{AttributeInvalid, 51, "AttributeInvalid"},
	{AttributeValueInvalid, 52, "AttributeValueInvalid"},
	{TemplateIncomplete, 53, "TemplateIncomplete"},
	{TemplateInconsistent, 54, "TemplateInconsistent"},
	{DataInvalid, 60, "DataInvalid"},
	{DataLenRange, 61, "DataLenRange"},
	{CertificateInvalid, 62, "CertificateInvalid"},
	{CardLost, 70, "CardLost"},
	{TPMBusy, 71, "TPMBusy"},
	{TPMFailure, 72, "TPMFailure"},
	{NVSpaceExhausted, 73, "NVSpaceExhausted"},
	{CardAltered, 74, "CardAltered"},
	{CardOutdated, 75, "CardOutdated"},
	{TPMUnreachable, 76, "TPMUnreachable"},
	{NoPUK, 28, "NoPUK"},
	{NoAdminKey, 80, "NoAdminKey"},
	{NoChallenge, 81, "NoChallenge"},
	{ChallengeExpired, 82, "ChallengeExpired"},
	{ResponseInvalid, 83, "ResponseInvalid"},
	{DestroyIncomplete, 77, "DestroyIncomplete"},
	{StateDirFull, 90, "StateDirFull"},
	{StateDirReadOnly, 91, "StateDirReadOnly"},
	{StateDirPermission, 92, "StateDirPermission"},
}

func TestStatusNumbersPinned(t *testing.T) {
	seenNum := map[uint16]string{}
	seenName := map[string]bool{}
	for _, g := range statusGolden {
		t.Run("ok/"+g.name, func(t *testing.T) {
			if uint16(g.s) != g.num {
				t.Errorf("%s = %d, pinned %d", g.name, g.s, g.num)
			}
			if g.s.String() != g.name {
				t.Errorf("String() = %q, want %q", g.s.String(), g.name)
			}
			if !g.s.Known() {
				t.Errorf("%s not Known", g.name)
			}
		})
		if prev, dup := seenNum[g.num]; dup {
			t.Errorf("number %d used by %s and %s", g.num, prev, g.name)
		}
		seenNum[g.num] = g.name
		if seenName[g.name] {
			t.Errorf("name %s twice", g.name)
		}
		seenName[g.name] = true
	}
	// Every defined status is in the golden table, and no more.
	all := Statuses()
	if len(all) != len(statusGolden) {
		t.Errorf("%d statuses defined, %d pinned", len(all), len(statusGolden))
	}
	for _, s := range all {
		if s.String() == "" || strings.HasPrefix(s.String(), "Status(") {
			t.Errorf("status %d has no name", uint16(s))
		}
		if _, ok := seenNum[uint16(s)]; !ok {
			t.Errorf("status %v (%d) missing from the golden table", s, uint16(s))
		}
	}
}

func TestStatusUnknown(t *testing.T) {
	s := Status(999)
	if s.Known() || s.String() != "Status(999)" {
		t.Fatalf("unknown status: %v %v", s.Known(), s)
	}
}

func TestStatusError(t *testing.T) {
	tests := []struct {
		name string
		err  *StatusError
		want string
	}{
		{"ok/tries", &StatusError{Status: PINIncorrect, TriesLeft: 2, Message: "wrong PIN"}, "PINIncorrect: wrong PIN (2 tries left)"},
		{"ok/one-try", &StatusError{Status: PINIncorrect, TriesLeft: 1}, "PINIncorrect (1 try left)"},
		{"ok/zero-tries", &StatusError{Status: PUKIncorrect, TriesLeft: 0}, "PUKIncorrect (0 tries left)"},
		{"ok/unknown-tries", NewError(PINLocked, "unblock with the PUK"), "PINLocked: unblock with the PUK"},
		{"ok/tries-irrelevant", &StatusError{Status: CardNotFound, TriesLeft: 0, Message: `serial "x"`}, `CardNotFound: serial "x"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.err.Error(); got != tt.want {
				t.Fatalf("Error() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestStatusErrorIs(t *testing.T) {
	err := fmt.Errorf("logging in: %w", &StatusError{Status: PINLocked, TriesLeft: 0, Message: "locked"})
	tests := []struct {
		name   string
		target error
		want   bool
	}{
		{"ok/value", StatusError{Status: PINLocked}, true},
		{"ok/pointer", &StatusError{Status: PINLocked}, true},
		{"ok/ignores-message-and-tries", NewError(PINLocked, "other"), true},
		{"fail/other-status", StatusError{Status: PINIncorrect}, false},
		{"fail/nil-pointer", (*StatusError)(nil), false},
		{"fail/other-error", errors.New("x"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := errors.Is(err, tt.target); got != tt.want {
				t.Fatalf("errors.Is = %v, want %v", got, tt.want)
			}
		})
	}
	// A StatusError held by value also works.
	if !errors.Is(fmt.Errorf("x: %w", StatusError{Status: CardLost}), StatusError{Status: CardLost}) {
		t.Fatal("value StatusError not matched")
	}
}

func TestStatusOf(t *testing.T) {
	tests := []struct {
		name  string
		err   error
		want  Status
		tries int
	}{
		{"ok/nil", nil, OK, -1},
		{"ok/pointer", fmt.Errorf("a: %w", &StatusError{Status: PINIncorrect, TriesLeft: 2}), PINIncorrect, 2},
		{"ok/value", fmt.Errorf("a: %w", StatusError{Status: PUKIncorrect, TriesLeft: 0}), PUKIncorrect, 0},
		{"ok/plain-error", errors.New("boom"), Internal, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := StatusOf(tt.err); got != tt.want {
				t.Errorf("StatusOf = %v, want %v", got, tt.want)
			}
			if got := TriesLeftOf(tt.err); got != tt.tries {
				t.Errorf("TriesLeftOf = %d, want %d", got, tt.tries)
			}
		})
	}
}

// TestStatusErrorTriesOnWire: 0 and -1 tries survive the trip, though 0 is
// omitted on the wire.
func TestStatusErrorTriesOnWire(t *testing.T) {
	for _, n := range []int{-1, 0, 1, 3} {
		b, err := Marshal(&StatusError{Status: PINIncorrect, TriesLeft: n})
		if err != nil {
			t.Fatal(err)
		}
		var got StatusError
		if err := Unmarshal(b, &got); err != nil {
			t.Fatal(err)
		}
		if got.TriesLeft != n {
			t.Errorf("TriesLeft %d came back as %d", n, got.TriesLeft)
		}
	}
}
