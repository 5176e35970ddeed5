/*
 * p11_internal.h: what p11.c and p11_objects.c share.
 */
#ifndef TPMCARD_P11_INTERNAL_H
#define TPMCARD_P11_INTERNAL_H

#include "p11.h"

#define P11_LOG(...) \
	do { \
		if (p11_log_enabled()) \
			p11_log(__VA_ARGS__); \
	} while (0)

/* The operations whose init request is pipelined: C_SignInit,
 * C_DigestInit, C_VerifyInit. */
enum { P11_OP_SIGN, P11_OP_DIGEST, P11_OP_VERIFY, P11_OPS };

/* A session: the service's session number on the connection of
 * generation gen, and for each operation an init request whose reply is
 * not read yet. */
/* An init the service accepted in a session: the same init again is
 * pipelined (op_init, p11_objects.c). */
#define P11_PROVEN_PARAM 32
struct p11_proven {
	int set;
	CK_MECHANISM_TYPE mech;
	CK_OBJECT_HANDLE key;
	CK_ULONG param_len;
	unsigned char param[P11_PROVEN_PARAM];
};

struct p11_session {
	CK_SESSION_HANDLE h;
	CK_SLOT_ID slot;
	uint32_t wire;
	uint64_t gen;
	int pending[P11_OPS];
	tc_ticket init[P11_OPS];
	struct p11_proven proven[P11_OPS];
};

/* A request being encoded, in a buffer of its own (wiped when freed). */
typedef struct {
	tc_enc e;
	uint8_t *buf;
	size_t cap;
} p11_req;

/* A reply: the frame and, for a success, its body (a map). */
typedef struct {
	tc_frame f;
	tc_val body;
	uint64_t status;
} p11_reply;

CK_RV p11_ready(void);
tc_conn *p11_conn(void);

int p11_enc_init(p11_req *r, size_t cap);
void p11_enc_free(p11_req *r);
void p11_reply_free(p11_reply *r);

/* p11_call sends req as type on the connection of generation gen (0: any)
 * and waits for the reply: CKR_OK with r->body when it is of type want,
 * the Error frame's CK_RV, CKR_FUNCTION_NOT_SUPPORTED for Unsupported, or
 * gone when the connection is lost (then dropped). r is released by the
 * caller in every case. */
CK_RV p11_call(uint64_t gen, uint8_t type, p11_req *req, uint8_t want, p11_reply *r, CK_RV gone);

/* p11_classify maps a received frame as p11_call does. */
CK_RV p11_classify(p11_reply *r, uint8_t want, CK_RV gone);

uint64_t p11_get_uint(tc_val m, uint64_t key);              /* absent: 0 */
int p11_get_bytes(tc_val m, uint64_t key, const uint8_t **p, size_t *n); /* absent: empty; 0 if not bytes */

/* p11_session_get copies the session h: CKR_CRYPTOKI_NOT_INITIALIZED,
 * CKR_SESSION_HANDLE_INVALID, or CKR_DEVICE_REMOVED when its connection
 * is gone. */
CK_RV p11_session_get(CK_SESSION_HANDLE h, struct p11_session *out);
int p11_session_take_pending(CK_SESSION_HANDLE h, int op, tc_ticket *t);
int p11_session_set_pending(CK_SESSION_HANDLE h, int op, const tc_ticket *t);
void p11_session_set_proven(CK_SESSION_HANDLE h, int op, const struct p11_proven *p);
int p11_session_req(p11_req *req, const struct p11_session *s, size_t n, size_t extra);
CK_RV p11_session_call(CK_SESSION_HANDLE h, uint8_t type, const uint64_t *arg, uint8_t want, p11_reply *r);
CK_RV p11_simple_call(CK_SESSION_HANDLE h, uint8_t type);

void p11_pad(CK_UTF8CHAR *dst, size_t width, const char *src);

#endif
