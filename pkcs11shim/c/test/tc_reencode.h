/* tc_reencode.h: test helper: re-encode a decoded item through the
 * accessors, so that decode + re-encode must give the input back. */
#ifndef TPMCARD_TC_REENCODE_H
#define TPMCARD_TC_REENCODE_H

#include "../tc_cbor.h"

/* tc_reencode writes v to e using only the public accessors and the
 * encoder; it returns the first error. */
int tc_reencode(tc_val v, tc_enc *e);

#endif
