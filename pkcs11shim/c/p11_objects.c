/*
 * p11_objects.c: objects (§5.7), signing (§5.11), key generation (§5.14)
 * and random numbers (§5.15).
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

/* ------------------------------------------------------------------ */
/* Signing. C_SignInit does not wait for its reply: the next call of the
 * operation collects it, so that C_SignInit + C_Sign cost one round trip.
 * A C_SignInit that failed returns CKR_OK and its CK_RV comes from that
 * next call (docs/wire.md). */

/* collect_init reads the reply to a pending SignInit. */
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

static CK_RV sign_init(CK_SESSION_HANDLE h, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE key)
{
	struct p11_session s;
	CK_RV rv = p11_session_get(h, &s);
	if (rv != CKR_OK)
		return rv;
	if (m == NULL || (m->pParameter == NULL && m->ulParameterLen > 0))
		return CKR_ARGUMENTS_BAD;
	if (m->ulParameterLen > 4096)
		return CKR_MECHANISM_PARAM_INVALID;
	tc_ticket t;
	if (p11_session_take_pending(h, &t))
		collect_init(&t); /* an earlier C_SignInit never followed: the service judges this one */
	int has_param = m->pParameter != NULL && m->ulParameterLen > 0;
	p11_req req;
	if (!p11_session_req(&req, &s, 3 + (size_t)has_param, 32 + m->ulParameterLen))
		return CKR_HOST_MEMORY;
	tc_enc_uint(&req.e, 2);
	tc_enc_uint(&req.e, m->mechanism);
	if (has_param) {
		tc_enc_uint(&req.e, 3);
		tc_enc_bytes(&req.e, m->pParameter, m->ulParameterLen);
	}
	tc_enc_uint(&req.e, 4);
	tc_enc_uint(&req.e, key);
	size_t n;
	rv = CKR_OK;
	if (tc_enc_finish(&req.e, &n) != TC_OK)
		rv = CKR_MECHANISM_PARAM_INVALID;
	int rc = rv == CKR_OK ? tc_conn_send(p11_conn(), s.gen, W_SIGN_INIT, req.buf, n, &t) : TC_OK;
	p11_enc_free(&req);
	if (rv != CKR_OK)
		return rv;
	if (rc != TC_OK)
		return CKR_DEVICE_REMOVED;
	if (!p11_session_set_pending(h, &t)) {
		tc_conn_forget(p11_conn(), &t); /* closed meanwhile */
		return CKR_SESSION_HANDLE_INVALID;
	}
	return CKR_OK;
}

CK_RV C_SignInit(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hKey)
{
	CK_RV rv = sign_init(hSession, pMechanism, hKey);
	P11_LOG("C_SignInit(session=%lu, mechanism=%#lx, key=%lu) = %s (pipelined)", hSession,
	        pMechanism != NULL ? pMechanism->mechanism : 0UL, hKey, p11_rv_name(rv));
	return rv;
}

/* op_call sends one request of a sign operation (after the session and
 * the keys the caller encoded, key 5 says a SignInit reply is pending),
 * collects the pending SignInit reply first, then this one. A failed
 * SignInit's CK_RV wins. */
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

/* signed_reply copies a Signed reply {1 rv, 2 length, 3 signature} by
 * the length conventions of §5.2. */
static CK_RV signed_reply(p11_reply *r, CK_BYTE_PTR out, CK_ULONG_PTR outLen)
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

/* final_req encodes the buffer keys of SignData and SignFinal. */
static void enc_out(p11_req *req, CK_BYTE_PTR out, CK_ULONG_PTR outLen)
{
	tc_enc_uint(&req->e, 3);
	tc_enc_uint(&req->e, out != NULL ? *outLen : 0);
	tc_enc_uint(&req->e, 4);
	tc_enc_bool(&req->e, out == NULL);
}

static CK_RV sign_update_parts(const struct p11_session *s, CK_BYTE_PTR part, CK_ULONG len, int *pending,
                               const tc_ticket *init);

static CK_RV sign_final_op(const struct p11_session *s, CK_BYTE_PTR out, CK_ULONG_PTR outLen, int pending,
                           const tc_ticket *init)
{
	p11_req req;
	if (!p11_session_req(&req, s, 3 + (size_t)pending, 16))
		return CKR_HOST_MEMORY;
	enc_out(&req, out, outLen);
	p11_reply r;
	CK_RV rv = op_call(s, W_SIGN_FINAL, &req, pending, init, W_SIGNED, &r);
	p11_enc_free(&req);
	if (rv == CKR_OK)
		rv = signed_reply(&r, out, outLen);
	p11_reply_free(&r);
	return rv;
}

static CK_RV sign(CK_SESSION_HANDLE h, CK_BYTE_PTR data, CK_ULONG len, CK_BYTE_PTR out, CK_ULONG_PTR outLen)
{
	struct p11_session s;
	CK_RV rv = p11_session_get(h, &s);
	if (rv != CKR_OK)
		return rv;
	if ((data == NULL && len > 0) || outLen == NULL)
		return CKR_ARGUMENTS_BAD;
	tc_ticket init;
	int pending = p11_session_take_pending(h, &init);
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
		/* Too much for one frame: ask the length (the operation
		 * stays), then send the data in parts. */
		tc_enc_uint(&req.e, 3);
		tc_enc_uint(&req.e, 0);
		tc_enc_uint(&req.e, 4);
		tc_enc_bool(&req.e, 1);
	} else {
		enc_out(&req, out, outLen);
	}
	p11_reply r;
	rv = op_call(&s, W_SIGN_DATA, &req, pending, &init, W_SIGNED, &r);
	p11_enc_free(&req);
	if (rv != CKR_OK || !big) {
		if (rv == CKR_OK)
			rv = signed_reply(&r, out, outLen);
		p11_reply_free(&r);
		return rv;
	}
	CK_ULONG need;
	rv = signed_reply(&r, NULL, &need);
	p11_reply_free(&r);
	if (rv != CKR_OK)
		return rv;
	if (out == NULL || *outLen < need) {
		*outLen = need;
		return out == NULL ? CKR_OK : CKR_BUFFER_TOO_SMALL;
	}
	int none = 0;
	if ((rv = sign_update_parts(&s, data, len, &none, NULL)) != CKR_OK)
		return rv;
	return sign_final_op(&s, out, outLen, 0, NULL);
}

CK_RV C_Sign(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pData, CK_ULONG ulDataLen, CK_BYTE_PTR pSignature,
             CK_ULONG_PTR pulSignatureLen)
{
	CK_RV rv = sign(hSession, pData, ulDataLen, pSignature, pulSignatureLen);
	P11_LOG("C_Sign(session=%lu, data=%lu bytes, signature=%p) = %s length=%lu", hSession, ulDataLen,
	        (void *)pSignature, p11_rv_name(rv), pulSignatureLen != NULL ? *pulSignatureLen : 0UL);
	return rv;
}

static CK_RV sign_update_parts(const struct p11_session *s, CK_BYTE_PTR part, CK_ULONG len, int *pending,
                               const tc_ticket *init)
{
	CK_ULONG done = 0;
	do {
		CK_ULONG k = len - done > MAX_DATA ? MAX_DATA : len - done;
		p11_req req;
		if (!p11_session_req(&req, s, 2 + (size_t)*pending, 32 + k)) {
			if (*pending)
				tc_conn_forget(p11_conn(), init);
			return CKR_HOST_MEMORY;
		}
		tc_enc_uint(&req.e, 2);
		tc_enc_bytes(&req.e, part + done, k);
		p11_reply r;
		CK_RV rv = op_call(s, W_SIGN_UPDATE, &req, *pending, init, W_ACK, &r);
		*pending = 0;
		p11_enc_free(&req);
		p11_reply_free(&r);
		if (rv != CKR_OK)
			return rv;
		done += k;
	} while (done < len);
	return CKR_OK;
}

static CK_RV sign_update(CK_SESSION_HANDLE h, CK_BYTE_PTR part, CK_ULONG len)
{
	struct p11_session s;
	CK_RV rv = p11_session_get(h, &s);
	if (rv != CKR_OK)
		return rv;
	if (part == NULL && len > 0)
		return CKR_ARGUMENTS_BAD;
	tc_ticket init;
	int pending = p11_session_take_pending(h, &init);
	return sign_update_parts(&s, part, len, &pending, &init);
}

CK_RV C_SignUpdate(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pPart, CK_ULONG ulPartLen)
{
	CK_RV rv = sign_update(hSession, pPart, ulPartLen);
	P11_LOG("C_SignUpdate(session=%lu, part=%lu bytes) = %s", hSession, ulPartLen, p11_rv_name(rv));
	return rv;
}

static CK_RV sign_final(CK_SESSION_HANDLE h, CK_BYTE_PTR out, CK_ULONG_PTR outLen)
{
	struct p11_session s;
	CK_RV rv = p11_session_get(h, &s);
	if (rv != CKR_OK)
		return rv;
	if (outLen == NULL)
		return CKR_ARGUMENTS_BAD;
	tc_ticket init;
	int pending = p11_session_take_pending(h, &init);
	return sign_final_op(&s, out, outLen, pending, &init);
}

CK_RV C_SignFinal(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pSignature, CK_ULONG_PTR pulSignatureLen)
{
	CK_RV rv = sign_final(hSession, pSignature, pulSignatureLen);
	P11_LOG("C_SignFinal(session=%lu, signature=%p) = %s length=%lu", hSession, (void *)pSignature,
	        p11_rv_name(rv), pulSignatureLen != NULL ? *pulSignatureLen : 0UL);
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
