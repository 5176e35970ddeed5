package p11

// Return values (CK_RV, PKCS#11 v2.40 §3.6 and pkcs11t.h). The service
// answers every failed request with one of them (wire.StatusError.RV);
// the module returns it as it is.
const (
	CKROK                          = 0x000
	CKRCancel                      = 0x001
	CKRHostMemory                  = 0x002
	CKRSlotIDInvalid               = 0x003
	CKRGeneralError                = 0x005
	CKRFunctionFailed              = 0x006
	CKRArgumentsBad                = 0x007
	CKRNoEvent                     = 0x008
	CKRNeedToCreateThreads         = 0x009
	CKRCantLock                    = 0x00a
	CKRAttributeReadOnly           = 0x010
	CKRAttributeSensitive          = 0x011
	CKRAttributeTypeInvalid        = 0x012
	CKRAttributeValueInvalid       = 0x013
	CKRActionProhibited            = 0x01b
	CKRDataInvalid                 = 0x020
	CKRDataLenRange                = 0x021
	CKRDeviceError                 = 0x030
	CKRDeviceMemory                = 0x031
	CKRDeviceRemoved               = 0x032
	CKRFunctionCanceled            = 0x050
	CKRFunctionNotSupported        = 0x054
	CKRKeyHandleInvalid            = 0x060
	CKRKeySizeRange                = 0x062
	CKRKeyTypeInconsistent         = 0x063
	CKRKeyFunctionNotPermitted     = 0x068
	CKRMechanismInvalid            = 0x070
	CKRMechanismParamInvalid       = 0x071
	CKRObjectHandleInvalid         = 0x082
	CKROperationActive             = 0x090
	CKROperationNotInitialized     = 0x091
	CKRPINIncorrect                = 0x0a0
	CKRPINInvalid                  = 0x0a1
	CKRPINLenRange                 = 0x0a2
	CKRPINExpired                  = 0x0a3
	CKRPINLocked                   = 0x0a4
	CKRSessionClosed               = 0x0b0
	CKRSessionCount                = 0x0b1
	CKRSessionHandleInvalid        = 0x0b3
	CKRSessionParallelNotSupported = 0x0b4
	CKRSessionReadOnly             = 0x0b5
	CKRSessionExists               = 0x0b6
	CKRSessionReadOnlyExists       = 0x0b7
	CKRSessionReadWriteSOExists    = 0x0b8
	CKRSignatureInvalid            = 0x0c0
	CKRSignatureLenRange           = 0x0c1
	CKRTemplateIncomplete          = 0x0d0
	CKRTemplateInconsistent        = 0x0d1
	CKRTokenNotPresent             = 0x0e0
	CKRTokenNotRecognized          = 0x0e1
	CKRTokenWriteProtected         = 0x0e2
	CKRUserAlreadyLoggedIn         = 0x100
	CKRUserNotLoggedIn             = 0x101
	CKRUserPINNotInitialized       = 0x102
	CKRUserTypeInvalid             = 0x103
	CKRUserAnotherAlreadyLoggedIn  = 0x104
	CKRUserTooManyTypes            = 0x105
	CKRRandomSeedNotSupported      = 0x120
	CKRRandomNoRNG                 = 0x121
	CKRCurveNotSupported           = 0x140
	CKRBufferTooSmall              = 0x150
	CKRCryptokiNotInitialized      = 0x190
	CKRCryptokiAlreadyInitialized  = 0x191
	CKRPINTooWeak                  = 0x1c3
	CKRFunctionRejected            = 0x200
)

// RVNames names every CK_RV above by its pkcs11t.h name; the module's
// C ABI test checks each against the header.
var RVNames = map[uint64]string{
	CKROK:                          "CKR_OK",
	CKRCancel:                      "CKR_CANCEL",
	CKRHostMemory:                  "CKR_HOST_MEMORY",
	CKRSlotIDInvalid:               "CKR_SLOT_ID_INVALID",
	CKRGeneralError:                "CKR_GENERAL_ERROR",
	CKRFunctionFailed:              "CKR_FUNCTION_FAILED",
	CKRArgumentsBad:                "CKR_ARGUMENTS_BAD",
	CKRNoEvent:                     "CKR_NO_EVENT",
	CKRNeedToCreateThreads:         "CKR_NEED_TO_CREATE_THREADS",
	CKRCantLock:                    "CKR_CANT_LOCK",
	CKRAttributeReadOnly:           "CKR_ATTRIBUTE_READ_ONLY",
	CKRAttributeSensitive:          "CKR_ATTRIBUTE_SENSITIVE",
	CKRAttributeTypeInvalid:        "CKR_ATTRIBUTE_TYPE_INVALID",
	CKRAttributeValueInvalid:       "CKR_ATTRIBUTE_VALUE_INVALID",
	CKRActionProhibited:            "CKR_ACTION_PROHIBITED",
	CKRDataInvalid:                 "CKR_DATA_INVALID",
	CKRDataLenRange:                "CKR_DATA_LEN_RANGE",
	CKRDeviceError:                 "CKR_DEVICE_ERROR",
	CKRDeviceMemory:                "CKR_DEVICE_MEMORY",
	CKRDeviceRemoved:               "CKR_DEVICE_REMOVED",
	CKRFunctionCanceled:            "CKR_FUNCTION_CANCELED",
	CKRFunctionNotSupported:        "CKR_FUNCTION_NOT_SUPPORTED",
	CKRKeyHandleInvalid:            "CKR_KEY_HANDLE_INVALID",
	CKRKeySizeRange:                "CKR_KEY_SIZE_RANGE",
	CKRKeyTypeInconsistent:         "CKR_KEY_TYPE_INCONSISTENT",
	CKRKeyFunctionNotPermitted:     "CKR_KEY_FUNCTION_NOT_PERMITTED",
	CKRMechanismInvalid:            "CKR_MECHANISM_INVALID",
	CKRMechanismParamInvalid:       "CKR_MECHANISM_PARAM_INVALID",
	CKRObjectHandleInvalid:         "CKR_OBJECT_HANDLE_INVALID",
	CKROperationActive:             "CKR_OPERATION_ACTIVE",
	CKROperationNotInitialized:     "CKR_OPERATION_NOT_INITIALIZED",
	CKRPINIncorrect:                "CKR_PIN_INCORRECT",
	CKRPINInvalid:                  "CKR_PIN_INVALID",
	CKRPINLenRange:                 "CKR_PIN_LEN_RANGE",
	CKRPINExpired:                  "CKR_PIN_EXPIRED",
	CKRPINLocked:                   "CKR_PIN_LOCKED",
	CKRSessionClosed:               "CKR_SESSION_CLOSED",
	CKRSessionCount:                "CKR_SESSION_COUNT",
	CKRSessionHandleInvalid:        "CKR_SESSION_HANDLE_INVALID",
	CKRSessionParallelNotSupported: "CKR_SESSION_PARALLEL_NOT_SUPPORTED",
	CKRSessionReadOnly:             "CKR_SESSION_READ_ONLY",
	CKRSessionExists:               "CKR_SESSION_EXISTS",
	CKRSessionReadOnlyExists:       "CKR_SESSION_READ_ONLY_EXISTS",
	CKRSessionReadWriteSOExists:    "CKR_SESSION_READ_WRITE_SO_EXISTS",
	CKRSignatureInvalid:            "CKR_SIGNATURE_INVALID",
	CKRSignatureLenRange:           "CKR_SIGNATURE_LEN_RANGE",
	CKRTemplateIncomplete:          "CKR_TEMPLATE_INCOMPLETE",
	CKRTemplateInconsistent:        "CKR_TEMPLATE_INCONSISTENT",
	CKRTokenNotPresent:             "CKR_TOKEN_NOT_PRESENT",
	CKRTokenNotRecognized:          "CKR_TOKEN_NOT_RECOGNIZED",
	CKRTokenWriteProtected:         "CKR_TOKEN_WRITE_PROTECTED",
	CKRUserAlreadyLoggedIn:         "CKR_USER_ALREADY_LOGGED_IN",
	CKRUserNotLoggedIn:             "CKR_USER_NOT_LOGGED_IN",
	CKRUserPINNotInitialized:       "CKR_USER_PIN_NOT_INITIALIZED",
	CKRUserTypeInvalid:             "CKR_USER_TYPE_INVALID",
	CKRUserAnotherAlreadyLoggedIn:  "CKR_USER_ANOTHER_ALREADY_LOGGED_IN",
	CKRUserTooManyTypes:            "CKR_USER_TOO_MANY_TYPES",
	CKRRandomSeedNotSupported:      "CKR_RANDOM_SEED_NOT_SUPPORTED",
	CKRRandomNoRNG:                 "CKR_RANDOM_NO_RNG",
	CKRCurveNotSupported:           "CKR_CURVE_NOT_SUPPORTED",
	CKRBufferTooSmall:              "CKR_BUFFER_TOO_SMALL",
	CKRCryptokiNotInitialized:      "CKR_CRYPTOKI_NOT_INITIALIZED",
	CKRCryptokiAlreadyInitialized:  "CKR_CRYPTOKI_ALREADY_INITIALIZED",
	CKRPINTooWeak:                  "CKR_PIN_TOO_WEAK",
	CKRFunctionRejected:            "CKR_FUNCTION_REJECTED",
}

// Slot, token and session numbers (PKCS#11 v2.40 §3.2, §3.6).
const (
	// CK_SLOT_INFO flags.
	CKFTokenPresent    = 0x1
	CKFRemovableDevice = 0x2
	CKFHWSlot          = 0x4
	// CK_SESSION_INFO flags, and C_OpenSession's.
	CKFRWSession     = 0x2
	CKFSerialSession = 0x4

	// CK_USER_TYPE.
	CKUSO              = 0
	CKUUser            = 1
	CKUContextSpecific = 2

	// CK_STATE.
	CKSROPublic = 0
	CKSROUser   = 1
	CKSRWPublic = 2
	CKSRWUser   = 3
	CKSRWSO     = 4

	// Special CK_ULONG values: CK_UNAVAILABLE_INFORMATION is all ones,
	// which a 32-bit CK_ULONG truncates to its own all ones.
	CKUnavailableInformation = ^uint64(0)
	CKEffectivelyInfinite    = 0
)
