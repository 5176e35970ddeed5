// bench measures the module through its C ABI. Usage:
//   bench MODULE PIN SIGNATURES THREADS
// It prints "key value" lines: cold_us (C_Initialize to the first
// signature), cold_login_us (the part of it C_Login took), login_us
// (median C_Login), sig_per_s, p50_us and p99_us over SIGNATURES signatures
// (C_SignInit + C_Sign, CKM_ECDSA over a SHA-256 digest) spread over
// THREADS threads, each with a session of its own.

#define _POSIX_C_SOURCE 200809L
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <p11-kit/pkcs11.h>

static CK_FUNCTION_LIST_PTR f;
static CK_SLOT_ID slot;
static CK_OBJECT_HANDLE key;
static long per_thread;
static double *lat; // microseconds, per signature

static double now_us(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

#define MUST(call) do { CK_RV rv_ = (call); if (rv_ != CKR_OK) { fprintf(stderr, "%s = 0x%lx\n", #call, rv_); exit(1); } } while (0)

static int cmp(const void *a, const void *b) {
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static void sign(CK_SESSION_HANDLE h) {
	static unsigned char digest[32] = {1, 2, 3};
	CK_MECHANISM mech = {CKM_ECDSA, NULL, 0};
	unsigned char sig[128];
	CK_ULONG n = sizeof sig;
	MUST(f->C_SignInit(h, &mech, key));
	MUST(f->C_Sign(h, digest, sizeof digest, sig, &n));
}

static void *worker(void *arg) {
	long id = (long)arg;
	CK_SESSION_HANDLE h;
	MUST(f->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, &h));
	for (long i = 0; i < per_thread; i++) {
		double t0 = now_us();
		sign(h);
		lat[id * per_thread + i] = now_us() - t0;
	}
	return NULL;
}

int main(int argc, char **argv) {
	if (argc != 5)
		return 2;
	const char *pin = argv[2];
	long total = atol(argv[3]), threads = atol(argv[4]);
	void *lib = dlopen(argv[1], RTLD_NOW);
	if (!lib) {
		fprintf(stderr, "%s\n", dlerror());
		return 2;
	}
	((CK_C_GetFunctionList)dlsym(lib, "C_GetFunctionList"))(&f);

	// Cold start: C_Initialize to the first signature.
	double t0 = now_us();
	CK_C_INITIALIZE_ARGS args = {.flags = CKF_OS_LOCKING_OK}; // several threads
	MUST(f->C_Initialize(&args));
	// The first slot with an initialized token (SoftHSM2 adds an empty one).
	CK_SLOT_ID slots[16];
	CK_ULONG n = 16;
	MUST(f->C_GetSlotList(CK_TRUE, slots, &n));
	for (CK_ULONG i = 0;; i++) {
		CK_TOKEN_INFO ti;
		if (i == n)
			return 3;
		MUST(f->C_GetTokenInfo(slots[i], &ti));
		if (ti.flags & CKF_TOKEN_INITIALIZED) {
			slot = slots[i];
			break;
		}
	}
	CK_SESSION_HANDLE h;
	MUST(f->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, &h));
	double tl = now_us();
	MUST(f->C_Login(h, CKU_USER, (CK_UTF8CHAR_PTR)pin, strlen(pin)));
	double first_login = now_us() - tl;
	CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
	CK_ATTRIBUTE tmpl[] = {{CKA_CLASS, &cls, sizeof cls}};
	MUST(f->C_FindObjectsInit(h, tmpl, 1));
	MUST(f->C_FindObjects(h, &key, 1, &n));
	MUST(f->C_FindObjectsFinal(h));
	sign(h);
	printf("cold_us %.0f\n", now_us() - t0);
	printf("cold_login_us %.0f\n", first_login);

	// C_Login latency.
	enum { LOGINS = 21 };
	double logins[LOGINS];
	for (int i = 0; i < LOGINS; i++) {
		MUST(f->C_Logout(h));
		double t = now_us();
		MUST(f->C_Login(h, CKU_USER, (CK_UTF8CHAR_PTR)pin, strlen(pin)));
		logins[i] = now_us() - t;
	}
	qsort(logins, LOGINS, sizeof logins[0], cmp);
	printf("login_us %.0f\n", logins[LOGINS / 2]);

	// A module may renumber private objects at each login (SoftHSM2 does).
	MUST(f->C_FindObjectsInit(h, tmpl, 1));
	MUST(f->C_FindObjects(h, &key, 1, &n));
	MUST(f->C_FindObjectsFinal(h));

	per_thread = (total + threads - 1) / threads;
	total = per_thread * threads;
	lat = calloc(total, sizeof *lat);
	pthread_t tid[64];
	t0 = now_us();
	for (long i = 0; i < threads; i++)
		pthread_create(&tid[i], NULL, worker, (void *)i);
	for (long i = 0; i < threads; i++)
		pthread_join(tid[i], NULL);
	double elapsed = now_us() - t0;
	qsort(lat, total, sizeof *lat, cmp);
	printf("sig_per_s %.1f\n", total / (elapsed / 1e6));
	printf("p50_us %.0f\n", lat[total / 2]);
	printf("p99_us %.0f\n", lat[total * 99 / 100]);
	MUST(f->C_Finalize(NULL));
	return 0;
}
