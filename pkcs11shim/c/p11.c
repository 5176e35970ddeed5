/*
 * p11.c: the PKCS#11 entry points: state, connection, slots, sessions and
 * login (PKCS#11 v2.40 §5.4-5.6). Objects, signing, key generation and
 * random numbers are in p11_objects.c. What the C side does per call is in
 * docs/wire.md.
 */
#define _GNU_SOURCE

#include "p11_internal.h"

#include "tc_sys.h"
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* State. Everything between C_Initialize and C_Finalize, under mu. mu is
 * never held across a request: requests of several sessions pipeline on
 * the one connection. */

static tc_mutex mu = TC_MUTEX_INITIALIZER;
static int initialized;
static int waiting; /* a blocking C_WaitForSlotEvent is under way */
static uint64_t instance;

/* The connections live as long as the process: C_Finalize only drops
 * them, so a thread still inside a call never touches freed memory. */
static tc_conn *conn;   /* requests */
static tc_conn *events; /* C_WaitForSlotEvent */

static struct p11_session *sessions;
static size_t nsessions, capsessions;
static CK_SESSION_HANDLE next_handle;

/* The slot IDs the service named, so that while it is away they still
 * show, as readers without their card. */
#define P11_MAX_SLOTS 256 /* slots in one list */
#define MAX_KNOWN_SLOTS 64
static CK_SLOT_ID known_slots[MAX_KNOWN_SLOTS];
static size_t nknown;

#ifndef _WIN32
static tc_once atfork_once = TC_ONCE_INIT;

/* The child of fork(2) has only the forking thread: the module is not
 * initialized there, and the parent's sessions are not the child's. The
 * table is left behind (freeing here is not async-signal-safe); tc_conn's
 * own handler drops the connections without touching the parent's. */
static void atfork_child(void)
{
	tc_mutex_init(&mu);
	initialized = 0;
	waiting = 0;
	sessions = NULL;
	nsessions = capsessions = 0;
	nknown = 0;
	p11_log_forget();
}

static void atfork_register(void) { pthread_atfork(NULL, NULL, atfork_child); }
#endif

CK_RV p11_ready(void)
{
	tc_mutex_lock(&mu);
	int up = initialized;
	tc_mutex_unlock(&mu);
	return up ? CKR_OK : CKR_CRYPTOKI_NOT_INITIALIZED;
}

tc_conn *p11_conn(void) { return conn; }

static void remember_slot(CK_SLOT_ID id)
{
	if (id == 0)
		return;
	tc_mutex_lock(&mu);
	size_t i;
	for (i = 0; i < nknown && known_slots[i] != id; i++)
		;
	if (i == nknown && nknown < MAX_KNOWN_SLOTS)
		known_slots[nknown++] = id;
	tc_mutex_unlock(&mu);
}

/* known: a slot this application was shown, or the empty slot 0 while it
 * was shown none. */
static int known_slot(CK_SLOT_ID id)
{
	tc_mutex_lock(&mu);
	int k = id == 0 && nknown == 0;
	for (size_t i = 0; i < nknown && !k; i++)
		k = known_slots[i] == id;
	tc_mutex_unlock(&mu);
	return k;
}

/* slot_gone is the CK_RV of a slot call while the service is away. */
static CK_RV slot_gone(CK_SLOT_ID id) { return known_slot(id) ? CKR_TOKEN_NOT_PRESENT : CKR_SLOT_ID_INVALID; }

/* ------------------------------------------------------------------ */
/* Requests. */

int p11_enc_init(p11_req *r, size_t cap)
{
	r->buf = malloc(cap);
	if (r->buf == NULL)
		return 0;
	r->cap = cap;
	tc_enc_init(&r->e, r->buf, cap);
	return 1;
}

void p11_enc_free(p11_req *r)
{
	if (r->buf != NULL) {
		tc_wipe(r->buf, r->cap); /* it may hold a PIN */
		free(r->buf);
	}
	r->buf = NULL;
}

void p11_reply_free(p11_reply *r) { tc_frame_release(&r->f); }

CK_RV p11_classify(p11_reply *r, uint8_t want, CK_RV gone)
{
	tc_val m;
	if (r->f.type == TC_TYPE_ERROR) {
		uint64_t status = 0, rv = 0;
		int has_rv = 0;
		if (tc_decode(r->f.body, r->f.len, &m) != TC_OK || tc_kind_of(m) != TC_MAP) {
			tc_conn_drop(conn);
			return gone;
		}
		tc_val v;
		if (tc_map_find(m, 1, &v) == TC_OK)
			tc_get_uint(v, &status);
		if (tc_map_find(m, 4, &v) == TC_OK && tc_get_uint(v, &rv) == TC_OK)
			has_rv = 1;
		r->status = status;
		if (status == W_STATUS_SERVICE_STOPPING) {
			tc_conn_drop(conn);
			return gone;
		}
		if (!has_rv || rv == CKR_OK)
			return CKR_FUNCTION_FAILED;
		return (CK_RV)rv;
	}
	if (r->f.type == TC_TYPE_UNSUPPORTED)
		return CKR_FUNCTION_NOT_SUPPORTED;
	if (r->f.type != want) {
		/* Out of step with the service: start afresh. */
		tc_conn_drop(conn);
		return CKR_DEVICE_ERROR;
	}
	if (tc_decode(r->f.body, r->f.len, &m) != TC_OK || tc_kind_of(m) != TC_MAP) {
		tc_conn_drop(conn);
		return gone;
	}
	r->body = m;
	return CKR_OK;
}

/* conn_rv maps a tc_conn error of a request's write to its CK_RV. A
 * request too large for a frame was refused before this (p11_call); any
 * other error, a Hello reply that does not fit included, ends the
 * connection. */
static CK_RV conn_rv(int rc, CK_RV gone)
{
	switch (rc) {
	case TC_OK:
		return CKR_OK;
	case TC_ERR_NOMEM:
		return CKR_HOST_MEMORY;
	default:
		return gone;
	}
}

CK_RV p11_call(uint64_t gen, uint8_t type, p11_req *req, uint8_t want, p11_reply *r, CK_RV gone)
{
	memset(r, 0, sizeof *r);
	size_t n;
	if (tc_enc_finish(&req->e, &n) != TC_OK || n > TC_MAX_FRAME - 1)
		return CKR_DATA_LEN_RANGE;
	tc_ticket t;
	int rc = tc_conn_send(conn, gen, type, req->buf, n, &t);
	if (rc != TC_OK)
		return conn_rv(rc, gone);
	/* A reply that cannot be read, too large ones included, ends the
	 * connection: it is the service's fault, not the caller's. */
	if (tc_conn_recv(conn, &t, &r->f) != TC_OK)
		return gone;
	return p11_classify(r, want, gone);
}

/* slot_call is p11_call for the calls that need no session: on any
 * connection, dialing when there is none. A connection that turns out
 * dead at once (the service restarted between two calls) is dialed once
 * more. It returns CKR_OK with the reply, the service's CK_RV, or
 * CKR_DEVICE_REMOVED when the service cannot be reached. */
static CK_RV slot_call(uint8_t type, p11_req *req, uint8_t want, p11_reply *r)
{
	for (int try = 0; try < 2; try++) {
		int had = tc_conn_connected(conn, NULL);
		CK_RV rv = p11_call(0, type, req, want, r, CKR_DEVICE_REMOVED);
		if (rv != CKR_DEVICE_REMOVED || !had)
			return rv;
		p11_reply_free(r);
	}
	return CKR_DEVICE_REMOVED;
}

/* slot_request sends a request that names a slot under key (and, with
 * flags, CK_FLAGS under key + 1) as slot_call does. */
static CK_RV slot_request(uint8_t type, uint64_t key, CK_SLOT_ID slot, const CK_FLAGS *flags, uint8_t want,
                          p11_reply *r)
{
	p11_req req;
	if (!p11_enc_init(&req, 32))
		return CKR_HOST_MEMORY;
	tc_enc_map(&req.e, flags != NULL ? 2 : 1);
	tc_enc_uint(&req.e, key);
	tc_enc_uint(&req.e, slot);
	if (flags != NULL) {
		tc_enc_uint(&req.e, key + 1);
		tc_enc_uint(&req.e, *flags);
	}
	CK_RV rv = slot_call(type, &req, want, r);
	p11_enc_free(&req);
	return rv;
}

/* away: the service cannot be reached, or no longer knows a slot it
 * showed this application (its card is gone since). */
static int away(CK_RV rv, CK_SLOT_ID slot)
{
	return rv == CKR_DEVICE_REMOVED || (rv == CKR_SLOT_ID_INVALID && known_slot(slot));
}

uint64_t p11_get_uint(tc_val m, uint64_t key)
{
	tc_val v;
	uint64_t x = 0;
	if (tc_map_find(m, key, &v) == TC_OK)
		tc_get_uint(v, &x);
	return x;
}

int p11_get_bytes(tc_val m, uint64_t key, const uint8_t **p, size_t *n)
{
	tc_val v;
	*p = NULL;
	*n = 0;
	if (tc_map_find(m, key, &v) != TC_OK)
		return 1; /* absent: empty */
	return tc_get_bytes(v, p, n) == TC_OK;
}

/* ------------------------------------------------------------------ */
/* Sessions. */

CK_RV p11_session_get(CK_SESSION_HANDLE h, struct p11_session *out)
{
	tc_mutex_lock(&mu);
	CK_RV rv = CKR_SESSION_HANDLE_INVALID;
	if (!initialized) {
		rv = CKR_CRYPTOKI_NOT_INITIALIZED;
	} else {
		for (size_t i = 0; i < nsessions; i++) {
			if (sessions[i].h == h) {
				*out = sessions[i];
				rv = CKR_OK;
				break;
			}
		}
	}
	tc_mutex_unlock(&mu);
	if (rv != CKR_OK)
		return rv;
	uint64_t gen;
	if (!tc_conn_connected(conn, &gen) || gen != out->gen)
		return CKR_DEVICE_REMOVED;
	return CKR_OK;
}

int p11_session_take_pending(CK_SESSION_HANDLE h, int op, tc_ticket *t)
{
	int had = 0;
	tc_mutex_lock(&mu);
	for (size_t i = 0; i < nsessions; i++) {
		if (sessions[i].h == h) {
			had = sessions[i].pending[op];
			*t = sessions[i].init[op];
			sessions[i].pending[op] = 0;
			break;
		}
	}
	tc_mutex_unlock(&mu);
	return had;
}

int p11_session_set_pending(CK_SESSION_HANDLE h, int op, const tc_ticket *t)
{
	int found = 0;
	tc_mutex_lock(&mu);
	for (size_t i = 0; i < nsessions; i++) {
		if (sessions[i].h == h) {
			sessions[i].pending[op] = 1;
			sessions[i].init[op] = *t;
			found = 1;
			break;
		}
	}
	tc_mutex_unlock(&mu);
	return found;
}

void p11_session_set_proven(CK_SESSION_HANDLE h, int op, const struct p11_proven *p)
{
	tc_mutex_lock(&mu);
	for (size_t i = 0; i < nsessions; i++) {
		if (sessions[i].h == h) {
			sessions[i].proven[op] = *p;
			break;
		}
	}
	tc_mutex_unlock(&mu);
}

/* forget_pending drops the unread init replies of a session taken out of
 * the table. */
static void forget_pending(struct p11_session *s)
{
	for (int op = 0; op < P11_OPS; op++)
		if (s->pending[op])
			tc_conn_forget(conn, &s->init[op]);
}

/* remove_session takes h out of the table; *s is what it held. */
static int remove_session(CK_SESSION_HANDLE h, struct p11_session *s)
{
	int found = 0;
	tc_mutex_lock(&mu);
	for (size_t i = 0; i < nsessions; i++) {
		if (sessions[i].h == h) {
			*s = sessions[i];
			sessions[i] = sessions[--nsessions];
			found = 1;
			break;
		}
	}
	tc_mutex_unlock(&mu);
	return found;
}

/* ------------------------------------------------------------------ */
/* General-purpose functions (§5.4). */

static CK_RV initialize(CK_VOID_PTR pInitArgs)
{
	if (pInitArgs != NULL) {
		CK_C_INITIALIZE_ARGS *a = pInitArgs;
		if (a->pReserved != NULL)
			return CKR_ARGUMENTS_BAD;
		int n = (a->CreateMutex != NULL) + (a->DestroyMutex != NULL) + (a->LockMutex != NULL) +
		        (a->UnlockMutex != NULL);
		if (n != 0 && n != 4)
			return CKR_ARGUMENTS_BAD;
		/* The module locks with the OS's primitives only. */
		if (n == 4 && !(a->flags & CKF_OS_LOCKING_OK))
			return CKR_CANT_LOCK;
	}
#ifndef _WIN32
	if (tc_once_run(&atfork_once, atfork_register) != 0)
		return CKR_GENERAL_ERROR;
#endif
	tc_mutex_lock(&mu);
	CK_RV rv = CKR_OK;
	if (initialized) {
		rv = CKR_CRYPTOKI_ALREADY_INITIALIZED;
	} else {
		if (conn == NULL && tc_conn_open(&conn, NULL, P11_HELLO_NAME) != TC_OK)
			rv = CKR_HOST_MEMORY;
		if (rv == CKR_OK && events == NULL && tc_conn_open(&events, NULL, P11_HELLO_NAME " events") != TC_OK)
			rv = CKR_HOST_MEMORY;
		if (rv == CKR_OK) {
			initialized = 1;
			instance++;
			next_handle = 0;
			nknown = 0;
			p11_log_open();
		}
	}
	tc_mutex_unlock(&mu);
	return rv;
}

CK_RV C_Initialize(CK_VOID_PTR pInitArgs)
{
	CK_RV rv = initialize(pInitArgs);
	P11_LOG("C_Initialize(args=%p) = %s", pInitArgs, p11_rv_name(rv));
	return rv;
}

static CK_RV finalize(CK_VOID_PTR pReserved)
{
	if (pReserved != NULL)
		return CKR_ARGUMENTS_BAD;
	tc_mutex_lock(&mu);
	if (!initialized) {
		tc_mutex_unlock(&mu);
		return CKR_CRYPTOKI_NOT_INITIALIZED;
	}
	initialized = 0;
	free(sessions);
	sessions = NULL;
	nsessions = capsessions = 0;
	tc_mutex_unlock(&mu);
	/* The service ends the connection's sessions and logins with it; a
	 * blocked C_WaitForSlotEvent wakes up. */
	tc_conn_drop(conn);
	tc_conn_drop(events);
	return CKR_OK;
}

CK_RV C_Finalize(CK_VOID_PTR pReserved)
{
	CK_RV rv = finalize(pReserved);
	P11_LOG("C_Finalize() = %s", p11_rv_name(rv));
	if (rv == CKR_OK)
		p11_log_close();
	return rv;
}

void p11_pad(CK_UTF8CHAR *dst, size_t width, const char *src)
{
	size_t n = strlen(src);
	if (n > width)
		n = width;
	memset(dst, ' ', width);
	memcpy(dst, src, n);
}

CK_RV C_GetInfo(CK_INFO_PTR pInfo)
{
	CK_RV rv = p11_ready();
	if (rv == CKR_OK && pInfo == NULL)
		rv = CKR_ARGUMENTS_BAD;
	if (rv == CKR_OK) {
		memset(pInfo, 0, sizeof *pInfo);
		pInfo->cryptokiVersion.major = 2;
		pInfo->cryptokiVersion.minor = 40;
		p11_pad(pInfo->manufacturerID, sizeof pInfo->manufacturerID, P11_MANUFACTURER);
		p11_pad(pInfo->libraryDescription, sizeof pInfo->libraryDescription, P11_DESCRIPTION);
		pInfo->libraryVersion.major = P11_VERSION_MAJOR;
		pInfo->libraryVersion.minor = P11_VERSION_MINOR;
	}
	P11_LOG("C_GetInfo() = %s", p11_rv_name(rv));
	return rv;
}

CK_RV p11_not_supported(const char *fn)
{
	CK_RV rv = p11_ready();
	if (rv == CKR_OK)
		rv = CKR_FUNCTION_NOT_SUPPORTED;
	P11_LOG("%s() = %s", fn, p11_rv_name(rv));
	return rv;
}

CK_RV p11_not_parallel(const char *fn)
{
	CK_RV rv = p11_ready();
	if (rv == CKR_OK)
		rv = CKR_FUNCTION_NOT_PARALLEL;
	P11_LOG("%s() = %s", fn, p11_rv_name(rv));
	return rv;
}

/* ------------------------------------------------------------------ */
/* Slots and tokens (§5.5). */

static CK_RV get_slot_list(CK_BBOOL tokenPresent, CK_SLOT_ID_PTR pSlotList, CK_ULONG_PTR pulCount)
{
	CK_RV rv = p11_ready();
	if (rv != CKR_OK)
		return rv;
	if (pulCount == NULL)
		return CKR_ARGUMENTS_BAD;
	p11_req req;
	if (!p11_enc_init(&req, 16))
		return CKR_HOST_MEMORY;
	tc_enc_map(&req.e, 1);
	tc_enc_uint(&req.e, 1);
	tc_enc_bool(&req.e, tokenPresent != CK_FALSE);
	p11_reply r;
	rv = slot_call(W_GET_SLOT_LIST, &req, W_SLOT_LIST, &r);
	p11_enc_free(&req);
	CK_SLOT_ID ids[P11_MAX_SLOTS];
	size_t n = 0;
	if (rv == CKR_OK) {
		tc_val list, v;
		tc_iter it;
		size_t count;
		if (tc_map_find(r.body, 1, &list) == TC_OK) {
			if (tc_array_open(list, &it, &count) != TC_OK || count > P11_MAX_SLOTS) {
				p11_reply_free(&r);
				return CKR_DEVICE_ERROR;
			}
			while (tc_array_next(&it, &v) == TC_OK) {
				uint64_t id;
				if (tc_get_uint(v, &id) != TC_OK || id > (CK_SLOT_ID)-1) {
					p11_reply_free(&r);
					return CKR_DEVICE_ERROR;
				}
				ids[n++] = (CK_SLOT_ID)id;
				remember_slot((CK_SLOT_ID)id);
			}
		}
		p11_reply_free(&r);
	} else if (rv != CKR_DEVICE_REMOVED) {
		return rv;
	}
	if (!tokenPresent) {
		/* The readers of cards gone since, without their token; with no
		 * card ever seen, the one empty reader. */
		tc_mutex_lock(&mu);
		for (size_t i = 0; i < nknown; i++) {
			size_t j;
			for (j = 0; j < n && ids[j] != known_slots[i]; j++)
				;
			if (j == n && n < P11_MAX_SLOTS)
				ids[n++] = known_slots[i];
		}
		int any = nknown > 0;
		tc_mutex_unlock(&mu);
		if (any) {
			size_t k = 0;
			for (size_t i = 0; i < n; i++)
				if (ids[i] != 0)
					ids[k++] = ids[i];
			n = k;
		} else if (n == 0) {
			ids[n++] = 0;
		}
		for (size_t i = 1; i < n; i++) /* ascending, as the service lists them */
			for (size_t j = i; j > 0 && ids[j - 1] > ids[j]; j--) {
				CK_SLOT_ID t = ids[j];
				ids[j] = ids[j - 1];
				ids[j - 1] = t;
			}
	}
	if (pSlotList != NULL && *pulCount < n) {
		*pulCount = n;
		return CKR_BUFFER_TOO_SMALL;
	}
	if (pSlotList != NULL)
		memcpy(pSlotList, ids, n * sizeof ids[0]);
	*pulCount = n;
	return CKR_OK;
}

CK_RV C_GetSlotList(CK_BBOOL tokenPresent, CK_SLOT_ID_PTR pSlotList, CK_ULONG_PTR pulCount)
{
	CK_RV rv = get_slot_list(tokenPresent, pSlotList, pulCount);
	P11_LOG("C_GetSlotList(tokenPresent=%d, list=%p) = %s count=%lu", tokenPresent, (void *)pSlotList,
	        p11_rv_name(rv), pulCount != NULL ? *pulCount : 0UL);
	return rv;
}

/* copy_field copies a blank-padded text field of exactly width bytes. */
static int copy_field(tc_val m, uint64_t key, CK_UTF8CHAR *dst, size_t width)
{
	const uint8_t *p;
	size_t n;
	if (!p11_get_bytes(m, key, &p, &n) || n != width)
		return 0;
	memcpy(dst, p, width);
	return 1;
}

/* get_versions reads the hardware and firmware versions, major and minor,
 * from four keys from key on. */
static void get_versions(tc_val m, uint64_t key, CK_VERSION *hw, CK_VERSION *fw)
{
	hw->major = (CK_BYTE)p11_get_uint(m, key);
	hw->minor = (CK_BYTE)p11_get_uint(m, key + 1);
	fw->major = (CK_BYTE)p11_get_uint(m, key + 2);
	fw->minor = (CK_BYTE)p11_get_uint(m, key + 3);
}

static CK_RV get_slot_info(CK_SLOT_ID slotID, CK_SLOT_INFO_PTR pInfo)
{
	CK_RV rv = p11_ready();
	if (rv != CKR_OK)
		return rv;
	if (pInfo == NULL)
		return CKR_ARGUMENTS_BAD;
	p11_reply r;
	rv = slot_request(W_GET_SLOT_INFO, 1, slotID, NULL, W_SLOT_DESCRIPTION, &r);
	if (away(rv, slotID)) {
		if (!known_slot(slotID))
			return CKR_SLOT_ID_INVALID;
		/* The service is away, or forgot the card: an empty reader. */
		memset(pInfo, 0, sizeof *pInfo);
		p11_pad(pInfo->slotDescription, sizeof pInfo->slotDescription, P11_SLOT_DESCRIPTION);
		p11_pad(pInfo->manufacturerID, sizeof pInfo->manufacturerID, P11_MANUFACTURER);
		pInfo->flags = CKF_REMOVABLE_DEVICE;
		pInfo->firmwareVersion.major = P11_VERSION_MAJOR;
		pInfo->firmwareVersion.minor = P11_VERSION_MINOR;
		return CKR_OK;
	}
	if (rv != CKR_OK)
		return rv;
	CK_SLOT_INFO info;
	memset(&info, 0, sizeof info);
	if (!copy_field(r.body, 1, info.slotDescription, sizeof info.slotDescription) ||
	    !copy_field(r.body, 2, info.manufacturerID, sizeof info.manufacturerID)) {
		p11_reply_free(&r);
		return CKR_DEVICE_ERROR;
	}
	info.flags = (CK_FLAGS)p11_get_uint(r.body, 3);
	get_versions(r.body, 4, &info.hardwareVersion, &info.firmwareVersion);
	p11_reply_free(&r);
	remember_slot(slotID);
	*pInfo = info;
	return CKR_OK;
}

CK_RV C_GetSlotInfo(CK_SLOT_ID slotID, CK_SLOT_INFO_PTR pInfo)
{
	CK_RV rv = get_slot_info(slotID, pInfo);
	P11_LOG("C_GetSlotInfo(slot=%lu) = %s", slotID, p11_rv_name(rv));
	return rv;
}

static CK_RV get_token_info(CK_SLOT_ID slotID, CK_TOKEN_INFO_PTR pInfo)
{
	CK_RV rv = p11_ready();
	if (rv != CKR_OK)
		return rv;
	if (pInfo == NULL)
		return CKR_ARGUMENTS_BAD;
	p11_reply r;
	rv = slot_request(W_GET_TOKEN_INFO, 1, slotID, NULL, W_TOKEN_DESCRIPTION, &r);
	if (away(rv, slotID))
		return slot_gone(slotID);
	if (rv != CKR_OK)
		return rv;
	CK_TOKEN_INFO info;
	memset(&info, 0, sizeof info);
	if (!copy_field(r.body, 1, info.label, sizeof info.label) ||
	    !copy_field(r.body, 2, info.manufacturerID, sizeof info.manufacturerID) ||
	    !copy_field(r.body, 3, info.model, sizeof info.model) ||
	    !copy_field(r.body, 4, info.serialNumber, sizeof info.serialNumber) ||
	    !copy_field(r.body, 20, info.utcTime, sizeof info.utcTime)) {
		p11_reply_free(&r);
		return CKR_DEVICE_ERROR;
	}
	/* 2^64-1 (CK_UNAVAILABLE_INFORMATION) casts to all ones on a 32-bit
	 * CK_ULONG too. */
	info.flags = (CK_FLAGS)p11_get_uint(r.body, 5);
	info.ulMaxSessionCount = (CK_ULONG)p11_get_uint(r.body, 6);
	info.ulSessionCount = (CK_ULONG)p11_get_uint(r.body, 7);
	info.ulMaxRwSessionCount = (CK_ULONG)p11_get_uint(r.body, 8);
	info.ulRwSessionCount = (CK_ULONG)p11_get_uint(r.body, 9);
	info.ulMaxPinLen = (CK_ULONG)p11_get_uint(r.body, 10);
	info.ulMinPinLen = (CK_ULONG)p11_get_uint(r.body, 11);
	info.ulTotalPublicMemory = (CK_ULONG)p11_get_uint(r.body, 12);
	info.ulFreePublicMemory = (CK_ULONG)p11_get_uint(r.body, 13);
	info.ulTotalPrivateMemory = (CK_ULONG)p11_get_uint(r.body, 14);
	info.ulFreePrivateMemory = (CK_ULONG)p11_get_uint(r.body, 15);
	get_versions(r.body, 16, &info.hardwareVersion, &info.firmwareVersion);
	p11_reply_free(&r);
	remember_slot(slotID);
	*pInfo = info;
	return CKR_OK;
}

CK_RV C_GetTokenInfo(CK_SLOT_ID slotID, CK_TOKEN_INFO_PTR pInfo)
{
	CK_RV rv = get_token_info(slotID, pInfo);
	P11_LOG("C_GetTokenInfo(slot=%lu) = %s", slotID, p11_rv_name(rv));
	return rv;
}

/* mechanisms asks for the slot's mechanism list; *list is the array. */
static CK_RV mechanisms(CK_SLOT_ID slotID, p11_reply *r, tc_iter *it, size_t *count)
{
	CK_RV rv = slot_request(W_MECHANISMS, 2, slotID, NULL, W_MECHANISM_LIST, r);
	if (away(rv, slotID))
		return slot_gone(slotID);
	if (rv != CKR_OK)
		return rv;
	tc_val list;
	if (tc_map_find(r->body, 1, &list) != TC_OK) {
		*count = 0;
		memset(it, 0, sizeof *it);
		return CKR_OK;
	}
	if (tc_array_open(list, it, count) != TC_OK) {
		p11_reply_free(r);
		return CKR_DEVICE_ERROR;
	}
	return CKR_OK;
}

static CK_RV get_mechanism_list(CK_SLOT_ID slotID, CK_MECHANISM_TYPE_PTR pList, CK_ULONG_PTR pulCount)
{
	CK_RV rv = p11_ready();
	if (rv != CKR_OK)
		return rv;
	if (pulCount == NULL)
		return CKR_ARGUMENTS_BAD;
	p11_reply r;
	tc_iter it;
	size_t count;
	if ((rv = mechanisms(slotID, &r, &it, &count)) != CKR_OK)
		return rv;
	if (pList != NULL && *pulCount < count) {
		*pulCount = count;
		p11_reply_free(&r);
		return CKR_BUFFER_TOO_SMALL;
	}
	size_t i = 0;
	tc_val v;
	while (count > 0 && tc_array_next(&it, &v) == TC_OK) {
		uint64_t type;
		if (tc_kind_of(v) != TC_MAP || (type = p11_get_uint(v, 1)) > (CK_MECHANISM_TYPE)-1) {
			p11_reply_free(&r);
			return CKR_DEVICE_ERROR;
		}
		if (pList != NULL)
			pList[i] = (CK_MECHANISM_TYPE)type;
		i++;
	}
	p11_reply_free(&r);
	*pulCount = count;
	return CKR_OK;
}

CK_RV C_GetMechanismList(CK_SLOT_ID slotID, CK_MECHANISM_TYPE_PTR pMechanismList, CK_ULONG_PTR pulCount)
{
	CK_RV rv = get_mechanism_list(slotID, pMechanismList, pulCount);
	P11_LOG("C_GetMechanismList(slot=%lu, list=%p) = %s count=%lu", slotID, (void *)pMechanismList,
	        p11_rv_name(rv), pulCount != NULL ? *pulCount : 0UL);
	return rv;
}

static CK_RV get_mechanism_info(CK_SLOT_ID slotID, CK_MECHANISM_TYPE type, CK_MECHANISM_INFO_PTR pInfo)
{
	CK_RV rv = p11_ready();
	if (rv != CKR_OK)
		return rv;
	if (pInfo == NULL)
		return CKR_ARGUMENTS_BAD;
	p11_reply r;
	tc_iter it;
	size_t count;
	if ((rv = mechanisms(slotID, &r, &it, &count)) != CKR_OK)
		return rv;
	rv = CKR_MECHANISM_INVALID;
	tc_val v;
	while (count > 0 && tc_array_next(&it, &v) == TC_OK) {
		if (tc_kind_of(v) != TC_MAP) {
			rv = CKR_DEVICE_ERROR;
			break;
		}
		if (p11_get_uint(v, 1) == type) {
			pInfo->ulMinKeySize = (CK_ULONG)p11_get_uint(v, 2);
			pInfo->ulMaxKeySize = (CK_ULONG)p11_get_uint(v, 3);
			pInfo->flags = (CK_FLAGS)p11_get_uint(v, 4);
			rv = CKR_OK;
			break;
		}
	}
	p11_reply_free(&r);
	return rv;
}

CK_RV C_GetMechanismInfo(CK_SLOT_ID slotID, CK_MECHANISM_TYPE type, CK_MECHANISM_INFO_PTR pInfo)
{
	CK_RV rv = get_mechanism_info(slotID, type, pInfo);
	P11_LOG("C_GetMechanismInfo(slot=%lu, mechanism=%#lx) = %s", slotID, type, p11_rv_name(rv));
	return rv;
}

/* wait_event asks the event connection for the next event, waiting at
 * most ms. *slot is the event's slot. */
static CK_RV wait_event(int ms, CK_SLOT_ID *slot, uint64_t *status)
{
	uint8_t buf[16];
	tc_enc e;
	tc_enc_init(&e, buf, sizeof buf);
	tc_enc_map(&e, 1);
	tc_enc_uint(&e, 1);
	tc_enc_uint(&e, (uint64_t)ms);
	size_t n;
	tc_enc_finish(&e, &n);
	p11_reply r;
	memset(&r, 0, sizeof r);
	*status = 0;
	int rc = tc_conn_call(events, W_WAIT_EVENT, buf, n, &r.f);
	if (rc != TC_OK)
		return CKR_DEVICE_REMOVED;
	if (r.f.type == TC_TYPE_ERROR) {
		tc_val m;
		if (tc_decode(r.f.body, r.f.len, &m) == TC_OK && tc_kind_of(m) == TC_MAP)
			*status = p11_get_uint(m, 1);
		CK_RV rv = CKR_FUNCTION_FAILED;
		if (*status == W_STATUS_SERVICE_STOPPING) {
			tc_conn_drop(events);
			rv = CKR_DEVICE_REMOVED;
		} else if (tc_decode(r.f.body, r.f.len, &m) == TC_OK && p11_get_uint(m, 4) != 0) {
			rv = (CK_RV)p11_get_uint(m, 4);
		}
		tc_frame_release(&r.f);
		return rv;
	}
	if (r.f.type == TC_TYPE_UNSUPPORTED) {
		tc_frame_release(&r.f);
		return CKR_FUNCTION_NOT_SUPPORTED;
	}
	tc_val m;
	if (r.f.type != W_EVENT || tc_decode(r.f.body, r.f.len, &m) != TC_OK || tc_kind_of(m) != TC_MAP) {
		tc_frame_release(&r.f);
		tc_conn_drop(events);
		return CKR_DEVICE_REMOVED;
	}
	*slot = (CK_SLOT_ID)p11_get_uint(m, 3);
	tc_frame_release(&r.f);
	remember_slot(*slot);
	return CKR_OK;
}

/* still_initialized: C_Finalize (and a new C_Initialize) end a wait. */
static int still_initialized(uint64_t inst)
{
	tc_mutex_lock(&mu);
	int ok = initialized && instance == inst;
	tc_mutex_unlock(&mu);
	return ok;
}

static CK_RV wait_for_slot_event(CK_FLAGS flags, CK_SLOT_ID_PTR pSlot, CK_VOID_PTR pReserved)
{
	if (pSlot == NULL || pReserved != NULL) {
		CK_RV rv = p11_ready();
		return rv != CKR_OK ? rv : CKR_ARGUMENTS_BAD;
	}
	tc_mutex_lock(&mu);
	if (!initialized) {
		tc_mutex_unlock(&mu);
		return CKR_CRYPTOKI_NOT_INITIALIZED;
	}
	uint64_t inst = instance;
	int busy = waiting;
	if (!(flags & CKF_DONT_BLOCK) && !busy)
		waiting = 1;
	tc_mutex_unlock(&mu);
	uint64_t status;
	if (flags & CKF_DONT_BLOCK) {
		if (busy)
			return CKR_NO_EVENT; /* the blocking wait will report it */
		CK_RV rv = wait_event(0, pSlot, &status);
		return rv == CKR_OK ? CKR_OK : rv == CKR_FUNCTION_NOT_SUPPORTED ? rv : CKR_NO_EVENT;
	}
	if (busy)
		return CKR_FUNCTION_FAILED; /* one blocking wait at a time */
	CK_RV rv;
	for (;;) {
		rv = wait_event(60000, pSlot, &status);
		if (!still_initialized(inst)) {
			rv = CKR_CRYPTOKI_NOT_INITIALIZED;
			break;
		}
		if (rv == CKR_DEVICE_REMOVED) {
			/* The service is away: wait for it. When it is back, its
			 * first card is the event (its cards reappear). */
			tc_sleep_ms(1000);
			if (!still_initialized(inst)) {
				rv = CKR_CRYPTOKI_NOT_INITIALIZED;
				break;
			}
			CK_SLOT_ID ids[P11_MAX_SLOTS];
			CK_ULONG n = P11_MAX_SLOTS;
			if (get_slot_list(CK_TRUE, ids, &n) == CKR_OK && n > 0) {
				*pSlot = ids[0];
				rv = CKR_OK;
				break;
			}
			continue;
		}
		if (rv != CKR_OK && status == W_STATUS_TIMEOUT)
			continue;
		break;
	}
	tc_mutex_lock(&mu);
	if (instance == inst)
		waiting = 0;
	tc_mutex_unlock(&mu);
	return rv;
}

CK_RV C_WaitForSlotEvent(CK_FLAGS flags, CK_SLOT_ID_PTR pSlot, CK_VOID_PTR pReserved)
{
	CK_RV rv = wait_for_slot_event(flags, pSlot, pReserved);
	P11_LOG("C_WaitForSlotEvent(flags=%#lx) = %s slot=%lu", flags, p11_rv_name(rv),
	        rv == CKR_OK && pSlot != NULL ? *pSlot : 0UL);
	return rv;
}

/* ------------------------------------------------------------------ */
/* Sessions (§5.6). */

static CK_RV open_session(CK_SLOT_ID slotID, CK_FLAGS flags, CK_SESSION_HANDLE_PTR phSession)
{
	CK_RV rv = p11_ready();
	if (rv != CKR_OK)
		return rv;
	if (phSession == NULL)
		return CKR_ARGUMENTS_BAD;
	p11_reply r;
	rv = slot_request(W_OPEN_SESSION, 3, slotID, &flags, W_SESSION_OPENED, &r);
	if (away(rv, slotID))
		return slot_gone(slotID);
	if (rv != CKR_OK)
		return rv;
	uint64_t wire = p11_get_uint(r.body, 1);
	uint64_t gen = r.f.gen;
	p11_reply_free(&r);
	if (wire > UINT32_MAX)
		return CKR_DEVICE_ERROR;
	remember_slot(slotID);
	tc_mutex_lock(&mu);
	if (!initialized) {
		tc_mutex_unlock(&mu);
		return CKR_CRYPTOKI_NOT_INITIALIZED;
	}
	if (nsessions == capsessions) {
		size_t cap = capsessions ? capsessions * 2 : 16;
		struct p11_session *s = realloc(sessions, cap * sizeof *s);
		if (s == NULL) {
			tc_mutex_unlock(&mu);
			return CKR_HOST_MEMORY;
		}
		sessions = s;
		capsessions = cap;
	}
	struct p11_session *s = &sessions[nsessions++];
	memset(s, 0, sizeof *s);
	s->h = ++next_handle;
	s->slot = slotID;
	s->wire = (uint32_t)wire;
	s->gen = gen;
	*phSession = s->h;
	tc_mutex_unlock(&mu);
	return CKR_OK;
}

CK_RV C_OpenSession(CK_SLOT_ID slotID, CK_FLAGS flags, CK_VOID_PTR pApplication, CK_NOTIFY Notify,
                    CK_SESSION_HANDLE_PTR phSession)
{
	(void)pApplication; /* the module never calls Notify */
	(void)Notify;
	CK_RV rv = open_session(slotID, flags, phSession);
	P11_LOG("C_OpenSession(slot=%lu, flags=%#lx) = %s session=%lu", slotID, flags, p11_rv_name(rv),
	        rv == CKR_OK ? *phSession : 0UL);
	return rv;
}

/* session_req starts a request on session s: a map of n pairs, key 1 the
 * service's session number first. */
int p11_session_req(p11_req *req, const struct p11_session *s, size_t n, size_t extra)
{
	if (!p11_enc_init(req, 32 + extra))
		return 0;
	tc_enc_map(&req->e, n);
	tc_enc_uint(&req->e, 1);
	tc_enc_uint(&req->e, s->wire);
	return 1;
}

/* p11_session_call sends session h's request: key 1 the session, and
 * with arg key 2 = *arg; it waits for a reply of type want, which the
 * caller releases. */
CK_RV p11_session_call(CK_SESSION_HANDLE h, uint8_t type, const uint64_t *arg, uint8_t want, p11_reply *r)
{
	memset(r, 0, sizeof *r);
	struct p11_session s;
	CK_RV rv = p11_session_get(h, &s);
	if (rv != CKR_OK)
		return rv;
	p11_req req;
	if (!p11_session_req(&req, &s, arg != NULL ? 2 : 1, 16))
		return CKR_HOST_MEMORY;
	if (arg != NULL) {
		tc_enc_uint(&req.e, 2);
		tc_enc_uint(&req.e, *arg);
	}
	rv = p11_call(s.gen, type, &req, want, r, CKR_DEVICE_REMOVED);
	p11_enc_free(&req);
	return rv;
}

/* p11_simple_call is a session request with only the session number,
 * answered by Ack. */
CK_RV p11_simple_call(CK_SESSION_HANDLE h, uint8_t type)
{
	p11_reply r;
	CK_RV rv = p11_session_call(h, type, NULL, W_ACK, &r);
	p11_reply_free(&r);
	return rv;
}

static CK_RV close_session(CK_SESSION_HANDLE h)
{
	CK_RV rv = p11_ready();
	if (rv != CKR_OK)
		return rv;
	struct p11_session s;
	if (!remove_session(h, &s))
		return CKR_SESSION_HANDLE_INVALID;
	forget_pending(&s);
	uint64_t gen;
	if (!tc_conn_connected(conn, &gen) || gen != s.gen)
		return CKR_OK; /* the service closed it with its connection */
	p11_req req;
	if (!p11_session_req(&req, &s, 1, 0))
		return CKR_HOST_MEMORY;
	p11_reply r;
	rv = p11_call(s.gen, W_CLOSE_SESSION, &req, W_ACK, &r, CKR_OK);
	p11_enc_free(&req);
	p11_reply_free(&r);
	return rv;
}

CK_RV C_CloseSession(CK_SESSION_HANDLE hSession)
{
	CK_RV rv = close_session(hSession);
	P11_LOG("C_CloseSession(session=%lu) = %s", hSession, p11_rv_name(rv));
	return rv;
}

static CK_RV close_all_sessions(CK_SLOT_ID slotID)
{
	CK_RV rv = p11_ready();
	if (rv != CKR_OK)
		return rv;
	uint64_t gen;
	int up = tc_conn_connected(conn, &gen);
	int live = 0;
	tc_mutex_lock(&mu);
	for (size_t i = 0; i < nsessions;) {
		if (sessions[i].slot == slotID) {
			live |= up && sessions[i].gen == gen;
			forget_pending(&sessions[i]);
			sessions[i] = sessions[--nsessions];
		} else {
			i++;
		}
	}
	tc_mutex_unlock(&mu);
	if (!live)
		return known_slot(slotID) ? CKR_OK : CKR_SLOT_ID_INVALID;
	p11_req req;
	if (!p11_enc_init(&req, 32))
		return CKR_HOST_MEMORY;
	tc_enc_map(&req.e, 1);
	tc_enc_uint(&req.e, 2);
	tc_enc_uint(&req.e, slotID);
	p11_reply r;
	rv = p11_call(gen, W_CLOSE_ALL_SESSIONS, &req, W_ACK, &r, CKR_OK);
	p11_enc_free(&req);
	p11_reply_free(&r);
	return rv;
}

CK_RV C_CloseAllSessions(CK_SLOT_ID slotID)
{
	CK_RV rv = close_all_sessions(slotID);
	P11_LOG("C_CloseAllSessions(slot=%lu) = %s", slotID, p11_rv_name(rv));
	return rv;
}

static CK_RV get_session_info(CK_SESSION_HANDLE h, CK_SESSION_INFO_PTR pInfo)
{
	struct p11_session s;
	CK_RV rv = p11_session_get(h, &s);
	if (rv != CKR_OK)
		return rv;
	if (pInfo == NULL)
		return CKR_ARGUMENTS_BAD;
	p11_req req;
	if (!p11_session_req(&req, &s, 1, 0))
		return CKR_HOST_MEMORY;
	p11_reply r;
	rv = p11_call(s.gen, W_SESSION_INFO, &req, W_SESSION_STATE, &r, CKR_DEVICE_REMOVED);
	p11_enc_free(&req);
	if (rv == CKR_OK) {
		pInfo->slotID = (CK_SLOT_ID)p11_get_uint(r.body, 3);
		pInfo->state = (CK_STATE)p11_get_uint(r.body, 1);
		pInfo->flags = (CK_FLAGS)p11_get_uint(r.body, 4);
		pInfo->ulDeviceError = (CK_ULONG)p11_get_uint(r.body, 5);
	}
	p11_reply_free(&r);
	return rv;
}

CK_RV C_GetSessionInfo(CK_SESSION_HANDLE hSession, CK_SESSION_INFO_PTR pInfo)
{
	CK_RV rv = get_session_info(hSession, pInfo);
	P11_LOG("C_GetSessionInfo(session=%lu) = %s state=%lu", hSession, p11_rv_name(rv),
	        rv == CKR_OK ? pInfo->state : 0UL);
	return rv;
}

/* pin_call sends a request with up to two PINs (keys 2 and 3 after the
 * session; user type first for C_Login). The request buffer, which holds
 * the PINs, is wiped when it is freed. */
static CK_RV pin_call(CK_SESSION_HANDLE h, uint8_t type, int with_user, CK_USER_TYPE user, CK_UTF8CHAR_PTR a,
                      CK_ULONG alen, CK_UTF8CHAR_PTR b, CK_ULONG blen, int two, char *warning, size_t wlen)
{
	struct p11_session s;
	CK_RV rv = p11_session_get(h, &s);
	if (rv != CKR_OK)
		return rv;
	if ((a == NULL && alen > 0) || (two && b == NULL && blen > 0))
		return CKR_ARGUMENTS_BAD;
	if (alen > 4096 || blen > 4096)
		return CKR_PIN_LEN_RANGE;
	p11_req req;
	if (!p11_session_req(&req, &s, 1 + (size_t)with_user + 1 + (size_t)two, alen + blen + 32))
		return CKR_HOST_MEMORY;
	uint64_t key = 2;
	if (with_user) {
		tc_enc_uint(&req.e, key++);
		tc_enc_uint(&req.e, user);
	}
	tc_enc_uint(&req.e, key++);
	tc_enc_bytes(&req.e, a, alen);
	if (two) {
		tc_enc_uint(&req.e, key++);
		tc_enc_bytes(&req.e, b, blen);
	}
	p11_reply r;
	rv = p11_call(s.gen, type, &req, W_ACK, &r, CKR_DEVICE_REMOVED);
	p11_enc_free(&req);
	if (rv == CKR_OK && warning != NULL) {
		tc_val v;
		const char *p;
		size_t n;
		if (tc_map_find(r.body, 1, &v) == TC_OK && tc_get_text(v, &p, &n) == TC_OK && wlen > 0) {
			if (n >= wlen)
				n = wlen - 1;
			memcpy(warning, p, n);
			warning[n] = '\0';
		}
	}
	p11_reply_free(&r);
	return rv;
}

CK_RV C_Login(CK_SESSION_HANDLE hSession, CK_USER_TYPE userType, CK_UTF8CHAR_PTR pPin, CK_ULONG ulPinLen)
{
	CK_RV rv = pin_call(hSession, W_LOGIN, 1, userType, pPin, ulPinLen, NULL, 0, 0, NULL, 0);
	P11_LOG("C_Login(session=%lu, user=%lu, pin=(not logged)) = %s", hSession, userType, p11_rv_name(rv));
	return rv;
}

CK_RV C_Logout(CK_SESSION_HANDLE hSession)
{
	CK_RV rv = p11_simple_call(hSession, W_LOGOUT);
	P11_LOG("C_Logout(session=%lu) = %s", hSession, p11_rv_name(rv));
	return rv;
}

CK_RV C_InitPIN(CK_SESSION_HANDLE hSession, CK_UTF8CHAR_PTR pPin, CK_ULONG ulPinLen)
{
	CK_RV rv = pin_call(hSession, W_INIT_PIN, 0, 0, pPin, ulPinLen, NULL, 0, 0, NULL, 0);
	P11_LOG("C_InitPIN(session=%lu, pin=(not logged)) = %s", hSession, p11_rv_name(rv));
	return rv;
}

CK_RV C_SetPIN(CK_SESSION_HANDLE hSession, CK_UTF8CHAR_PTR pOldPin, CK_ULONG ulOldLen, CK_UTF8CHAR_PTR pNewPin,
               CK_ULONG ulNewLen)
{
	char warning[256] = "";
	CK_RV rv = pin_call(hSession, W_SET_PIN, 0, 0, pOldPin, ulOldLen, pNewPin, ulNewLen, 1, warning, sizeof warning);
	/* A warning (the PIN changed in the TPM, its record not written)
	 * keeps CKR_OK; the log says it. */
	P11_LOG("C_SetPIN(session=%lu, pins=(not logged)) = %s%s%s", hSession, p11_rv_name(rv),
	        warning[0] ? " warning: " : "", warning);
	return rv;
}

/* ------------------------------------------------------------------ */

static CK_FUNCTION_LIST function_list = {
	.version = {2, 40},
#define F(name) .name = name,
	F(C_Initialize) F(C_Finalize) F(C_GetInfo) F(C_GetFunctionList) F(C_GetSlotList) F(C_GetSlotInfo)
	F(C_GetTokenInfo) F(C_GetMechanismList) F(C_GetMechanismInfo) F(C_InitToken) F(C_InitPIN) F(C_SetPIN)
	F(C_OpenSession) F(C_CloseSession) F(C_CloseAllSessions) F(C_GetSessionInfo) F(C_GetOperationState)
	F(C_SetOperationState) F(C_Login) F(C_Logout) F(C_CreateObject) F(C_CopyObject) F(C_DestroyObject)
	F(C_GetObjectSize) F(C_GetAttributeValue) F(C_SetAttributeValue) F(C_FindObjectsInit) F(C_FindObjects)
	F(C_FindObjectsFinal) F(C_EncryptInit) F(C_Encrypt) F(C_EncryptUpdate) F(C_EncryptFinal) F(C_DecryptInit)
	F(C_Decrypt) F(C_DecryptUpdate) F(C_DecryptFinal) F(C_DigestInit) F(C_Digest) F(C_DigestUpdate)
	F(C_DigestKey) F(C_DigestFinal) F(C_SignInit) F(C_Sign) F(C_SignUpdate) F(C_SignFinal)
	F(C_SignRecoverInit) F(C_SignRecover) F(C_VerifyInit) F(C_Verify) F(C_VerifyUpdate) F(C_VerifyFinal)
	F(C_VerifyRecoverInit) F(C_VerifyRecover) F(C_DigestEncryptUpdate) F(C_DecryptDigestUpdate)
	F(C_SignEncryptUpdate) F(C_DecryptVerifyUpdate) F(C_GenerateKey) F(C_GenerateKeyPair) F(C_WrapKey)
	F(C_UnwrapKey) F(C_DeriveKey) F(C_SeedRandom) F(C_GenerateRandom) F(C_GetFunctionStatus)
	F(C_CancelFunction) F(C_WaitForSlotEvent)
#undef F
};

/* PKCS#11 v3.0 §5.2 adds C_GetInterfaceList and C_GetInterface, through
 * which a v3.0 application finds a module's function lists. The one
 * interface here is "PKCS 11" with the v2.40 list. p11-kit's header
 * predates v3.0, so its CK_INTERFACE is declared here, field for field. */
typedef struct {
	CK_CHAR *pInterfaceName;
	CK_VOID_PTR pFunctionList;
	CK_FLAGS flags;
} p11_interface;

static CK_CHAR interface_name[] = "PKCS 11";
static p11_interface interface = {interface_name, &function_list, 0};

CK_RV C_GetInterfaceList(p11_interface *pInterfacesList, CK_ULONG_PTR pulCount);
CK_RV C_GetInterface(CK_UTF8CHAR_PTR pInterfaceName, CK_VERSION_PTR pVersion, p11_interface **ppInterface,
                     CK_FLAGS flags);

CK_RV C_GetInterfaceList(p11_interface *pInterfacesList, CK_ULONG_PTR pulCount)
{
	if (pulCount == NULL)
		return CKR_ARGUMENTS_BAD;
	if (pInterfacesList == NULL) {
		*pulCount = 1;
		return CKR_OK;
	}
	if (*pulCount < 1) {
		*pulCount = 1;
		return CKR_BUFFER_TOO_SMALL;
	}
	pInterfacesList[0] = interface;
	*pulCount = 1;
	return CKR_OK;
}

CK_RV C_GetInterface(CK_UTF8CHAR_PTR pInterfaceName, CK_VERSION_PTR pVersion, p11_interface **ppInterface,
                     CK_FLAGS flags)
{
	if (ppInterface == NULL)
		return CKR_ARGUMENTS_BAD;
	if ((pInterfaceName != NULL && strcmp((const char *)pInterfaceName, (const char *)interface_name) != 0) ||
	    (pVersion != NULL && (pVersion->major != 2 || pVersion->minor != 40)) || (flags & ~interface.flags) != 0)
		return CKR_ARGUMENTS_BAD; /* no such interface */
	*ppInterface = &interface;
	return CKR_OK;
}

CK_RV C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR ppFunctionList)
{
	if (ppFunctionList == NULL)
		return CKR_ARGUMENTS_BAD;
	*ppFunctionList = &function_list;
	return CKR_OK;
}
