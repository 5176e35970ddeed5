/*
 * p11_log.c: the debug log. TPMCARD_PKCS11_DEBUG=FILE appends one line per
 * call to FILE: the process, the function, its arguments and its CK_RV.
 * PINs never appear, not even their length. The log is opened at
 * C_Initialize and closed at C_Finalize.
 */
#define _GNU_SOURCE

#include "p11.h"
#include "tc_sys.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef _WIN32
#include <fcntl.h>
#include <time.h>
#include <unistd.h>
#endif

/* The log file: a descriptor on POSIX, a HANDLE (as an integer) on
 * Windows; LOG_NONE when there is none. */
#ifdef _WIN32
typedef intptr_t log_t;
static atomic_intptr_t log_fd = -1;
#define LOG_NONE ((intptr_t)INVALID_HANDLE_VALUE)
#else
typedef int log_t;
static atomic_int log_fd = -1;
#define LOG_NONE (-1)
#endif

#ifdef _WIN32
/* log_file opens path for appending only: FILE_APPEND_DATA without
 * FILE_WRITE_DATA makes every write go to the end of the file, as
 * O_APPEND does; the handle is not inherited. */
static log_t log_file(const char *path)
{
	HANDLE h = CreateFileA(path, FILE_APPEND_DATA, FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE, NULL,
	                       OPEN_ALWAYS, FILE_ATTRIBUTE_NORMAL, NULL);
	return (log_t)h;
}

static void log_close(log_t fd) { CloseHandle((HANDLE)fd); }

static void log_write(log_t fd, const char *line, size_t len)
{
	DWORD w;
	WriteFile((HANDLE)fd, line, (DWORD)len, &w, NULL);
}

/* log_stamp writes the UTC time, to the microsecond, and the process. */
static int log_stamp(char *line, size_t n)
{
	FILETIME ft;
	SYSTEMTIME st;
	GetSystemTimePreciseAsFileTime(&ft);
	if (!FileTimeToSystemTime(&ft, &st))
		return -1;
	uint64_t t = (uint64_t)ft.dwHighDateTime << 32 | ft.dwLowDateTime; /* 100 ns since 1601 */
	return snprintf(line, n, "%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ pid=%ld ", st.wYear, st.wMonth, st.wDay,
	                st.wHour, st.wMinute, st.wSecond, (long)(t / 10 % 1000000), (long)GetCurrentProcessId());
}
#else
static log_t log_file(const char *path) { return open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600); }

static void log_close(log_t fd) { close(fd); }

static void log_write(log_t fd, const char *line, size_t len)
{
	ssize_t w = write(fd, line, len);
	(void)w;
}

static int log_stamp(char *line, size_t n)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	struct tm tm;
	gmtime_r(&ts.tv_sec, &tm);
	return snprintf(line, n, "%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ pid=%ld ", tm.tm_year + 1900, tm.tm_mon + 1,
	                tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000, (long)getpid());
}
#endif

void p11_log_open(void)
{
	const char *path = getenv(P11_DEBUG_ENV);
	if (path == NULL || path[0] == '\0' || atomic_load(&log_fd) != LOG_NONE)
		return;
	log_t fd = log_file(path);
	if (fd != LOG_NONE)
		atomic_store(&log_fd, fd);
}

void p11_log_close(void)
{
	log_t fd = atomic_exchange(&log_fd, LOG_NONE);
	if (fd != LOG_NONE)
		log_close(fd);
}

void p11_log_forget(void)
{
	/* The child may log to the same file; it reopens at its C_Initialize. */
	log_t fd = atomic_exchange(&log_fd, LOG_NONE);
	if (fd != LOG_NONE)
		log_close(fd);
}

int p11_log_enabled(void) { return atomic_load(&log_fd) != LOG_NONE; }

void p11_log(const char *fmt, ...)
{
	log_t fd = atomic_load(&log_fd);
	if (fd == LOG_NONE)
		return;
	char line[1024];
	int n = log_stamp(line, sizeof line);
	if (n < 0 || (size_t)n >= sizeof line)
		return;
	va_list ap;
	va_start(ap, fmt);
	int k = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
	va_end(ap);
	if (k < 0)
		return;
	size_t len = (size_t)n + ((size_t)k < sizeof line - (size_t)n - 1 ? (size_t)k : sizeof line - (size_t)n - 2);
	line[len++] = '\n';
	/* One write per line: appending keeps the lines of several processes whole. */
	log_write(fd, line, len);
}

const char *p11_rv_name(CK_RV rv)
{
	switch (rv) {
#define RV(name) \
	case name: \
		return #name;
		RV(CKR_OK)
		RV(CKR_CANCEL)
		RV(CKR_HOST_MEMORY)
		RV(CKR_SLOT_ID_INVALID)
		RV(CKR_GENERAL_ERROR)
		RV(CKR_FUNCTION_FAILED)
		RV(CKR_ARGUMENTS_BAD)
		RV(CKR_NO_EVENT)
		RV(CKR_CANT_LOCK)
		RV(CKR_ATTRIBUTE_SENSITIVE)
		RV(CKR_ATTRIBUTE_TYPE_INVALID)
		RV(CKR_ATTRIBUTE_VALUE_INVALID)
		RV(CKR_DATA_INVALID)
		RV(CKR_DATA_LEN_RANGE)
		RV(CKR_DEVICE_ERROR)
		RV(CKR_DEVICE_MEMORY)
		RV(CKR_DEVICE_REMOVED)
		RV(CKR_FUNCTION_CANCELED)
		RV(CKR_FUNCTION_NOT_PARALLEL)
		RV(CKR_FUNCTION_NOT_SUPPORTED)
		RV(CKR_KEY_HANDLE_INVALID)
		RV(CKR_KEY_SIZE_RANGE)
		RV(CKR_KEY_TYPE_INCONSISTENT)
		RV(CKR_KEY_FUNCTION_NOT_PERMITTED)
		RV(CKR_MECHANISM_INVALID)
		RV(CKR_MECHANISM_PARAM_INVALID)
		RV(CKR_OBJECT_HANDLE_INVALID)
		RV(CKR_OPERATION_ACTIVE)
		RV(CKR_OPERATION_NOT_INITIALIZED)
		RV(CKR_PIN_INCORRECT)
		RV(CKR_PIN_INVALID)
		RV(CKR_PIN_LEN_RANGE)
		RV(CKR_PIN_EXPIRED)
		RV(CKR_PIN_LOCKED)
		RV(CKR_SESSION_CLOSED)
		RV(CKR_SESSION_COUNT)
		RV(CKR_SESSION_HANDLE_INVALID)
		RV(CKR_SESSION_PARALLEL_NOT_SUPPORTED)
		RV(CKR_SESSION_READ_ONLY)
		RV(CKR_SESSION_EXISTS)
		RV(CKR_SESSION_READ_ONLY_EXISTS)
		RV(CKR_SESSION_READ_WRITE_SO_EXISTS)
		RV(CKR_SIGNATURE_LEN_RANGE)
		RV(CKR_TEMPLATE_INCOMPLETE)
		RV(CKR_TEMPLATE_INCONSISTENT)
		RV(CKR_TOKEN_NOT_PRESENT)
		RV(CKR_TOKEN_NOT_RECOGNIZED)
		RV(CKR_TOKEN_WRITE_PROTECTED)
		RV(CKR_USER_ALREADY_LOGGED_IN)
		RV(CKR_USER_NOT_LOGGED_IN)
		RV(CKR_USER_PIN_NOT_INITIALIZED)
		RV(CKR_USER_TYPE_INVALID)
		RV(CKR_USER_ANOTHER_ALREADY_LOGGED_IN)
		RV(CKR_USER_TOO_MANY_TYPES)
		RV(CKR_RANDOM_SEED_NOT_SUPPORTED)
		RV(CKR_RANDOM_NO_RNG)
		RV(CKR_DOMAIN_PARAMS_INVALID)
		RV(CKR_CURVE_NOT_SUPPORTED)
		RV(CKR_BUFFER_TOO_SMALL)
		RV(CKR_CRYPTOKI_NOT_INITIALIZED)
		RV(CKR_CRYPTOKI_ALREADY_INITIALIZED)
#undef RV
	}
	return "CKR_(other)";
}
