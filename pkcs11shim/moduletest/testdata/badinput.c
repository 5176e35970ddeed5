// badinput hands the module what a careless or hostile application might:
// calls before C_Initialize and after C_Finalize, NULL for every pointer
// argument of every implemented function, short buffers, oversized
// templates and data, and invalid session, object and slot handles.
// Usage:
//   badinput MODULE PIN
// It prints one line per check and exits non-zero if any failed; a crash
// is the module's (run it against the ASan build).

#define _POSIX_C_SOURCE 200809L
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <p11-kit/pkcs11.h>

static int failures;
static CK_FUNCTION_LIST_PTR f;

static void report(const char *what, CK_RV got, int ok, const char *want, int line) {
	if (!ok) {
		printf("FAIL line %d: %s = 0x%lx, want %s\n", line, what, got, want);
		failures++;
	} else {
		printf("ok   %s\n", what);
	}
	fflush(stdout);
}

// CHECK: got must be want. CHECK2: either of two. TRUE_: a condition.
#define CHECK(what, got, want)                                                          \
	do {                                                                            \
		CK_RV g_ = (got);                                                       \
		report(what, g_, g_ == (CK_RV)(want), #want, __LINE__);                 \
	} while (0)
#define CHECK2(what, got, w1, w2)                                                       \
	do {                                                                            \
		CK_RV g_ = (got);                                                       \
		report(what, g_, g_ == (CK_RV)(w1) || g_ == (CK_RV)(w2), #w1 " or " #w2, __LINE__); \
	} while (0)
#define TRUE_(what, cond) report(what, (cond) ? 1 : 0, (cond) ? 1 : 0, "true", __LINE__)

static CK_BYTE digest[32] = {1, 2, 3, 4};

// Every implemented function with well-formed arguments and a handle that
// names nothing, before C_Initialize or after C_Finalize.
static void not_initialized(const char *when) {
	char what[128];
	CK_INFO info;
	CK_ULONG n = 4;
	CK_SLOT_ID slots[4];
	CK_SLOT_INFO si;
	CK_TOKEN_INFO ti;
	CK_MECHANISM_TYPE mechs[4];
	CK_MECHANISM_INFO mi;
	CK_SESSION_HANDLE h = 1;
	CK_SESSION_INFO sinfo;
	CK_OBJECT_HANDLE obj = 1, pub = 0, priv = 0;
	CK_OBJECT_CLASS cls = CKO_CERTIFICATE;
	CK_ATTRIBUTE tmpl[] = {{CKA_CLASS, &cls, sizeof cls}};
	CK_MECHANISM mech = {CKM_ECDSA, NULL, 0};
	CK_MECHANISM gen = {CKM_EC_KEY_PAIR_GEN, NULL, 0};
	CK_BYTE buf[64];
	CK_ULONG len = sizeof buf;
	CK_SLOT_ID ev;
#define NI(name, call)                                                                  \
	do {                                                                            \
		snprintf(what, sizeof what, "%s %s", name, when);                      \
		n = 4;                                                                  \
		len = sizeof buf;                                                       \
		CHECK(what, call, CKR_CRYPTOKI_NOT_INITIALIZED);                        \
	} while (0)
	NI("C_Finalize", f->C_Finalize(NULL));
	NI("C_GetInfo", f->C_GetInfo(&info));
	NI("C_GetSlotList", f->C_GetSlotList(CK_TRUE, slots, &n));
	NI("C_GetSlotInfo", f->C_GetSlotInfo(1, &si));
	NI("C_GetTokenInfo", f->C_GetTokenInfo(1, &ti));
	NI("C_GetMechanismList", f->C_GetMechanismList(1, mechs, &n));
	NI("C_GetMechanismInfo", f->C_GetMechanismInfo(1, CKM_ECDSA, &mi));
	NI("C_WaitForSlotEvent", f->C_WaitForSlotEvent(CKF_DONT_BLOCK, &ev, NULL));
	NI("C_OpenSession", f->C_OpenSession(1, CKF_SERIAL_SESSION, NULL, NULL, &h));
	NI("C_CloseSession", f->C_CloseSession(h));
	NI("C_CloseAllSessions", f->C_CloseAllSessions(1));
	NI("C_GetSessionInfo", f->C_GetSessionInfo(h, &sinfo));
	NI("C_Login", f->C_Login(h, CKU_USER, (CK_UTF8CHAR_PTR) "12345678", 8));
	NI("C_Logout", f->C_Logout(h));
	NI("C_InitPIN", f->C_InitPIN(h, (CK_UTF8CHAR_PTR) "12345678", 8));
	NI("C_SetPIN", f->C_SetPIN(h, (CK_UTF8CHAR_PTR) "12345678", 8, (CK_UTF8CHAR_PTR) "87654321", 8));
	NI("C_CreateObject", f->C_CreateObject(h, tmpl, 1, &obj));
	NI("C_DestroyObject", f->C_DestroyObject(h, obj));
	NI("C_GetAttributeValue", f->C_GetAttributeValue(h, obj, tmpl, 1));
	NI("C_FindObjectsInit", f->C_FindObjectsInit(h, tmpl, 1));
	NI("C_FindObjects", f->C_FindObjects(h, &obj, 1, &n));
	NI("C_FindObjectsFinal", f->C_FindObjectsFinal(h));
	NI("C_SignInit", f->C_SignInit(h, &mech, obj));
	NI("C_Sign", f->C_Sign(h, digest, sizeof digest, buf, &len));
	NI("C_SignUpdate", f->C_SignUpdate(h, digest, sizeof digest));
	NI("C_SignFinal", f->C_SignFinal(h, buf, &len));
	NI("C_GenerateKeyPair", f->C_GenerateKeyPair(h, &gen, tmpl, 1, tmpl, 1, &pub, &priv));
	NI("C_SeedRandom", f->C_SeedRandom(h, buf, 8));
	CK_MECHANISM sha = {CKM_SHA256, NULL, 0};
	NI("C_DigestInit", f->C_DigestInit(h, &sha));
	NI("C_Digest", f->C_Digest(h, digest, sizeof digest, buf, &len));
	NI("C_DigestUpdate", f->C_DigestUpdate(h, digest, sizeof digest));
	NI("C_DigestKey", f->C_DigestKey(h, obj));
	NI("C_DigestFinal", f->C_DigestFinal(h, buf, &len));
	NI("C_VerifyInit", f->C_VerifyInit(h, &mech, obj));
	NI("C_Verify", f->C_Verify(h, digest, sizeof digest, buf, 64));
	NI("C_VerifyUpdate", f->C_VerifyUpdate(h, digest, sizeof digest));
	NI("C_VerifyFinal", f->C_VerifyFinal(h, buf, 64));
	NI("C_SetAttributeValue", f->C_SetAttributeValue(h, obj, tmpl, 1));
	NI("C_CopyObject", f->C_CopyObject(h, obj, tmpl, 1, &pub));
	NI("C_GenerateRandom", f->C_GenerateRandom(h, buf, 8));
#undef NI
	// NULL pointers before C_Initialize: either answer is right, none may
	// crash.
	CHECK2("C_GetInfo(NULL) before C_Initialize", f->C_GetInfo(NULL), CKR_CRYPTOKI_NOT_INITIALIZED, CKR_ARGUMENTS_BAD);
	CHECK2("C_GetSlotList(NULL count) before C_Initialize", f->C_GetSlotList(CK_TRUE, NULL, NULL), CKR_CRYPTOKI_NOT_INITIALIZED, CKR_ARGUMENTS_BAD);
	CHECK2("C_OpenSession(NULL handle) before C_Initialize", f->C_OpenSession(1, CKF_SERIAL_SESSION, NULL, NULL, NULL), CKR_CRYPTOKI_NOT_INITIALIZED, CKR_ARGUMENTS_BAD);
	CHECK2("C_Sign(NULL length) before C_Initialize", f->C_Sign(h, NULL, 0, NULL, NULL), CKR_CRYPTOKI_NOT_INITIALIZED, CKR_ARGUMENTS_BAD);
}

// end_sign ends whatever signing operation the session has: a C_Sign
// either signs or finds none.
static void end_sign(CK_SESSION_HANDLE h) {
	CK_BYTE sig[128];
	CK_ULONG sl = sizeof sig;
	CHECK2("  end the operation with C_Sign", f->C_Sign(h, digest, sizeof digest, sig, &sl), CKR_OK, CKR_OPERATION_NOT_INITIALIZED);
	sl = sizeof sig;
	CHECK("  no operation left", f->C_Sign(h, digest, sizeof digest, sig, &sl), CKR_OPERATION_NOT_INITIALIZED);
}

// end_sign_final is end_sign for a multi-part operation.
static void end_sign_final(CK_SESSION_HANDLE h) {
	CK_BYTE sig[128];
	CK_ULONG sl = sizeof sig;
	CHECK2("  end the operation with C_SignFinal", f->C_SignFinal(h, sig, &sl), CKR_OK, CKR_OPERATION_NOT_INITIALIZED);
	sl = sizeof sig;
	CHECK("  no operation left", f->C_SignFinal(h, sig, &sl), CKR_OPERATION_NOT_INITIALIZED);
}

// find returns the first object of a class.
static CK_RV find(CK_SESSION_HANDLE h, CK_OBJECT_CLASS cls, CK_OBJECT_HANDLE *obj) {
	CK_ATTRIBUTE tmpl[] = {{CKA_CLASS, &cls, sizeof cls}};
	CK_ULONG n = 0;
	CK_RV rv;
	if ((rv = f->C_FindObjectsInit(h, tmpl, 1)) != CKR_OK)
		return rv;
	rv = f->C_FindObjects(h, obj, 1, &n);
	f->C_FindObjectsFinal(h);
	if (rv == CKR_OK && n != 1)
		rv = CKR_GENERAL_ERROR;
	return rv;
}

int main(int argc, char **argv) {
	if (argc != 3) {
		fprintf(stderr, "usage: badinput MODULE PIN\n");
		return 2;
	}
	const char *pin = argv[2];
	CK_ULONG pinlen = strlen(pin);
	void *lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
	if (!lib) {
		fprintf(stderr, "dlopen: %s\n", dlerror());
		return 2;
	}
	CK_C_GetFunctionList gfl = (CK_C_GetFunctionList)dlsym(lib, "C_GetFunctionList");
	if (!gfl) {
		fprintf(stderr, "no C_GetFunctionList\n");
		return 2;
	}
	CHECK("C_GetFunctionList(NULL)", gfl(NULL), CKR_ARGUMENTS_BAD);
	CHECK("C_GetFunctionList", gfl(&f), CKR_OK);

	not_initialized("before C_Initialize");

	// C_Initialize and C_Finalize.
	CK_C_INITIALIZE_ARGS args;
	memset(&args, 0, sizeof args);
	args.pReserved = &args;
	CHECK("C_Initialize(pReserved set)", f->C_Initialize(&args), CKR_ARGUMENTS_BAD);
	args.pReserved = NULL;
	args.flags = CKF_OS_LOCKING_OK;
	CHECK("C_Initialize", f->C_Initialize(&args), CKR_OK);
	CHECK("C_Initialize twice", f->C_Initialize(NULL), CKR_CRYPTOKI_ALREADY_INITIALIZED);
	CHECK("C_Initialize twice, with arguments", f->C_Initialize(&args), CKR_CRYPTOKI_ALREADY_INITIALIZED);
	CHECK("C_Finalize(non-NULL)", f->C_Finalize(&args), CKR_ARGUMENTS_BAD);
	CHECK("C_Finalize(non-NULL) left the module initialized", f->C_Initialize(NULL), CKR_CRYPTOKI_ALREADY_INITIALIZED);

	// Slots and mechanisms.
	CHECK("C_GetInfo(NULL)", f->C_GetInfo(NULL), CKR_ARGUMENTS_BAD);
	CHECK("C_GetSlotList(NULL, NULL)", f->C_GetSlotList(CK_TRUE, NULL, NULL), CKR_ARGUMENTS_BAD);
	CK_SLOT_ID slots[8];
	CHECK("C_GetSlotList(list, NULL count)", f->C_GetSlotList(CK_TRUE, slots, NULL), CKR_ARGUMENTS_BAD);
	CK_ULONG count = 0;
	CHECK("C_GetSlotList(NULL list)", f->C_GetSlotList(CK_TRUE, NULL, &count), CKR_OK);
	TRUE_("one slot with a token", count == 1);
	CK_ULONG small = 0;
	slots[0] = 0xdead;
	CHECK("C_GetSlotList(0 entries)", f->C_GetSlotList(CK_TRUE, slots, &small), CKR_BUFFER_TOO_SMALL);
	TRUE_("C_GetSlotList BUFFER_TOO_SMALL sets the count", small == count);
	TRUE_("C_GetSlotList BUFFER_TOO_SMALL writes no entry", slots[0] == 0xdead);
	count = 8;
	CHECK("C_GetSlotList", f->C_GetSlotList(CK_TRUE, slots, &count), CKR_OK);
	CK_SLOT_ID slot = slots[0], bad_slot = 0x7fff1234;
	for (CK_ULONG i = 0; i < count; i++)
		if (slots[i] == bad_slot)
			bad_slot++;

	CHECK("C_GetSlotInfo(NULL)", f->C_GetSlotInfo(slot, NULL), CKR_ARGUMENTS_BAD);
	CK_SLOT_INFO si;
	CHECK("C_GetSlotInfo(invalid slot)", f->C_GetSlotInfo(bad_slot, &si), CKR_SLOT_ID_INVALID);
	CHECK("C_GetTokenInfo(NULL)", f->C_GetTokenInfo(slot, NULL), CKR_ARGUMENTS_BAD);
	CK_TOKEN_INFO ti;
	CHECK("C_GetTokenInfo(invalid slot)", f->C_GetTokenInfo(bad_slot, &ti), CKR_SLOT_ID_INVALID);

	CHECK("C_GetMechanismList(NULL, NULL)", f->C_GetMechanismList(slot, NULL, NULL), CKR_ARGUMENTS_BAD);
	CK_MECHANISM_TYPE mechs[64];
	CHECK("C_GetMechanismList(list, NULL count)", f->C_GetMechanismList(slot, mechs, NULL), CKR_ARGUMENTS_BAD);
	CK_ULONG nmech = 0;
	CHECK("C_GetMechanismList(NULL list)", f->C_GetMechanismList(slot, NULL, &nmech), CKR_OK);
	TRUE_("some mechanisms", nmech > 1 && nmech <= 64);
	small = 1;
	mechs[1] = 0xdead;
	CHECK("C_GetMechanismList(1 entry)", f->C_GetMechanismList(slot, mechs, &small), CKR_BUFFER_TOO_SMALL);
	TRUE_("C_GetMechanismList BUFFER_TOO_SMALL sets the count", small == nmech);
	TRUE_("C_GetMechanismList BUFFER_TOO_SMALL writes past no entry", mechs[1] == 0xdead);
	CK_ULONG n = 64;
	CHECK("C_GetMechanismList", f->C_GetMechanismList(slot, mechs, &n), CKR_OK);
	TRUE_("C_GetMechanismList gives the count it announced", n == nmech);
	CHECK("C_GetMechanismList(invalid slot)", f->C_GetMechanismList(bad_slot, NULL, &n), CKR_SLOT_ID_INVALID);
	CHECK("C_GetMechanismInfo(NULL)", f->C_GetMechanismInfo(slot, CKM_ECDSA, NULL), CKR_ARGUMENTS_BAD);
	CK_MECHANISM_INFO mi;
	CHECK("C_GetMechanismInfo(unknown mechanism)", f->C_GetMechanismInfo(slot, CKM_VENDOR_DEFINED | 0x4242, &mi), CKR_MECHANISM_INVALID);
	CHECK("C_GetMechanismInfo(invalid slot)", f->C_GetMechanismInfo(bad_slot, CKM_ECDSA, &mi), CKR_SLOT_ID_INVALID);
	CK_SLOT_ID ev;
	CHECK("C_WaitForSlotEvent(NULL slot)", f->C_WaitForSlotEvent(CKF_DONT_BLOCK, NULL, NULL), CKR_ARGUMENTS_BAD);
	CHECK("C_WaitForSlotEvent(pReserved set)", f->C_WaitForSlotEvent(CKF_DONT_BLOCK, &ev, &ev), CKR_ARGUMENTS_BAD);

	// Sessions.
	CK_SESSION_HANDLE h, bad = 0x7ffe0001;
	CHECK("C_OpenSession(NULL handle)", f->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, NULL), CKR_ARGUMENTS_BAD);
	CHECK("C_OpenSession(invalid slot)", f->C_OpenSession(bad_slot, CKF_SERIAL_SESSION, NULL, NULL, &h), CKR_SLOT_ID_INVALID);
	CHECK("C_OpenSession (read/write)", f->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &h), CKR_OK);
	CK_SESSION_HANDLE ro;
	CHECK("C_OpenSession (read-only)", f->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, &ro), CKR_OK);
	while (bad == h || bad == ro)
		bad++;
	CHECK("C_CloseAllSessions(invalid slot)", f->C_CloseAllSessions(bad_slot), CKR_SLOT_ID_INVALID);
	CK_SESSION_INFO sinfo;
	CHECK("C_GetSessionInfo(NULL)", f->C_GetSessionInfo(h, NULL), CKR_ARGUMENTS_BAD);
	CHECK("C_Login(NULL PIN)", f->C_Login(h, CKU_USER, NULL, 8), CKR_ARGUMENTS_BAD);
	CHECK("C_InitPIN(NULL PIN)", f->C_InitPIN(h, NULL, 8), CKR_ARGUMENTS_BAD);
	CHECK("C_SetPIN(NULL old PIN)", f->C_SetPIN(h, NULL, 8, (CK_UTF8CHAR_PTR) "87654321", 8), CKR_ARGUMENTS_BAD);
	CHECK("C_SetPIN(NULL new PIN)", f->C_SetPIN(h, (CK_UTF8CHAR_PTR)pin, pinlen, NULL, 8), CKR_ARGUMENTS_BAD);
	CHECK("C_Login", f->C_Login(h, CKU_USER, (CK_UTF8CHAR_PTR)pin, pinlen), CKR_OK);

	// Objects.
	CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
	CK_ATTRIBUTE tmpl[] = {{CKA_CLASS, &cls, sizeof cls}};
	CK_ATTRIBUTE null_value[] = {{CKA_CLASS, NULL, sizeof cls}};
	CK_OBJECT_HANDLE obj, key, pub;
	CHECK("C_FindObjectsInit(NULL template, 1)", f->C_FindObjectsInit(h, NULL, 1), CKR_ARGUMENTS_BAD);
	CHECK("C_FindObjectsInit(NULL pValue with a length)", f->C_FindObjectsInit(h, null_value, 1), CKR_ARGUMENTS_BAD);
	CHECK("C_FindObjectsInit", f->C_FindObjectsInit(h, tmpl, 1), CKR_OK);
	CHECK("C_FindObjects(NULL list, max 1)", f->C_FindObjects(h, NULL, 1, &n), CKR_ARGUMENTS_BAD);
	CHECK("C_FindObjects(NULL count)", f->C_FindObjects(h, &obj, 1, NULL), CKR_ARGUMENTS_BAD);
	n = 0;
	CHECK("C_FindObjects", f->C_FindObjects(h, &key, 1, &n), CKR_OK);
	TRUE_("one private key", n == 1);
	CHECK("C_FindObjectsFinal", f->C_FindObjectsFinal(h), CKR_OK);
	CHECK("find the public key", find(h, CKO_PUBLIC_KEY, &pub), CKR_OK);

	CHECK("C_GetAttributeValue(NULL template, 1)", f->C_GetAttributeValue(h, pub, NULL, 1), CKR_ARGUMENTS_BAD);
	CK_BYTE ec_point[256], one[1];
	CK_ATTRIBUTE point = {CKA_EC_POINT, NULL, 0};
	CHECK("C_GetAttributeValue(length query)", f->C_GetAttributeValue(h, pub, &point, 1), CKR_OK);
	CK_ULONG point_len = point.ulValueLen;
	TRUE_("CKA_EC_POINT has a length", point_len > 2 && point_len <= sizeof ec_point);
	point.pValue = one;
	point.ulValueLen = 1;
	one[0] = 0xa5;
	CHECK("C_GetAttributeValue(1-byte buffer)", f->C_GetAttributeValue(h, pub, &point, 1), CKR_BUFFER_TOO_SMALL);
	TRUE_("a short buffer's ulValueLen is CK_UNAVAILABLE_INFORMATION", point.ulValueLen == CK_UNAVAILABLE_INFORMATION);
	TRUE_("nothing written to the short buffer", one[0] == 0xa5);
	point.pValue = ec_point;
	point.ulValueLen = point_len;
	CHECK("C_GetAttributeValue after BUFFER_TOO_SMALL", f->C_GetAttributeValue(h, pub, &point, 1), CKR_OK);
	TRUE_("CKA_EC_POINT is an uncompressed point", point.ulValueLen == point_len && ec_point[0] == 0x04);
	CK_ATTRIBUTE unknown = {CKA_VENDOR_DEFINED | 0x4242, NULL, 0};
	CHECK("C_GetAttributeValue(unknown attribute)", f->C_GetAttributeValue(h, pub, &unknown, 1), CKR_ATTRIBUTE_TYPE_INVALID);
	TRUE_("an unknown attribute's ulValueLen is CK_UNAVAILABLE_INFORMATION", unknown.ulValueLen == CK_UNAVAILABLE_INFORMATION);
	CK_ATTRIBUTE label = {CKA_LABEL, NULL, 0};
	CHECK("C_GetAttributeValue(invalid object)", f->C_GetAttributeValue(h, 0x7ffd0001, &label, 1), CKR_OBJECT_HANDLE_INVALID);
	CHECK("C_DestroyObject(invalid object)", f->C_DestroyObject(h, 0x7ffd0001), CKR_OBJECT_HANDLE_INVALID);
	CHECK("C_DestroyObject in a read-only session", f->C_DestroyObject(ro, key), CKR_SESSION_READ_ONLY);
	CHECK("C_CloseSession (read-only)", f->C_CloseSession(ro), CKR_OK);
	CHECK("C_CreateObject(NULL template, 1)", f->C_CreateObject(h, NULL, 1, &obj), CKR_ARGUMENTS_BAD);
	CHECK("C_CreateObject(NULL handle)", f->C_CreateObject(h, tmpl, 1, NULL), CKR_ARGUMENTS_BAD);

	// Oversized templates: 100000 attributes of 1 byte each.
	enum { HUGE = 100000 };
	CK_ATTRIBUTE *big = calloc(HUGE, sizeof *big);
	CK_BYTE *bytes = calloc(HUGE, 1);
	if (!big || !bytes)
		return 2;
	for (int i = 0; i < HUGE; i++) {
		big[i].type = CKA_LABEL;
		big[i].pValue = &bytes[i];
		big[i].ulValueLen = 1;
	}
	CK_RV rv = f->C_FindObjectsInit(h, big, HUGE);
	TRUE_("C_FindObjectsInit(100000 attributes) refused",
	      rv == CKR_ARGUMENTS_BAD || rv == CKR_DATA_LEN_RANGE || rv == CKR_TEMPLATE_INCONSISTENT || rv == CKR_HOST_MEMORY);
	if (rv == CKR_OK)
		f->C_FindObjectsFinal(h);
	rv = f->C_GetAttributeValue(h, pub, big, HUGE);
	TRUE_("C_GetAttributeValue(100000 attributes) refused",
	      rv == CKR_ARGUMENTS_BAD || rv == CKR_DATA_LEN_RANGE || rv == CKR_TEMPLATE_INCONSISTENT || rv == CKR_HOST_MEMORY);
	rv = f->C_CreateObject(h, big, HUGE, &obj);
	TRUE_("C_CreateObject(100000 attributes) refused",
	      rv == CKR_ARGUMENTS_BAD || rv == CKR_DATA_LEN_RANGE || rv == CKR_TEMPLATE_INCONSISTENT || rv == CKR_HOST_MEMORY);
	CK_MECHANISM gen = {CKM_EC_KEY_PAIR_GEN, NULL, 0};
	CK_OBJECT_HANDLE gpub, gpriv;
	rv = f->C_GenerateKeyPair(h, &gen, big, HUGE, big, HUGE, &gpub, &gpriv);
	TRUE_("C_GenerateKeyPair(100000 attributes) refused",
	      rv == CKR_ARGUMENTS_BAD || rv == CKR_DATA_LEN_RANGE || rv == CKR_TEMPLATE_INCONSISTENT || rv == CKR_HOST_MEMORY);
	free(big);
	free(bytes);
	CHECK("C_FindObjectsInit after the oversized template", find(h, CKO_PRIVATE_KEY, &obj), CKR_OK);
	TRUE_("the same key", obj == key);

	// Key generation with NULL pointers.
	CHECK("C_GenerateKeyPair(NULL mechanism)", f->C_GenerateKeyPair(h, NULL, NULL, 0, NULL, 0, &gpub, &gpriv), CKR_ARGUMENTS_BAD);
	CHECK("C_GenerateKeyPair(NULL public template, 1)", f->C_GenerateKeyPair(h, &gen, NULL, 1, tmpl, 1, &gpub, &gpriv), CKR_ARGUMENTS_BAD);
	CHECK("C_GenerateKeyPair(NULL private template, 1)", f->C_GenerateKeyPair(h, &gen, tmpl, 1, NULL, 1, &gpub, &gpriv), CKR_ARGUMENTS_BAD);
	CHECK("C_GenerateKeyPair(NULL public handle)", f->C_GenerateKeyPair(h, &gen, NULL, 0, NULL, 0, NULL, &gpriv), CKR_ARGUMENTS_BAD);
	CHECK("C_GenerateKeyPair(NULL private handle)", f->C_GenerateKeyPair(h, &gen, NULL, 0, NULL, 0, &gpub, NULL), CKR_ARGUMENTS_BAD);
	CK_MECHANISM gen_param = {CKM_EC_KEY_PAIR_GEN, NULL, 16};
	CHECK("C_GenerateKeyPair(NULL mechanism parameter, 16 bytes)", f->C_GenerateKeyPair(h, &gen_param, NULL, 0, NULL, 0, &gpub, &gpriv), CKR_ARGUMENTS_BAD);

	// Signing.
	CK_MECHANISM ecdsa = {CKM_ECDSA, NULL, 0};
	CK_MECHANISM ecdsa_sha256 = {CKM_ECDSA_SHA256, NULL, 0};
	CK_MECHANISM null_param = {CKM_ECDSA, NULL, 8};
	CK_BYTE sig[128];
	CK_ULONG sl;
	CHECK("C_SignInit(NULL mechanism)", f->C_SignInit(h, NULL, key), CKR_ARGUMENTS_BAD);
	CHECK("C_SignInit(NULL parameter, 8 bytes)", f->C_SignInit(h, &null_param, key), CKR_ARGUMENTS_BAD);
	sl = sizeof sig;
	CHECK("C_Sign without C_SignInit", f->C_Sign(h, digest, sizeof digest, sig, &sl), CKR_OPERATION_NOT_INITIALIZED);
	// A second C_SignInit while one operation is active fails, at once or,
	// where the module sends C_SignInit along with the next call of the
	// operation, there.
	CHECK("C_SignInit", f->C_SignInit(h, &ecdsa, key), CKR_OK);
	CK_RV rv2 = f->C_SignInit(h, &ecdsa, key);
	if (rv2 == CKR_OK) {
		sl = 0;
		CHECK("C_SignInit while signing (failing at the next call)", f->C_Sign(h, digest, sizeof digest, NULL, &sl), CKR_OPERATION_ACTIVE);
	} else {
		CHECK("C_SignInit while signing", rv2, CKR_OPERATION_ACTIVE);
	}
	end_sign(h);

	// Refused arguments. Whether a refusal ends the operation PKCS#11
	// leaves open (§5.2: a failed C_Sign ends it; a module may refuse
	// before it starts): end_sign ends it either way.
	CHECK("C_SignInit", f->C_SignInit(h, &ecdsa, key), CKR_OK);
	CHECK("C_Sign(NULL length)", f->C_Sign(h, digest, sizeof digest, sig, NULL), CKR_ARGUMENTS_BAD);
	end_sign(h);
	CHECK("C_SignInit", f->C_SignInit(h, &ecdsa, key), CKR_OK);
	sl = sizeof sig;
	CHECK("C_Sign(NULL data, 32 bytes)", f->C_Sign(h, NULL, 32, sig, &sl), CKR_ARGUMENTS_BAD);
	end_sign(h);
	CHECK("C_SignInit (multi-part)", f->C_SignInit(h, &ecdsa_sha256, key), CKR_OK);
	CHECK("C_SignUpdate(NULL part, 4 bytes)", f->C_SignUpdate(h, NULL, 4), CKR_ARGUMENTS_BAD);
	end_sign_final(h);
	CHECK("C_SignInit (multi-part)", f->C_SignInit(h, &ecdsa_sha256, key), CKR_OK);
	CHECK("C_SignFinal(NULL length)", f->C_SignFinal(h, sig, NULL), CKR_ARGUMENTS_BAD);
	end_sign_final(h);

	// Short buffers: the length, and the operation goes on.
	CHECK("C_SignInit", f->C_SignInit(h, &ecdsa, key), CKR_OK);
	sl = 0;
	CHECK("C_Sign(NULL signature): the length", f->C_Sign(h, digest, sizeof digest, NULL, &sl), CKR_OK);
	TRUE_("C_Sign length 64", sl == 64);
	sl = 10;
	memset(sig, 0xa5, sizeof sig);
	CHECK("C_Sign(10-byte buffer)", f->C_Sign(h, digest, sizeof digest, sig, &sl), CKR_BUFFER_TOO_SMALL);
	TRUE_("C_Sign BUFFER_TOO_SMALL sets the length", sl == 64);
	TRUE_("C_Sign BUFFER_TOO_SMALL writes nothing", sig[0] == 0xa5 && sig[9] == 0xa5);
	sl = sizeof sig;
	CHECK("C_Sign after BUFFER_TOO_SMALL: the operation goes on", f->C_Sign(h, digest, sizeof digest, sig, &sl), CKR_OK);
	TRUE_("a 64-byte signature", sl == 64);
	sl = sizeof sig;
	CHECK("C_Sign after the signature: the operation is over", f->C_Sign(h, digest, sizeof digest, sig, &sl), CKR_OPERATION_NOT_INITIALIZED);

	CHECK("C_SignInit (multi-part)", f->C_SignInit(h, &ecdsa_sha256, key), CKR_OK);
	CHECK("C_SignUpdate", f->C_SignUpdate(h, (CK_BYTE_PTR) "da", 2), CKR_OK);
	CHECK("C_SignUpdate", f->C_SignUpdate(h, (CK_BYTE_PTR) "ta", 2), CKR_OK);
	sl = 1;
	memset(sig, 0xa5, sizeof sig);
	CHECK("C_SignFinal(1-byte buffer)", f->C_SignFinal(h, sig, &sl), CKR_BUFFER_TOO_SMALL);
	TRUE_("C_SignFinal BUFFER_TOO_SMALL sets the length", sl == 64);
	TRUE_("C_SignFinal BUFFER_TOO_SMALL writes nothing", sig[0] == 0xa5);
	sl = sizeof sig;
	CHECK("C_SignFinal after BUFFER_TOO_SMALL", f->C_SignFinal(h, sig, &sl), CKR_OK);
	TRUE_("a 64-byte signature", sl == 64);
	sl = sizeof sig;
	CHECK("C_SignFinal after the signature: the operation is over", f->C_SignFinal(h, sig, &sl), CKR_OPERATION_NOT_INITIALIZED);

	// Data beyond the 1 MiB frame for a mechanism that does not hash.
	enum { BIG_DATA = 2 << 20 };
	CK_BYTE *data = calloc(BIG_DATA, 1);
	if (!data)
		return 2;
	CHECK("C_SignInit (raw ECDSA)", f->C_SignInit(h, &ecdsa, key), CKR_OK);
	sl = sizeof sig;
	CHECK("C_Sign(2 MiB for CKM_ECDSA)", f->C_Sign(h, data, BIG_DATA, sig, &sl), CKR_DATA_LEN_RANGE);
	CHECK("C_SignInit (hashing)", f->C_SignInit(h, &ecdsa_sha256, key), CKR_OK);
	sl = sizeof sig;
	CHECK("C_Sign(2 MiB for CKM_ECDSA_SHA256): the module hashes", f->C_Sign(h, data, BIG_DATA, sig, &sl), CKR_OK);
	free(data);

	// Random.
	CK_BYTE rnd[16];
	CHECK("C_GenerateRandom(NULL, 8)", f->C_GenerateRandom(h, NULL, 8), CKR_ARGUMENTS_BAD);
	CHECK("C_SeedRandom(NULL, 8)", f->C_SeedRandom(h, NULL, 8), CKR_ARGUMENTS_BAD);
	CHECK("C_GenerateRandom", f->C_GenerateRandom(h, rnd, sizeof rnd), CKR_OK);

	// Digests, verification and object editing, with NULL for every
	// pointer: refused before anything reaches the service.
	CHECK("C_DigestInit(NULL)", f->C_DigestInit(h, NULL), CKR_ARGUMENTS_BAD);
	CHECK("C_Digest(NULLs)", f->C_Digest(h, NULL, 1, NULL, NULL), CKR_ARGUMENTS_BAD);
	CHECK("C_DigestUpdate(NULL, 1)", f->C_DigestUpdate(h, NULL, 1), CKR_ARGUMENTS_BAD);
	CHECK("C_DigestFinal(NULL length)", f->C_DigestFinal(h, NULL, NULL), CKR_ARGUMENTS_BAD);
	CHECK("C_DigestKey without C_DigestInit", f->C_DigestKey(h, key), CKR_OPERATION_NOT_INITIALIZED);
	CHECK("C_VerifyInit(NULL)", f->C_VerifyInit(h, NULL, key), CKR_ARGUMENTS_BAD);
	CHECK("C_Verify(NULLs)", f->C_Verify(h, NULL, 1, NULL, 1), CKR_ARGUMENTS_BAD);
	CHECK("C_VerifyUpdate(NULL, 1)", f->C_VerifyUpdate(h, NULL, 1), CKR_ARGUMENTS_BAD);
	CHECK("C_VerifyFinal(NULL, 1)", f->C_VerifyFinal(h, NULL, 1), CKR_ARGUMENTS_BAD);
	CHECK("C_SetAttributeValue(NULL, 1)", f->C_SetAttributeValue(h, key, NULL, 1), CKR_ARGUMENTS_BAD);
	CHECK("C_CopyObject(NULL new handle)", f->C_CopyObject(h, key, NULL, 0, NULL), CKR_ARGUMENTS_BAD);

	// The functions the module does not implement, with NULL for every
	// pointer: not supported, or a refusal of the NULLs; never a crash.
#define UNSUP(name, call) CHECK2(name " (NULLs)", call, CKR_FUNCTION_NOT_SUPPORTED, CKR_ARGUMENTS_BAD)
	UNSUP("C_InitToken", f->C_InitToken(slot, NULL, 0, NULL));
	UNSUP("C_GetOperationState", f->C_GetOperationState(h, NULL, NULL));
	UNSUP("C_SetOperationState", f->C_SetOperationState(h, NULL, 0, 0, 0));
	UNSUP("C_GetObjectSize", f->C_GetObjectSize(h, key, NULL));
	UNSUP("C_EncryptInit", f->C_EncryptInit(h, NULL, key));
	UNSUP("C_Encrypt", f->C_Encrypt(h, NULL, 1, NULL, NULL));
	UNSUP("C_EncryptUpdate", f->C_EncryptUpdate(h, NULL, 1, NULL, NULL));
	UNSUP("C_EncryptFinal", f->C_EncryptFinal(h, NULL, NULL));
	UNSUP("C_DecryptInit", f->C_DecryptInit(h, NULL, key));
	UNSUP("C_Decrypt", f->C_Decrypt(h, NULL, 1, NULL, NULL));
	UNSUP("C_DecryptUpdate", f->C_DecryptUpdate(h, NULL, 1, NULL, NULL));
	UNSUP("C_DecryptFinal", f->C_DecryptFinal(h, NULL, NULL));
	UNSUP("C_SignRecoverInit", f->C_SignRecoverInit(h, NULL, key));
	UNSUP("C_SignRecover", f->C_SignRecover(h, NULL, 1, NULL, NULL));
	UNSUP("C_VerifyRecoverInit", f->C_VerifyRecoverInit(h, NULL, key));
	UNSUP("C_VerifyRecover", f->C_VerifyRecover(h, NULL, 1, NULL, NULL));
	UNSUP("C_DigestEncryptUpdate", f->C_DigestEncryptUpdate(h, NULL, 1, NULL, NULL));
	UNSUP("C_DecryptDigestUpdate", f->C_DecryptDigestUpdate(h, NULL, 1, NULL, NULL));
	UNSUP("C_SignEncryptUpdate", f->C_SignEncryptUpdate(h, NULL, 1, NULL, NULL));
	UNSUP("C_DecryptVerifyUpdate", f->C_DecryptVerifyUpdate(h, NULL, 1, NULL, NULL));
	UNSUP("C_GenerateKey", f->C_GenerateKey(h, NULL, NULL, 1, NULL));
	UNSUP("C_WrapKey", f->C_WrapKey(h, NULL, key, key, NULL, NULL));
	UNSUP("C_UnwrapKey", f->C_UnwrapKey(h, NULL, key, NULL, 1, NULL, 1, NULL));
	UNSUP("C_DeriveKey", f->C_DeriveKey(h, NULL, key, NULL, 1, NULL));
#undef UNSUP
	CHECK2("C_GetFunctionStatus", f->C_GetFunctionStatus(h), CKR_FUNCTION_NOT_PARALLEL, CKR_FUNCTION_NOT_SUPPORTED);
	CHECK2("C_CancelFunction", f->C_CancelFunction(h), CKR_FUNCTION_NOT_PARALLEL, CKR_FUNCTION_NOT_SUPPORTED);


	// Invalid session handles, with well-formed arguments.
	CHECK("C_GetSessionInfo(invalid session)", f->C_GetSessionInfo(bad, &sinfo), CKR_SESSION_HANDLE_INVALID);
	CHECK("C_GetSessionInfo(session 0)", f->C_GetSessionInfo(CK_INVALID_HANDLE, &sinfo), CKR_SESSION_HANDLE_INVALID);
	CHECK("C_Login(invalid session)", f->C_Login(bad, CKU_USER, (CK_UTF8CHAR_PTR)pin, pinlen), CKR_SESSION_HANDLE_INVALID);
	CHECK("C_Logout(invalid session)", f->C_Logout(bad), CKR_SESSION_HANDLE_INVALID);
	CHECK("C_InitPIN(invalid session)", f->C_InitPIN(bad, (CK_UTF8CHAR_PTR)pin, pinlen), CKR_SESSION_HANDLE_INVALID);
	CHECK("C_SetPIN(invalid session)", f->C_SetPIN(bad, (CK_UTF8CHAR_PTR)pin, pinlen, (CK_UTF8CHAR_PTR)pin, pinlen), CKR_SESSION_HANDLE_INVALID);
	CHECK("C_CreateObject(invalid session)", f->C_CreateObject(bad, tmpl, 1, &obj), CKR_SESSION_HANDLE_INVALID);
	CHECK("C_DestroyObject(invalid session)", f->C_DestroyObject(bad, key), CKR_SESSION_HANDLE_INVALID);
	CHECK("C_GetAttributeValue(invalid session)", f->C_GetAttributeValue(bad, pub, &label, 1), CKR_SESSION_HANDLE_INVALID);
	CHECK("C_FindObjectsInit(invalid session)", f->C_FindObjectsInit(bad, tmpl, 1), CKR_SESSION_HANDLE_INVALID);
	CHECK("C_FindObjects(invalid session)", f->C_FindObjects(bad, &obj, 1, &n), CKR_SESSION_HANDLE_INVALID);
	CHECK("C_FindObjectsFinal(invalid session)", f->C_FindObjectsFinal(bad), CKR_SESSION_HANDLE_INVALID);
	CHECK("C_SignInit(invalid session)", f->C_SignInit(bad, &ecdsa, key), CKR_SESSION_HANDLE_INVALID);
	sl = sizeof sig;
	CHECK("C_Sign(invalid session)", f->C_Sign(bad, digest, sizeof digest, sig, &sl), CKR_SESSION_HANDLE_INVALID);
	CHECK("C_SignUpdate(invalid session)", f->C_SignUpdate(bad, digest, sizeof digest), CKR_SESSION_HANDLE_INVALID);
	sl = sizeof sig;
	CHECK("C_SignFinal(invalid session)", f->C_SignFinal(bad, sig, &sl), CKR_SESSION_HANDLE_INVALID);
	CHECK("C_GenerateKeyPair(invalid session)", f->C_GenerateKeyPair(bad, &gen, NULL, 0, NULL, 0, &gpub, &gpriv), CKR_SESSION_HANDLE_INVALID);
	CHECK("C_SeedRandom(invalid session)", f->C_SeedRandom(bad, rnd, sizeof rnd), CKR_SESSION_HANDLE_INVALID);
	CHECK("C_GenerateRandom(invalid session)", f->C_GenerateRandom(bad, rnd, sizeof rnd), CKR_SESSION_HANDLE_INVALID);
	CHECK("C_CloseSession(invalid session)", f->C_CloseSession(bad), CKR_SESSION_HANDLE_INVALID);

	// A closed session is an invalid one.
	CHECK("C_CloseSession", f->C_CloseSession(h), CKR_OK);
	CHECK("C_GetSessionInfo(closed session)", f->C_GetSessionInfo(h, &sinfo), CKR_SESSION_HANDLE_INVALID);
	CHECK("C_SignInit(closed session)", f->C_SignInit(h, &ecdsa, key), CKR_SESSION_HANDLE_INVALID);
	CHECK("C_CloseSession(closed session)", f->C_CloseSession(h), CKR_SESSION_HANDLE_INVALID);

	CHECK("C_Finalize", f->C_Finalize(NULL), CKR_OK);
	not_initialized("after C_Finalize");
	printf("%d failures\n", failures);
	return failures ? 1 : 0;
}
