// restart drives the module across a restart of the service. Usage:
//   restart MODULE PIN
// It signs, prints "stop" and waits for a line on stdin (the test stops
// the service), checks that the session reports CKR_DEVICE_REMOVED and the
// token is absent, prints "start" and waits again (the test starts the
// service), then checks that the token is back and a new session signs.

#define _POSIX_C_SOURCE 200809L
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>
#include <p11-kit/pkcs11.h>

static CK_FUNCTION_LIST_PTR f;
static int failures;

#define CHECK(what, got, want) check(what, (CK_RV)(got), (CK_RV)(want))
static void check(const char *what, CK_RV got, CK_RV want) {
	if (got != want) {
		printf("FAIL %s = 0x%lx, want 0x%lx\n", what, got, want);
		failures++;
	} else {
		printf("ok   %s\n", what);
	}
	fflush(stdout);
}

static CK_RV sign(CK_SESSION_HANDLE h) {
	CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
	CK_ATTRIBUTE tmpl[] = {{CKA_CLASS, &cls, sizeof cls}};
	CK_OBJECT_HANDLE key;
	CK_ULONG n = 0;
	CK_RV rv;
	if ((rv = f->C_FindObjectsInit(h, tmpl, 1)) != CKR_OK)
		return rv;
	if ((rv = f->C_FindObjects(h, &key, 1, &n)) != CKR_OK)
		return rv;
	f->C_FindObjectsFinal(h);
	if (n != 1)
		return CKR_GENERAL_ERROR;
	CK_MECHANISM mech = {CKM_ECDSA_SHA256, NULL, 0};
	if ((rv = f->C_SignInit(h, &mech, key)) != CKR_OK)
		return rv;
	unsigned char sig[128];
	CK_ULONG sl = sizeof sig;
	return f->C_Sign(h, (CK_BYTE_PTR)"data", 4, sig, &sl);
}

static void await(const char *what) {
	char line[64];
	printf("%s\n", what);
	fflush(stdout);
	if (!fgets(line, sizeof line, stdin))
		failures++;
}

int main(int argc, char **argv) {
	if (argc != 3)
		return 2;
	const char *pin = argv[2];
	void *lib = dlopen(argv[1], RTLD_NOW);
	if (!lib)
		return 2;
	((CK_C_GetFunctionList)dlsym(lib, "C_GetFunctionList"))(&f);
	CHECK("C_Initialize", f->C_Initialize(NULL), CKR_OK);
	CK_SLOT_ID slot;
	CK_ULONG n = 1;
	CHECK("C_GetSlotList", f->C_GetSlotList(CK_TRUE, &slot, &n), CKR_OK);
	CK_SESSION_HANDLE h;
	CHECK("C_OpenSession", f->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, &h), CKR_OK);
	CHECK("C_Login", f->C_Login(h, CKU_USER, (CK_UTF8CHAR_PTR)pin, strlen(pin)), CKR_OK);
	CHECK("sign", sign(h), CKR_OK);

	await("stop");
	CK_SESSION_INFO si;
	CHECK("C_GetSessionInfo, service down", f->C_GetSessionInfo(h, &si), CKR_DEVICE_REMOVED);
	n = 1;
	CHECK("C_GetSlotList, service down", f->C_GetSlotList(CK_TRUE, &slot, &n), CKR_OK);
	CHECK("no token while the service is down", n, 0);
	CK_TOKEN_INFO ti;
	CHECK("C_GetTokenInfo, service down", f->C_GetTokenInfo(slot, &ti), CKR_TOKEN_NOT_PRESENT);
	CK_SESSION_HANDLE h2;
	CHECK("C_OpenSession, service down", f->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, &h2), CKR_TOKEN_NOT_PRESENT);

	await("start");
	n = 1;
	CHECK("C_GetSlotList, service back", f->C_GetSlotList(CK_TRUE, &slot, &n), CKR_OK);
	CHECK("the token is back", n, 1);
	CHECK("old session after the restart", f->C_GetSessionInfo(h, &si), CKR_DEVICE_REMOVED);
	CHECK("C_CloseSession(old)", f->C_CloseSession(h), CKR_OK);
	CHECK("C_OpenSession, service back", f->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, &h2), CKR_OK);
	CHECK("C_Login, service back", f->C_Login(h2, CKU_USER, (CK_UTF8CHAR_PTR)pin, strlen(pin)), CKR_OK);
	CHECK("sign, service back", sign(h2), CKR_OK);
	CHECK("C_Finalize", f->C_Finalize(NULL), CKR_OK);
	printf("%d failures\n", failures);
	return failures ? 1 : 0;
}
