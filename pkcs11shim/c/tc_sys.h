/*
 * tc_sys.h: the few operating-system primitives the module uses, on POSIX
 * (pthreads) and on Windows (SRW locks, condition variables, one-time
 * initialization; Windows Vista and later).
 *
 * tc_mutex is not recursive. tc_once_run runs fn once per tc_once, and
 * returns 0 once it has run (non-zero if it could not be run). A
 * tc_mutex needs no destruction on Windows; tc_mutex_destroy is there
 * for pthreads. On POSIX, a file that includes it defines _GNU_SOURCE
 * (or _POSIX_C_SOURCE) first, for nanosleep.
 */
#ifndef TPMCARD_TC_SYS_H
#define TPMCARD_TC_SYS_H

#ifdef _WIN32

#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#include <winsock2.h> /* before windows.h, which would bring the old winsock.h */
#include <windows.h>
/* windows.h maps CreateMutex to CreateMutexA, which would rename the
 * CK_C_INITIALIZE_ARGS member of that name; the module does not call it. */
#undef CreateMutex

typedef SRWLOCK tc_mutex;
typedef CONDITION_VARIABLE tc_cond;
typedef INIT_ONCE tc_once;
#define TC_MUTEX_INITIALIZER SRWLOCK_INIT
#define TC_ONCE_INIT INIT_ONCE_STATIC_INIT

static inline int tc_mutex_init(tc_mutex *m)
{
	InitializeSRWLock(m);
	return 0;
}
static inline void tc_mutex_destroy(tc_mutex *m) { (void)m; }
static inline void tc_mutex_lock(tc_mutex *m) { AcquireSRWLockExclusive(m); }
static inline void tc_mutex_unlock(tc_mutex *m) { ReleaseSRWLockExclusive(m); }

static inline int tc_cond_init(tc_cond *c)
{
	InitializeConditionVariable(c);
	return 0;
}
static inline void tc_cond_destroy(tc_cond *c) { (void)c; }
static inline void tc_cond_wait(tc_cond *c, tc_mutex *m) { SleepConditionVariableSRW(c, m, INFINITE, 0); }
static inline void tc_cond_broadcast(tc_cond *c) { WakeAllConditionVariable(c); }

/* InitOnceExecuteOnce takes a callback of its own shape: the function to
 * run travels in a struct, as a function pointer is not a void *. */
struct tc_once_fn {
	void (*fn)(void);
};
static inline BOOL CALLBACK tc_once_call(PINIT_ONCE once, PVOID param, PVOID *ctx)
{
	(void)once;
	(void)ctx;
	((const struct tc_once_fn *)param)->fn();
	return TRUE;
}
static inline int tc_once_run(tc_once *o, void (*fn)(void))
{
	struct tc_once_fn f = {fn};
	return InitOnceExecuteOnce(o, tc_once_call, &f, NULL) ? 0 : -1;
}

static inline void tc_sleep_ms(unsigned ms) { Sleep(ms); }

#else /* POSIX */

#include <pthread.h>
#include <time.h>

typedef pthread_mutex_t tc_mutex;
typedef pthread_cond_t tc_cond;
typedef pthread_once_t tc_once;
#define TC_MUTEX_INITIALIZER PTHREAD_MUTEX_INITIALIZER
#define TC_ONCE_INIT PTHREAD_ONCE_INIT

static inline int tc_mutex_init(tc_mutex *m) { return pthread_mutex_init(m, NULL); }
static inline void tc_mutex_destroy(tc_mutex *m) { pthread_mutex_destroy(m); }
static inline void tc_mutex_lock(tc_mutex *m) { pthread_mutex_lock(m); }
static inline void tc_mutex_unlock(tc_mutex *m) { pthread_mutex_unlock(m); }

static inline int tc_cond_init(tc_cond *c) { return pthread_cond_init(c, NULL); }
static inline void tc_cond_destroy(tc_cond *c) { pthread_cond_destroy(c); }
static inline void tc_cond_wait(tc_cond *c, tc_mutex *m) { pthread_cond_wait(c, m); }
static inline void tc_cond_broadcast(tc_cond *c) { pthread_cond_broadcast(c); }

static inline int tc_once_run(tc_once *o, void (*fn)(void)) { return pthread_once(o, fn); }

/* One nanosleep: a signal may cut it short. */
static inline void tc_sleep_ms(unsigned ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};
	nanosleep(&ts, NULL);
}

#endif

#endif
