// badservice drives the module through a service that misbehaves once (a
// proxy in the test, TPMCARD_SOCKET). Usage:
//   badservice MODULE PIN clean|gone|failed
// A run is one sequence of calls: C_GetSlotList (count, then list),
// C_GetTokenInfo, C_OpenSession, C_Login, C_FindObjects*, C_SignInit,
// C_Sign (length, then signature), C_CloseSession.
//
// clean: the sequence must succeed; the program then prints "phase 1
// done" and waits for a line on stdin before C_Finalize, so that the test
// can count the requests the sequence sent.
//
// gone, failed: the first sequence meets the fault. Each call must
// return CKR_OK or, where the sequence then stops, a value of the kind
// named: gone is one of those of a connection gone (docs/wire.md:
// CKR_DEVICE_ERROR, CKR_DEVICE_REMOVED, CKR_TOKEN_NOT_PRESENT,
// CKR_FUNCTION_FAILED) or C_GetSlotList finding no token; failed is
// CKR_FUNCTION_FAILED (an Error frame without a CK_RV) or no token. A
// session already open must then close with CKR_OK. The second sequence,
// with the service behaving again, must succeed entirely, and C_Finalize
// too. Before each call the program prints "call NAME", so that a hang
// shows where.

#define _POSIX_C_SOURCE 200809L
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>
#include <p11-kit/pkcs11.h>

static CK_FUNCTION_LIST_PTR f;
static const char *pin;

enum expect { CLEAN, GONE, FAILED };

static int acceptable(enum expect e, CK_RV rv) {
	switch (e) {
	case GONE:
		return rv == CKR_DEVICE_ERROR || rv == CKR_DEVICE_REMOVED || rv == CKR_TOKEN_NOT_PRESENT ||
		       rv == CKR_FUNCTION_FAILED;
	case FAILED:
		return rv == CKR_FUNCTION_FAILED;
	default:
		return 0;
	}
}

// The outcome of a sequence.
enum outcome { DONE, STOPPED, BAD };

// CALL runs one call of the sequence: CKR_OK goes on; an acceptable value
// stops the sequence; anything else is a failure.
#define CALL(name, expr)                                                                \
	do {                                                                            \
		printf("call %s\n", name);                                              \
		fflush(stdout);                                                         \
		CK_RV rv_ = (expr);                                                     \
		printf("rv   %s 0x%lx\n", name, rv_);                                  \
		if (rv_ != CKR_OK) {                                                    \
			if (!acceptable(e, rv_)) {                                      \
				printf("FAIL %s = 0x%lx, not a value for a %s\n", name, rv_, \
				       e == CLEAN ? "working service" : e == GONE ? "connection gone" : "failed request"); \
				out = BAD;                                              \
			} else {                                                        \
				out = STOPPED;                                          \
			}                                                               \
			goto end;                                                       \
		}                                                                       \
	} while (0)

static enum outcome sequence(enum expect e) {
	enum outcome out = DONE;
	CK_SESSION_HANDLE h = CK_INVALID_HANDLE;
	int open = 0;
	CK_SLOT_ID slots[4];
	CK_ULONG n = 0;
	CALL("C_GetSlotList(NULL)", f->C_GetSlotList(CK_TRUE, NULL, &n));
	if (n == 0 && e != CLEAN) {
		printf("no token\n");
		return STOPPED;
	}
	if (n != 1) {
		printf("FAIL %lu slots with a token, want 1\n", n);
		return BAD;
	}
	n = 4;
	CALL("C_GetSlotList", f->C_GetSlotList(CK_TRUE, slots, &n));
	if (n == 0 && e != CLEAN) {
		printf("no token\n");
		return STOPPED;
	}
	if (n != 1) {
		printf("FAIL %lu slots with a token, want 1\n", n);
		return BAD;
	}
	CK_TOKEN_INFO ti;
	CALL("C_GetTokenInfo", f->C_GetTokenInfo(slots[0], &ti));
	CALL("C_OpenSession", f->C_OpenSession(slots[0], CKF_SERIAL_SESSION, NULL, NULL, &h));
	open = 1;
	// A fault that left the connection up left its login too (§5.6: the
	// login belongs to the application).
	printf("call C_Login\n");
	fflush(stdout);
	CK_RV lrv = f->C_Login(h, CKU_USER, (CK_UTF8CHAR_PTR)pin, strlen(pin));
	CALL("C_Login", lrv == CKR_USER_ALREADY_LOGGED_IN && e == CLEAN ? CKR_OK : lrv);
	CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
	CK_ATTRIBUTE tmpl[] = {{CKA_CLASS, &cls, sizeof cls}};
	CK_OBJECT_HANDLE key;
	CALL("C_FindObjectsInit", f->C_FindObjectsInit(h, tmpl, 1));
	n = 0;
	CALL("C_FindObjects", f->C_FindObjects(h, &key, 1, &n));
	CALL("C_FindObjectsFinal", f->C_FindObjectsFinal(h));
	if (n != 1) {
		printf("FAIL %lu private keys, want 1\n", n);
		out = BAD;
		goto end;
	}
	CK_MECHANISM mech = {CKM_ECDSA_SHA256, NULL, 0};
	CALL("C_SignInit", f->C_SignInit(h, &mech, key));
	unsigned char sig[128];
	CK_ULONG sl = 0;
	CALL("C_Sign(NULL)", f->C_Sign(h, (CK_BYTE_PTR) "data", 4, NULL, &sl));
	sl = sizeof sig;
	CALL("C_Sign", f->C_Sign(h, (CK_BYTE_PTR) "data", 4, sig, &sl));
	if (sl != 64) {
		printf("FAIL a %lu-byte signature, want 64\n", sl);
		out = BAD;
		goto end;
	}
	open = 0;
	CALL("C_CloseSession", f->C_CloseSession(h));
end:
	if (open) {
		printf("call C_CloseSession after the fault\n");
		fflush(stdout);
		CK_RV rv = f->C_CloseSession(h);
		printf("rv   C_CloseSession after the fault 0x%lx\n", rv);
		if (rv != CKR_OK) {
			printf("FAIL C_CloseSession after the fault = 0x%lx, want CKR_OK\n", rv);
			out = BAD;
		}
	}
	fflush(stdout);
	return out;
}

int main(int argc, char **argv) {
	if (argc != 4) {
		fprintf(stderr, "usage: badservice MODULE PIN clean|gone|failed\n");
		return 2;
	}
	pin = argv[2];
	enum expect e = strcmp(argv[3], "clean") == 0 ? CLEAN : strcmp(argv[3], "failed") == 0 ? FAILED : GONE;
	void *lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
	if (!lib) {
		fprintf(stderr, "dlopen: %s\n", dlerror());
		return 2;
	}
	CK_C_GetFunctionList gfl = (CK_C_GetFunctionList)dlsym(lib, "C_GetFunctionList");
	if (!gfl || gfl(&f) != CKR_OK)
		return 2;
	CK_RV rv = f->C_Initialize(NULL);
	if (rv != CKR_OK) {
		printf("FAIL C_Initialize = 0x%lx\n", rv);
		return 1;
	}
	int bad = 0;
	printf("phase 1\n");
	enum outcome o = sequence(e);
	if (o == BAD || (e == CLEAN && o != DONE))
		bad = 1;
	if (e == CLEAN) {
		char line[16];
		printf("phase 1 done\n");
		fflush(stdout);
		if (!fgets(line, sizeof line, stdin))
			bad = 1;
	} else {
		printf("phase 2\n");
		if (sequence(CLEAN) != DONE)
			bad = 1;
	}
	rv = f->C_Finalize(NULL);
	if (rv != CKR_OK) {
		printf("FAIL C_Finalize = 0x%lx\n", rv);
		bad = 1;
	}
	printf("%s\n", bad ? "FAILED" : "done");
	return bad;
}
