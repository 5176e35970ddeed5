package main

import (
	"errors"

	"github.com/tpmcard/tpmcard/service/wire"
)

// statusRV is the one table from service status to CK_RV (CONVENTIONS 4).
// A status missing here, a newer server's say, becomes CKR_FUNCTION_FAILED.
var statusRV = map[wire.Status]rv{
	wire.OK:                 ckrOK,
	wire.Unsupported:        ckrFunctionNotSupported,
	wire.BadRequest:         ckrArgumentsBad,
	wire.Internal:           ckrFunctionFailed,
	wire.VersionMismatch:    ckrDeviceError,
	wire.ServiceStopping:    ckrDeviceRemoved,
	wire.TooManyConnections: ckrDeviceError,
	wire.Timeout:            ckrFunctionFailed,
	wire.PermissionDenied:   ckrActionProhibited,

	wire.NotFound:       ckrObjectHandleInvalid,
	wire.CardNotFound:   ckrTokenNotPresent,
	wire.KeyNotFound:    ckrKeyHandleInvalid,
	wire.ObjectNotFound: ckrObjectHandleInvalid,

	wire.PINIncorrect: ckrPINIncorrect,
	wire.PINLocked:    ckrPINLocked,
	wire.PINExpired:   ckrPINExpired,
	wire.PINLenRange:  ckrPINLenRange,
	wire.PINInvalid:   ckrPINInvalid,
	wire.PUKIncorrect: ckrPINIncorrect,
	wire.PUKLocked:    ckrPINLocked,
	wire.CardBlocked:  ckrPINLocked,
	wire.NoPUK:        ckrUserTypeInvalid, // no SO credential on this card

	wire.NotLoggedIn:             ckrUserNotLoggedIn,
	wire.AlreadyLoggedIn:         ckrUserAlreadyLoggedIn,
	wire.AnotherUserLoggedIn:     ckrUserAnotherAlreadyLoggedIn,
	wire.SessionInvalid:          ckrSessionHandleInvalid,
	wire.OperationActive:         ckrOperationActive,
	wire.OperationNotInitialized: ckrOperationNotInitialized,
	wire.SessionReadOnly:         ckrSessionReadOnly,
	wire.UserTypeInvalid:         ckrUserTypeInvalid,
	wire.TooManySessions:         ckrSessionCount,

	wire.MechanismInvalid:      ckrMechanismInvalid,
	wire.MechanismParamInvalid: ckrMechanismParamInvalid,
	wire.KeyTypeInconsistent:   ckrKeyTypeInconsistent,
	wire.UnsupportedAlgorithm:  ckrAttributeValueInvalid,

	wire.AttributeSensitive:    ckrAttributeSensitive,
	wire.AttributeInvalid:      ckrAttributeTypeInvalid,
	wire.AttributeValueInvalid: ckrAttributeValueInvalid,
	wire.TemplateIncomplete:    ckrTemplateIncomplete,
	wire.TemplateInconsistent:  ckrTemplateInconsistent,

	wire.DataInvalid:        ckrDataInvalid,
	wire.DataLenRange:       ckrDataLenRange,
	wire.CertificateInvalid: ckrAttributeValueInvalid,

	wire.CardLost:          ckrDeviceError,
	wire.TPMUnreachable:    ckrDeviceRemoved,
	wire.CardAltered:       ckrDeviceError,
	wire.CardOutdated:      ckrTokenNotRecognized,
	wire.TPMBusy:           ckrFunctionFailed,
	wire.TPMFailure:        ckrDeviceError,
	wire.NVSpaceExhausted:  ckrDeviceMemory,
	wire.DestroyIncomplete: ckrDeviceError,

	// The state directory: a full disk is out of memory to PKCS#11, a
	// read-only one a write-protected token.
	wire.StateDirFull:       ckrDeviceMemory,
	wire.StateDirReadOnly:   ckrTokenWriteProtected,
	wire.StateDirPermission: ckrDeviceError,

	// The administrator's offline unblock (not reachable through PKCS#11,
	// mapped for completeness).
	wire.NoAdminKey:       ckrFunctionNotSupported,
	wire.NoChallenge:      ckrOperationNotInitialized,
	wire.ChallengeExpired: ckrOperationNotInitialized,
	wire.ResponseInvalid:  ckrSignatureInvalid,
}

// statusToRV maps a status through statusRV.
func statusToRV(s wire.Status) rv {
	if r, ok := statusRV[s]; ok {
		return r
	}
	return ckrFunctionFailed
}

// isStatusError reports whether err is a reply of the service (as opposed
// to a broken connection).
func isStatusError(err error) bool {
	var pe *wire.StatusError
	var ve wire.StatusError
	return errors.As(err, &pe) || errors.As(err, &ve)
}
