//go:build cgo

// The PKCS#11 entry points (PKCS#11 v2.40 §5) and the function list. Each
// implemented function hands its arguments to the go* function of
// export.go; the others return CKR_FUNCTION_NOT_SUPPORTED.

#include <string.h>
#include "shim.h"
#include "_cgo_export.h"

// CK_INTERFACE of PKCS#11 v3.0 §3.5, which this p11-kit header predates;
// packed like the header's structures on Windows.
#ifdef _WIN32
#pragma pack(push, 1)
#endif
typedef struct tpmcard_interface {
	CK_CHAR *pInterfaceName;
	CK_VOID_PTR pFunctionList;
	CK_FLAGS flags;
} tpmcard_interface;
#ifdef _WIN32
#pragma pack(pop)
_Static_assert(sizeof(tpmcard_interface) == 2 * sizeof(void *) + sizeof(CK_FLAGS), "CK_INTERFACE is packed");
#endif

static CK_FUNCTION_LIST function_list;
static CK_CHAR interface_name[] = "PKCS 11";
static tpmcard_interface interface_v2 = { interface_name, &function_list, 0 };

#ifndef _WIN32
#include <pthread.h>

// A child of fork(2) has only the forking thread; the Go runtime's other
// threads are gone, with whatever they were doing. A garbage collection
// in progress at the fork would be one casualty: its workers and
// stop-the-world phases never finish in the child. before_fork runs just
// before every fork of the process and waits for any collection in
// progress to end (see goBeforeFork). The runtime promises nothing about
// a forked child (golang/go#15538); doc.go says what remains.
static void before_fork(void) { goBeforeFork(); }
static void register_fork_handler(void) { pthread_atfork(before_fork, NULL, NULL); }
static pthread_once_t fork_handler_once = PTHREAD_ONCE_INIT;

EXPORT CK_RV C_Initialize(CK_VOID_PTR a) {
	pthread_once(&fork_handler_once, register_fork_handler);
	return goInitialize(a);
}
#else
EXPORT CK_RV C_Initialize(CK_VOID_PTR a) { return goInitialize(a); }
#endif
EXPORT CK_RV C_Finalize(CK_VOID_PTR r) { return goFinalize(r); }
EXPORT CK_RV C_GetInfo(CK_INFO_PTR i) { return goGetInfo(i); }

EXPORT CK_RV C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR pp) {
	if (pp == NULL)
		return CKR_ARGUMENTS_BAD;
	*pp = &function_list;
	return CKR_OK;
}

// C_GetInterfaceList and C_GetInterface (PKCS#11 v3.0 §5.4) offer the
// v2.40 function list as the one interface, "PKCS 11".
EXPORT CK_RV C_GetInterfaceList(tpmcard_interface *list, CK_ULONG_PTR count) {
	if (count == NULL)
		return CKR_ARGUMENTS_BAD;
	if (list == NULL) {
		*count = 1;
		return CKR_OK;
	}
	if (*count < 1) {
		*count = 1;
		return CKR_BUFFER_TOO_SMALL;
	}
	list[0] = interface_v2;
	*count = 1;
	return CKR_OK;
}

EXPORT CK_RV C_GetInterface(CK_UTF8CHAR_PTR name, CK_VERSION_PTR version, tpmcard_interface **pp, CK_FLAGS flags) {
	if (pp == NULL)
		return CKR_ARGUMENTS_BAD;
	if (name != NULL && strcmp((const char *)name, (const char *)interface_name) != 0)
		return CKR_ARGUMENTS_BAD;
	if (version != NULL && (version->major != 2 || version->minor != 40))
		return CKR_ARGUMENTS_BAD;
	if ((flags & ~interface_v2.flags) != 0)
		return CKR_ARGUMENTS_BAD;
	*pp = &interface_v2;
	return CKR_OK;
}

EXPORT CK_RV C_GetSlotList(CK_BBOOL p, CK_SLOT_ID_PTR l, CK_ULONG_PTR n) { return goGetSlotList(p, l, n); }
EXPORT CK_RV C_GetSlotInfo(CK_SLOT_ID s, CK_SLOT_INFO_PTR i) { return goGetSlotInfo(s, i); }
EXPORT CK_RV C_GetTokenInfo(CK_SLOT_ID s, CK_TOKEN_INFO_PTR i) { return goGetTokenInfo(s, i); }
EXPORT CK_RV C_GetMechanismList(CK_SLOT_ID s, CK_MECHANISM_TYPE_PTR l, CK_ULONG_PTR n) { return goGetMechanismList(s, l, n); }
EXPORT CK_RV C_GetMechanismInfo(CK_SLOT_ID s, CK_MECHANISM_TYPE t, CK_MECHANISM_INFO_PTR i) { return goGetMechanismInfo(s, t, i); }
EXPORT CK_RV C_WaitForSlotEvent(CK_FLAGS f, CK_SLOT_ID_PTR s, CK_VOID_PTR r) { return goWaitForSlotEvent(f, s, r); }
EXPORT CK_RV C_OpenSession(CK_SLOT_ID s, CK_FLAGS f, CK_VOID_PTR a, CK_NOTIFY n, CK_SESSION_HANDLE_PTR h) { return goOpenSession(s, f, a, n, h); }
EXPORT CK_RV C_CloseSession(CK_SESSION_HANDLE h) { return goCloseSession(h); }
EXPORT CK_RV C_CloseAllSessions(CK_SLOT_ID s) { return goCloseAllSessions(s); }
EXPORT CK_RV C_GetSessionInfo(CK_SESSION_HANDLE h, CK_SESSION_INFO_PTR i) { return goGetSessionInfo(h, i); }
EXPORT CK_RV C_Login(CK_SESSION_HANDLE h, CK_USER_TYPE u, CK_UTF8CHAR_PTR p, CK_ULONG n) { return goLogin(h, u, p, n); }
EXPORT CK_RV C_Logout(CK_SESSION_HANDLE h) { return goLogout(h); }
EXPORT CK_RV C_InitPIN(CK_SESSION_HANDLE h, CK_UTF8CHAR_PTR p, CK_ULONG n) { return goInitPIN(h, p, n); }
EXPORT CK_RV C_SetPIN(CK_SESSION_HANDLE h, CK_UTF8CHAR_PTR o, CK_ULONG on, CK_UTF8CHAR_PTR p, CK_ULONG n) { return goSetPIN(h, o, on, p, n); }
EXPORT CK_RV C_CreateObject(CK_SESSION_HANDLE h, CK_ATTRIBUTE_PTR t, CK_ULONG n, CK_OBJECT_HANDLE_PTR o) { return goCreateObject(h, t, n, o); }
EXPORT CK_RV C_DestroyObject(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE o) { return goDestroyObject(h, o); }
EXPORT CK_RV C_GetAttributeValue(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE o, CK_ATTRIBUTE_PTR t, CK_ULONG n) { return goGetAttributeValue(h, o, t, n); }
EXPORT CK_RV C_FindObjectsInit(CK_SESSION_HANDLE h, CK_ATTRIBUTE_PTR t, CK_ULONG n) { return goFindObjectsInit(h, t, n); }
EXPORT CK_RV C_FindObjects(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE_PTR l, CK_ULONG m, CK_ULONG_PTR n) { return goFindObjects(h, l, m, n); }
EXPORT CK_RV C_FindObjectsFinal(CK_SESSION_HANDLE h) { return goFindObjectsFinal(h); }
EXPORT CK_RV C_SignInit(CK_SESSION_HANDLE h, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE k) { return goSignInit(h, m, k); }
EXPORT CK_RV C_Sign(CK_SESSION_HANDLE h, CK_BYTE_PTR d, CK_ULONG n, CK_BYTE_PTR s, CK_ULONG_PTR sn) { return goSign(h, d, n, s, sn); }
EXPORT CK_RV C_SignUpdate(CK_SESSION_HANDLE h, CK_BYTE_PTR p, CK_ULONG n) { return goSignUpdate(h, p, n); }
EXPORT CK_RV C_SignFinal(CK_SESSION_HANDLE h, CK_BYTE_PTR s, CK_ULONG_PTR sn) { return goSignFinal(h, s, sn); }
EXPORT CK_RV C_GenerateKeyPair(CK_SESSION_HANDLE h, CK_MECHANISM_PTR m, CK_ATTRIBUTE_PTR pt, CK_ULONG pn,
	CK_ATTRIBUTE_PTR kt, CK_ULONG kn, CK_OBJECT_HANDLE_PTR ph, CK_OBJECT_HANDLE_PTR kh) {
	return goGenerateKeyPair(h, m, pt, pn, kt, kn, ph, kh);
}
EXPORT CK_RV C_SeedRandom(CK_SESSION_HANDLE h, CK_BYTE_PTR s, CK_ULONG n) { return goSeedRandom(h, s, n); }
EXPORT CK_RV C_GenerateRandom(CK_SESSION_HANDLE h, CK_BYTE_PTR p, CK_ULONG n) { return goGenerateRandom(h, p, n); }

// Everything else.
#define UNSUPPORTED(name, args) \
	EXPORT CK_RV name args { return CKR_FUNCTION_NOT_SUPPORTED; }

UNSUPPORTED(C_InitToken, (CK_SLOT_ID s, CK_UTF8CHAR_PTR p, CK_ULONG n, CK_UTF8CHAR_PTR l))
UNSUPPORTED(C_GetOperationState, (CK_SESSION_HANDLE h, CK_BYTE_PTR s, CK_ULONG_PTR n))
UNSUPPORTED(C_SetOperationState, (CK_SESSION_HANDLE h, CK_BYTE_PTR s, CK_ULONG n, CK_OBJECT_HANDLE e, CK_OBJECT_HANDLE a))
UNSUPPORTED(C_CopyObject, (CK_SESSION_HANDLE h, CK_OBJECT_HANDLE o, CK_ATTRIBUTE_PTR t, CK_ULONG n, CK_OBJECT_HANDLE_PTR p))
UNSUPPORTED(C_GetObjectSize, (CK_SESSION_HANDLE h, CK_OBJECT_HANDLE o, CK_ULONG_PTR n))
UNSUPPORTED(C_SetAttributeValue, (CK_SESSION_HANDLE h, CK_OBJECT_HANDLE o, CK_ATTRIBUTE_PTR t, CK_ULONG n))
UNSUPPORTED(C_EncryptInit, (CK_SESSION_HANDLE h, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE k))
UNSUPPORTED(C_Encrypt, (CK_SESSION_HANDLE h, CK_BYTE_PTR d, CK_ULONG n, CK_BYTE_PTR e, CK_ULONG_PTR en))
UNSUPPORTED(C_EncryptUpdate, (CK_SESSION_HANDLE h, CK_BYTE_PTR d, CK_ULONG n, CK_BYTE_PTR e, CK_ULONG_PTR en))
UNSUPPORTED(C_EncryptFinal, (CK_SESSION_HANDLE h, CK_BYTE_PTR e, CK_ULONG_PTR en))
UNSUPPORTED(C_DecryptInit, (CK_SESSION_HANDLE h, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE k))
UNSUPPORTED(C_Decrypt, (CK_SESSION_HANDLE h, CK_BYTE_PTR e, CK_ULONG en, CK_BYTE_PTR d, CK_ULONG_PTR n))
UNSUPPORTED(C_DecryptUpdate, (CK_SESSION_HANDLE h, CK_BYTE_PTR e, CK_ULONG en, CK_BYTE_PTR d, CK_ULONG_PTR n))
UNSUPPORTED(C_DecryptFinal, (CK_SESSION_HANDLE h, CK_BYTE_PTR d, CK_ULONG_PTR n))
UNSUPPORTED(C_DigestInit, (CK_SESSION_HANDLE h, CK_MECHANISM_PTR m))
UNSUPPORTED(C_Digest, (CK_SESSION_HANDLE h, CK_BYTE_PTR d, CK_ULONG n, CK_BYTE_PTR g, CK_ULONG_PTR gn))
UNSUPPORTED(C_DigestUpdate, (CK_SESSION_HANDLE h, CK_BYTE_PTR d, CK_ULONG n))
UNSUPPORTED(C_DigestKey, (CK_SESSION_HANDLE h, CK_OBJECT_HANDLE k))
UNSUPPORTED(C_DigestFinal, (CK_SESSION_HANDLE h, CK_BYTE_PTR g, CK_ULONG_PTR gn))
UNSUPPORTED(C_SignRecoverInit, (CK_SESSION_HANDLE h, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE k))
UNSUPPORTED(C_SignRecover, (CK_SESSION_HANDLE h, CK_BYTE_PTR d, CK_ULONG n, CK_BYTE_PTR s, CK_ULONG_PTR sn))
UNSUPPORTED(C_VerifyInit, (CK_SESSION_HANDLE h, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE k))
UNSUPPORTED(C_Verify, (CK_SESSION_HANDLE h, CK_BYTE_PTR d, CK_ULONG n, CK_BYTE_PTR s, CK_ULONG sn))
UNSUPPORTED(C_VerifyUpdate, (CK_SESSION_HANDLE h, CK_BYTE_PTR d, CK_ULONG n))
UNSUPPORTED(C_VerifyFinal, (CK_SESSION_HANDLE h, CK_BYTE_PTR s, CK_ULONG sn))
UNSUPPORTED(C_VerifyRecoverInit, (CK_SESSION_HANDLE h, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE k))
UNSUPPORTED(C_VerifyRecover, (CK_SESSION_HANDLE h, CK_BYTE_PTR s, CK_ULONG sn, CK_BYTE_PTR d, CK_ULONG_PTR n))
UNSUPPORTED(C_DigestEncryptUpdate, (CK_SESSION_HANDLE h, CK_BYTE_PTR d, CK_ULONG n, CK_BYTE_PTR e, CK_ULONG_PTR en))
UNSUPPORTED(C_DecryptDigestUpdate, (CK_SESSION_HANDLE h, CK_BYTE_PTR e, CK_ULONG en, CK_BYTE_PTR d, CK_ULONG_PTR n))
UNSUPPORTED(C_SignEncryptUpdate, (CK_SESSION_HANDLE h, CK_BYTE_PTR d, CK_ULONG n, CK_BYTE_PTR e, CK_ULONG_PTR en))
UNSUPPORTED(C_DecryptVerifyUpdate, (CK_SESSION_HANDLE h, CK_BYTE_PTR e, CK_ULONG en, CK_BYTE_PTR d, CK_ULONG_PTR n))
UNSUPPORTED(C_GenerateKey, (CK_SESSION_HANDLE h, CK_MECHANISM_PTR m, CK_ATTRIBUTE_PTR t, CK_ULONG n, CK_OBJECT_HANDLE_PTR k))
UNSUPPORTED(C_WrapKey, (CK_SESSION_HANDLE h, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE w, CK_OBJECT_HANDLE k, CK_BYTE_PTR b, CK_ULONG_PTR n))
UNSUPPORTED(C_UnwrapKey, (CK_SESSION_HANDLE h, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE u, CK_BYTE_PTR b, CK_ULONG bn, CK_ATTRIBUTE_PTR t, CK_ULONG n, CK_OBJECT_HANDLE_PTR k))
UNSUPPORTED(C_DeriveKey, (CK_SESSION_HANDLE h, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE b, CK_ATTRIBUTE_PTR t, CK_ULONG n, CK_OBJECT_HANDLE_PTR k))
UNSUPPORTED(C_GetFunctionStatus, (CK_SESSION_HANDLE h))
UNSUPPORTED(C_CancelFunction, (CK_SESSION_HANDLE h))

static CK_FUNCTION_LIST function_list = {
	{ 2, 40 },
	C_Initialize,
	C_Finalize,
	C_GetInfo,
	C_GetFunctionList,
	C_GetSlotList,
	C_GetSlotInfo,
	C_GetTokenInfo,
	C_GetMechanismList,
	C_GetMechanismInfo,
	C_InitToken,
	C_InitPIN,
	C_SetPIN,
	C_OpenSession,
	C_CloseSession,
	C_CloseAllSessions,
	C_GetSessionInfo,
	C_GetOperationState,
	C_SetOperationState,
	C_Login,
	C_Logout,
	C_CreateObject,
	C_CopyObject,
	C_DestroyObject,
	C_GetObjectSize,
	C_GetAttributeValue,
	C_SetAttributeValue,
	C_FindObjectsInit,
	C_FindObjects,
	C_FindObjectsFinal,
	C_EncryptInit,
	C_Encrypt,
	C_EncryptUpdate,
	C_EncryptFinal,
	C_DecryptInit,
	C_Decrypt,
	C_DecryptUpdate,
	C_DecryptFinal,
	C_DigestInit,
	C_Digest,
	C_DigestUpdate,
	C_DigestKey,
	C_DigestFinal,
	C_SignInit,
	C_Sign,
	C_SignUpdate,
	C_SignFinal,
	C_SignRecoverInit,
	C_SignRecover,
	C_VerifyInit,
	C_Verify,
	C_VerifyUpdate,
	C_VerifyFinal,
	C_VerifyRecoverInit,
	C_VerifyRecover,
	C_DigestEncryptUpdate,
	C_DecryptDigestUpdate,
	C_SignEncryptUpdate,
	C_DecryptVerifyUpdate,
	C_GenerateKey,
	C_GenerateKeyPair,
	C_WrapKey,
	C_UnwrapKey,
	C_DeriveKey,
	C_SeedRandom,
	C_GenerateRandom,
	C_GetFunctionStatus,
	C_CancelFunction,
	C_WaitForSlotEvent,
};
