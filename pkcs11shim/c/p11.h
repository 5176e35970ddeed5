/*
 * p11.h: the PKCS#11 module's internal interface.
 *
 * The module is a mechanical client of the service's socket protocol
 * (docs/wire.md): every PKCS#11 rule lives in the service. The C side
 * checks pointers and lengths, answers length queries it can answer from
 * a reply, marshals, and maps the service's replies to CK_RV. It keeps no
 * PIN past the call, no cache of anything the service decides, and starts
 * no thread.
 */
#ifndef TPMCARD_P11_H
#define TPMCARD_P11_H

#ifdef _WIN32
/* The header declares the C_* functions __declspec(dllexport), not
 * dllimport: this DLL defines them. */
#define CRYPTOKI_EXPORTS 1
#endif
#include <p11-kit/pkcs11.h>

#include "tc_conn.h"

/* Module identity (CK_INFO). */
#define P11_MANUFACTURER "tpmcard"
#define P11_DESCRIPTION "tpmcard TPM 2.0 virtual card"
#define P11_SLOT_DESCRIPTION "tpmcard virtual reader"
#define P11_VERSION_MAJOR 0
#define P11_VERSION_MINOR 1
#define P11_HELLO_NAME "tpmcard-pkcs11/2"
#define P11_DEBUG_ENV "TPMCARD_PKCS11_DEBUG"

/* Request and reply types (service/wire, docs/wire.md). */
enum {
	W_MECHANISMS = 0x03,
	W_OPEN_SESSION = 0x04,
	W_CLOSE_SESSION = 0x05,
	W_CLOSE_ALL_SESSIONS = 0x06,
	W_SESSION_INFO = 0x07,
	W_LOGIN = 0x08,
	W_LOGOUT = 0x09,
	W_INIT_PIN = 0x0a,
	W_SET_PIN = 0x0b,
	W_CREATE_OBJECT = 0x12,
	W_DESTROY_OBJECT = 0x13,
	W_GENERATE_RANDOM = 0x14,
	W_WAIT_EVENT = 0x15,
	W_GET_SLOT_LIST = 0x16,
	W_GET_SLOT_INFO = 0x17,
	W_GET_TOKEN_INFO = 0x18,
	W_FIND_OBJECTS_INIT = 0x20,
	W_FIND_OBJECTS_NEXT = 0x21,
	W_FIND_OBJECTS_FINAL = 0x22,
	W_GET_ATTRIBUTE_VALUE = 0x23,
	W_GENERATE_KEY_PAIR = 0x24,
	W_SIGN_INIT = 0x25,
	W_SIGN_DATA = 0x26,
	W_SIGN_UPDATE = 0x27,
	W_SIGN_FINAL = 0x28,
	W_SEED_RANDOM = 0x29,
	W_GET_OBJECT_SIZE = 0x2a,
	W_DIGEST_INIT = 0x30,
	W_DIGEST_DATA = 0x31,
	W_DIGEST_UPDATE = 0x32,
	W_DIGEST_KEY = 0x33,
	W_DIGEST_FINAL = 0x34,
	W_VERIFY_INIT = 0x35,
	W_VERIFY_DATA = 0x36,
	W_VERIFY_UPDATE = 0x37,
	W_VERIFY_FINAL = 0x38,
	W_SET_ATTRIBUTE_VALUE = 0x39,
	W_COPY_OBJECT = 0x3a,

	W_ACK = 0x80,
	W_MECHANISM_LIST = 0x83,
	W_SESSION_OPENED = 0x84,
	W_SESSION_STATE = 0x87,
	W_OBJECT_CREATED = 0x92,
	W_RANDOM = 0x94,
	W_EVENT = 0x95,
	W_SLOT_LIST = 0x96,
	W_SLOT_DESCRIPTION = 0x97,
	W_TOKEN_DESCRIPTION = 0x98,
	W_FOUND_OBJECTS = 0xa1,
	W_ATTRIBUTE_VALUE = 0xa3,
	W_GENERATED_KEY_PAIR = 0xa4,
	W_SIGNED = 0xa6,
	W_OBJECT_SIZE = 0xaa,
	W_DIGESTED = 0xb1,
};

/* Service statuses the module looks at (service/wire/status.go). */
#define W_STATUS_SERVICE_STOPPING 5
#define W_STATUS_TIMEOUT 7

/* p11_not_supported and p11_not_parallel are the answers of the functions
 * the card does not offer (p11_stubs.c): CKR_CRYPTOKI_NOT_INITIALIZED
 * before C_Initialize, then CKR_FUNCTION_NOT_SUPPORTED or
 * CKR_FUNCTION_NOT_PARALLEL. */
CK_RV p11_not_supported(const char *fn);
CK_RV p11_not_parallel(const char *fn);

/* The debug log (p11_log.c): TPMCARD_PKCS11_DEBUG names a file that gets
 * one line per call, with its arguments and CK_RV. Never a PIN. */
void p11_log_open(void);
void p11_log_close(void);
void p11_log_forget(void); /* in a forked child: drop the parent's descriptor */
void p11_log(const char *fmt, ...)
#if defined(__GNUC__)
	__attribute__((format(printf, 1, 2)))
#endif
	;
int p11_log_enabled(void);
const char *p11_rv_name(CK_RV rv);

#endif
