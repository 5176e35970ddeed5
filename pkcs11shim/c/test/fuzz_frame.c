/* fuzz_frame.c: libFuzzer target for the frame reader. The first input
 * byte chooses how many bytes each read hands out and the next two the
 * length cap; the rest is the stream. Every frame tc_frame_read accepts is
 * within the cap and its header re-encodes to the bytes consumed; a refused
 * length consumes only the 4 length bytes. */
#include <stdlib.h>
#include <string.h>

#include "../tc_cbor.h"
#include "../tc_conn.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct reader {
	const uint8_t *p;
	size_t n, step;
};

static long rd(void *ctx, uint8_t *buf, size_t n)
{
	struct reader *r = ctx;
	if (r->n == 0)
		return 0;
	if (n > r->step)
		n = r->step;
	if (n > r->n)
		n = r->n;
	memcpy(buf, r->p, n);
	r->p += n;
	r->n -= n;
	return (long)n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 3)
		return 0;
	size_t step = (size_t)(data[0] % 16) + 1;
	if (data[0] >= 0xf0)
		step = (size_t)1 << 20;
	uint32_t limit = (uint32_t)data[1] << 8 | data[2];
	uint32_t eff = limit == 0 ? TC_MAX_FRAME : limit;
	struct reader r = {data + 3, size - 3, step};
	for (;;) {
		size_t before = r.n;
		tc_frame f;
		int rc = tc_frame_read(rd, &r, limit, &f);
		size_t used = before - r.n;
		const uint8_t *start = r.p - used;
		if (rc == TC_OK) {
			uint8_t hdr[5];
			if (f.len + 1 > eff || used != f.len + 5 || tc_frame_header(hdr, f.type, f.len) != TC_OK ||
			    memcmp(hdr, start, 5) != 0 || (f.len > 0 && memcmp(f.body, start + 5, f.len) != 0))
				abort();
			tc_val v;
			(void)tc_decode(f.body, f.len, &v);
			tc_frame_release(&f);
			continue;
		}
		if (f.mem != NULL)
			abort();
		if ((rc == TC_ERR_EMPTY_FRAME || rc == TC_ERR_FRAME_TOO_LARGE) && used != 4)
			abort();
		if ((rc == TC_ERR_CLOSED && used != 0) || (rc == TC_ERR_IO && r.n != 0))
			abort();
		if (rc != TC_ERR_EMPTY_FRAME && rc != TC_ERR_FRAME_TOO_LARGE && rc != TC_ERR_CLOSED &&
		    rc != TC_ERR_IO)
			abort();
		return 0;
	}
}
