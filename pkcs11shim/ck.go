package main

// PKCS#11 v2.40 constants (pkcs11t.h; PKCS#11 v2.40 Base §3). They are
// written out here so that the core compiles and is tested without cgo; the
// C ABI test checks every CKR_* value below against the system's header.

// rv is a CK_RV.
type rv uint64

const (
	ckrOK                          rv = 0x000
	ckrCancel                      rv = 0x001
	ckrHostMemory                  rv = 0x002
	ckrSlotIDInvalid               rv = 0x003
	ckrGeneralError                rv = 0x005
	ckrFunctionFailed              rv = 0x006
	ckrArgumentsBad                rv = 0x007
	ckrNoEvent                     rv = 0x008
	ckrNeedToCreateThreads         rv = 0x009
	ckrCantLock                    rv = 0x00a
	ckrAttributeReadOnly           rv = 0x010
	ckrAttributeSensitive          rv = 0x011
	ckrAttributeTypeInvalid        rv = 0x012
	ckrAttributeValueInvalid       rv = 0x013
	ckrActionProhibited            rv = 0x01b
	ckrDataInvalid                 rv = 0x020
	ckrDataLenRange                rv = 0x021
	ckrDeviceError                 rv = 0x030
	ckrDeviceMemory                rv = 0x031
	ckrDeviceRemoved               rv = 0x032
	ckrFunctionCanceled            rv = 0x050
	ckrFunctionNotSupported        rv = 0x054
	ckrKeyHandleInvalid            rv = 0x060
	ckrKeySizeRange                rv = 0x062
	ckrKeyTypeInconsistent         rv = 0x063
	ckrKeyFunctionNotPermitted     rv = 0x068
	ckrMechanismInvalid            rv = 0x070
	ckrMechanismParamInvalid       rv = 0x071
	ckrObjectHandleInvalid         rv = 0x082
	ckrOperationActive             rv = 0x090
	ckrOperationNotInitialized     rv = 0x091
	ckrPINIncorrect                rv = 0x0a0
	ckrPINInvalid                  rv = 0x0a1
	ckrPINLenRange                 rv = 0x0a2
	ckrPINExpired                  rv = 0x0a3
	ckrPINLocked                   rv = 0x0a4
	ckrSessionClosed               rv = 0x0b0
	ckrSessionCount                rv = 0x0b1
	ckrSessionHandleInvalid        rv = 0x0b3
	ckrSessionParallelNotSupported rv = 0x0b4
	ckrSessionReadOnly             rv = 0x0b5
	ckrSessionExists               rv = 0x0b6
	ckrSessionReadOnlyExists       rv = 0x0b7
	ckrSessionReadWriteSOExists    rv = 0x0b8
	ckrSignatureInvalid            rv = 0x0c0
	ckrSignatureLenRange           rv = 0x0c1
	ckrTemplateIncomplete          rv = 0x0d0
	ckrTemplateInconsistent        rv = 0x0d1
	ckrTokenNotPresent             rv = 0x0e0
	ckrTokenNotRecognized          rv = 0x0e1
	ckrTokenWriteProtected         rv = 0x0e2
	ckrUserAlreadyLoggedIn         rv = 0x100
	ckrUserNotLoggedIn             rv = 0x101
	ckrUserPINNotInitialized       rv = 0x102
	ckrUserTypeInvalid             rv = 0x103
	ckrUserAnotherAlreadyLoggedIn  rv = 0x104
	ckrUserTooManyTypes            rv = 0x105
	ckrRandomSeedNotSupported      rv = 0x120
	ckrRandomNoRNG                 rv = 0x121
	ckrCurveNotSupported           rv = 0x140
	ckrBufferTooSmall              rv = 0x150
	ckrCryptokiNotInitialized      rv = 0x190
	ckrCryptokiAlreadyInitialized  rv = 0x191
	ckrPINTooWeak                  rv = 0x1c3
	ckrFunctionRejected            rv = 0x200
)

// rvNames names every CK_RV this module may return; the tests check that
// each is the value the PKCS#11 header gives that name.
var rvNames = map[rv]string{
	ckrOK: "CKR_OK", ckrCancel: "CKR_CANCEL", ckrHostMemory: "CKR_HOST_MEMORY",
	ckrSlotIDInvalid: "CKR_SLOT_ID_INVALID", ckrGeneralError: "CKR_GENERAL_ERROR",
	ckrFunctionFailed: "CKR_FUNCTION_FAILED", ckrArgumentsBad: "CKR_ARGUMENTS_BAD",
	ckrNoEvent: "CKR_NO_EVENT", ckrNeedToCreateThreads: "CKR_NEED_TO_CREATE_THREADS",
	ckrCantLock: "CKR_CANT_LOCK", ckrAttributeReadOnly: "CKR_ATTRIBUTE_READ_ONLY",
	ckrAttributeSensitive: "CKR_ATTRIBUTE_SENSITIVE", ckrAttributeTypeInvalid: "CKR_ATTRIBUTE_TYPE_INVALID",
	ckrAttributeValueInvalid: "CKR_ATTRIBUTE_VALUE_INVALID", ckrActionProhibited: "CKR_ACTION_PROHIBITED",
	ckrDataInvalid: "CKR_DATA_INVALID", ckrDataLenRange: "CKR_DATA_LEN_RANGE",
	ckrDeviceError: "CKR_DEVICE_ERROR", ckrDeviceMemory: "CKR_DEVICE_MEMORY",
	ckrDeviceRemoved: "CKR_DEVICE_REMOVED", ckrFunctionCanceled: "CKR_FUNCTION_CANCELED",
	ckrFunctionNotSupported: "CKR_FUNCTION_NOT_SUPPORTED", ckrKeyHandleInvalid: "CKR_KEY_HANDLE_INVALID",
	ckrKeySizeRange: "CKR_KEY_SIZE_RANGE", ckrKeyTypeInconsistent: "CKR_KEY_TYPE_INCONSISTENT",
	ckrKeyFunctionNotPermitted: "CKR_KEY_FUNCTION_NOT_PERMITTED", ckrMechanismInvalid: "CKR_MECHANISM_INVALID",
	ckrMechanismParamInvalid: "CKR_MECHANISM_PARAM_INVALID", ckrObjectHandleInvalid: "CKR_OBJECT_HANDLE_INVALID",
	ckrOperationActive: "CKR_OPERATION_ACTIVE", ckrOperationNotInitialized: "CKR_OPERATION_NOT_INITIALIZED",
	ckrPINIncorrect: "CKR_PIN_INCORRECT", ckrPINInvalid: "CKR_PIN_INVALID", ckrPINLenRange: "CKR_PIN_LEN_RANGE",
	ckrPINExpired: "CKR_PIN_EXPIRED", ckrPINLocked: "CKR_PIN_LOCKED", ckrSessionClosed: "CKR_SESSION_CLOSED",
	ckrSessionCount: "CKR_SESSION_COUNT", ckrSessionHandleInvalid: "CKR_SESSION_HANDLE_INVALID",
	ckrSessionParallelNotSupported: "CKR_SESSION_PARALLEL_NOT_SUPPORTED", ckrSessionReadOnly: "CKR_SESSION_READ_ONLY",
	ckrSessionExists: "CKR_SESSION_EXISTS", ckrSessionReadOnlyExists: "CKR_SESSION_READ_ONLY_EXISTS",
	ckrSessionReadWriteSOExists: "CKR_SESSION_READ_WRITE_SO_EXISTS", ckrSignatureInvalid: "CKR_SIGNATURE_INVALID",
	ckrSignatureLenRange: "CKR_SIGNATURE_LEN_RANGE", ckrTemplateIncomplete: "CKR_TEMPLATE_INCOMPLETE",
	ckrTemplateInconsistent: "CKR_TEMPLATE_INCONSISTENT", ckrTokenNotPresent: "CKR_TOKEN_NOT_PRESENT",
	ckrTokenNotRecognized: "CKR_TOKEN_NOT_RECOGNIZED", ckrTokenWriteProtected: "CKR_TOKEN_WRITE_PROTECTED",
	ckrUserAlreadyLoggedIn: "CKR_USER_ALREADY_LOGGED_IN", ckrUserNotLoggedIn: "CKR_USER_NOT_LOGGED_IN",
	ckrUserPINNotInitialized: "CKR_USER_PIN_NOT_INITIALIZED", ckrUserTypeInvalid: "CKR_USER_TYPE_INVALID",
	ckrUserAnotherAlreadyLoggedIn: "CKR_USER_ANOTHER_ALREADY_LOGGED_IN", ckrUserTooManyTypes: "CKR_USER_TOO_MANY_TYPES",
	ckrRandomSeedNotSupported: "CKR_RANDOM_SEED_NOT_SUPPORTED", ckrRandomNoRNG: "CKR_RANDOM_NO_RNG",
	ckrCurveNotSupported: "CKR_CURVE_NOT_SUPPORTED", ckrBufferTooSmall: "CKR_BUFFER_TOO_SMALL",
	ckrCryptokiNotInitialized: "CKR_CRYPTOKI_NOT_INITIALIZED", ckrCryptokiAlreadyInitialized: "CKR_CRYPTOKI_ALREADY_INITIALIZED",
	ckrPINTooWeak: "CKR_PIN_TOO_WEAK", ckrFunctionRejected: "CKR_FUNCTION_REJECTED",
}

// String returns the CKR_* name.
func (r rv) String() string {
	if n, ok := rvNames[r]; ok {
		return n
	}
	return "CKR_0x" + hex64(uint64(r))
}

func hex64(v uint64) string {
	const digits = "0123456789abcdef"
	if v == 0 {
		return "0"
	}
	var b [16]byte
	i := len(b)
	for v > 0 {
		i--
		b[i] = digits[v&0xf]
		v >>= 4
	}
	return string(b[i:])
}

// Special CK_ULONG values (PKCS#11 v2.40 §3.2).
const (
	ckUnavailableInformation = ^uint64(0) // CK_UNAVAILABLE_INFORMATION
	ckEffectivelyInfinite    = 0          // CK_EFFECTIVELY_INFINITE
	ckInvalidHandle          = 0          // CK_INVALID_HANDLE
)

// Flags.
const (
	// CK_SLOT_INFO (§3.2).
	ckfTokenPresent    = 0x1
	ckfRemovableDevice = 0x2
	ckfHWSlot          = 0x4
	// CK_SESSION_INFO (§3.6).
	ckfRWSession     = 0x2
	ckfSerialSession = 0x4
	// CK_C_INITIALIZE_ARGS (§3.7).
	ckfLibraryCantCreateOSThreads = 0x1
	ckfOSLockingOK                = 0x2
	// C_WaitForSlotEvent (§5.5).
	ckfDontBlock = 0x1
)

// User types (CK_USER_TYPE, §3.6).
const (
	ckuSO              = 0
	ckuUser            = 1
	ckuContextSpecific = 2
)

// Object classes, key types, attributes and mechanisms used by the module
// itself (the service knows the rest).
const ()

// Session states (CK_STATE, §3.6).
const (
	cksROPublic = 0
	cksRWPublic = 2
)
