// fork forks children off a process that uses the module, one after
// another, while a second thread of the parent keeps calling into the
// module, so that a fork often lands in the middle of a call. Usage:
//   fork MODULE PIN CHILDREN SIGN_EVERY MAX_HUNG BUDGET_S
// The parent initializes, logs in and signs. Each child checks that the
// parent's state is gone (CKR_CRYPTOKI_NOT_INITIALIZED), calls
// C_Initialize, lists the slot, reads the token, opens a session and
// finds the public key; every SIGN_EVERY-th child (the first included)
// also logs in and signs. Then C_CloseSession, C_Finalize, exit 0, all
// under alarm(10). The parent counts the children that exited 0 (ok), that
// SIGALRM ended (hung) and all others (failed); it stops forking early
// after MAX_HUNG hung children or BUDGET_S seconds, then signs once more
// and prints
//   children N ok N hung N failed N
// It exits 0 only if every child was ok and the parent's calls succeeded.

#define _POSIX_C_SOURCE 200809L
#include <dlfcn.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <p11-kit/pkcs11.h>

static CK_FUNCTION_LIST_PTR f;
static CK_SLOT_ID slot;
static const char *pin;

// The steps of a child, as its exit status.
enum {
	STEP_STALE = 10,     // a call before C_Initialize saw the parent's state
	STEP_INITIALIZE,     // C_Initialize
	STEP_SLOTS,          // C_GetSlotList
	STEP_TOKEN,          // C_GetTokenInfo
	STEP_OPEN,           // C_OpenSession
	STEP_FIND,           // C_FindObjects*
	STEP_LOGIN,          // C_Login
	STEP_SIGN,           // C_SignInit, C_Sign
	STEP_CLOSE,          // C_CloseSession
	STEP_FINALIZE,       // C_Finalize
};

static const char *step_name(int s) {
	static const char *names[] = {"parent state visible before C_Initialize", "C_Initialize", "C_GetSlotList",
	                              "C_GetTokenInfo", "C_OpenSession", "C_FindObjects", "C_Login", "C_Sign",
	                              "C_CloseSession", "C_Finalize"};
	return s >= STEP_STALE && s <= STEP_FINALIZE ? names[s - STEP_STALE] : "?";
}

static double now_s(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

// find returns the first object of a class in the session.
static CK_RV find(CK_SESSION_HANDLE h, CK_OBJECT_CLASS cls, CK_OBJECT_HANDLE *obj) {
	CK_ATTRIBUTE tmpl[] = {{CKA_CLASS, &cls, sizeof cls}};
	CK_ULONG n = 0;
	CK_RV rv;
	if ((rv = f->C_FindObjectsInit(h, tmpl, 1)) != CKR_OK)
		return rv;
	rv = f->C_FindObjects(h, obj, 1, &n);
	CK_RV rf = f->C_FindObjectsFinal(h);
	if (rv != CKR_OK)
		return rv;
	if (rf != CKR_OK)
		return rf;
	return n == 1 ? CKR_OK : CKR_GENERAL_ERROR;
}

// sign logs in on h (or finds the application logged in) and makes one ECDSA P-256 signature.
static CK_RV sign(CK_SESSION_HANDLE h, int *step) {
	*step = STEP_LOGIN;
	CK_RV rv = f->C_Login(h, CKU_USER, (CK_UTF8CHAR_PTR)pin, strlen(pin));
	if (rv != CKR_OK && rv != CKR_USER_ALREADY_LOGGED_IN)
		return rv;
	*step = STEP_FIND;
	CK_OBJECT_HANDLE key;
	if ((rv = find(h, CKO_PRIVATE_KEY, &key)) != CKR_OK)
		return rv;
	*step = STEP_SIGN;
	CK_MECHANISM mech = {CKM_ECDSA_SHA256, NULL, 0};
	if ((rv = f->C_SignInit(h, &mech, key)) != CKR_OK)
		return rv;
	unsigned char sig[128];
	CK_ULONG sl = sizeof sig;
	if ((rv = f->C_Sign(h, (CK_BYTE_PTR)"data", 4, sig, &sl)) != CKR_OK)
		return rv;
	return sl == 64 ? CKR_OK : CKR_GENERAL_ERROR;
}

// child is the life of one child; it returns its exit status.
static int child(CK_SESSION_HANDLE parent_session, int do_sign, int verbose) {
	int step = STEP_STALE;
	CK_RV rv;
	CK_SESSION_INFO si;
	if ((rv = f->C_GetSessionInfo(parent_session, &si)) != CKR_CRYPTOKI_NOT_INITIALIZED)
		goto fail;
	step = STEP_INITIALIZE;
	CK_C_INITIALIZE_ARGS args = {.flags = CKF_OS_LOCKING_OK};
	if ((rv = f->C_Initialize(&args)) != CKR_OK)
		goto fail;
	step = STEP_SLOTS;
	CK_SLOT_ID slots[4];
	CK_ULONG n = 4;
	if ((rv = f->C_GetSlotList(CK_TRUE, slots, &n)) != CKR_OK)
		goto fail;
	if (n != 1 || slots[0] != slot) {
		rv = CKR_GENERAL_ERROR;
		goto fail;
	}
	step = STEP_TOKEN;
	CK_TOKEN_INFO ti;
	if ((rv = f->C_GetTokenInfo(slot, &ti)) != CKR_OK)
		goto fail;
	step = STEP_OPEN;
	CK_SESSION_HANDLE h;
	if ((rv = f->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, &h)) != CKR_OK)
		goto fail;
	step = STEP_FIND;
	CK_OBJECT_HANDLE pub;
	if ((rv = find(h, CKO_PUBLIC_KEY, &pub)) != CKR_OK)
		goto fail;
	if (do_sign && (rv = sign(h, &step)) != CKR_OK)
		goto fail;
	step = STEP_CLOSE;
	if ((rv = f->C_CloseSession(h)) != CKR_OK)
		goto fail;
	step = STEP_FINALIZE;
	if ((rv = f->C_Finalize(NULL)) != CKR_OK)
		goto fail;
	return 0;
fail:
	if (verbose) {
		printf("child %d: %s = 0x%lx\n", (int)getpid(), step_name(step), rv);
		fflush(stdout);
	}
	return step;
}

// The parent's second thread.
static atomic_int stop;
static atomic_long busy_calls, busy_errors;
static CK_RV busy_last_error;

static void *busy(void *arg) {
	(void)arg;
	while (!atomic_load(&stop)) {
		CK_SLOT_ID s[4];
		CK_ULONG n = 4;
		CK_RV rv = f->C_GetSlotList(CK_TRUE, s, &n);
		if (rv == CKR_OK) {
			CK_TOKEN_INFO ti;
			rv = f->C_GetTokenInfo(slot, &ti);
		}
		atomic_fetch_add(&busy_calls, 1);
		if (rv != CKR_OK) {
			busy_last_error = rv;
			atomic_fetch_add(&busy_errors, 1);
		}
	}
	return NULL;
}

#define MUST(call)                                                                  \
	do {                                                                        \
		CK_RV rv_ = (call);                                                 \
		if (rv_ != CKR_OK) {                                                \
			printf("FAIL parent: %s = 0x%lx\n", #call, rv_);            \
			return 1;                                                   \
		}                                                                   \
	} while (0)

int main(int argc, char **argv) {
	if (argc != 7) {
		fprintf(stderr, "usage: fork MODULE PIN CHILDREN SIGN_EVERY MAX_HUNG BUDGET_S\n");
		return 2;
	}
	pin = argv[2];
	long children = atol(argv[3]), sign_every = atol(argv[4]), max_hung = atol(argv[5]);
	double budget = atof(argv[6]);
	if (sign_every < 1)
		sign_every = 1;
	void *lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
	if (!lib) {
		fprintf(stderr, "dlopen: %s\n", dlerror());
		return 2;
	}
	CK_C_GetFunctionList gfl = (CK_C_GetFunctionList)dlsym(lib, "C_GetFunctionList");
	if (!gfl || gfl(&f) != CKR_OK)
		return 2;

	CK_C_INITIALIZE_ARGS args = {.flags = CKF_OS_LOCKING_OK};
	MUST(f->C_Initialize(&args));
	CK_ULONG n = 1;
	MUST(f->C_GetSlotList(CK_TRUE, &slot, &n));
	if (n != 1) {
		printf("FAIL parent: %lu slots with a token, want 1\n", n);
		return 1;
	}
	CK_SESSION_HANDLE h;
	MUST(f->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, &h));
	int step;
	MUST(sign(h, &step));

	pthread_t tid;
	if (pthread_create(&tid, NULL, busy, NULL) != 0)
		return 2;
	long ok = 0, hung = 0, failed = 0, i;
	long by_step[STEP_FINALIZE + 1] = {0};
	double t0 = now_s();
	const char *stopped = NULL;
	for (i = 0; i < children; i++) {
		if (hung >= max_hung) {
			stopped = "too many hung children";
			break;
		}
		if (now_s() - t0 > budget) {
			stopped = "out of time";
			break;
		}
		fflush(stdout);
		pid_t pid = fork();
		if (pid < 0) {
			perror("fork");
			return 2;
		}
		if (pid == 0) {
			alarm(10);
			_exit(child(h, i % sign_every == 0, failed < 10));
		}
		int st = 0;
		while (waitpid(pid, &st, 0) < 0)
			;
		if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
			ok++;
		} else if (WIFSIGNALED(st) && WTERMSIG(st) == SIGALRM) {
			hung++;
			printf("child %d (number %ld): hung, killed by SIGALRM after 10 s\n", (int)pid, i);
		} else {
			failed++;
			if (WIFEXITED(st) && WEXITSTATUS(st) >= STEP_STALE && WEXITSTATUS(st) <= STEP_FINALIZE)
				by_step[WEXITSTATUS(st)]++;
			else if (failed <= 10)
				printf("child %d (number %ld): %s %d\n", (int)pid, i,
				       WIFSIGNALED(st) ? "killed by signal" : "exit status",
				       WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
		}
	}
	double elapsed = now_s() - t0;
	atomic_store(&stop, 1);
	pthread_join(tid, NULL);

	int bad = 0;
	for (int s = STEP_STALE; s <= STEP_FINALIZE; s++)
		if (by_step[s])
			printf("failed at %s: %ld\n", step_name(s), by_step[s]);
	if (stopped)
		printf("stopped after %ld of %ld children: %s\n", i, children, stopped);
	printf("parent: %ld busy calls, %ld failed", atomic_load(&busy_calls), atomic_load(&busy_errors));
	if (atomic_load(&busy_errors)) {
		printf(" (last 0x%lx)", busy_last_error);
		bad = 1;
	}
	printf("\n");
	CK_SESSION_INFO si;
	CK_RV rv = f->C_GetSessionInfo(h, &si);
	if (rv != CKR_OK) {
		printf("FAIL parent: its session after the forks = 0x%lx\n", rv);
		bad = 1;
	}
	CK_SESSION_HANDLE h2;
	MUST(f->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, &h2));
	if ((rv = sign(h2, &step)) != CKR_OK) {
		printf("FAIL parent: signing after the forks: %s = 0x%lx\n", step_name(step), rv);
		bad = 1;
	}
	MUST(f->C_Finalize(NULL));
	printf("children_per_s %.1f\n", i / elapsed);
	printf("children %ld ok %ld hung %ld failed %ld\n", i, ok, hung, failed);
	return bad || ok != children ? 1 : 0;
}
