package wire

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
)

// Status is the outcome of a request. The numbers are part of the protocol:
// they are written out explicitly, never renumbered and never reused. The
// service maps them to CK_RV in one table and sends the CK_RV along
// (StatusError.RV).
type Status uint16

// General.
const (
	OK                 Status = 0
	Unsupported        Status = 1 // request or feature not implemented by this server
	BadRequest         Status = 2 // malformed or out-of-range arguments
	Internal           Status = 3 // server-side bug or unexpected failure; details in the service log
	VersionMismatch    Status = 4 // Hello named a protocol version the server does not speak
	ServiceStopping    Status = 5 // the service is shutting down
	TooManyConnections Status = 6
	Timeout            Status = 7 // e.g. WaitEvent saw no event in time
	PermissionDenied   Status = 8 // the peer may not do this (e.g. admin request from a non-admin)
)

// Cards and objects.
const (
	NotFound       Status = 10
	CardNotFound   Status = 11 // no card with that serial
	KeyNotFound    Status = 12
	ObjectNotFound Status = 13 // no object with that handle (CKR_OBJECT_HANDLE_INVALID)
	SlotInvalid    Status = 14 // no slot with that ID (CKR_SLOT_ID_INVALID)
)

// PIN and PUK.
const (
	PINIncorrect Status = 20 // wrong PIN; TriesLeft says how many remain
	PINLocked    Status = 21 // PIN tries exhausted; unblock with the PUK
	PINExpired   Status = 22 // PIN must be changed before the card signs
	PINLenRange  Status = 23 // new PIN too short or too long
	PINInvalid   Status = 24 // new PIN violates the card's policy
	PUKIncorrect Status = 25 // wrong PUK; TriesLeft says how many remain
	PUKLocked    Status = 26 // PUK tries exhausted
	CardBlocked  Status = 27 // PIN and PUK exhausted: the card can only be destroyed
	NoPUK        Status = 28 // the card has no PUK: only its admin key unblocks it
)

// Sessions and login.
const (
	NotLoggedIn             Status = 30
	AlreadyLoggedIn         Status = 31
	AnotherUserLoggedIn     Status = 32
	SessionInvalid          Status = 33 // unknown or closed session number
	OperationActive         Status = 34
	OperationNotInitialized Status = 35
	SessionReadOnly         Status = 36 // write attempted in a read-only session
	UserTypeInvalid         Status = 37 // Login with a user type other than SO, User, ContextSpecific
	TooManySessions         Status = 38
	SessionParallel         Status = 39 // OpenSession without CKF_SERIAL_SESSION
)

// Mechanisms and keys.
const (
	MechanismInvalid      Status = 40
	MechanismParamInvalid Status = 41
	KeyTypeInconsistent   Status = 42
	UnsupportedAlgorithm  Status = 43 // key algorithm not offered (by tpmcard or by this TPM)
)

// Attributes and templates.
const (
	AttributeSensitive    Status = 50
	AttributeInvalid      Status = 51 // unknown attribute type (CKR_ATTRIBUTE_TYPE_INVALID)
	AttributeValueInvalid Status = 52
	TemplateIncomplete    Status = 53
	TemplateInconsistent  Status = 54
)

// Data.
const (
	DataInvalid        Status = 60
	DataLenRange       Status = 61
	CertificateInvalid Status = 62
)

// TPM.
const (
	CardLost          Status = 70 // the card's TPM objects are gone (cleared TPM, other machine)
	TPMBusy           Status = 71 // transient (TPM_RC_RETRY, TPM_RC_NV_RATE …); try again
	TPMFailure        Status = 72 // the TPM failed the command
	NVSpaceExhausted  Status = 73 // no room left in TPM NV memory
	CardAltered       Status = 74 // the TPM's objects no longer match the card's record
	CardOutdated      Status = 75 // made by an earlier tpmcard with a forgeable policy: destroy it
	TPMUnreachable    Status = 76 // the TPM connection broke; the service reconnects, logins ended
	DestroyIncomplete Status = 77 // a destroy of the card did not finish: destroy it again
)

// The administrator's offline unblock.
const (
	NoAdminKey       Status = 80 // the card was made without an admin key
	NoChallenge      Status = 81 // no challenge is pending for the card
	ChallengeExpired Status = 82 // the challenge's time ran out
	ResponseInvalid  Status = 83 // not this challenge, this card, this operation or this key
)

// The service's state directory (card records). Nothing was changed; the
// message names the directory and what to do.
const (
	StateDirFull       Status = 90 // no space left on its file system (ENOSPC, EDQUOT)
	StateDirReadOnly   Status = 91 // its file system is mounted read-only (EROFS)
	StateDirPermission Status = 92 // the service may not write it (EACCES, EPERM)
)

var statusNames = map[Status]string{
	OK:                      "OK",
	Unsupported:             "Unsupported",
	BadRequest:              "BadRequest",
	Internal:                "Internal",
	VersionMismatch:         "VersionMismatch",
	ServiceStopping:         "ServiceStopping",
	TooManyConnections:      "TooManyConnections",
	Timeout:                 "Timeout",
	PermissionDenied:        "PermissionDenied",
	NotFound:                "NotFound",
	CardNotFound:            "CardNotFound",
	KeyNotFound:             "KeyNotFound",
	ObjectNotFound:          "ObjectNotFound",
	SlotInvalid:             "SlotInvalid",
	PINIncorrect:            "PINIncorrect",
	PINLocked:               "PINLocked",
	PINExpired:              "PINExpired",
	PINLenRange:             "PINLenRange",
	PINInvalid:              "PINInvalid",
	PUKIncorrect:            "PUKIncorrect",
	PUKLocked:               "PUKLocked",
	CardBlocked:             "CardBlocked",
	NotLoggedIn:             "NotLoggedIn",
	AlreadyLoggedIn:         "AlreadyLoggedIn",
	AnotherUserLoggedIn:     "AnotherUserLoggedIn",
	SessionInvalid:          "SessionInvalid",
	OperationActive:         "OperationActive",
	OperationNotInitialized: "OperationNotInitialized",
	SessionReadOnly:         "SessionReadOnly",
	UserTypeInvalid:         "UserTypeInvalid",
	TooManySessions:         "TooManySessions",
	SessionParallel:         "SessionParallel",
	MechanismInvalid:        "MechanismInvalid",
	MechanismParamInvalid:   "MechanismParamInvalid",
	KeyTypeInconsistent:     "KeyTypeInconsistent",
	UnsupportedAlgorithm:    "UnsupportedAlgorithm",
	AttributeSensitive:      "AttributeSensitive",
	AttributeInvalid:        "AttributeInvalid",
	AttributeValueInvalid:   "AttributeValueInvalid",
	TemplateIncomplete:      "TemplateIncomplete",
	TemplateInconsistent:    "TemplateInconsistent",
	DataInvalid:             "DataInvalid",
	DataLenRange:            "DataLenRange",
	CertificateInvalid:      "CertificateInvalid",
	CardLost:                "CardLost",
	TPMBusy:                 "TPMBusy",
	TPMFailure:              "TPMFailure",
	NVSpaceExhausted:        "NVSpaceExhausted",
	CardAltered:             "CardAltered",
	CardOutdated:            "CardOutdated",
	TPMUnreachable:          "TPMUnreachable",
	NoPUK:                   "NoPUK",
	NoAdminKey:              "NoAdminKey",
	NoChallenge:             "NoChallenge",
	ChallengeExpired:        "ChallengeExpired",
	ResponseInvalid:         "ResponseInvalid",
	DestroyIncomplete:       "DestroyIncomplete",
	StateDirFull:            "StateDirFull",
	StateDirReadOnly:        "StateDirReadOnly",
	StateDirPermission:      "StateDirPermission",
}

// String returns the status's Go name, or "Status(N)" for a number this
// build does not know (a newer server may send one).
func (s Status) String() string {
	if n, ok := statusNames[s]; ok {
		return n
	}
	return "Status(" + strconv.Itoa(int(s)) + ")"
}

// Known reports whether s is a status this build defines.
func (s Status) Known() bool {
	_, ok := statusNames[s]
	return ok
}

// Statuses returns every defined status, for tables that must cover them
// all (the CK_RV mapping in the PKCS#11 module, for one).
func Statuses() []Status {
	out := make([]Status, 0, len(statusNames))
	for s := range statusNames {
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}

// credential reports whether s is about a PIN or PUK try, where TriesLeft
// means something.
func (s Status) credential() bool {
	switch s {
	case PINIncorrect, PINLocked, PUKIncorrect, PUKLocked, CardBlocked:
		return true
	}
	return false
}

// StatusError is a failed request as the client sees it. It is also the
// body of an Error frame.
type StatusError struct {
	Status Status `cbor:"1,keyasint,omitempty"`
	// TriesLeft is the number of PIN or PUK tries that remain, or -1 when
	// unknown or not applicable. Build errors with NewError so it starts at
	// -1; the zero value means "0 tries left".
	TriesLeft int `cbor:"2,keyasint,omitempty"`
	// Message is a short human-readable detail. It never holds secrets.
	Message string `cbor:"3,keyasint,omitempty"`
	// RV is the CK_RV the PKCS#11 module returns for this reply, chosen by
	// the service for the request it answers (docs/wire.md). The service
	// sets it on every Error frame; 0 means a peer that does not.
	RV uint64 `cbor:"4,keyasint,omitempty"`
}

// NewError returns a StatusError with the status and message and TriesLeft
// unknown (-1).
func NewError(s Status, msg string) *StatusError {
	return &StatusError{Status: s, TriesLeft: -1, Message: msg}
}

// Errorf is NewError with a formatted message.
func Errorf(s Status, format string, args ...any) *StatusError {
	return NewError(s, fmt.Sprintf(format, args...))
}

// Error implements error. Example: "PINIncorrect: wrong PIN (2 tries left)".
func (e StatusError) Error() string {
	msg := e.Status.String()
	if e.Message != "" {
		msg += ": " + e.Message
	}
	if e.TriesLeft >= 0 && e.Status.credential() {
		if e.TriesLeft == 1 {
			msg += " (1 try left)"
		} else {
			msg += " (" + strconv.Itoa(e.TriesLeft) + " tries left)"
		}
	}
	return msg
}

// Is makes errors.Is match on the status alone, so
// errors.Is(err, wire.StatusError{Status: wire.PINLocked}) and
// errors.Is(err, &wire.StatusError{Status: wire.PINLocked}) both work
// whatever the message and tries.
func (e StatusError) Is(target error) bool {
	switch t := target.(type) {
	case StatusError:
		return e.Status == t.Status
	case *StatusError:
		return t != nil && e.Status == t.Status
	}
	return false
}

// StatusOf returns the status carried by err: OK for nil, the Status of a
// StatusError anywhere in err's chain, and Internal for any other error.
func StatusOf(err error) Status {
	if err == nil {
		return OK
	}
	var pe *StatusError
	if errors.As(err, &pe) {
		return pe.Status
	}
	var ve StatusError
	if errors.As(err, &ve) {
		return ve.Status
	}
	return Internal
}

// TriesLeftOf returns the TriesLeft of the StatusError in err's chain, or -1.
func TriesLeftOf(err error) int {
	var pe *StatusError
	if errors.As(err, &pe) {
		return pe.TriesLeft
	}
	var ve StatusError
	if errors.As(err, &ve) {
		return ve.TriesLeft
	}
	return -1
}
