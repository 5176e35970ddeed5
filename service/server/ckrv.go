package server

import (
	"github.com/tpmcard/tpmcard/service/p11"
	"github.com/tpmcard/tpmcard/service/wire"
)

// statusRV is the one table from status to CK_RV (CONVENTIONS 4). Every
// Error frame carries its entry (wire.StatusError.RV), after the rules of
// contextRV, so that the PKCS#11 module returns it without a table of its
// own. A status missing here becomes CKR_FUNCTION_FAILED.
var statusRV = map[wire.Status]uint64{
	wire.OK:                 p11.CKROK,
	wire.Unsupported:        p11.CKRFunctionNotSupported,
	wire.BadRequest:         p11.CKRArgumentsBad,
	wire.Internal:           p11.CKRFunctionFailed,
	wire.VersionMismatch:    p11.CKRDeviceError,
	wire.ServiceStopping:    p11.CKRDeviceRemoved,
	wire.TooManyConnections: p11.CKRDeviceError,
	wire.Timeout:            p11.CKRFunctionFailed,
	wire.PermissionDenied:   p11.CKRActionProhibited,

	wire.NotFound:       p11.CKRObjectHandleInvalid,
	wire.CardNotFound:   p11.CKRTokenNotPresent,
	wire.KeyNotFound:    p11.CKRKeyHandleInvalid,
	wire.ObjectNotFound: p11.CKRObjectHandleInvalid,
	wire.SlotInvalid:    p11.CKRSlotIDInvalid,

	wire.PINIncorrect: p11.CKRPINIncorrect,
	wire.PINLocked:    p11.CKRPINLocked,
	wire.PINExpired:   p11.CKRPINExpired,
	wire.PINLenRange:  p11.CKRPINLenRange,
	wire.PINInvalid:   p11.CKRPINInvalid,
	wire.PUKIncorrect: p11.CKRPINIncorrect,
	wire.PUKLocked:    p11.CKRPINLocked,
	wire.CardBlocked:  p11.CKRPINLocked,
	wire.NoPUK:        p11.CKRUserTypeInvalid, // no SO credential on this card

	wire.NotLoggedIn:             p11.CKRUserNotLoggedIn,
	wire.AlreadyLoggedIn:         p11.CKRUserAlreadyLoggedIn,
	wire.AnotherUserLoggedIn:     p11.CKRUserAnotherAlreadyLoggedIn,
	wire.SessionInvalid:          p11.CKRSessionHandleInvalid,
	wire.OperationActive:         p11.CKROperationActive,
	wire.OperationNotInitialized: p11.CKROperationNotInitialized,
	wire.SessionReadOnly:         p11.CKRSessionReadOnly,
	wire.UserTypeInvalid:         p11.CKRUserTypeInvalid,
	wire.TooManySessions:         p11.CKRSessionCount,
	wire.SessionParallel:         p11.CKRSessionParallelNotSupported,

	wire.MechanismInvalid:      p11.CKRMechanismInvalid,
	wire.MechanismParamInvalid: p11.CKRMechanismParamInvalid,
	wire.KeyTypeInconsistent:   p11.CKRKeyTypeInconsistent,
	wire.UnsupportedAlgorithm:  p11.CKRAttributeValueInvalid,

	wire.AttributeSensitive:    p11.CKRAttributeSensitive,
	wire.AttributeInvalid:      p11.CKRAttributeTypeInvalid,
	wire.AttributeValueInvalid: p11.CKRAttributeValueInvalid,
	wire.TemplateIncomplete:    p11.CKRTemplateIncomplete,
	wire.TemplateInconsistent:  p11.CKRTemplateInconsistent,

	wire.DataInvalid:        p11.CKRDataInvalid,
	wire.DataLenRange:       p11.CKRDataLenRange,
	wire.CertificateInvalid: p11.CKRAttributeValueInvalid,

	wire.CardLost:          p11.CKRDeviceError,
	wire.TPMUnreachable:    p11.CKRDeviceRemoved,
	wire.CardAltered:       p11.CKRDeviceError,
	wire.CardOutdated:      p11.CKRTokenNotRecognized,
	wire.TPMBusy:           p11.CKRFunctionFailed,
	wire.TPMFailure:        p11.CKRDeviceError,
	wire.NVSpaceExhausted:  p11.CKRDeviceMemory,
	wire.DestroyIncomplete: p11.CKRDeviceError,

	// The state directory: a full disk is out of memory to PKCS#11, a
	// read-only one a write-protected token.
	wire.StateDirFull:       p11.CKRDeviceMemory,
	wire.StateDirReadOnly:   p11.CKRTokenWriteProtected,
	wire.StateDirPermission: p11.CKRDeviceError,

	// The administrator's offline unblock (not reachable through PKCS#11,
	// mapped for completeness).
	wire.NoAdminKey:       p11.CKRFunctionNotSupported,
	wire.NoChallenge:      p11.CKROperationNotInitialized,
	wire.ChallengeExpired: p11.CKROperationNotInitialized,
	wire.ResponseInvalid:  p11.CKRSignatureInvalid,
}

// contextRV holds the exceptions to statusRV that depend on the request,
// where PKCS#11 names the same failure differently per function.
var contextRV = map[wire.Type]map[wire.Status]uint64{
	// §5.11: in the signing functions a handle that names no key, or an
	// object that is not one, is CKR_KEY_HANDLE_INVALID.
	wire.TypeSign:       keyHandleRules,
	wire.TypeSignLength: keyHandleRules,
	wire.TypeSignInit:   keyHandleRules,
	// §5.15: a token whose generator takes no seed.
	wire.TypeSeedRandom: {wire.Unsupported: p11.CKRRandomSeedNotSupported},
	// §5.6 C_Login: an SO login while a read-only session exists.
	wire.TypeLogin: {wire.SessionReadOnly: p11.CKRSessionReadOnlyExists},
	// §5.6 C_OpenSession: a read-only session while the SO is logged in.
	wire.TypeOpenSession: {wire.SessionReadOnly: p11.CKRSessionReadWriteSOExists, wire.ServiceStopping: p11.CKRTokenNotPresent},
	// Slot functions: a service on its way out has no tokens.
	wire.TypeMechanisms:   {wire.ServiceStopping: p11.CKRTokenNotPresent},
	wire.TypeGetTokenInfo: {wire.ServiceStopping: p11.CKRTokenNotPresent},
}

var keyHandleRules = map[wire.Status]uint64{
	wire.ObjectNotFound: p11.CKRKeyHandleInvalid,
	wire.NotFound:       p11.CKRKeyHandleInvalid,
}

// RV is the CK_RV of status s in the reply to a request of type t.
func RV(t wire.Type, s wire.Status) uint64 {
	if r, ok := contextRV[t][s]; ok {
		return r
	}
	if r, ok := statusRV[s]; ok {
		return r
	}
	return p11.CKRFunctionFailed
}

// withRV returns se with its RV set for a reply to t, as a copy: se may be
// shared.
func withRV(t wire.Type, se *wire.StatusError) *wire.StatusError {
	if se.RV != 0 {
		return se
	}
	cp := *se
	cp.RV = RV(t, se.Status)
	return &cp
}
