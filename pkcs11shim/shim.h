// The PKCS#11 header, and the C side of the structures it defines.
//
// The Windows PKCS#11 headers pack every structure to 1-byte alignment
// (PKCS#11 v2.40 §2.1; p11-kit's pkcs11.h does so for _WIN32), and cgo
// cannot reach the fields of a packed structure. So export.go never
// touches a PKCS#11 structure: structs.c reads and writes them, and Go
// sees only the tpmcard_* structures below, which have natural alignment
// on every platform. export.go thus compiles the same whatever the
// packing.

#ifndef TPMCARD_SHIM_H
#define TPMCARD_SHIM_H

#ifdef _WIN32
// The header declares the C_* functions __declspec(dllexport), not
// dllimport: this DLL defines them.
#define CRYPTOKI_EXPORTS 1
#endif
#include <p11-kit/pkcs11.h>

// EXPORT marks the entry points; the tpmcard_* helpers stay internal.
#ifdef _WIN32
#define EXPORT __declspec(dllexport)
#define INTERNAL
#else
#define EXPORT __attribute__((visibility("default")))
#define INTERNAL __attribute__((visibility("hidden")))
#endif

// TPMCARD_FIELD_LEN is the size of an array field of a PKCS#11 structure.
#define TPMCARD_FIELD_LEN(type, field) sizeof(((type *)0)->field)

// tpmcard_tlv is one CK_ATTRIBUTE, or a CK_MECHANISM with its parameter.
typedef struct tpmcard_tlv {
	CK_ULONG type;
	CK_VOID_PTR value;
	CK_ULONG len;
} tpmcard_tlv;

INTERNAL tpmcard_tlv tpmcard_attribute(CK_ATTRIBUTE_PTR t, CK_ULONG i);
INTERNAL void tpmcard_set_attribute_len(CK_ATTRIBUTE_PTR t, CK_ULONG i, CK_ULONG len);
INTERNAL tpmcard_tlv tpmcard_mechanism(CK_MECHANISM_PTR m);

// tpmcard_init_args is CK_C_INITIALIZE_ARGS: which pointers are set, and
// the flags.
typedef struct tpmcard_init_args {
	CK_BBOOL createMutex, destroyMutex, lockMutex, unlockMutex;
	CK_FLAGS flags;
	CK_BBOOL reserved;
} tpmcard_init_args;

INTERNAL tpmcard_init_args tpmcard_get_init_args(CK_C_INITIALIZE_ARGS_PTR a);

// The information structures, field for field; tpmcard_put_* zero the
// caller's structure and fill it in. They take their source by value, so
// that the Go side passes no pointer and allocates nothing.

typedef struct tpmcard_info {
	CK_VERSION cryptokiVersion;
	CK_UTF8CHAR manufacturerID[TPMCARD_FIELD_LEN(CK_INFO, manufacturerID)];
	CK_FLAGS flags;
	CK_UTF8CHAR libraryDescription[TPMCARD_FIELD_LEN(CK_INFO, libraryDescription)];
	CK_VERSION libraryVersion;
} tpmcard_info;

typedef struct tpmcard_slot_info {
	CK_UTF8CHAR slotDescription[TPMCARD_FIELD_LEN(CK_SLOT_INFO, slotDescription)];
	CK_UTF8CHAR manufacturerID[TPMCARD_FIELD_LEN(CK_SLOT_INFO, manufacturerID)];
	CK_FLAGS flags;
	CK_VERSION hardwareVersion;
	CK_VERSION firmwareVersion;
} tpmcard_slot_info;

typedef struct tpmcard_token_info {
	CK_UTF8CHAR label[TPMCARD_FIELD_LEN(CK_TOKEN_INFO, label)];
	CK_UTF8CHAR manufacturerID[TPMCARD_FIELD_LEN(CK_TOKEN_INFO, manufacturerID)];
	CK_UTF8CHAR model[TPMCARD_FIELD_LEN(CK_TOKEN_INFO, model)];
	CK_CHAR serialNumber[TPMCARD_FIELD_LEN(CK_TOKEN_INFO, serialNumber)];
	CK_FLAGS flags;
	CK_ULONG ulMaxSessionCount;
	CK_ULONG ulSessionCount;
	CK_ULONG ulMaxRwSessionCount;
	CK_ULONG ulRwSessionCount;
	CK_ULONG ulMaxPinLen;
	CK_ULONG ulMinPinLen;
	CK_ULONG ulTotalPublicMemory;
	CK_ULONG ulFreePublicMemory;
	CK_ULONG ulTotalPrivateMemory;
	CK_ULONG ulFreePrivateMemory;
	CK_VERSION hardwareVersion;
	CK_VERSION firmwareVersion;
	CK_CHAR utcTime[TPMCARD_FIELD_LEN(CK_TOKEN_INFO, utcTime)];
} tpmcard_token_info;

typedef struct tpmcard_session_info {
	CK_SLOT_ID slotID;
	CK_STATE state;
	CK_FLAGS flags;
	CK_ULONG ulDeviceError;
} tpmcard_session_info;

typedef struct tpmcard_mechanism_info {
	CK_ULONG ulMinKeySize;
	CK_ULONG ulMaxKeySize;
	CK_FLAGS flags;
} tpmcard_mechanism_info;

INTERNAL void tpmcard_put_info(CK_INFO_PTR dst, tpmcard_info src);
INTERNAL void tpmcard_put_slot_info(CK_SLOT_INFO_PTR dst, tpmcard_slot_info src);
INTERNAL void tpmcard_put_token_info(CK_TOKEN_INFO_PTR dst, tpmcard_token_info src);
INTERNAL void tpmcard_put_session_info(CK_SESSION_INFO_PTR dst, tpmcard_session_info src);
INTERNAL void tpmcard_put_mechanism_info(CK_MECHANISM_INFO_PTR dst, tpmcard_mechanism_info src);

#endif
