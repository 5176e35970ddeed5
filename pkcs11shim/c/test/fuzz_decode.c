/* fuzz_decode.c: libFuzzer target for the decoder. Whatever tc_decode
 * accepts must re-encode, through the accessors, to exactly the input
 * (the subset is canonical), and nothing else may happen to it: no read
 * past the input, no undefined behavior (the build adds ASan and UBSan). */
#include <stdlib.h>
#include <string.h>

#include "../tc_cbor.h"
#include "tc_reencode.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	tc_val v;
	/* A copy of exactly size bytes, so ASan sees any read past it. */
	uint8_t *in = malloc(size ? size : 1);
	if (in == NULL)
		return 0;
	if (size > 0)
		memcpy(in, data, size);
	if (tc_decode(in, size, &v) == TC_OK) {
		uint8_t *out = malloc(size);
		tc_enc e;
		tc_enc_init(&e, out, size);
		int rc = tc_reencode(v, &e);
		if (rc != TC_OK || e.len != size || memcmp(out, in, size) != 0)
			abort();
		free(out);
	}
	free(in);
	return 0;
}
