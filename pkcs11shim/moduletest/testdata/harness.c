// harness drives the module through its C ABI the way a C application
// does: dlopen, C_GetFunctionList, raw pointers. Usage:
//   harness MODULE LABEL PIN
// It prints one line per check and exits non-zero if any failed.

#define _POSIX_C_SOURCE 200809L
#include <dlfcn.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
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
}
#define TRUE_(what, cond) CHECK(what, (cond) ? 1 : 0, 1)

// blank_padded: no NUL anywhere, and the text is s followed by blanks.
static int blank_padded(const unsigned char *field, size_t n, const char *s) {
	size_t l = strlen(s);
	if (l > n || memcmp(field, s, l) != 0)
		return 0;
	for (size_t i = l; i < n; i++)
		if (field[i] != ' ')
			return 0;
	return 1;
}
static int no_nul(const unsigned char *field, size_t n) {
	for (size_t i = 0; i < n; i++)
		if (field[i] == 0)
			return 0;
	return field[n - 1] == ' ' || field[n - 1] != 0;
}

static CK_RV dummy_mutex(void *m) { (void)m; return CKR_OK; }
static CK_RV dummy_create(void **m) { *m = NULL; return CKR_OK; }

// sign_once logs in on a new session and signs with the first private key.
static CK_RV sign_once(CK_SLOT_ID slot, const char *pin, CK_SESSION_HANDLE *out) {
	CK_SESSION_HANDLE h;
	CK_RV rv = f->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, &h);
	if (rv != CKR_OK)
		return rv;
	rv = f->C_Login(h, CKU_USER, (CK_UTF8CHAR_PTR)pin, strlen(pin));
	if (rv != CKR_OK && rv != CKR_USER_ALREADY_LOGGED_IN)
		return rv;
	CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
	CK_ATTRIBUTE tmpl[] = {{CKA_CLASS, &cls, sizeof cls}};
	CK_OBJECT_HANDLE key;
	CK_ULONG n = 0;
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
	unsigned char sig[256];
	CK_ULONG sl = sizeof sig;
	if ((rv = f->C_Sign(h, (CK_BYTE_PTR)"data", 4, sig, &sl)) != CKR_OK)
		return rv;
	if (sl != 64)
		return CKR_GENERAL_ERROR;
	if (out)
		*out = h;
	return CKR_OK;
}

// Many threads, each with sessions of its own, sign at once.
enum { THREADS = 8, ROUNDS = 5 };
static CK_SLOT_ID thread_slot;
static const char *thread_pin;
static void *signer(void *arg) {
	CK_RV *rv = arg;
	for (int i = 0; i < ROUNDS && *rv == CKR_OK; i++) {
		CK_SESSION_HANDLE h;
		*rv = sign_once(thread_slot, thread_pin, &h);
		if (*rv == CKR_OK)
			*rv = f->C_CloseSession(h);
	}
	return NULL;
}

int main(int argc, char **argv) {
	if (argc != 4) {
		fprintf(stderr, "usage: harness MODULE LABEL PIN\n");
		return 2;
	}
	const char *label = argv[2], *pin = argv[3];
	void *lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
	if (!lib) {
		fprintf(stderr, "dlopen: %s\n", dlerror());
		return 2;
	}
	CK_C_GetFunctionList gfl = (CK_C_GetFunctionList)dlsym(lib, "C_GetFunctionList");
	CHECK("C_GetFunctionList(NULL)", gfl(NULL), CKR_ARGUMENTS_BAD);
	CHECK("C_GetFunctionList", gfl(&f), CKR_OK);
	TRUE_("function list version 2.40", f->version.major == 2 && f->version.minor == 40);

	// v3.0 interfaces.
	typedef struct { CK_CHAR *name; void *list; CK_FLAGS flags; } iface_t;
	CK_RV (*gil)(iface_t *, CK_ULONG *) = dlsym(lib, "C_GetInterfaceList");
	CK_RV (*gi)(CK_UTF8CHAR *, CK_VERSION *, iface_t **, CK_FLAGS) = dlsym(lib, "C_GetInterface");
	TRUE_("C_GetInterfaceList and C_GetInterface exported", gil != NULL && gi != NULL);
	if (gil && gi) {
		CK_ULONG n = 0;
		CHECK("C_GetInterfaceList(NULL, NULL)", gil(NULL, NULL), CKR_ARGUMENTS_BAD);
		CHECK("C_GetInterfaceList(NULL, &n)", gil(NULL, &n), CKR_OK);
		TRUE_("one interface", n == 1);
		iface_t ifs[2];
		n = 0;
		CHECK("C_GetInterfaceList(short)", gil(ifs, &n), CKR_BUFFER_TOO_SMALL);
		n = 2;
		CHECK("C_GetInterfaceList", gil(ifs, &n), CKR_OK);
		TRUE_("interface \"PKCS 11\" with the function list", n == 1 && strcmp((char *)ifs[0].name, "PKCS 11") == 0 && ifs[0].list == f);
		iface_t *ip = NULL;
		CHECK("C_GetInterface(NULL name)", gi(NULL, NULL, &ip, 0), CKR_OK);
		TRUE_("C_GetInterface gives the function list", ip != NULL && ip->list == f);
		CK_VERSION v3 = {3, 0};
		CHECK("C_GetInterface(v3.0)", gi((CK_UTF8CHAR *)"PKCS 11", &v3, &ip, 0), CKR_ARGUMENTS_BAD);
		CHECK("C_GetInterface(NULL out)", gi(NULL, NULL, NULL, 0), CKR_ARGUMENTS_BAD);
	}

	// Before C_Initialize.
	CK_INFO info;
	CK_ULONG count = 0;
	CHECK("C_GetInfo before C_Initialize", f->C_GetInfo(&info), CKR_CRYPTOKI_NOT_INITIALIZED);
	CHECK("C_GetSlotList before C_Initialize", f->C_GetSlotList(CK_TRUE, NULL, &count), CKR_CRYPTOKI_NOT_INITIALIZED);
	CHECK("C_Finalize before C_Initialize", f->C_Finalize(NULL), CKR_CRYPTOKI_NOT_INITIALIZED);

	// C_Initialize arguments.
	CK_C_INITIALIZE_ARGS args;
	memset(&args, 0, sizeof args);
	args.pReserved = &args;
	CHECK("C_Initialize(pReserved)", f->C_Initialize(&args), CKR_ARGUMENTS_BAD);
	memset(&args, 0, sizeof args);
	args.CreateMutex = dummy_create;
	CHECK("C_Initialize(some mutex callbacks)", f->C_Initialize(&args), CKR_ARGUMENTS_BAD);
	args.DestroyMutex = dummy_mutex;
	args.LockMutex = dummy_mutex;
	args.UnlockMutex = dummy_mutex;
	CHECK("C_Initialize(callbacks, no OS locking)", f->C_Initialize(&args), CKR_CANT_LOCK);
	args.flags = CKF_OS_LOCKING_OK;
	CHECK("C_Initialize(callbacks, OS locking)", f->C_Initialize(&args), CKR_OK);
	CHECK("C_Initialize again", f->C_Initialize(NULL), CKR_CRYPTOKI_ALREADY_INITIALIZED);
	CHECK("C_Finalize(non-NULL)", f->C_Finalize(&args), CKR_ARGUMENTS_BAD);
	CHECK("C_Finalize", f->C_Finalize(NULL), CKR_OK);
	CHECK("C_Initialize(NULL)", f->C_Initialize(NULL), CKR_OK);

	// C_GetInfo.
	CHECK("C_GetInfo(NULL)", f->C_GetInfo(NULL), CKR_ARGUMENTS_BAD);
	CHECK("C_GetInfo", f->C_GetInfo(&info), CKR_OK);
	TRUE_("cryptokiVersion 2.40", info.cryptokiVersion.major == 2 && info.cryptokiVersion.minor == 40);
	TRUE_("CK_INFO manufacturerID blank-padded", blank_padded(info.manufacturerID, 32, "tpmcard"));
	TRUE_("CK_INFO libraryDescription has no NUL", no_nul(info.libraryDescription, 32));

	// Slots, two calls.
	CHECK("C_GetSlotList(NULL count)", f->C_GetSlotList(CK_TRUE, NULL, NULL), CKR_ARGUMENTS_BAD);
	CHECK("C_GetSlotList(NULL list)", f->C_GetSlotList(CK_TRUE, NULL, &count), CKR_OK);
	TRUE_("one slot with a token", count == 1);
	CK_SLOT_ID slots[4];
	CK_ULONG small = 0;
	CHECK("C_GetSlotList(short)", f->C_GetSlotList(CK_TRUE, slots, &small), CKR_BUFFER_TOO_SMALL);
	TRUE_("count after BUFFER_TOO_SMALL", small == 1);
	count = 4;
	CHECK("C_GetSlotList", f->C_GetSlotList(CK_TRUE, slots, &count), CKR_OK);
	CK_SLOT_ID slot = slots[0];

	CK_SLOT_INFO si;
	CHECK("C_GetSlotInfo(NULL)", f->C_GetSlotInfo(slot, NULL), CKR_ARGUMENTS_BAD);
	CHECK("C_GetSlotInfo", f->C_GetSlotInfo(slot, &si), CKR_OK);
	TRUE_("CKF_TOKEN_PRESENT", (si.flags & CKF_TOKEN_PRESENT) != 0);
	TRUE_("slotDescription blank-padded", no_nul(si.slotDescription, 64) && si.slotDescription[63] == ' ');
	CHECK("C_GetSlotInfo(bad slot)", f->C_GetSlotInfo(slot + 100, &si), CKR_SLOT_ID_INVALID);

	CK_TOKEN_INFO ti;
	CHECK("C_GetTokenInfo(NULL)", f->C_GetTokenInfo(slot, NULL), CKR_ARGUMENTS_BAD);
	CHECK("C_GetTokenInfo", f->C_GetTokenInfo(slot, &ti), CKR_OK);
	TRUE_("label blank-padded", blank_padded(ti.label, 32, label));
	TRUE_("manufacturerID blank-padded", blank_padded(ti.manufacturerID, 32, "tpmcard"));
	TRUE_("model has no NUL", no_nul(ti.model, 16));
	TRUE_("serialNumber has no NUL", no_nul(ti.serialNumber, 16));
	TRUE_("utcTime blank", blank_padded(ti.utcTime, 16, ""));
	TRUE_("CKF_TOKEN_INITIALIZED|CKF_LOGIN_REQUIRED|CKF_USER_PIN_INITIALIZED",
	      (ti.flags & (CKF_TOKEN_INITIALIZED | CKF_LOGIN_REQUIRED | CKF_USER_PIN_INITIALIZED)) ==
	          (CKF_TOKEN_INITIALIZED | CKF_LOGIN_REQUIRED | CKF_USER_PIN_INITIALIZED));
	TRUE_("ulMaxSessionCount CK_EFFECTIVELY_INFINITE", ti.ulMaxSessionCount == CK_EFFECTIVELY_INFINITE);
	TRUE_("ulSessionCount CK_UNAVAILABLE_INFORMATION", ti.ulSessionCount == CK_UNAVAILABLE_INFORMATION);
	TRUE_("PIN lengths", ti.ulMinPinLen == 8 && ti.ulMaxPinLen >= 8);

	CHECK("C_GetMechanismList(NULL count)", f->C_GetMechanismList(slot, NULL, NULL), CKR_ARGUMENTS_BAD);
	CK_MECHANISM_INFO mi;
	CHECK("C_GetMechanismInfo(NULL)", f->C_GetMechanismInfo(slot, CKM_ECDSA, NULL), CKR_ARGUMENTS_BAD);
	CHECK("C_GetMechanismInfo", f->C_GetMechanismInfo(slot, CKM_ECDSA, &mi), CKR_OK);

	// Sessions.
	CK_SESSION_HANDLE h;
	CHECK("C_OpenSession(NULL handle)", f->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, NULL), CKR_ARGUMENTS_BAD);
	CHECK("C_OpenSession(no SERIAL)", f->C_OpenSession(slot, 0, NULL, NULL, &h), CKR_SESSION_PARALLEL_NOT_SUPPORTED);
	CHECK("C_OpenSession", f->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, &h), CKR_OK);
	CK_SESSION_INFO sinfo;
	CHECK("C_GetSessionInfo(NULL)", f->C_GetSessionInfo(h, NULL), CKR_ARGUMENTS_BAD);
	CHECK("C_GetSessionInfo(bad handle)", f->C_GetSessionInfo(h + 1000, &sinfo), CKR_SESSION_HANDLE_INVALID);
	CHECK("C_Login(NULL PIN)", f->C_Login(h, CKU_USER, NULL, 4), CKR_ARGUMENTS_BAD);
	CHECK("C_Login", f->C_Login(h, CKU_USER, (CK_UTF8CHAR_PTR)pin, strlen(pin)), CKR_OK);
	CHECK("C_FindObjectsInit(NULL template)", f->C_FindObjectsInit(h, NULL, 1), CKR_ARGUMENTS_BAD);
	CHECK("C_GetAttributeValue(NULL template)", f->C_GetAttributeValue(h, 1, NULL, 1), CKR_ARGUMENTS_BAD);
	{
		CK_OBJECT_CLASS pubcls = CKO_PUBLIC_KEY;
		CK_ATTRIBUTE pt[] = {{CKA_CLASS, &pubcls, sizeof pubcls}};
		CK_OBJECT_HANDLE pub = 0;
		CK_ULONG found = 0, size = 0;
		CHECK("C_FindObjectsInit(public keys)", f->C_FindObjectsInit(h, pt, 1), CKR_OK);
		CHECK("C_FindObjects(public keys)", f->C_FindObjects(h, &pub, 1, &found), CKR_OK);
		CHECK("C_FindObjectsFinal(public keys)", f->C_FindObjectsFinal(h), CKR_OK);
		TRUE_("a public key found", found == 1);
		CHECK("C_GetObjectSize(NULL)", f->C_GetObjectSize(h, pub, NULL), CKR_ARGUMENTS_BAD);
		CHECK("C_GetObjectSize", f->C_GetObjectSize(h, pub, &size), CKR_OK);
		TRUE_("C_GetObjectSize says CK_UNAVAILABLE_INFORMATION", size == CK_UNAVAILABLE_INFORMATION);
		CHECK("C_GetObjectSize(no object)", f->C_GetObjectSize(h, pub + 100000, &size), CKR_OBJECT_HANDLE_INVALID);
		CHECK("C_GetObjectSize(bad session)", f->C_GetObjectSize(h + 1000, pub, &size), CKR_SESSION_HANDLE_INVALID);
	}
	CK_MECHANISM mech = {CKM_ECDSA_SHA256, NULL, 0};
	CHECK("C_SignInit(NULL mechanism)", f->C_SignInit(h, NULL, 1), CKR_ARGUMENTS_BAD);
	CHECK("C_Sign without C_SignInit", f->C_Sign(h, (CK_BYTE_PTR)"x", 1, NULL, &count), CKR_OPERATION_NOT_INITIALIZED);
	(void)mech;
	CHECK("C_Sign(NULL length)", f->C_Sign(h, (CK_BYTE_PTR)"x", 1, NULL, NULL), CKR_ARGUMENTS_BAD);
	CHECK("C_GenerateRandom(NULL)", f->C_GenerateRandom(h, NULL, 8), CKR_ARGUMENTS_BAD);
	unsigned char rnd[32];
	CHECK("C_GenerateRandom", f->C_GenerateRandom(h, rnd, sizeof rnd), CKR_OK);
	CHECK("C_EncryptInit", f->C_EncryptInit(h, &mech, 1), CKR_FUNCTION_NOT_SUPPORTED);
	CHECK("C_InitToken", f->C_InitToken(slot, NULL, 0, NULL), CKR_FUNCTION_NOT_SUPPORTED);
	CK_SLOT_ID ev;
	CHECK("C_WaitForSlotEvent(NULL slot)", f->C_WaitForSlotEvent(CKF_DONT_BLOCK, NULL, NULL), CKR_ARGUMENTS_BAD);
	CHECK("C_WaitForSlotEvent(DONT_BLOCK)", f->C_WaitForSlotEvent(CKF_DONT_BLOCK, &ev, NULL), CKR_NO_EVENT);

	CK_SESSION_HANDLE hs;
	CHECK("sign in the parent", sign_once(slot, pin, &hs), CKR_OK);

	pthread_t threads[THREADS];
	CK_RV trv[THREADS];
	thread_slot = slot;
	thread_pin = pin;
	for (int i = 0; i < THREADS; i++) {
		trv[i] = CKR_OK;
		pthread_create(&threads[i], NULL, signer, &trv[i]);
	}
	CK_RV worst = CKR_OK;
	for (int i = 0; i < THREADS; i++) {
		pthread_join(threads[i], NULL);
		if (trv[i] != CKR_OK)
			worst = trv[i];
	}
	CHECK("8 threads x 5 sessions, each signing", worst, CKR_OK);

	// Fork: the child starts afresh with C_Initialize and signs on its own
	// connection; the parent carries on.
	fflush(stdout);
	pid_t child = fork();
	if (child == 0) {
		// A child that hangs fails the test (SIGALRM) rather than the run.
		alarm(10);
		int bad = 0;
		if (f->C_GetSessionInfo(h, &sinfo) != CKR_CRYPTOKI_NOT_INITIALIZED) {
			printf("FAIL child: parent's state is visible before C_Initialize\n");
			bad = 1;
		}
		CK_RV rv = f->C_Initialize(NULL);
		if (rv != CKR_OK) {
			printf("FAIL child: C_Initialize = 0x%lx\n", rv);
			_exit(1);
		}
		CK_ULONG n = 4;
		CK_SLOT_ID cs[4];
		if ((rv = f->C_GetSlotList(CK_TRUE, cs, &n)) != CKR_OK || n != 1) {
			printf("FAIL child: C_GetSlotList = 0x%lx, %lu slots\n", rv, n);
			_exit(1);
		}
		if ((rv = sign_once(cs[0], pin, NULL)) != CKR_OK) {
			printf("FAIL child: sign = 0x%lx\n", rv);
			_exit(1);
		}
		f->C_Finalize(NULL);
		printf("ok   child: C_Initialize, C_GetSlotList, C_Login, C_Sign after fork\n");
		fflush(stdout);
		_exit(bad);
	}
	int status = 0;
	waitpid(child, &status, 0);
	if (WIFSIGNALED(status))
		printf("FAIL child: killed by signal %d%s\n", WTERMSIG(status), WTERMSIG(status) == SIGALRM ? " (hung for 10 s)" : "");
	TRUE_("child exited cleanly", WIFEXITED(status) && WEXITSTATUS(status) == 0);
	CHECK("parent's session after the fork", f->C_GetSessionInfo(hs, &sinfo), CKR_OK);
	CHECK("sign in the parent after the fork", sign_once(slot, pin, NULL), CKR_OK);

	CHECK("C_CloseAllSessions", f->C_CloseAllSessions(slot), CKR_OK);
	CHECK("C_Finalize", f->C_Finalize(NULL), CKR_OK);
	CHECK("C_GetInfo after C_Finalize", f->C_GetInfo(&info), CKR_CRYPTOKI_NOT_INITIALIZED);
	printf("%d failures\n", failures);
	return failures ? 1 : 0;
}
