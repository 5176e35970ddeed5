// p11ops drives the module's digest, verify and object-editing functions
// through the C ABI: C_Digest*, C_Verify* with the card's public key over
// the card's own signatures, data objects (C_CreateObject, C_FindObjects,
// C_GetAttributeValue, C_SetAttributeValue, C_CopyObject,
// C_DestroyObject), the length rules of §5.2 and the pipelined
// C_VerifyInit.
// Usage:
//   p11ops MODULE PIN
// It prints one line per check and exits non-zero if any failed.

#define _POSIX_C_SOURCE 200809L
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <p11-kit/pkcs11.h>

static int failures;
static CK_FUNCTION_LIST_PTR f;

#define CHECK(what, got, want) check(what, (CK_RV)(got), (CK_RV)(want), __LINE__)
static void check(const char *what, CK_RV got, CK_RV want, int line) {
	if (got != want) {
		printf("FAIL line %d: %s = 0x%lx, want 0x%lx\n", line, what, got, want);
		failures++;
	} else {
		printf("ok   %s\n", what);
	}
	fflush(stdout);
}
#define TRUE_(what, cond) CHECK(what, (cond) ? 1 : 0, 1)

// SHA-256("abc") and SHA-1("abc") (FIPS 180-2, appendix B).
static const CK_BYTE sha256_abc[32] = {
	0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea, 0x41, 0x41, 0x40, 0xde, 0x5d, 0xae, 0x22, 0x23,
	0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17, 0x7a, 0x9c, 0xb4, 0x10, 0xff, 0x61, 0xf2, 0x00, 0x15, 0xad};
static const CK_BYTE sha1_abc[20] = {0xa9, 0x99, 0x3e, 0x36, 0x47, 0x06, 0x81, 0x6a, 0xba, 0x3e,
                                     0x25, 0x71, 0x78, 0x50, 0xc2, 0x6c, 0x9c, 0xd0, 0xd8, 0x9d};

static CK_OBJECT_HANDLE find_one(CK_SESSION_HANDLE h, CK_OBJECT_CLASS cls) {
	CK_ATTRIBUTE t[] = {{CKA_CLASS, &cls, sizeof cls}};
	CK_OBJECT_HANDLE o = CK_INVALID_HANDLE;
	CK_ULONG n = 0;
	if (f->C_FindObjectsInit(h, t, 1) != CKR_OK)
		return CK_INVALID_HANDLE;
	f->C_FindObjects(h, &o, 1, &n);
	f->C_FindObjectsFinal(h);
	return n == 1 ? o : CK_INVALID_HANDLE;
}

static CK_ULONG count(CK_SESSION_HANDLE h, CK_OBJECT_CLASS cls) {
	CK_ATTRIBUTE t[] = {{CKA_CLASS, &cls, sizeof cls}};
	CK_OBJECT_HANDLE o[64];
	CK_ULONG n = 0;
	if (f->C_FindObjectsInit(h, t, 1) != CKR_OK)
		return (CK_ULONG)-1;
	f->C_FindObjects(h, o, 64, &n);
	f->C_FindObjectsFinal(h);
	return n;
}

static void digests(CK_SESSION_HANDLE h) {
	CK_MECHANISM sha256 = {CKM_SHA256, NULL, 0}, sha1 = {CKM_SHA_1, NULL, 0};
	CK_MECHANISM bad = {CKM_ECDSA, NULL, 0};
	CK_BYTE out[64];
	CK_ULONG n;

	CHECK("C_DigestInit(SHA-256)", f->C_DigestInit(h, &sha256), CKR_OK);
	n = 0;
	CHECK("C_Digest(NULL): the length", f->C_Digest(h, (CK_BYTE_PTR) "abc", 3, NULL, &n), CKR_OK);
	TRUE_("a 32-byte digest", n == 32);
	n = 31;
	memset(out, 0xa5, sizeof out);
	CHECK("C_Digest(31-byte buffer)", f->C_Digest(h, (CK_BYTE_PTR) "abc", 3, out, &n), CKR_BUFFER_TOO_SMALL);
	TRUE_("BUFFER_TOO_SMALL sets the length and writes nothing", n == 32 && out[0] == 0xa5);
	n = sizeof out;
	CHECK("C_Digest", f->C_Digest(h, (CK_BYTE_PTR) "abc", 3, out, &n), CKR_OK);
	TRUE_("SHA-256(abc)", n == 32 && memcmp(out, sha256_abc, 32) == 0);
	n = sizeof out;
	CHECK("C_Digest after the digest", f->C_Digest(h, (CK_BYTE_PTR) "abc", 3, out, &n), CKR_OPERATION_NOT_INITIALIZED);

	CHECK("C_DigestInit(SHA-1)", f->C_DigestInit(h, &sha1), CKR_OK);
	CHECK("C_DigestUpdate(a)", f->C_DigestUpdate(h, (CK_BYTE_PTR) "a", 1), CKR_OK);
	CHECK("C_DigestUpdate(bc)", f->C_DigestUpdate(h, (CK_BYTE_PTR) "bc", 2), CKR_OK);
	n = 0;
	CHECK("C_DigestFinal(NULL): the length", f->C_DigestFinal(h, NULL, &n), CKR_OK);
	TRUE_("a 20-byte digest", n == 20);
	n = sizeof out;
	CHECK("C_DigestFinal", f->C_DigestFinal(h, out, &n), CKR_OK);
	TRUE_("SHA-1(abc)", n == 20 && memcmp(out, sha1_abc, 20) == 0);

	// 3 MiB in one C_Digest: more than a frame; the module sends parts.
	enum { BIG = 3 << 20 };
	CK_BYTE *big = calloc(BIG, 1);
	if (big) {
		CHECK("C_DigestInit", f->C_DigestInit(h, &sha256), CKR_OK);
		n = sizeof out;
		CHECK("C_Digest(3 MiB)", f->C_Digest(h, big, BIG, out, &n), CKR_OK);
		CK_BYTE again[32];
		CK_ULONG m = sizeof again;
		CHECK("C_DigestInit", f->C_DigestInit(h, &sha256), CKR_OK);
		for (int i = 0; i < 3; i++)
			CHECK("C_DigestUpdate(1 MiB)", f->C_DigestUpdate(h, big, BIG / 3), CKR_OK);
		CHECK("C_DigestFinal", f->C_DigestFinal(h, again, &m), CKR_OK);
		TRUE_("one step and three parts agree", n == 32 && m == 32 && memcmp(out, again, 32) == 0);
		free(big);
	}

	// C_DigestInit waits for its answer: applications probe mechanisms
	// with it.
	CHECK("C_DigestInit(CKM_ECDSA)", f->C_DigestInit(h, &bad), CKR_MECHANISM_INVALID);
	n = sizeof out;
	CHECK("no digest after it", f->C_Digest(h, (CK_BYTE_PTR) "abc", 3, out, &n), CKR_OPERATION_NOT_INITIALIZED);
	CHECK("C_DigestInit", f->C_DigestInit(h, &sha256), CKR_OK);
	CHECK("C_DigestInit again", f->C_DigestInit(h, &sha1), CKR_OPERATION_ACTIVE);
	n = sizeof out;
	CHECK("the first digest goes on", f->C_DigestFinal(h, out, &n), CKR_OK);
	TRUE_("SHA-256 of nothing", n == 32 && out[0] == 0xe3 && out[31] == 0x55);

	CK_OBJECT_HANDLE key = find_one(h, CKO_PUBLIC_KEY);
	CHECK("C_DigestInit", f->C_DigestInit(h, &sha256), CKR_OK);
	CHECK("C_DigestKey(a card key)", f->C_DigestKey(h, key), CKR_KEY_INDIGESTIBLE);
	n = sizeof out;
	CHECK("C_DigestKey's failure ended the digest", f->C_DigestFinal(h, out, &n), CKR_OPERATION_NOT_INITIALIZED);
}

static void verification(CK_SESSION_HANDLE h) {
	CK_OBJECT_HANDLE priv = find_one(h, CKO_PRIVATE_KEY), pub = find_one(h, CKO_PUBLIC_KEY);
	TRUE_("one key pair", priv != CK_INVALID_HANDLE && pub != CK_INVALID_HANDLE);
	CK_MECHANISM m = {CKM_ECDSA_SHA256, NULL, 0};
	CK_BYTE msg[] = "a message the card signed", sig[80];
	CK_ULONG sl = sizeof sig;
	CHECK("C_SignInit", f->C_SignInit(h, &m, priv), CKR_OK);
	CHECK("C_Sign", f->C_Sign(h, msg, sizeof msg, sig, &sl), CKR_OK);

	CHECK("C_VerifyInit", f->C_VerifyInit(h, &m, pub), CKR_OK);
	CHECK("C_Verify", f->C_Verify(h, msg, sizeof msg, sig, sl), CKR_OK);
	CHECK("C_Verify after the verification", f->C_Verify(h, msg, sizeof msg, sig, sl), CKR_OPERATION_NOT_INITIALIZED);
	CHECK("C_VerifyInit", f->C_VerifyInit(h, &m, pub), CKR_OK);
	CHECK("C_VerifyUpdate", f->C_VerifyUpdate(h, msg, 5), CKR_OK);
	CHECK("C_VerifyUpdate", f->C_VerifyUpdate(h, msg + 5, sizeof msg - 5), CKR_OK);
	CHECK("C_VerifyFinal", f->C_VerifyFinal(h, sig, sl), CKR_OK);

	sig[3] ^= 1;
	CHECK("C_VerifyInit", f->C_VerifyInit(h, &m, pub), CKR_OK);
	CHECK("C_Verify(changed signature)", f->C_Verify(h, msg, sizeof msg, sig, sl), CKR_SIGNATURE_INVALID);
	sig[3] ^= 1;
	CHECK("C_VerifyInit", f->C_VerifyInit(h, &m, pub), CKR_OK);
	CHECK("C_Verify(short signature)", f->C_Verify(h, msg, sizeof msg, sig, sl - 1), CKR_SIGNATURE_LEN_RANGE);
	CHECK("C_VerifyInit", f->C_VerifyInit(h, &m, pub), CKR_OK);
	CHECK("C_VerifyFinal(long signature)", f->C_VerifyFinal(h, sig, sl + 1), CKR_SIGNATURE_LEN_RANGE);

	// 3 MiB to verify in one C_Verify: parts again.
	enum { BIG = 3 << 20 };
	CK_BYTE *big = calloc(BIG, 1);
	if (big) {
		sl = sizeof sig;
		CHECK("C_SignInit", f->C_SignInit(h, &m, priv), CKR_OK);
		CHECK("C_Sign(3 MiB)", f->C_Sign(h, big, BIG, sig, &sl), CKR_OK);
		CHECK("C_VerifyInit", f->C_VerifyInit(h, &m, pub), CKR_OK);
		CHECK("C_Verify(3 MiB)", f->C_Verify(h, big, BIG, sig, sl), CKR_OK);
		big[BIG - 1] = 1;
		CHECK("C_VerifyInit", f->C_VerifyInit(h, &m, pub), CKR_OK);
		CHECK("C_Verify(3 MiB, last byte changed)", f->C_Verify(h, big, BIG, sig, sl), CKR_SIGNATURE_INVALID);
		free(big);
	}

	// An init not yet seen to succeed in the session answers for itself
	// (applications probe mechanisms with it); one that has is pipelined,
	// and its failure is the next call's answer.
	CHECK("C_VerifyInit(private key), never accepted: answers itself", f->C_VerifyInit(h, &m, priv), CKR_KEY_FUNCTION_NOT_PERMITTED);
	CK_MECHANISM rsa = {CKM_SHA256_RSA_PKCS, NULL, 0};
	CHECK("C_VerifyInit(RSA mechanism, EC key)", f->C_VerifyInit(h, &rsa, pub), CKR_KEY_TYPE_INCONSISTENT);
	CHECK("C_Logout", f->C_Logout(h), CKR_OK);
	CHECK("C_SignInit after the logout, accepted before: pipelined", f->C_SignInit(h, &m, priv), CKR_OK);
	sl = sizeof sig;
	CHECK("C_Sign after it: CKR_USER_NOT_LOGGED_IN", f->C_Sign(h, msg, sizeof msg, sig, &sl), CKR_USER_NOT_LOGGED_IN);
}

static void data_objects(CK_SESSION_HANDLE ro, CK_SESSION_HANDLE rw) {
	CK_OBJECT_CLASS data = CKO_DATA;
	CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
	char label[] = "p11ops data", app[] = "p11ops";
	CK_BYTE value[] = "the value of a private data object";
	CK_ATTRIBUTE t[] = {
		{CKA_CLASS, &data, sizeof data}, {CKA_TOKEN, &yes, 1}, {CKA_PRIVATE, &yes, 1},
		{CKA_LABEL, label, strlen(label)}, {CKA_APPLICATION, app, strlen(app)}, {CKA_VALUE, value, sizeof value},
	};
	CK_OBJECT_HANDLE o = 0, cp = 0;
	CK_ULONG before = count(rw, CKO_DATA);
	CHECK("C_CreateObject(token data, read-only session)", f->C_CreateObject(ro, t, 6, &o), CKR_SESSION_READ_ONLY);
	CHECK("C_CreateObject(private token data)", f->C_CreateObject(rw, t, 6, &o), CKR_OK);
	TRUE_("one data object more", count(rw, CKO_DATA) == before + 1);

	CK_BYTE buf[128];
	CK_ATTRIBUTE get[] = {{CKA_VALUE, NULL, 0}};
	CHECK("C_GetAttributeValue(CKA_VALUE length)", f->C_GetAttributeValue(rw, o, get, 1), CKR_OK);
	TRUE_("its length", get[0].ulValueLen == sizeof value);
	get[0].pValue = buf;
	get[0].ulValueLen = sizeof buf;
	CHECK("C_GetAttributeValue(CKA_VALUE)", f->C_GetAttributeValue(rw, o, get, 1), CKR_OK);
	TRUE_("the value", get[0].ulValueLen == sizeof value && memcmp(buf, value, sizeof value) == 0);

	char relabel[] = "p11ops relabelled";
	CK_ATTRIBUTE set[] = {{CKA_LABEL, relabel, strlen(relabel)}};
	CHECK("C_SetAttributeValue(CKA_LABEL)", f->C_SetAttributeValue(rw, o, set, 1), CKR_OK);
	CK_ATTRIBUTE setv[] = {{CKA_VALUE, value, 3}};
	CHECK("C_SetAttributeValue(CKA_VALUE)", f->C_SetAttributeValue(rw, o, setv, 1), CKR_ATTRIBUTE_READ_ONLY);
	CK_ATTRIBUTE getl[] = {{CKA_LABEL, buf, sizeof buf}};
	CHECK("C_GetAttributeValue(CKA_LABEL)", f->C_GetAttributeValue(rw, o, getl, 1), CKR_OK);
	TRUE_("the new label", getl[0].ulValueLen == strlen(relabel) && memcmp(buf, relabel, strlen(relabel)) == 0);

	CK_ATTRIBUTE ct[] = {{CKA_TOKEN, &no, 1}, {CKA_COPYABLE, &no, 1}};
	CHECK("C_CopyObject(NULL handle)", f->C_CopyObject(rw, o, ct, 2, NULL), CKR_ARGUMENTS_BAD);
	CHECK("C_CopyObject(to a session object)", f->C_CopyObject(ro, o, ct, 2, &cp), CKR_OK);
	get[0].pValue = buf;
	get[0].ulValueLen = sizeof buf;
	CHECK("C_GetAttributeValue(the copy's CKA_VALUE)", f->C_GetAttributeValue(rw, cp, get, 1), CKR_OK);
	TRUE_("the copy's value", get[0].ulValueLen == sizeof value && memcmp(buf, value, sizeof value) == 0);
	CK_OBJECT_HANDLE cp2;
	CHECK("C_CopyObject(a copy not copyable)", f->C_CopyObject(rw, cp, NULL, 0, &cp2), CKR_ACTION_PROHIBITED);
	CK_OBJECT_HANDLE key = find_one(rw, CKO_PRIVATE_KEY);
	CHECK("C_CopyObject(a key)", f->C_CopyObject(rw, key, NULL, 0, &cp2), CKR_ACTION_PROHIBITED);
	CK_ATTRIBUTE setk[] = {{CKA_LABEL, relabel, strlen(relabel)}};
	CHECK("C_SetAttributeValue(a token key's label)", f->C_SetAttributeValue(rw, key, setk, 1), CKR_OK);
	CK_BBOOL no_sign = CK_FALSE;
	CK_ATTRIBUTE setsign[] = {{CKA_SIGN, &no_sign, sizeof no_sign}};
	CHECK("C_SetAttributeValue(a token key's CKA_SIGN)", f->C_SetAttributeValue(rw, key, setsign, 1), CKR_ATTRIBUTE_READ_ONLY);

	CHECK("C_Logout", f->C_Logout(rw), CKR_OK);
	TRUE_("logged out, the private objects are out of sight", count(rw, CKO_DATA) == before);
	CHECK("C_GetAttributeValue(a private object, logged out)", f->C_GetAttributeValue(rw, o, get, 1), CKR_OBJECT_HANDLE_INVALID);
}

int main(int argc, char **argv) {
	if (argc != 3) {
		fprintf(stderr, "usage: p11ops MODULE PIN\n");
		return 2;
	}
	const char *pin = argv[2];
	void *lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
	if (!lib) {
		fprintf(stderr, "dlopen: %s\n", dlerror());
		return 2;
	}
	CK_C_GetFunctionList gfl = (CK_C_GetFunctionList)dlsym(lib, "C_GetFunctionList");
	if (!gfl || gfl(&f) != CKR_OK)
		return 2;
	CK_MECHANISM sha = {CKM_SHA256, NULL, 0};
	CHECK("C_DigestInit before C_Initialize", f->C_DigestInit(1, &sha), CKR_CRYPTOKI_NOT_INITIALIZED);
	CHECK("C_Initialize", f->C_Initialize(NULL), CKR_OK);
	CK_SLOT_ID slot;
	CK_ULONG n = 1;
	CHECK("C_GetSlotList", f->C_GetSlotList(CK_TRUE, &slot, &n), CKR_OK);

	CK_MECHANISM_INFO mi;
	CHECK("C_GetMechanismInfo(CKM_SHA256)", f->C_GetMechanismInfo(slot, CKM_SHA256, &mi), CKR_OK);
	TRUE_("CKM_SHA256 digests", (mi.flags & CKF_DIGEST) != 0 && (mi.flags & CKF_SIGN) == 0);
	CHECK("C_GetMechanismInfo(CKM_ECDSA_SHA256)", f->C_GetMechanismInfo(slot, CKM_ECDSA_SHA256, &mi), CKR_OK);
	TRUE_("CKM_ECDSA_SHA256 signs and verifies", (mi.flags & (CKF_SIGN | CKF_VERIFY)) == (CKF_SIGN | CKF_VERIFY));

	CK_SESSION_HANDLE ro, rw;
	CHECK("C_OpenSession(read-only)", f->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, &ro), CKR_OK);
	CHECK("C_OpenSession(read-write)", f->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &rw), CKR_OK);
	digests(ro);
	CHECK("C_Login", f->C_Login(rw, CKU_USER, (CK_UTF8CHAR_PTR)pin, strlen(pin)), CKR_OK);
	verification(ro); /* logs out */
	CHECK("C_Login", f->C_Login(rw, CKU_USER, (CK_UTF8CHAR_PTR)pin, strlen(pin)), CKR_OK);
	data_objects(ro, rw);

	// A pending C_VerifyInit dies with its session (the second is
	// pipelined: the first was accepted).
	CK_MECHANISM ecdsa = {CKM_ECDSA, NULL, 0};
	CK_OBJECT_HANDLE pub = find_one(ro, CKO_PUBLIC_KEY);
	CK_BYTE d[32] = {0}, bad[64] = {0};
	CHECK("C_VerifyInit", f->C_VerifyInit(ro, &ecdsa, pub), CKR_OK);
	CHECK("C_Verify(a signature of zeros)", f->C_Verify(ro, d, sizeof d, bad, sizeof bad), CKR_SIGNATURE_INVALID);
	CHECK("C_VerifyInit", f->C_VerifyInit(ro, &ecdsa, pub), CKR_OK);
	CHECK("C_CloseSession with a C_VerifyInit pending", f->C_CloseSession(ro), CKR_OK);
	CHECK("C_Finalize", f->C_Finalize(NULL), CKR_OK);
	printf("%d failures\n", failures);
	return failures ? 1 : 0;
}
