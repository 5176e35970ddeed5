/* tc_reencode.c: see tc_reencode.h. */
#include "tc_reencode.h"

int tc_reencode(tc_val v, tc_enc *e)
{
	int rc;
	uint64_t u;
	int b;
	const uint8_t *p;
	const char *s;
	size_t n;
	tc_iter it;
	tc_val elem;
	switch (tc_kind_of(v)) {
	case TC_UINT:
		if ((rc = tc_get_uint(v, &u)) != TC_OK)
			return rc;
		tc_enc_uint(e, u);
		break;
	case TC_NEGINT:
		if ((rc = tc_get_negint(v, &u)) != TC_OK)
			return rc;
		tc_enc_negint(e, u);
		break;
	case TC_BOOL:
		if ((rc = tc_get_bool(v, &b)) != TC_OK)
			return rc;
		tc_enc_bool(e, b);
		break;
	case TC_BYTES:
		if ((rc = tc_get_bytes(v, &p, &n)) != TC_OK)
			return rc;
		tc_enc_bytes(e, p, n);
		break;
	case TC_TEXT:
		if ((rc = tc_get_text(v, &s, &n)) != TC_OK)
			return rc;
		tc_enc_text(e, s, n);
		break;
	case TC_ARRAY:
		if ((rc = tc_array_open(v, &it, &n)) != TC_OK)
			return rc;
		tc_enc_array(e, n);
		while ((rc = tc_array_next(&it, &elem)) == TC_OK)
			if ((rc = tc_reencode(elem, e)) != TC_OK)
				return rc;
		if (rc != TC_ERR_NOTFOUND)
			return rc;
		break;
	case TC_MAP:
		if ((rc = tc_map_open(v, &it, &n)) != TC_OK)
			return rc;
		tc_enc_map(e, n);
		while ((rc = tc_map_next(&it, &u, &elem)) == TC_OK) {
			tc_val found;
			/* tc_map_find must agree with the iteration. */
			if (tc_map_find(v, u, &found) != TC_OK || found.p != elem.p || found.n != elem.n)
				return TC_ERR_NOTFOUND;
			tc_enc_uint(e, u);
			if ((rc = tc_reencode(elem, e)) != TC_OK)
				return rc;
		}
		if (rc != TC_ERR_NOTFOUND)
			return rc;
		break;
	default:
		return TC_ERR_TYPE;
	}
	return e->err;
}
