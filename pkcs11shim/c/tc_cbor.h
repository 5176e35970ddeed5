/*
 * tc_cbor.h: the CBOR codec of the tpmcard PKCS#11 module, for exactly the
 * subset of RFC 8949 that the service's socket protocol uses (service/wire).
 *
 * Why our own codec and not libcbor (Debian libcbor-dev 0.8, what libfido2
 * uses): the module is loaded into other people's processes (ssh, browsers,
 * p11-kit, prefork servers), so every dependency it links becomes a library
 * each of those processes loads, keeps at its version, and must find on
 * Windows too. libcbor is a general codec: it builds a heap tree of every
 * item (so PIN bytes would sit in allocations we do not control), accepts
 * floats, tags, indefinite lengths and duplicate keys that the protocol
 * forbids and that we would then have to refuse again on top, and its 0.8
 * API differs from later ones. The protocol needs maps with unsigned
 * integer keys, integers, byte and text strings, booleans and arrays; that
 * is some 400 lines we own, fuzz in CI (fuzz_decode.c) and cross-check
 * byte for byte against the Go codec (ctest/).
 *
 * The decoder accepts only what the Go service's encoder (fxamacker/cbor,
 * core deterministic encoding) produces: one data item and nothing after
 * it; definite lengths; shortest-form heads; map keys unsigned integers in
 * strictly ascending order (so no duplicates); booleans but no other simple
 * values, no floats, no tags; valid UTF-8 in text strings; at most
 * TC_MAX_DEPTH nested containers, TC_MAX_ARRAY array elements and
 * TC_MAX_MAP map pairs (the Go decoder's limits). Whatever it accepts
 * re-encodes to the same bytes.
 *
 * Neither side allocates: the encoder writes into a caller's buffer, the
 * decoder returns views (tc_val) into the caller's buffer, which the caller
 * wipes (tc_wipe) when it may hold a PIN. Every length is checked against
 * the buffer it refers to.
 */
#ifndef TPMCARD_TC_CBOR_H
#define TPMCARD_TC_CBOR_H

#include <stddef.h>
#include <stdint.h>

/* Decoder limits, those of service/wire/codec.go. */
#define TC_MAX_DEPTH 16
#define TC_MAX_ARRAY 4096
#define TC_MAX_MAP 256

/* Results. 0 is success; codec errors are below 100, connection errors
 * (tc_conn.h) from 100 on. */
enum {
	TC_OK = 0,
	TC_ERR_TRUNCATED = 1,   /* an item or length runs past the buffer */
	TC_ERR_TRAILING = 2,    /* bytes after the one data item */
	TC_ERR_INDEFINITE = 3,  /* indefinite length (or a stray break) */
	TC_ERR_TAG = 4,         /* a tag (major type 6) */
	TC_ERR_SIMPLE = 5,      /* a float, null, undefined or other simple value */
	TC_ERR_MALFORMED = 6,   /* reserved additional information 28-30 */
	TC_ERR_NONCANONICAL = 7, /* a head longer than needed */
	TC_ERR_KEY = 8,         /* a map key that is not an unsigned integer */
	TC_ERR_DUPKEY = 9,      /* a map key twice */
	TC_ERR_KEYORDER = 10,   /* map keys not in ascending order */
	TC_ERR_DEPTH = 11,      /* more than TC_MAX_DEPTH nested containers */
	TC_ERR_LIMIT = 12,      /* more than TC_MAX_ARRAY elements or TC_MAX_MAP pairs */
	TC_ERR_UTF8 = 13,       /* a text string that is not valid UTF-8 */
	TC_ERR_TYPE = 14,       /* an accessor used on an item of another kind */
	TC_ERR_RANGE = 15,      /* a value outside the accessor's type */
	TC_ERR_NOSPACE = 16,    /* the encoder's buffer is full */
	TC_ERR_NOTFOUND = 17,   /* no such map key; or the end of an iteration */
	TC_ERR_ARGS = 18,       /* a NULL pointer or impossible argument */
};

/* The kinds of item the subset has. */
typedef enum {
	TC_UINT = 0,   /* major type 0 */
	TC_NEGINT = 1, /* major type 1: the value is -1 - n */
	TC_BYTES = 2,
	TC_TEXT = 3,
	TC_ARRAY = 4,
	TC_MAP = 5,
	TC_BOOL = 7,
} tc_kind;

/* A view of one validated data item: its encoding, n bytes at p. */
typedef struct {
	const uint8_t *p;
	size_t n;
} tc_val;

/* An iteration over the elements of an array or the pairs of a map. */
typedef struct {
	const uint8_t *p, *end;
	uint64_t left;
	int map;
} tc_iter;

/* tc_decode checks that buf holds exactly one data item of the subset and
 * returns a view of it. */
int tc_decode(const uint8_t *buf, size_t len, tc_val *out);

/* Accessors of a view from tc_decode (or from an iteration over one). */
tc_kind tc_kind_of(tc_val v);
int tc_get_uint(tc_val v, uint64_t *out);
int tc_get_u32(tc_val v, uint32_t *out);    /* TC_ERR_RANGE above UINT32_MAX */
int tc_get_negint(tc_val v, uint64_t *n);   /* the raw n of -1 - n */
int tc_get_int64(tc_val v, int64_t *out);   /* uint or negint within int64 */
int tc_get_bool(tc_val v, int *out);
int tc_get_bytes(tc_val v, const uint8_t **p, size_t *n);
int tc_get_text(tc_val v, const char **p, size_t *n); /* not NUL-terminated */

/* tc_array_open / tc_map_open start an iteration and give the count;
 * tc_array_next and tc_map_next return TC_ERR_NOTFOUND after the last one. */
int tc_array_open(tc_val v, tc_iter *it, size_t *count);
int tc_array_next(tc_iter *it, tc_val *elem);
int tc_map_open(tc_val v, tc_iter *it, size_t *count);
int tc_map_next(tc_iter *it, uint64_t *key, tc_val *val);
/* tc_map_find looks key up in map m: TC_ERR_NOTFOUND when absent (an
 * omitted, i.e. zero, field). */
int tc_map_find(tc_val m, uint64_t key, tc_val *val);

/* The encoder. Calls after an error do nothing; tc_enc_finish reports the
 * first error. Heads are shortest-form. The caller writes map keys in
 * ascending order, each followed by its value, and as many elements or
 * pairs as it announced. */
typedef struct {
	uint8_t *buf;
	size_t cap, len;
	int err;
} tc_enc;

void tc_enc_init(tc_enc *e, uint8_t *buf, size_t cap);
void tc_enc_uint(tc_enc *e, uint64_t v);
void tc_enc_negint(tc_enc *e, uint64_t n); /* encodes -1 - n */
void tc_enc_int64(tc_enc *e, int64_t v);
void tc_enc_bool(tc_enc *e, int v);
void tc_enc_bytes(tc_enc *e, const void *p, size_t n);
void tc_enc_text(tc_enc *e, const char *p, size_t n);
void tc_enc_array(tc_enc *e, size_t count);
void tc_enc_map(tc_enc *e, size_t count);
int tc_enc_finish(const tc_enc *e, size_t *len);

/* tc_wipe clears n bytes at p in a way the compiler keeps. */
void tc_wipe(void *p, size_t n);

/* tc_strerror names a result, for logs and tests. */
const char *tc_strerror(int err);

#endif
