/*
 * p11_log.c: the debug log. TPMCARD_PKCS11_DEBUG=FILE appends one line per
 * call to FILE: the process, the function, its arguments and its CK_RV.
 * PINs never appear, not even their length. The log is opened at
 * C_Initialize and closed at C_Finalize.
 */
#define _GNU_SOURCE

#include "p11.h"

#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static atomic_int log_fd = -1;

void p11_log_open(void)
{
	const char *path = getenv(P11_DEBUG_ENV);
	if (path == NULL || path[0] == '\0' || atomic_load(&log_fd) >= 0)
		return;
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	if (fd >= 0)
		atomic_store(&log_fd, fd);
}

void p11_log_close(void)
{
	int fd = atomic_exchange(&log_fd, -1);
	if (fd >= 0)
		close(fd);
}

void p11_log_forget(void)
{
	/* The child may log to the same file; it reopens at its C_Initialize. */
	int fd = atomic_exchange(&log_fd, -1);
	if (fd >= 0)
		close(fd);
}

int p11_log_enabled(void) { return atomic_load(&log_fd) >= 0; }

void p11_log(const char *fmt, ...)
{
	int fd = atomic_load(&log_fd);
	if (fd < 0)
		return;
	char line[1024];
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	struct tm tm;
	gmtime_r(&ts.tv_sec, &tm);
	int n = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ pid=%ld ", tm.tm_year + 1900,
	                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000,
	                 (long)getpid());
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
	/* One write per line: O_APPEND keeps the lines of several processes whole. */
	ssize_t w = write(fd, line, len);
	(void)w;
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
