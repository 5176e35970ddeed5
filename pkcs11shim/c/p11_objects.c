/*
 * p11_objects.c: objects (§5.7), digesting (§5.10), signing (§5.11),
 * verifying (§5.13), key generation (§5.14) and random numbers (§5.15).
 */
#define _GNU_SOURCE

#include "p11_internal.h"

#include <stdlib.h>
#include <string.h>

/* The most data one request carries (the frame cap is 1 MiB): C_Sign's
 * data beyond it goes in C_SignUpdate-sized parts. */
#define MAX_DATA (512u << 10)
#define MAX_TEMPLATE 1024  /* attributes in one template */
#define MAX_FOUND 1024     /* handles asked for in one C_FindObjects */
#define RANDOM_CHUNK 4096  /* bytes asked for in one GenerateRandom */

/* template_size is the encoded size of a template, or 0 when it is not
 * one (a NULL value with a length): CKR_ARGUMENTS_BAD. */
static CK_RV template_size(CK_ATTRIBUTE_PTR t, CK_ULONG n, size_t *size)
{
	if (t == NULL && n > 0)
		return CKR_ARGUMENTS_BAD;
	if (n > MAX_TEMPLATE)
		return CKR_TEMPLATE_INCONSISTENT;
	size_t total = 16;
	for (CK_ULONG i = 0; i < n; i++) {
		if (t[i].pValue == NULL && t[i].ulValueLen > 0)
			return CKR_ARGUMENTS_BAD;
		if (t[i].ulValueLen > TC_MAX_FRAME)
			return CKR_ATTRIBUTE_VALUE_INVALID;
		total += 24 + t[i].ulValueLen;
		if (total > TC_MAX_FRAME)
			return CKR_DATA_LEN_RANGE;
	}
	*size = total;
	return CKR_OK;
}

/* enc_template encodes a template: [{1 type, 2 value}], values byte for
 * byte. */
static void enc_template(tc_enc *e, CK_ATTRIBUTE_PTR t, CK_ULONG n)
{
	tc_enc_array(e, n);
	for (CK_ULONG i = 0; i < n; i++) {
		tc_enc_map(e, 2);
		tc_enc_uint(e, 1);
		tc_enc_uint(e, t[i].type);
		tc_enc_uint(e, 2);
		tc_enc_bytes(e, t[i].pValue, t[i].ulValueLen);
	}
}

static CK_RV find_objects_init(CK_SESSION_HANDLE h, CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulCount)
{
	struct p11_session s;
	CK_RV rv = p11_session_get(h, &s);
	if (rv != CKR_OK)
		return rv;
	size_t size;
	if ((rv = template_size(pTemplate, ulCount, &size)) != CKR_OK)
		return rv;
	p11_req req;
	if (!p11_session_req(&req, &s, 2, size))
		return CKR_HOST_MEMORY;
	tc_enc_uint(&req.e, 2);
	enc_template(&req.e, pTemplate, ulCount);
	p11_reply r;
	rv = p11_call(s.gen, W_FIND_OBJECTS_INIT, &req, W_ACK, &r, CKR_DEVICE_REMOVED);
	p11_enc_free(&req);
	p11_reply_free(&r);
	return rv;
}

CK_RV C_FindObjectsInit(CK_SESSION_HANDLE hSession, CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulCount)
{
	CK_RV rv = find_objects_init(hSession, pTemplate, ulCount);
	P11_LOG("C_FindObjectsInit(session=%lu, attributes=%lu) = %s", hSession, ulCount, p11_rv_name(rv));
	return rv;
}

static CK_RV find_objects(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE_PTR phObject, CK_ULONG ulMax, CK_ULONG_PTR pulCount)
{
	struct p11_session s;
	CK_RV rv = p11_session_get(h, &s);
	if (rv != CKR_OK)
		return rv;
	if ((phObject == NULL && ulMax > 0) || pulCount == NULL)
		return CKR_ARGUMENTS_BAD;
	if (ulMax > MAX_FOUND)
		ulMax = MAX_FOUND;
	uint64_t max = ulMax;
	p11_reply r;
	rv = p11_session_call(h, W_FIND_OBJECTS_NEXT, &max, W_FOUND_OBJECTS, &r);
	if (rv == CKR_OK) {
		tc_val list, v;
		tc_iter it;
		size_t count = 0;
		if (tc_map_find(r.body, 1, &list) == TC_OK && tc_array_open(list, &it, &count) != TC_OK)
			rv = CKR_DEVICE_ERROR;
		else if (count > ulMax)
			rv = CKR_DEVICE_ERROR; /* more than asked: not a service this module knows */
		for (size_t i = 0; rv == CKR_OK && i < count; i++) {
			uint64_t x;
			if (tc_array_next(&it, &v) != TC_OK || tc_get_uint(v, &x) != TC_OK || x > (CK_OBJECT_HANDLE)-1)
				rv = CKR_DEVICE_ERROR;
			else
				phObject[i] = (CK_OBJECT_HANDLE)x;
		}
		if (rv == CKR_OK)
			*pulCount = count;
	}
	p11_reply_free(&r);
	return rv;
}

CK_RV C_FindObjects(CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE_PTR phObject, CK_ULONG ulMaxObjectCount,
                    CK_ULONG_PTR pulObjectCount)
{
	CK_RV rv = find_objects(hSession, phObject, ulMaxObjectCount, pulObjectCount);
	P11_LOG("C_FindObjects(session=%lu, max=%lu) = %s count=%lu", hSession, ulMaxObjectCount, p11_rv_name(rv),
	        rv == CKR_OK ? *pulObjectCount : 0UL);
	return rv;
}

CK_RV C_FindObjectsFinal(CK_SESSION_HANDLE hSession)
{
	CK_RV rv = p11_simple_call(hSession, W_FIND_OBJECTS_FINAL);
	P11_LOG("C_FindObjectsFinal(session=%lu) = %s", hSession, p11_rv_name(rv));
	return rv;
}

static CK_RV get_attribute_value(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE obj, CK_ATTRIBUTE_PTR t, CK_ULONG n)
{
	struct p11_session s;
	CK_RV rv = p11_session_get(h, &s);
	if (rv != CKR_OK)
		return rv;
	if (t == NULL && n > 0)
		return CKR_ARGUMENTS_BAD;
	if (n > MAX_TEMPLATE)
		return CKR_ARGUMENTS_BAD;
	p11_req req;
	if (!p11_session_req(&req, &s, 3, 16 + n * 32))
		return CKR_HOST_MEMORY;
	tc_enc_uint(&req.e, 2);
	tc_enc_uint(&req.e, obj);
	tc_enc_uint(&req.e, 3);
	tc_enc_array(&req.e, n);
	for (CK_ULONG i = 0; i < n; i++) {
		tc_enc_map(&req.e, 3);
		tc_enc_uint(&req.e, 1);
		tc_enc_uint(&req.e, t[i].type);
		tc_enc_uint(&req.e, 2);
		tc_enc_uint(&req.e, t[i].ulValueLen);
		tc_enc_uint(&req.e, 3);
		tc_enc_bool(&req.e, t[i].pValue == NULL);
	}
	p11_reply r;
	rv = p11_call(s.gen, W_GET_ATTRIBUTE_VALUE, &req, W_ATTRIBUTE_VALUE, &r, CKR_DEVICE_REMOVED);
	p11_enc_free(&req);
	if (rv != CKR_OK) {
		p11_reply_free(&r);
		return rv;
	}
	/* Check every answer before writing anything. */
	tc_val list, v;
	tc_iter it;
	size_t count = 0;
	if (tc_map_find(r.body, 2, &list) == TC_OK && tc_array_open(list, &it, &count) != TC_OK)
		count = (size_t)-1;
	if (count != n) {
		p11_reply_free(&r);
		return CKR_DEVICE_ERROR;
	}
	tc_iter first = it;
	for (CK_ULONG i = 0; i < n; i++) {
		const uint8_t *p;
		size_t len;
		if (tc_array_next(&it, &v) != TC_OK || tc_kind_of(v) != TC_MAP || !p11_get_bytes(v, 3, &p, &len)) {
			p11_reply_free(&r);
			return CKR_DEVICE_ERROR;
		}
		if (p11_get_uint(v, 1) == CKR_OK && t[i].pValue != NULL &&
		    (p11_get_uint(v, 2) != len || len > t[i].ulValueLen)) {
			p11_reply_free(&r);
			return CKR_DEVICE_ERROR; /* a value that does not fit: the service broke the protocol */
		}
	}
	it = first;
	for (CK_ULONG i = 0; i < n; i++) {
		const uint8_t *p;
		size_t len;
		tc_array_next(&it, &v);
		p11_get_bytes(v, 3, &p, &len);
		if (p11_get_uint(v, 1) != CKR_OK) {
			t[i].ulValueLen = CK_UNAVAILABLE_INFORMATION;
			continue;
		}
		if (t[i].pValue != NULL && len > 0)
			memcpy(t[i].pValue, p, len);
		t[i].ulValueLen = (CK_ULONG)p11_get_uint(v, 2);
	}
	rv = (CK_RV)p11_get_uint(r.body, 1);
	p11_reply_free(&r);
	return rv;
}

CK_RV C_GetAttributeValue(CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE hObject, CK_ATTRIBUTE_PTR pTemplate,
                          CK_ULONG ulCount)
{
	CK_RV rv = get_attribute_value(hSession, hObject, pTemplate, ulCount);
	P11_LOG("C_GetAttributeValue(session=%lu, object=%lu, attributes=%lu) = %s", hSession, hObject, ulCount,
	        p11_rv_name(rv));
	return rv;
}

static CK_RV get_object_size(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE obj, CK_ULONG_PTR pulSize)
{
	CK_RV rv = p11_ready();
	if (rv != CKR_OK)
		return rv;
	if (pulSize == NULL)
		return CKR_ARGUMENTS_BAD;
	uint64_t o = obj;
	p11_reply r;
	rv = p11_session_call(h, W_GET_OBJECT_SIZE, &o, W_OBJECT_SIZE, &r);
	if (rv == CKR_OK)
		*pulSize = (CK_ULONG)p11_get_uint(r.body, 1); /* 2^64-1: CK_UNAVAILABLE_INFORMATION on any CK_ULONG */
	p11_reply_free(&r);
	return rv;
}

CK_RV C_GetObjectSize(CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE hObject, CK_ULONG_PTR pulSize)
{
	CK_RV rv = get_object_size(hSession, hObject, pulSize);
	P11_LOG("C_GetObjectSize(session=%lu, object=%lu) = %s", hSession, hObject, p11_rv_name(rv));
	return rv;
}

static CK_RV create_object(CK_SESSION_HANDLE h, CK_ATTRIBUTE_PTR t, CK_ULONG n, CK_OBJECT_HANDLE_PTR phObject)
{
	struct p11_session s;
	CK_RV rv = p11_session_get(h, &s);
	if (rv != CKR_OK)
		return rv;
	if (phObject == NULL)
		return CKR_ARGUMENTS_BAD;
	size_t size;
	if ((rv = template_size(t, n, &size)) != CKR_OK)
		return rv;
	p11_req req;
	if (!p11_session_req(&req, &s, 2, size))
		return CKR_HOST_MEMORY;
	tc_enc_uint(&req.e, 2);
	enc_template(&req.e, t, n);
	p11_reply r;
	rv = p11_call(s.gen, W_CREATE_OBJECT, &req, W_OBJECT_CREATED, &r, CKR_DEVICE_REMOVED);
	p11_enc_free(&req);
	if (rv == CKR_OK)
		*phObject = (CK_OBJECT_HANDLE)p11_get_uint(r.body, 1);
	p11_reply_free(&r);
	return rv;
}

CK_RV C_CreateObject(CK_SESSION_HANDLE hSession, CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulCount,
                     CK_OBJECT_HANDLE_PTR phObject)
{
	CK_RV rv = create_object(hSession, pTemplate, ulCount, phObject);
	P11_LOG("C_CreateObject(session=%lu, attributes=%lu) = %s object=%lu", hSession, ulCount, p11_rv_name(rv),
	        rv == CKR_OK ? *phObject : 0UL);
	return rv;
}

static CK_RV destroy_object(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE obj)
{
	uint64_t o = obj;
	p11_reply r;
	CK_RV rv = p11_session_call(h, W_DESTROY_OBJECT, &o, W_ACK, &r);
	p11_reply_free(&r);
	return rv;
}

CK_RV C_DestroyObject(CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE hObject)
{
	CK_RV rv = destroy_object(hSession, hObject);
	P11_LOG("C_DestroyObject(session=%lu, object=%lu) = %s", hSession, hObject, p11_rv_name(rv));
	return rv;
}

/* object_template sends a request {1 session, 2 object, 3 template}:
 * C_SetAttributeValue (answered by Ack) and C_CopyObject (ObjectCreated,
 * whose handle goes to *out). */
static CK_RV object_template(CK_SESSION_HANDLE h, uint8_t type, CK_OBJECT_HANDLE obj, CK_ATTRIBUTE_PTR t, CK_ULONG n,
                             uint8_t want, CK_OBJECT_HANDLE_PTR out)
{
	struct p11_session s;
	CK_RV rv = p11_session_get(h, &s);
	if (rv != CKR_OK)
		return rv;
	if (want == W_OBJECT_CREATED && out == NULL)
		return CKR_ARGUMENTS_BAD;
	size_t size;
	if ((rv = template_size(t, n, &size)) != CKR_OK)
		return rv;
	p11_req req;
	if (!p11_session_req(&req, &s, 3, 16 + size))
		return CKR_HOST_MEMORY;
	tc_enc_uint(&req.e, 2);
	tc_enc_uint(&req.e, obj);
	tc_enc_uint(&req.e, 3);
	enc_template(&req.e, t, n);
	p11_reply r;
	rv = p11_call(s.gen, type, &req, want, &r, CKR_DEVICE_REMOVED);
	p11_enc_free(&req);
	if (rv == CKR_OK && out != NULL)
		*out = (CK_OBJECT_HANDLE)p11_get_uint(r.body, 1);
	p11_reply_free(&r);
	return rv;
}

CK_RV C_SetAttributeValue(CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE hObject, CK_ATTRIBUTE_PTR pTemplate,
                          CK_ULONG ulCount)
{
	CK_RV rv = object_template(hSession, W_SET_ATTRIBUTE_VALUE, hObject, pTemplate, ulCount, W_ACK, NULL);
	P11_LOG("C_SetAttributeValue(session=%lu, object=%lu, attributes=%lu) = %s", hSession, hObject, ulCount,
	        p11_rv_name(rv));
	return rv;
}

CK_RV C_CopyObject(CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE hObject, CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulCount,
                   CK_OBJECT_HANDLE_PTR phNewObject)
{
	CK_RV rv = object_template(hSession, W_COPY_OBJECT, hObject, pTemplate, ulCount, W_OBJECT_CREATED, phNewObject);
	P11_LOG("C_CopyObject(session=%lu, object=%lu, attributes=%lu) = %s object=%lu", hSession, hObject, ulCount,
	        p11_rv_name(rv), rv == CKR_OK ? *phNewObject : 0UL);
	return rv;
}

/* ------------------------------------------------------------------ */
/* Signing (§5.11), digesting (§5.10) and verifying (§5.13). C_SignInit
 * and C_VerifyInit do not wait for their reply: the next call of the
 * operation collects it, so that an init and its C_Sign or C_Verify cost
 * one round trip. An init that failed returns CKR_OK and its CK_RV comes
 * from that next call (docs/wire.md), once the same init (mechanism,
 * parameter, key) has succeeded in the session: the first of each waits,
 * so that an application probing mechanisms (pkcs11-tool --test tries
 * CKM_RSA_X_509 and takes CKR_MECHANISM_INVALID as "not this one") hears
 * the answer from the init, and a signing loop still costs one round trip
 * a signature. C_DigestInit always waits (op_init). Digests and
 * signatures share their requests' shapes and their replies' (Signed,
 * Digested: {1 rv, 2 length, 3 bytes}). */

/* An operation's request types and the reply of its output. */
struct p11_op {
	int op; /* P11_OP_* */
	uint8_t init, data, update, final, out;
};

static const struct p11_op sign_op = {P11_OP_SIGN, W_SIGN_INIT, W_SIGN_DATA, W_SIGN_UPDATE, W_SIGN_FINAL, W_SIGNED};
static const struct p11_op digest_op = {P11_OP_DIGEST, W_DIGEST_INIT, W_DIGEST_DATA, W_DIGEST_UPDATE, W_DIGEST_FINAL,
                                        W_DIGESTED};
static const struct p11_op verify_op = {P11_OP_VERIFY, W_VERIFY_INIT, W_VERIFY_DATA, W_VERIFY_UPDATE, W_VERIFY_FINAL,
                                        W_ACK};

/* collect_init reads the reply to a pending init request. */
static CK_RV collect_init(const tc_ticket *t)
{
	p11_reply r;
	memset(&r, 0, sizeof r);
	int rc = tc_conn_recv(p11_conn(), t, &r.f);
	if (rc != TC_OK)
		return CKR_DEVICE_REMOVED;
	CK_RV rv = p11_classify(&r, W_ACK, CKR_DEVICE_REMOVED);
	p11_reply_free(&r);
	return rv;
}

/* op_init sends an init request {1 session, 2 mechanism, 3 parameter,
 * 4 key (with_key)} and leaves its reply pending, except C_DigestInit's,
 * which it waits for: applications probe digest mechanisms with
 * C_DigestInit and take CKR_MECHANISM_INVALID there as "not this one"
 * (pkcs11-tool --test does, for MD5 and RIPEMD-160), and a digest is not
 * the path whose round trip counts. */
static CK_RV op_init(const struct p11_op *o, CK_SESSION_HANDLE h, CK_MECHANISM_PTR m, int with_key,
                     CK_OBJECT_HANDLE key, const char **how)
{
	*how = "";
	struct p11_session s;
	CK_RV rv = p11_session_get(h, &s);
	if (rv != CKR_OK)
		return rv;
	if (m == NULL || (m->pParameter == NULL && m->ulParameterLen > 0))
		return CKR_ARGUMENTS_BAD;
	if (m->ulParameterLen > 4096)
		return CKR_MECHANISM_PARAM_INVALID;
	tc_ticket t;
	if (p11_session_take_pending(h, o->op, &t))
		collect_init(&t); /* an earlier init never followed: the service judges this one */
	int has_param = m->pParameter != NULL && m->ulParameterLen > 0;
	struct p11_proven this = {1, m->mechanism, with_key ? key : 0, 0, {0}};
	int fits = m->ulParameterLen <= P11_PROVEN_PARAM;
	if (has_param && fits) {
		this.param_len = m->ulParameterLen;
		memcpy(this.param, m->pParameter, m->ulParameterLen);
	}
	const struct p11_proven *was = &s.proven[o->op];
	int proven = fits && was->set && was->mech == this.mech && was->key == this.key &&
	             was->param_len == this.param_len && memcmp(was->param, this.param, this.param_len) == 0;
	int wait = o->op == P11_OP_DIGEST || !proven;
	p11_req req;
	if (!p11_session_req(&req, &s, 2 + (size_t)has_param + (size_t)with_key, 32 + m->ulParameterLen))
		return CKR_HOST_MEMORY;
	tc_enc_uint(&req.e, 2);
	tc_enc_uint(&req.e, m->mechanism);
	if (has_param) {
		tc_enc_uint(&req.e, 3);
		tc_enc_bytes(&req.e, m->pParameter, m->ulParameterLen);
	}
	if (with_key) {
		tc_enc_uint(&req.e, 4);
		tc_enc_uint(&req.e, key);
	}
	if (wait) {
		p11_reply r;
		rv = p11_call(s.gen, o->init, &req, W_ACK, &r, CKR_DEVICE_REMOVED);
		p11_enc_free(&req);
		p11_reply_free(&r);
		if (rv == CKR_OK && fits)
			p11_session_set_proven(h, o->op, &this);
		return rv;
	}
	size_t n;
	rv = CKR_OK;
	if (tc_enc_finish(&req.e, &n) != TC_OK)
		rv = CKR_MECHANISM_PARAM_INVALID;
	int rc = rv == CKR_OK ? tc_conn_send(p11_conn(), s.gen, o->init, req.buf, n, &t) : TC_OK;
	p11_enc_free(&req);
	if (rv != CKR_OK)
		return rv;
	if (rc != TC_OK)
		return CKR_DEVICE_REMOVED;
	if (!p11_session_set_pending(h, o->op, &t)) {
		tc_conn_forget(p11_conn(), &t); /* closed meanwhile */
		return CKR_SESSION_HANDLE_INVALID;
	}
	*how = " (pipelined)";
	return CKR_OK;
}

CK_RV C_SignInit(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hKey)
{
	const char *how;
	CK_RV rv = op_init(&sign_op, hSession, pMechanism, 1, hKey, &how);
	P11_LOG("C_SignInit(session=%lu, mechanism=%#lx, key=%lu) = %s%s", hSession,
	        pMechanism != NULL ? pMechanism->mechanism : 0UL, hKey, p11_rv_name(rv), how);
	return rv;
}

CK_RV C_DigestInit(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism)
{
	const char *how;
	CK_RV rv = op_init(&digest_op, hSession, pMechanism, 0, 0, &how);
	P11_LOG("C_DigestInit(session=%lu, mechanism=%#lx) = %s", hSession,
	        pMechanism != NULL ? pMechanism->mechanism : 0UL, p11_rv_name(rv));
	return rv;
}

CK_RV C_VerifyInit(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hKey)
{
	const char *how;
	CK_RV rv = op_init(&verify_op, hSession, pMechanism, 1, hKey, &how);
	P11_LOG("C_VerifyInit(session=%lu, mechanism=%#lx, key=%lu) = %s%s", hSession,
	        pMechanism != NULL ? pMechanism->mechanism : 0UL, hKey, p11_rv_name(rv), how);
	return rv;
}

/* op_call sends one request of an operation (after the session and the
 * keys the caller encoded, key 5 says an init reply is pending), collects
 * the pending init reply first, then this one. A failed init's CK_RV
 * wins. */
static CK_RV op_call(const struct p11_session *s, uint8_t type, p11_req *req, int pending, const tc_ticket *init,
                     uint8_t want, p11_reply *r)
{
	memset(r, 0, sizeof *r);
	if (pending) {
		tc_enc_uint(&req->e, 5);
		tc_enc_bool(&req->e, 1);
	}
	size_t n;
	if (tc_enc_finish(&req->e, &n) != TC_OK || n > TC_MAX_FRAME - 1) {
		if (pending)
			tc_conn_forget(p11_conn(), init);
		return CKR_DATA_LEN_RANGE;
	}
	tc_ticket t;
	int rc = tc_conn_send(p11_conn(), s->gen, type, req->buf, n, &t);
	CK_RV init_rv = CKR_OK;
	if (pending)
		init_rv = rc == TC_OK ? collect_init(init) : (tc_conn_forget(p11_conn(), init), CKR_OK);
	if (rc != TC_OK)
		return CKR_DEVICE_REMOVED;
	rc = tc_conn_recv(p11_conn(), &t, &r->f);
	if (init_rv != CKR_OK)
		return init_rv;
	if (rc != TC_OK)
		return CKR_DEVICE_REMOVED;
	return p11_classify(r, want, CKR_DEVICE_REMOVED);
}

/* out_reply copies a Signed or Digested reply {1 rv, 2 length, 3 bytes}
 * by the length conventions of §5.2. */
static CK_RV out_reply(p11_reply *r, CK_BYTE_PTR out, CK_ULONG_PTR outLen)
{
	uint64_t rv = p11_get_uint(r->body, 1), length = p11_get_uint(r->body, 2);
	const uint8_t *sig;
	size_t n;
	if (!p11_get_bytes(r->body, 3, &sig, &n) || length > (CK_ULONG)-1)
		return CKR_DEVICE_ERROR;
	if (rv == CKR_BUFFER_TOO_SMALL) {
		*outLen = (CK_ULONG)length;
		return CKR_BUFFER_TOO_SMALL;
	}
	if (rv != CKR_OK)
		return CKR_DEVICE_ERROR;
	if (out == NULL) {
		*outLen = (CK_ULONG)length;
		return CKR_OK;
	}
	if (n != length || n > *outLen)
		return CKR_DEVICE_ERROR;
	memcpy(out, sig, n);
	*outLen = (CK_ULONG)n;
	return CKR_OK;
}

/* enc_out encodes the buffer keys of the data and final requests. */
static void enc_out(p11_req *req, CK_BYTE_PTR out, CK_ULONG_PTR outLen)
{
	tc_enc_uint(&req->e, 3);
	tc_enc_uint(&req->e, out != NULL ? *outLen : 0);
	tc_enc_uint(&req->e, 4);
	tc_enc_bool(&req->e, out == NULL);
}

/* update_parts sends part as update requests of at most MAX_DATA bytes. */
static CK_RV update_parts(const struct p11_op *o, const struct p11_session *s, CK_BYTE_PTR part, CK_ULONG len,
                          int *pending, const tc_ticket *init)
{
	CK_ULONG done = 0;
	do {
		CK_ULONG k = len - done > MAX_DATA ? MAX_DATA : len - done;
		p11_req req;
		if (!p11_session_req(&req, s, 2 + (size_t)*pending, 32 + k)) {
			if (*pending)
				tc_conn_forget(p11_conn(), init);
			*pending = 0;
			return CKR_HOST_MEMORY;
		}
		tc_enc_uint(&req.e, 2);
		tc_enc_bytes(&req.e, part + done, k);
		p11_reply r;
		CK_RV rv = op_call(s, o->update, &req, *pending, init, W_ACK, &r);
		*pending = 0;
		p11_enc_free(&req);
		p11_reply_free(&r);
		if (rv != CKR_OK)
			return rv;
		done += k;
	} while (done < len);
	return CKR_OK;
}

static CK_RV final_op(const struct p11_op *o, const struct p11_session *s, CK_BYTE_PTR out, CK_ULONG_PTR outLen,
                      int pending, const tc_ticket *init)
{
	p11_req req;
	if (!p11_session_req(&req, s, 3 + (size_t)pending, 16)) {
		if (pending)
			tc_conn_forget(p11_conn(), init);
		return CKR_HOST_MEMORY;
	}
	enc_out(&req, out, outLen);
	p11_reply r;
	CK_RV rv = op_call(s, o->final, &req, pending, init, o->out, &r);
	p11_enc_free(&req);
	if (rv == CKR_OK)
		rv = out_reply(&r, out, outLen);
	p11_reply_free(&r);
	return rv;
}

/* one_step is C_Sign and C_Digest: the data and the caller's buffer in one
 * request; data too large for a frame goes as parts after a length query
 * (the operation stays), then a final request. */
static CK_RV one_step(const struct p11_op *o, CK_SESSION_HANDLE h, CK_BYTE_PTR data, CK_ULONG len, CK_BYTE_PTR out,
                      CK_ULONG_PTR outLen)
{
	struct p11_session s;
	CK_RV rv = p11_session_get(h, &s);
	if (rv != CKR_OK)
		return rv;
	if ((data == NULL && len > 0) || outLen == NULL)
		return CKR_ARGUMENTS_BAD;
	tc_ticket init;
	int pending = p11_session_take_pending(h, o->op, &init);
	int big = len > MAX_DATA;
	p11_req req;
	if (!p11_session_req(&req, &s, 4 + (size_t)pending, 32 + (big ? 0 : len))) {
		if (pending)
			tc_conn_forget(p11_conn(), &init);
		return CKR_HOST_MEMORY;
	}
	tc_enc_uint(&req.e, 2);
	tc_enc_bytes(&req.e, data, big ? 0 : len);
	if (big) {
		tc_enc_uint(&req.e, 3);
		tc_enc_uint(&req.e, 0);
		tc_enc_uint(&req.e, 4);
		tc_enc_bool(&req.e, 1);
	} else {
		enc_out(&req, out, outLen);
	}
	p11_reply r;
	rv = op_call(&s, o->data, &req, pending, &init, o->out, &r);
	p11_enc_free(&req);
	if (rv != CKR_OK || !big) {
		if (rv == CKR_OK)
			rv = out_reply(&r, out, outLen);
		p11_reply_free(&r);
		return rv;
	}
	CK_ULONG need;
	rv = out_reply(&r, NULL, &need);
	p11_reply_free(&r);
	if (rv != CKR_OK)
		return rv;
	if (out == NULL || *outLen < need) {
		*outLen = need;
		return out == NULL ? CKR_OK : CKR_BUFFER_TOO_SMALL;
	}
	int none = 0;
	if ((rv = update_parts(o, &s, data, len, &none, NULL)) != CKR_OK)
		return rv;
	return final_op(o, &s, out, outLen, 0, NULL);
}

CK_RV C_Sign(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pData, CK_ULONG ulDataLen, CK_BYTE_PTR pSignature,
             CK_ULONG_PTR pulSignatureLen)
{
	CK_RV rv = one_step(&sign_op, hSession, pData, ulDataLen, pSignature, pulSignatureLen);
	P11_LOG("C_Sign(session=%lu, data=%lu bytes, signature=%p) = %s length=%lu", hSession, ulDataLen,
	        (void *)pSignature, p11_rv_name(rv), pulSignatureLen != NULL ? *pulSignatureLen : 0UL);
	return rv;
}

CK_RV C_Digest(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pData, CK_ULONG ulDataLen, CK_BYTE_PTR pDigest,
               CK_ULONG_PTR pulDigestLen)
{
	CK_RV rv = one_step(&digest_op, hSession, pData, ulDataLen, pDigest, pulDigestLen);
	P11_LOG("C_Digest(session=%lu, data=%lu bytes, digest=%p) = %s length=%lu", hSession, ulDataLen,
	        (void *)pDigest, p11_rv_name(rv), pulDigestLen != NULL ? *pulDigestLen : 0UL);
	return rv;
}

static CK_RV op_update(const struct p11_op *o, CK_SESSION_HANDLE h, CK_BYTE_PTR part, CK_ULONG len)
{
	struct p11_session s;
	CK_RV rv = p11_session_get(h, &s);
	if (rv != CKR_OK)
		return rv;
	if (part == NULL && len > 0)
		return CKR_ARGUMENTS_BAD;
	tc_ticket init;
	int pending = p11_session_take_pending(h, o->op, &init);
	return update_parts(o, &s, part, len, &pending, &init);
}

CK_RV C_SignUpdate(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pPart, CK_ULONG ulPartLen)
{
	CK_RV rv = op_update(&sign_op, hSession, pPart, ulPartLen);
	P11_LOG("C_SignUpdate(session=%lu, part=%lu bytes) = %s", hSession, ulPartLen, p11_rv_name(rv));
	return rv;
}

CK_RV C_DigestUpdate(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pPart, CK_ULONG ulPartLen)
{
	CK_RV rv = op_update(&digest_op, hSession, pPart, ulPartLen);
	P11_LOG("C_DigestUpdate(session=%lu, part=%lu bytes) = %s", hSession, ulPartLen, p11_rv_name(rv));
	return rv;
}

CK_RV C_VerifyUpdate(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pPart, CK_ULONG ulPartLen)
{
	CK_RV rv = op_update(&verify_op, hSession, pPart, ulPartLen);
	P11_LOG("C_VerifyUpdate(session=%lu, part=%lu bytes) = %s", hSession, ulPartLen, p11_rv_name(rv));
	return rv;
}

static CK_RV op_final(const struct p11_op *o, CK_SESSION_HANDLE h, CK_BYTE_PTR out, CK_ULONG_PTR outLen)
{
	struct p11_session s;
	CK_RV rv = p11_session_get(h, &s);
	if (rv != CKR_OK)
		return rv;
	if (outLen == NULL)
		return CKR_ARGUMENTS_BAD;
	tc_ticket init;
	int pending = p11_session_take_pending(h, o->op, &init);
	return final_op(o, &s, out, outLen, pending, &init);
}

CK_RV C_SignFinal(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pSignature, CK_ULONG_PTR pulSignatureLen)
{
	CK_RV rv = op_final(&sign_op, hSession, pSignature, pulSignatureLen);
	P11_LOG("C_SignFinal(session=%lu, signature=%p) = %s length=%lu", hSession, (void *)pSignature,
	        p11_rv_name(rv), pulSignatureLen != NULL ? *pulSignatureLen : 0UL);
	return rv;
}

CK_RV C_DigestFinal(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pDigest, CK_ULONG_PTR pulDigestLen)
{
	CK_RV rv = op_final(&digest_op, hSession, pDigest, pulDigestLen);
	P11_LOG("C_DigestFinal(session=%lu, digest=%p) = %s length=%lu", hSession, (void *)pDigest, p11_rv_name(rv),
	        pulDigestLen != NULL ? *pulDigestLen : 0UL);
	return rv;
}

static CK_RV digest_key(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE key)
{
	struct p11_session s;
	CK_RV rv = p11_session_get(h, &s);
	if (rv != CKR_OK)
		return rv;
	tc_ticket init;
	int pending = p11_session_take_pending(h, P11_OP_DIGEST, &init);
	p11_req req;
	if (!p11_session_req(&req, &s, 2 + (size_t)pending, 16)) {
		if (pending)
			tc_conn_forget(p11_conn(), &init);
		return CKR_HOST_MEMORY;
	}
	tc_enc_uint(&req.e, 2);
	tc_enc_uint(&req.e, key);
	p11_reply r;
	rv = op_call(&s, W_DIGEST_KEY, &req, pending, &init, W_ACK, &r);
	p11_enc_free(&req);
	p11_reply_free(&r);
	return rv;
}

CK_RV C_DigestKey(CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE hKey)
{
	CK_RV rv = digest_key(hSession, hKey);
	P11_LOG("C_DigestKey(session=%lu, key=%lu) = %s", hSession, hKey, p11_rv_name(rv));
	return rv;
}

/* verify_req sends a VerifyData or VerifyFinal: {2 data (data only),
 * 3 signature, 4 parts (data only), 5 after-init}, answered by Ack. */
static CK_RV verify_req(const struct p11_session *s, uint8_t type, CK_BYTE_PTR data, CK_ULONG len, int parts,
                        CK_BYTE_PTR sig, CK_ULONG siglen, int pending, const tc_ticket *init)
{
	int with_data = type == W_VERIFY_DATA;
	p11_req req;
	if (!p11_session_req(&req, s, 2 + (size_t)(with_data ? 2 : 0) + (size_t)pending, 32 + len + siglen)) {
		if (pending)
			tc_conn_forget(p11_conn(), init);
		return CKR_HOST_MEMORY;
	}
	if (with_data) {
		tc_enc_uint(&req.e, 2);
		tc_enc_bytes(&req.e, data, len);
	}
	tc_enc_uint(&req.e, 3);
	tc_enc_bytes(&req.e, sig, siglen);
	if (with_data) {
		tc_enc_uint(&req.e, 4);
		tc_enc_bool(&req.e, parts);
	}
	p11_reply r;
	CK_RV rv = op_call(s, type, &req, pending, init, W_ACK, &r);
	p11_enc_free(&req);
	p11_reply_free(&r);
	return rv;
}

static CK_RV verify(CK_SESSION_HANDLE h, CK_BYTE_PTR data, CK_ULONG len, CK_BYTE_PTR sig, CK_ULONG siglen)
{
	struct p11_session s;
	CK_RV rv = p11_session_get(h, &s);
	if (rv != CKR_OK)
		return rv;
	if ((data == NULL && len > 0) || (sig == NULL && siglen > 0))
		return CKR_ARGUMENTS_BAD;
	if (siglen > MAX_DATA) {
		sig = NULL; /* no key's signature is this long: the service says CKR_SIGNATURE_LEN_RANGE */
		siglen = 0;
	}
	tc_ticket init;
	int pending = p11_session_take_pending(h, P11_OP_VERIFY, &init);
	if (len <= MAX_DATA)
		return verify_req(&s, W_VERIFY_DATA, data, len, 0, sig, siglen, pending, &init);
	/* Too much for one frame: C_Verify's data goes as parts. */
	if ((rv = verify_req(&s, W_VERIFY_DATA, NULL, 0, 1, NULL, 0, pending, &init)) != CKR_OK)
		return rv;
	int none = 0;
	if ((rv = update_parts(&verify_op, &s, data, len, &none, NULL)) != CKR_OK)
		return rv;
	return verify_req(&s, W_VERIFY_FINAL, NULL, 0, 0, sig, siglen, 0, NULL);
}

CK_RV C_Verify(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pData, CK_ULONG ulDataLen, CK_BYTE_PTR pSignature,
               CK_ULONG ulSignatureLen)
{
	CK_RV rv = verify(hSession, pData, ulDataLen, pSignature, ulSignatureLen);
	P11_LOG("C_Verify(session=%lu, data=%lu bytes, signature=%lu bytes) = %s", hSession, ulDataLen, ulSignatureLen,
	        p11_rv_name(rv));
	return rv;
}

static CK_RV verify_final(CK_SESSION_HANDLE h, CK_BYTE_PTR sig, CK_ULONG siglen)
{
	struct p11_session s;
	CK_RV rv = p11_session_get(h, &s);
	if (rv != CKR_OK)
		return rv;
	if (sig == NULL && siglen > 0)
		return CKR_ARGUMENTS_BAD;
	tc_ticket init;
	int pending = p11_session_take_pending(h, P11_OP_VERIFY, &init);
	if (siglen > MAX_DATA) {
		sig = NULL; /* no key's signature is this long: CKR_SIGNATURE_LEN_RANGE from the service */
		siglen = 0;
	}
	return verify_req(&s, W_VERIFY_FINAL, NULL, 0, 0, sig, siglen, pending, &init);
}

CK_RV C_VerifyFinal(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pSignature, CK_ULONG ulSignatureLen)
{
	CK_RV rv = verify_final(hSession, pSignature, ulSignatureLen);
	P11_LOG("C_VerifyFinal(session=%lu, signature=%lu bytes) = %s", hSession, ulSignatureLen, p11_rv_name(rv));
	return rv;
}

/* ------------------------------------------------------------------ */
/* Key generation and random numbers. */

static CK_RV generate_key_pair(CK_SESSION_HANDLE h, CK_MECHANISM_PTR m, CK_ATTRIBUTE_PTR pub, CK_ULONG npub,
                               CK_ATTRIBUTE_PTR priv, CK_ULONG npriv, CK_OBJECT_HANDLE_PTR phPub,
                               CK_OBJECT_HANDLE_PTR phPriv)
{
	struct p11_session s;
	CK_RV rv = p11_session_get(h, &s);
	if (rv != CKR_OK)
		return rv;
	if (m == NULL || phPub == NULL || phPriv == NULL || (m->pParameter == NULL && m->ulParameterLen > 0))
		return CKR_ARGUMENTS_BAD;
	if (m->ulParameterLen > 4096)
		return CKR_MECHANISM_PARAM_INVALID;
	size_t a, b;
	if ((rv = template_size(pub, npub, &a)) != CKR_OK || (rv = template_size(priv, npriv, &b)) != CKR_OK)
		return rv;
	p11_req req;
	if (!p11_session_req(&req, &s, 5, 32 + m->ulParameterLen + a + b))
		return CKR_HOST_MEMORY;
	tc_enc_uint(&req.e, 2);
	tc_enc_uint(&req.e, m->mechanism);
	tc_enc_uint(&req.e, 3);
	tc_enc_bytes(&req.e, m->pParameter, m->ulParameterLen);
	tc_enc_uint(&req.e, 4);
	enc_template(&req.e, pub, npub);
	tc_enc_uint(&req.e, 5);
	enc_template(&req.e, priv, npriv);
	p11_reply r;
	rv = p11_call(s.gen, W_GENERATE_KEY_PAIR, &req, W_GENERATED_KEY_PAIR, &r, CKR_DEVICE_REMOVED);
	p11_enc_free(&req);
	if (rv == CKR_OK) {
		*phPub = (CK_OBJECT_HANDLE)p11_get_uint(r.body, 1);
		*phPriv = (CK_OBJECT_HANDLE)p11_get_uint(r.body, 2);
	}
	p11_reply_free(&r);
	return rv;
}

CK_RV C_GenerateKeyPair(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_ATTRIBUTE_PTR pPublicKeyTemplate,
                        CK_ULONG ulPublicKeyAttributeCount, CK_ATTRIBUTE_PTR pPrivateKeyTemplate,
                        CK_ULONG ulPrivateKeyAttributeCount, CK_OBJECT_HANDLE_PTR phPublicKey,
                        CK_OBJECT_HANDLE_PTR phPrivateKey)
{
	CK_RV rv = generate_key_pair(hSession, pMechanism, pPublicKeyTemplate, ulPublicKeyAttributeCount,
	                             pPrivateKeyTemplate, ulPrivateKeyAttributeCount, phPublicKey, phPrivateKey);
	P11_LOG("C_GenerateKeyPair(session=%lu, mechanism=%#lx) = %s public=%lu private=%lu", hSession,
	        pMechanism != NULL ? pMechanism->mechanism : 0UL, p11_rv_name(rv),
	        rv == CKR_OK ? *phPublicKey : 0UL, rv == CKR_OK ? *phPrivateKey : 0UL);
	return rv;
}

static CK_RV seed_random(CK_SESSION_HANDLE h, CK_BYTE_PTR seed, CK_ULONG len)
{
	struct p11_session s;
	CK_RV rv = p11_session_get(h, &s);
	if (rv != CKR_OK)
		return rv;
	if (seed == NULL && len > 0)
		return CKR_ARGUMENTS_BAD;
	/* The service refuses every seed after checking the session; the
	 * seed's bytes never leave the process. */
	p11_req req;
	if (!p11_session_req(&req, &s, 1, 0))
		return CKR_HOST_MEMORY;
	p11_reply r;
	rv = p11_call(s.gen, W_SEED_RANDOM, &req, W_ACK, &r, CKR_DEVICE_REMOVED);
	p11_enc_free(&req);
	p11_reply_free(&r);
	if (rv == CKR_FUNCTION_NOT_SUPPORTED || rv == CKR_OK)
		rv = CKR_RANDOM_SEED_NOT_SUPPORTED; /* the TPM's generator takes no seed from here */
	return rv;
}

CK_RV C_SeedRandom(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pSeed, CK_ULONG ulSeedLen)
{
	CK_RV rv = seed_random(hSession, pSeed, ulSeedLen);
	P11_LOG("C_SeedRandom(session=%lu, seed=%lu bytes) = %s", hSession, ulSeedLen, p11_rv_name(rv));
	return rv;
}

static CK_RV generate_random(CK_SESSION_HANDLE h, CK_BYTE_PTR out, CK_ULONG len)
{
	struct p11_session s;
	CK_RV rv = p11_session_get(h, &s);
	if (rv != CKR_OK)
		return rv;
	if (out == NULL && len > 0)
		return CKR_ARGUMENTS_BAD;
	for (CK_ULONG done = 0; done < len;) {
		CK_ULONG k = len - done > RANDOM_CHUNK ? RANDOM_CHUNK : len - done;
		uint64_t n64 = k;
		p11_reply r;
		rv = p11_session_call(h, W_GENERATE_RANDOM, &n64, W_RANDOM, &r);
		if (rv == CKR_OK) {
			const uint8_t *p;
			size_t n;
			if (!p11_get_bytes(r.body, 1, &p, &n) || n != k)
				rv = CKR_FUNCTION_FAILED;
			else
				memcpy(out + done, p, n);
		}
		p11_reply_free(&r);
		if (rv != CKR_OK)
			return rv;
		done += k;
	}
	return CKR_OK;
}

CK_RV C_GenerateRandom(CK_SESSION_HANDLE hSession, CK_BYTE_PTR RandomData, CK_ULONG ulRandomLen)
{
	CK_RV rv = generate_random(hSession, RandomData, ulRandomLen);
	P11_LOG("C_GenerateRandom(session=%lu, length=%lu) = %s", hSession, ulRandomLen, p11_rv_name(rv));
	return rv;
}
