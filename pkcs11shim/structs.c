//go:build cgo

// Every access to a field of a PKCS#11 structure (see shim.h). export.go
// has checked the pointers.

#include <stddef.h>
#include <string.h>
#include "shim.h"

#ifdef _WIN32
// The header packs the structures (PKCS#11 v2.40 §2.1): a pointer right
// after a 4-byte CK_ULONG, a function pointer right after CK_VERSION.
_Static_assert(sizeof(CK_ULONG) == 4, "CK_ULONG is 4 bytes on Windows");
_Static_assert(offsetof(CK_ATTRIBUTE, pValue) == sizeof(CK_ULONG), "CK_ATTRIBUTE is packed");
_Static_assert(sizeof(CK_ATTRIBUTE) == 2 * sizeof(CK_ULONG) + sizeof(void *), "CK_ATTRIBUTE is packed");
_Static_assert(offsetof(CK_C_INITIALIZE_ARGS, pReserved) == 4 * sizeof(void *) + sizeof(CK_FLAGS), "CK_C_INITIALIZE_ARGS is packed");
_Static_assert(offsetof(CK_FUNCTION_LIST, C_Initialize) == sizeof(CK_VERSION), "CK_FUNCTION_LIST is packed");
#endif

// CK_RSA_PKCS_PSS_PARAMS passes through to the service as bytes, which
// reads them as three host CK_ULONGs (wire.ULongSize), packed or not.
_Static_assert(sizeof(CK_RSA_PKCS_PSS_PARAMS) == 3 * sizeof(CK_ULONG), "CK_RSA_PKCS_PSS_PARAMS is three CK_ULONGs");

tpmcard_tlv tpmcard_attribute(CK_ATTRIBUTE_PTR t, CK_ULONG i) {
	tpmcard_tlv r = { t[i].type, t[i].pValue, t[i].ulValueLen };
	return r;
}

void tpmcard_set_attribute_len(CK_ATTRIBUTE_PTR t, CK_ULONG i, CK_ULONG len) {
	t[i].ulValueLen = len;
}

tpmcard_tlv tpmcard_mechanism(CK_MECHANISM_PTR m) {
	tpmcard_tlv r = { m->mechanism, m->pParameter, m->ulParameterLen };
	return r;
}

tpmcard_init_args tpmcard_get_init_args(CK_C_INITIALIZE_ARGS_PTR a) {
	tpmcard_init_args r;
	memset(&r, 0, sizeof r);
	r.createMutex = a->CreateMutex != NULL;
	r.destroyMutex = a->DestroyMutex != NULL;
	r.lockMutex = a->LockMutex != NULL;
	r.unlockMutex = a->UnlockMutex != NULL;
	r.flags = a->flags;
	r.reserved = a->pReserved != NULL;
	return r;
}

void tpmcard_put_info(CK_INFO_PTR dst, tpmcard_info src) {
	memset(dst, 0, sizeof *dst);
	dst->cryptokiVersion = src.cryptokiVersion;
	memcpy(dst->manufacturerID, src.manufacturerID, sizeof dst->manufacturerID);
	dst->flags = src.flags;
	memcpy(dst->libraryDescription, src.libraryDescription, sizeof dst->libraryDescription);
	dst->libraryVersion = src.libraryVersion;
}

void tpmcard_put_slot_info(CK_SLOT_INFO_PTR dst, tpmcard_slot_info src) {
	memset(dst, 0, sizeof *dst);
	memcpy(dst->slotDescription, src.slotDescription, sizeof dst->slotDescription);
	memcpy(dst->manufacturerID, src.manufacturerID, sizeof dst->manufacturerID);
	dst->flags = src.flags;
	dst->hardwareVersion = src.hardwareVersion;
	dst->firmwareVersion = src.firmwareVersion;
}

void tpmcard_put_token_info(CK_TOKEN_INFO_PTR dst, tpmcard_token_info src) {
	memset(dst, 0, sizeof *dst);
	memcpy(dst->label, src.label, sizeof dst->label);
	memcpy(dst->manufacturerID, src.manufacturerID, sizeof dst->manufacturerID);
	memcpy(dst->model, src.model, sizeof dst->model);
	memcpy(dst->serialNumber, src.serialNumber, sizeof dst->serialNumber);
	dst->flags = src.flags;
	dst->ulMaxSessionCount = src.ulMaxSessionCount;
	dst->ulSessionCount = src.ulSessionCount;
	dst->ulMaxRwSessionCount = src.ulMaxRwSessionCount;
	dst->ulRwSessionCount = src.ulRwSessionCount;
	dst->ulMaxPinLen = src.ulMaxPinLen;
	dst->ulMinPinLen = src.ulMinPinLen;
	dst->ulTotalPublicMemory = src.ulTotalPublicMemory;
	dst->ulFreePublicMemory = src.ulFreePublicMemory;
	dst->ulTotalPrivateMemory = src.ulTotalPrivateMemory;
	dst->ulFreePrivateMemory = src.ulFreePrivateMemory;
	dst->hardwareVersion = src.hardwareVersion;
	dst->firmwareVersion = src.firmwareVersion;
	memcpy(dst->utcTime, src.utcTime, sizeof dst->utcTime);
}

void tpmcard_put_session_info(CK_SESSION_INFO_PTR dst, tpmcard_session_info src) {
	memset(dst, 0, sizeof *dst);
	dst->slotID = src.slotID;
	dst->state = src.state;
	dst->flags = src.flags;
	dst->ulDeviceError = src.ulDeviceError;
}

void tpmcard_put_mechanism_info(CK_MECHANISM_INFO_PTR dst, tpmcard_mechanism_info src) {
	memset(dst, 0, sizeof *dst);
	dst->ulMinKeySize = src.ulMinKeySize;
	dst->ulMaxKeySize = src.ulMaxKeySize;
	dst->flags = src.flags;
}
