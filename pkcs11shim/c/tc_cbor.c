/*
 * tc_cbor.c: the protocol's CBOR subset (see tc_cbor.h), RFC 8949 §3.
 */
#include "tc_cbor.h"

#include <string.h>

/* head reads the head of the item at *pp: its major type and argument.
 * It refuses what the subset excludes and, for strings, a length that runs
 * past end. On success *pp points just past the head. */
static int head(const uint8_t **pp, const uint8_t *end, int *major, uint64_t *arg)
{
	const uint8_t *p = *pp;
	if (p >= end)
		return TC_ERR_TRUNCATED;
	int mt = p[0] >> 5, ai = p[0] & 0x1f;
	p++;
	if (mt == 7) {
		/* Simple values and floats (§3.3): only false and true. */
		if (ai == 31)
			return TC_ERR_INDEFINITE; /* a break with nothing open */
		if (ai != 20 && ai != 21)
			return TC_ERR_SIMPLE;
		*major = 7;
		*arg = (uint64_t)ai;
		*pp = p;
		return TC_OK;
	}
	if (mt == 6)
		return TC_ERR_TAG;
	uint64_t v;
	size_t extra;
	if (ai < 24) {
		v = (uint64_t)ai;
		extra = 0;
	} else if (ai <= 27) {
		extra = (size_t)1 << (ai - 24);
		if ((size_t)(end - p) < extra)
			return TC_ERR_TRUNCATED;
		v = 0;
		for (size_t i = 0; i < extra; i++)
			v = v << 8 | p[i];
		p += extra;
		/* Shortest form (§4.2.1): each size only for what the
		 * smaller one cannot hold. */
		static const uint64_t floor[4] = {24, 0x100, 0x10000, 0x100000000};
		if (v < floor[ai - 24])
			return TC_ERR_NONCANONICAL;
	} else if (ai == 31) {
		return TC_ERR_INDEFINITE;
	} else {
		return TC_ERR_MALFORMED;
	}
	if ((mt == 2 || mt == 3) && v > (uint64_t)(end - p))
		return TC_ERR_TRUNCATED;
	*major = mt;
	*arg = v;
	*pp = p;
	return TC_OK;
}

/* utf8_ok reports whether p[0:n] is well-formed UTF-8 (RFC 3629): no
 * overlong forms, no surrogates, nothing above U+10FFFF. */
static int utf8_ok(const uint8_t *p, size_t n)
{
	size_t i = 0;
	while (i < n) {
		uint8_t c = p[i];
		if (c < 0x80) {
			i++;
			continue;
		}
		size_t k;
		uint32_t cp, min;
		if ((c & 0xe0) == 0xc0) {
			k = 1, cp = c & 0x1f, min = 0x80;
		} else if ((c & 0xf0) == 0xe0) {
			k = 2, cp = c & 0x0f, min = 0x800;
		} else if ((c & 0xf8) == 0xf0) {
			k = 3, cp = c & 0x07, min = 0x10000;
		} else {
			return 0;
		}
		if (n - i - 1 < k)
			return 0;
		for (size_t j = 1; j <= k; j++) {
			if ((p[i + j] & 0xc0) != 0x80)
				return 0;
			cp = cp << 6 | (p[i + j] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return 0;
		i += k + 1;
	}
	return 1;
}

/* item checks the item at *pp, nested depth containers deep, and moves *pp
 * past it. */
static int item(const uint8_t **pp, const uint8_t *end, int depth)
{
	int mt, rc;
	uint64_t arg;
	if ((rc = head(pp, end, &mt, &arg)) != TC_OK)
		return rc;
	switch (mt) {
	case 0:
	case 1:
	case 7:
		return TC_OK;
	case 2:
	case 3:
		if (mt == 3 && !utf8_ok(*pp, (size_t)arg))
			return TC_ERR_UTF8;
		*pp += arg;
		return TC_OK;
	case 4:
		if (depth >= TC_MAX_DEPTH)
			return TC_ERR_DEPTH;
		if (arg > TC_MAX_ARRAY)
			return TC_ERR_LIMIT;
		for (uint64_t i = 0; i < arg; i++)
			if ((rc = item(pp, end, depth + 1)) != TC_OK)
				return rc;
		return TC_OK;
	case 5: {
		if (depth >= TC_MAX_DEPTH)
			return TC_ERR_DEPTH;
		if (arg > TC_MAX_MAP)
			return TC_ERR_LIMIT;
		uint64_t prev = 0;
		for (uint64_t i = 0; i < arg; i++) {
			int kmt;
			uint64_t key;
			if ((rc = head(pp, end, &kmt, &key)) != TC_OK)
				return rc;
			if (kmt != 0)
				return TC_ERR_KEY;
			if (i > 0 && key == prev)
				return TC_ERR_DUPKEY;
			if (i > 0 && key < prev)
				return TC_ERR_KEYORDER;
			prev = key;
			if ((rc = item(pp, end, depth + 1)) != TC_OK)
				return rc;
		}
		return TC_OK;
	}
	}
	return TC_ERR_MALFORMED;
}

int tc_decode(const uint8_t *buf, size_t len, tc_val *out)
{
	if ((buf == NULL && len != 0) || out == NULL)
		return TC_ERR_ARGS;
	if (len == 0)
		return TC_ERR_TRUNCATED;
	const uint8_t *p = buf, *end = buf + len;
	int rc = item(&p, end, 0);
	if (rc != TC_OK)
		return rc;
	if (p != end)
		return TC_ERR_TRAILING;
	out->p = buf;
	out->n = len;
	return TC_OK;
}

/* vhead reads the head of a view. */
static int vhead(tc_val v, int *mt, uint64_t *arg, const uint8_t **body)
{
	const uint8_t *p = v.p;
	if (p == NULL)
		return TC_ERR_ARGS;
	int rc = head(&p, v.p + v.n, mt, arg);
	if (rc == TC_OK && body != NULL)
		*body = p;
	return rc;
}

tc_kind tc_kind_of(tc_val v)
{
	int mt;
	uint64_t arg;
	if (vhead(v, &mt, &arg, NULL) != TC_OK)
		return (tc_kind)-1;
	return (tc_kind)mt;
}

static int get_arg(tc_val v, int want, uint64_t *out)
{
	int mt, rc;
	uint64_t arg;
	if (out == NULL)
		return TC_ERR_ARGS;
	if ((rc = vhead(v, &mt, &arg, NULL)) != TC_OK)
		return rc;
	if (mt != want)
		return TC_ERR_TYPE;
	*out = arg;
	return TC_OK;
}

int tc_get_uint(tc_val v, uint64_t *out) { return get_arg(v, 0, out); }
int tc_get_negint(tc_val v, uint64_t *n) { return get_arg(v, 1, n); }

int tc_get_u32(tc_val v, uint32_t *out)
{
	uint64_t u;
	int rc = tc_get_uint(v, &u);
	if (rc != TC_OK)
		return rc;
	if (u > UINT32_MAX)
		return TC_ERR_RANGE;
	*out = (uint32_t)u;
	return TC_OK;
}

int tc_get_int64(tc_val v, int64_t *out)
{
	uint64_t u;
	if (out == NULL)
		return TC_ERR_ARGS;
	if (tc_get_uint(v, &u) == TC_OK) {
		if (u > (uint64_t)INT64_MAX)
			return TC_ERR_RANGE;
		*out = (int64_t)u;
		return TC_OK;
	}
	int rc = tc_get_negint(v, &u);
	if (rc != TC_OK)
		return rc;
	if (u > (uint64_t)INT64_MAX)
		return TC_ERR_RANGE;
	*out = -1 - (int64_t)u;
	return TC_OK;
}

int tc_get_bool(tc_val v, int *out)
{
	uint64_t arg;
	if (out == NULL)
		return TC_ERR_ARGS;
	int rc = get_arg(v, 7, &arg);
	if (rc == TC_OK)
		*out = arg == 21;
	return rc;
}

static int get_str(tc_val v, int want, const uint8_t **p, size_t *n)
{
	int mt, rc;
	uint64_t arg;
	const uint8_t *body;
	if (p == NULL || n == NULL)
		return TC_ERR_ARGS;
	if ((rc = vhead(v, &mt, &arg, &body)) != TC_OK)
		return rc;
	if (mt != want)
		return TC_ERR_TYPE;
	*p = body;
	*n = (size_t)arg;
	return TC_OK;
}

int tc_get_bytes(tc_val v, const uint8_t **p, size_t *n) { return get_str(v, 2, p, n); }

int tc_get_text(tc_val v, const char **p, size_t *n)
{
	const uint8_t *b;
	int rc = get_str(v, 3, &b, n);
	if (rc == TC_OK)
		*p = (const char *)b;
	return rc;
}

static int open_container(tc_val v, int want, tc_iter *it, size_t *count)
{
	int mt, rc;
	uint64_t arg;
	const uint8_t *body;
	if (it == NULL)
		return TC_ERR_ARGS;
	if ((rc = vhead(v, &mt, &arg, &body)) != TC_OK)
		return rc;
	if (mt != want)
		return TC_ERR_TYPE;
	it->p = body;
	it->end = v.p + v.n;
	it->left = arg;
	it->map = want == 5;
	if (count != NULL)
		*count = (size_t)arg;
	return TC_OK;
}

int tc_array_open(tc_val v, tc_iter *it, size_t *count) { return open_container(v, 4, it, count); }
int tc_map_open(tc_val v, tc_iter *it, size_t *count) { return open_container(v, 5, it, count); }

/* next_item returns a view of the item at it->p and moves past it. The
 * view was validated by tc_decode; item() measures it (and checks again). */
static int next_item(tc_iter *it, tc_val *out)
{
	const uint8_t *start = it->p;
	int rc = item(&it->p, it->end, 0);
	if (rc != TC_OK)
		return rc;
	out->p = start;
	out->n = (size_t)(it->p - start);
	return TC_OK;
}

int tc_array_next(tc_iter *it, tc_val *elem)
{
	if (it == NULL || elem == NULL || it->map)
		return TC_ERR_ARGS;
	if (it->left == 0)
		return TC_ERR_NOTFOUND;
	it->left--;
	return next_item(it, elem);
}

int tc_map_next(tc_iter *it, uint64_t *key, tc_val *val)
{
	int mt, rc;
	if (it == NULL || key == NULL || val == NULL || !it->map)
		return TC_ERR_ARGS;
	if (it->left == 0)
		return TC_ERR_NOTFOUND;
	it->left--;
	if ((rc = head(&it->p, it->end, &mt, key)) != TC_OK)
		return rc;
	if (mt != 0)
		return TC_ERR_KEY;
	return next_item(it, val);
}

int tc_map_find(tc_val m, uint64_t key, tc_val *val)
{
	tc_iter it;
	uint64_t k;
	tc_val v;
	int rc = tc_map_open(m, &it, NULL);
	if (rc != TC_OK)
		return rc;
	while ((rc = tc_map_next(&it, &k, &v)) == TC_OK) {
		if (k == key) {
			if (val != NULL)
				*val = v;
			return TC_OK;
		}
		if (k > key)
			return TC_ERR_NOTFOUND; /* keys ascend */
	}
	return rc;
}

/* ------------------------------------------------------------------ */
/* Encoder. */

void tc_enc_init(tc_enc *e, uint8_t *buf, size_t cap)
{
	e->buf = buf;
	e->cap = buf != NULL ? cap : 0;
	e->len = 0;
	e->err = TC_OK;
}

static void put(tc_enc *e, const void *p, size_t n)
{
	if (e->err != TC_OK)
		return;
	if (e->cap - e->len < n) {
		e->err = TC_ERR_NOSPACE;
		return;
	}
	if (n > 0)
		memcpy(e->buf + e->len, p, n);
	e->len += n;
}

static void put_head(tc_enc *e, int mt, uint64_t v)
{
	uint8_t h[9];
	size_t n;
	uint8_t ib = (uint8_t)(mt << 5);
	if (v < 24) {
		h[0] = ib | (uint8_t)v;
		n = 1;
	} else {
		int ai = v <= 0xff ? 24 : v <= 0xffff ? 25 : v <= 0xffffffff ? 26 : 27;
		size_t k = (size_t)1 << (ai - 24);
		h[0] = ib | (uint8_t)ai;
		for (size_t i = 0; i < k; i++)
			h[1 + i] = (uint8_t)(v >> (8 * (k - 1 - i)));
		n = 1 + k;
	}
	put(e, h, n);
}

void tc_enc_uint(tc_enc *e, uint64_t v) { put_head(e, 0, v); }
void tc_enc_negint(tc_enc *e, uint64_t n) { put_head(e, 1, n); }

void tc_enc_int64(tc_enc *e, int64_t v)
{
	if (v >= 0)
		put_head(e, 0, (uint64_t)v);
	else
		put_head(e, 1, (uint64_t)(-1 - v));
}

void tc_enc_bool(tc_enc *e, int v)
{
	uint8_t b = v ? 0xf5 : 0xf4;
	put(e, &b, 1);
}

void tc_enc_bytes(tc_enc *e, const void *p, size_t n)
{
	if (p == NULL && n != 0 && e->err == TC_OK)
		e->err = TC_ERR_ARGS;
	put_head(e, 2, n);
	put(e, p, n);
}

void tc_enc_text(tc_enc *e, const char *p, size_t n)
{
	if (p == NULL && n != 0 && e->err == TC_OK)
		e->err = TC_ERR_ARGS;
	put_head(e, 3, n);
	put(e, p, n);
}

void tc_enc_array(tc_enc *e, size_t count) { put_head(e, 4, count); }
void tc_enc_map(tc_enc *e, size_t count) { put_head(e, 5, count); }

int tc_enc_finish(const tc_enc *e, size_t *len)
{
	if (e->err == TC_OK && len != NULL)
		*len = e->len;
	return e->err;
}

/* The call through a volatile pointer cannot be optimized away. */
static void *(*const volatile wipe_memset)(void *, int, size_t) = memset;

void tc_wipe(void *p, size_t n)
{
	if (p != NULL && n > 0)
		wipe_memset(p, 0, n);
}

const char *tc_strerror(int err)
{
	switch (err) {
	case TC_OK: return "ok";
	case TC_ERR_TRUNCATED: return "truncated";
	case TC_ERR_TRAILING: return "trailing bytes";
	case TC_ERR_INDEFINITE: return "indefinite length";
	case TC_ERR_TAG: return "tag";
	case TC_ERR_SIMPLE: return "simple value or float";
	case TC_ERR_MALFORMED: return "malformed";
	case TC_ERR_NONCANONICAL: return "non-canonical head";
	case TC_ERR_KEY: return "map key not an unsigned integer";
	case TC_ERR_DUPKEY: return "duplicate map key";
	case TC_ERR_KEYORDER: return "map keys out of order";
	case TC_ERR_DEPTH: return "nested too deep";
	case TC_ERR_LIMIT: return "too many elements";
	case TC_ERR_UTF8: return "invalid UTF-8";
	case TC_ERR_TYPE: return "wrong type";
	case TC_ERR_RANGE: return "out of range";
	case TC_ERR_NOSPACE: return "buffer full";
	case TC_ERR_NOTFOUND: return "not found";
	case TC_ERR_ARGS: return "bad arguments";
	case 100: return "cannot connect";
	case 101: return "i/o error";
	case 102: return "timed out";
	case 103: return "connection closed";
	case 104: return "protocol error";
	case 105: return "version mismatch";
	case 106: return "out of memory";
	case 107: return "empty frame";
	case 108: return "frame too large";
	}
	return "unknown error";
}
