/*
 * tc_test.c: the test driver of the C foundation, run by ctest/ (Go):
 *
 *	tc_test unit          codec, frame and connection unit tests
 *	tc_test roundtrip     hex lines on stdin: "ok <hex>" (decoded and
 *	                      re-encoded) or "err <code>" per line
 *	tc_test service       Hello, ListCards, GetStatus, an unknown request
 *	                      and a bad body against $TPMCARD_SOCKET
 *	tc_test fork N        a connected parent forks N children one after
 *	                      another, each calling on its own connection
 *	                      while a parent thread keeps calling
 */
#define _GNU_SOURCE

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../tc_cbor.h"
#include "../tc_conn.h"
#include "tc_reencode.h"

static int failures;

#define CHECK(cond)                                                                  \
	do {                                                                         \
		if (!(cond)) {                                                       \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
			failures++;                                                  \
		}                                                                    \
	} while (0)

#define CHECK_RC(got, want)                                                          \
	do {                                                                         \
		int got_ = (got), want_ = (want);                                    \
		if (got_ != want_) {                                                 \
			fprintf(stderr, "%s:%d: %s = %d (%s), want %d (%s)\n", __FILE__, __LINE__, #got, \
			        got_, tc_strerror(got_), want_, tc_strerror(want_)); \
			failures++;                                                  \
		}                                                                    \
	} while (0)

static size_t unhex(const char *s, uint8_t *out, size_t cap)
{
	size_t n = 0;
	for (; s[0] && s[1] && n < cap; s += 2) {
		unsigned v;
		if (sscanf(s, "%2x", &v) != 1)
			break;
		out[n++] = (uint8_t)v;
	}
	return n;
}

static int enc_is(const tc_enc *e, const char *hex)
{
	uint8_t want[64];
	size_t n = unhex(hex, want, sizeof want);
	return e->err == TC_OK && e->len == n && memcmp(e->buf, want, n) == 0;
}

/* ------------------------------------------------------------------ */

static void unit_encoder(void)
{
	uint8_t buf[64];
	tc_enc e;
	static const struct {
		uint64_t v;
		const char *hex;
	} uints[] = {{0, "00"}, {23, "17"}, {24, "1818"}, {255, "18ff"}, {256, "190100"},
	             {65535, "19ffff"}, {65536, "1a00010000"}, {0xffffffff, "1affffffff"},
	             {0x100000000, "1b0000000100000000"}, {UINT64_MAX, "1bffffffffffffffff"}};
	for (size_t i = 0; i < sizeof uints / sizeof uints[0]; i++) {
		tc_enc_init(&e, buf, sizeof buf);
		tc_enc_uint(&e, uints[i].v);
		CHECK(enc_is(&e, uints[i].hex));
	}
	tc_enc_init(&e, buf, sizeof buf);
	tc_enc_int64(&e, -1);
	tc_enc_int64(&e, -25);
	tc_enc_int64(&e, INT64_MIN);
	CHECK(enc_is(&e, "2038183b7fffffffffffffff"));
	tc_enc_init(&e, buf, sizeof buf);
	tc_enc_map(&e, 2);
	tc_enc_uint(&e, 1);
	tc_enc_bool(&e, 1);
	tc_enc_uint(&e, 2);
	tc_enc_text(&e, "ab", 2);
	CHECK(enc_is(&e, "a201f502626162"));

	/* A full buffer is sticky and reported once. */
	tc_enc_init(&e, buf, 3);
	tc_enc_bytes(&e, "abcd", 4);
	tc_enc_uint(&e, 1);
	size_t n = 99;
	CHECK_RC(tc_enc_finish(&e, &n), TC_ERR_NOSPACE);
	CHECK(n == 99);
	tc_enc_init(&e, NULL, 10);
	tc_enc_uint(&e, 1);
	CHECK_RC(tc_enc_finish(&e, NULL), TC_ERR_NOSPACE);
	tc_enc_init(&e, buf, sizeof buf);
	tc_enc_bytes(&e, NULL, 1);
	CHECK_RC(tc_enc_finish(&e, NULL), TC_ERR_ARGS);
	tc_enc_init(&e, buf, 0 + 1);
	tc_enc_bytes(&e, NULL, 0);
	CHECK(enc_is(&e, "40"));
}

static int decode_hex(const char *hex, tc_val *v)
{
	static uint8_t buf[1 << 16];
	size_t n = unhex(hex, buf, sizeof buf);
	return tc_decode(buf, n, v);
}

static void unit_decoder(void)
{
	tc_val v, f;
	uint64_t u;
	int64_t i;
	uint32_t u32;
	int b;

	CHECK_RC(decode_hex("1b0000000100000000", &v), TC_OK);
	CHECK_RC(tc_get_u32(v, &u32), TC_ERR_RANGE);
	CHECK_RC(tc_get_uint(v, &u), TC_OK);
	CHECK(u == 0x100000000);
	CHECK_RC(tc_get_bool(v, &b), TC_ERR_TYPE);
	CHECK_RC(decode_hex("3b7fffffffffffffff", &v), TC_OK);
	CHECK_RC(tc_get_int64(v, &i), TC_OK);
	CHECK(i == INT64_MIN);
	CHECK_RC(decode_hex("3b8000000000000000", &v), TC_OK); /* -2^63 - 1 */
	CHECK_RC(tc_get_int64(v, &i), TC_ERR_RANGE);
	CHECK_RC(decode_hex("1b8000000000000000", &v), TC_OK);
	CHECK_RC(tc_get_int64(v, &i), TC_ERR_RANGE);

	/* Map lookups, including absent keys before, between and after. */
	CHECK_RC(decode_hex("a3010203f50a4101", &v), TC_OK);
	CHECK_RC(tc_map_find(v, 3, &f), TC_OK);
	CHECK_RC(tc_get_bool(f, &b), TC_OK);
	CHECK(b == 1);
	CHECK_RC(tc_map_find(v, 0, &f), TC_ERR_NOTFOUND);
	CHECK_RC(tc_map_find(v, 2, &f), TC_ERR_NOTFOUND);
	CHECK_RC(tc_map_find(v, 11, &f), TC_ERR_NOTFOUND);
	CHECK_RC(tc_map_find(v, 10, &f), TC_OK);
	CHECK(tc_kind_of(f) == TC_BYTES);
	tc_iter it;
	CHECK_RC(tc_array_open(v, &it, NULL), TC_ERR_TYPE);

	/* Nesting: TC_MAX_DEPTH containers, not one more. */
	char deep[2 * (TC_MAX_DEPTH + 1) + 3];
	memset(deep, 0, sizeof deep);
	for (int k = 0; k < TC_MAX_DEPTH; k++)
		strcat(deep, "81");
	strcat(deep, "00");
	CHECK_RC(decode_hex(deep, &v), TC_OK);
	deep[2 * TC_MAX_DEPTH] = 0;
	strcat(deep, "8100");
	CHECK_RC(decode_hex(deep, &v), TC_ERR_DEPTH);

	/* Element limits. */
	static char big[2 * (3 + TC_MAX_ARRAY + 1) + 1];
	strcpy(big, "991000");
	for (int k = 0; k < TC_MAX_ARRAY; k++)
		strcat(big, "00");
	CHECK_RC(decode_hex(big, &v), TC_OK);
	strcpy(big, "991001");
	for (int k = 0; k < TC_MAX_ARRAY + 1; k++)
		strcat(big, "00");
	CHECK_RC(decode_hex(big, &v), TC_ERR_LIMIT);
	CHECK_RC(decode_hex("b90101", &v), TC_ERR_LIMIT);

	CHECK_RC(tc_decode(NULL, 0, &v), TC_ERR_TRUNCATED);
	CHECK_RC(tc_decode(NULL, 1, &v), TC_ERR_ARGS);
	CHECK_RC(tc_decode((const uint8_t *)"", 1, NULL), TC_ERR_ARGS);
}

/* A reader over memory handing out at most step bytes per call. */
struct mem_reader {
	const uint8_t *p;
	size_t n, step;
};

static long mem_read(void *ctx, uint8_t *buf, size_t n)
{
	struct mem_reader *r = ctx;
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

static void unit_frames(void)
{
	tc_frame f;
	uint8_t two[] = {0, 0, 0, 2, 0x82, 0xa0, 0, 0, 0, 1, 0x80};
	for (size_t step = 1; step <= sizeof two; step++) {
		struct mem_reader r = {two, sizeof two, step};
		CHECK_RC(tc_frame_read(mem_read, &r, 0, &f), TC_OK);
		CHECK(f.type == 0x82 && f.len == 1 && f.body[0] == 0xa0);
		tc_frame_release(&f);
		CHECK_RC(tc_frame_read(mem_read, &r, 0, &f), TC_OK);
		CHECK(f.type == 0x80 && f.len == 0);
		tc_frame_release(&f);
		CHECK_RC(tc_frame_read(mem_read, &r, 0, &f), TC_ERR_CLOSED);
	}
	struct {
		uint8_t in[8];
		size_t n;
		uint32_t limit;
		int rc;
		size_t left;
	} cases[] = {
		{{0, 0, 0, 0, 1}, 5, 0, TC_ERR_EMPTY_FRAME, 1},
		{{0, 0x10, 0, 1, 1}, 5, 0, TC_ERR_FRAME_TOO_LARGE, 1},
		{{0, 0, 0, 3, 1, 2, 3}, 7, 2, TC_ERR_FRAME_TOO_LARGE, 3},
		{{0, 0}, 2, 0, TC_ERR_IO, 0},
		{{0, 0, 0, 3, 1, 2}, 6, 0, TC_ERR_IO, 0},
	};
	for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
		struct mem_reader r = {cases[k].in, cases[k].n, 1};
		CHECK_RC(tc_frame_read(mem_read, &r, cases[k].limit, &f), cases[k].rc);
		CHECK(r.n == cases[k].left);
		CHECK(f.mem == NULL);
	}
	uint8_t hdr[5];
	CHECK_RC(tc_frame_header(hdr, 1, TC_MAX_FRAME - 1), TC_OK);
	CHECK(hdr[0] == 0 && hdr[1] == 0x10 && hdr[2] == 0 && hdr[3] == 0 && hdr[4] == 1);
	CHECK_RC(tc_frame_header(hdr, 1, TC_MAX_FRAME), TC_ERR_FRAME_TOO_LARGE);
}

/* fake_server listens at path and, in a child, answers the first frame of
 * each of two connections with the n bytes in reply, then waits for the
 * client to go away (linger) or closes the connection. */
static int fake_delay_ms;

static pid_t fake_server(const char *path, const uint8_t *reply, size_t n, int linger)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
	unlink(path);
	int l = socket(AF_UNIX, SOCK_STREAM, 0);
	if (l < 0 || bind(l, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(l, 4) != 0) {
		perror("fake server");
		exit(2);
	}
	pid_t pid = fork();
	if (pid == 0) {
		alarm(20);
		for (int k = 0; k < 2; k++) {
			int c = accept(l, NULL, NULL);
			uint8_t buf[512];
			if (c < 0 || recv(c, buf, sizeof buf, 0) <= 0)
				_exit(1);
			if (fake_delay_ms > 0)
				usleep((useconds_t)fake_delay_ms * 1000);
			if (n > 0)
				send(c, reply, n, MSG_NOSIGNAL);
			while (linger && recv(c, buf, sizeof buf, 0) > 0)
				;
			close(c);
		}
		_exit(0);
	}
	close(l);
	return pid;
}

static void expect_call(const char *path, const uint8_t *reply, size_t n, int linger, int want)
{
	pid_t pid = fake_server(path, reply, n, linger);
	tc_conn *c;
	CHECK_RC(tc_conn_open(&c, path, "unit"), TC_OK);
	tc_conn_set_timeout(c, 150);
	tc_frame f;
	uint8_t empty_map = 0xa0;
	CHECK_RC(tc_conn_call(c, 0x02, &empty_map, 1, &f), want);
	CHECK(!tc_conn_connected(c, NULL));
	CHECK(f.mem == NULL);
	/* The next call dials again. */
	CHECK_RC(tc_conn_call(c, 0x02, &empty_map, 1, &f), want);
	tc_conn_close(c);
	int st;
	waitpid(pid, &st, 0);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	unlink(path);
}

static volatile sig_atomic_t alarms;

static void on_alarm(int sig)
{
	(void)sig;
	alarms++;
}

static void unit_conn(void)
{
	tc_conn *c;
	char path[256];
	const char *dir = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	snprintf(path, sizeof path, "%s/tc_unit_%d.sock", dir, (int)getpid());

	char long_path[200];
	memset(long_path, 'x', sizeof long_path - 1);
	long_path[sizeof long_path - 1] = 0;
	CHECK_RC(tc_conn_open(&c, long_path, "unit"), TC_ERR_ARGS);
	CHECK_RC(tc_conn_open(NULL, path, "unit"), TC_ERR_ARGS);

	/* Nobody listening. */
	unlink(path);
	CHECK_RC(tc_conn_open(&c, path, "unit"), TC_OK);
	tc_frame f;
	CHECK_RC(tc_conn_call(c, 0x02, NULL, 0, &f), TC_ERR_CONNECT);
	CHECK_RC(tc_conn_call(c, 0x02, NULL, 1, &f), TC_ERR_ARGS);
	CHECK_RC(tc_conn_call(NULL, 0x02, NULL, 0, &f), TC_ERR_ARGS);
	tc_conn_close(c);

	static const uint8_t zero[] = {0, 0, 0, 0};
	static const uint8_t huge[] = {0x7f, 0xff, 0xff, 0xff};
	static const uint8_t v2[] = {0, 0, 0, 4, 0x81, 0xa1, 0x01, 0x02};
	static const uint8_t mismatch[] = {0, 0, 0, 4, 0xff, 0xa1, 0x01, 0x04};
	static const uint8_t busy[] = {0, 0, 0, 4, 0xff, 0xa1, 0x01, 0x06};
	static const uint8_t garbage[] = {0, 0, 0, 3, 0x81, 0xff, 0x00};
	static const uint8_t short_frame[] = {0, 0, 0, 9, 0x81};
	expect_call(path, zero, sizeof zero, 1, TC_ERR_EMPTY_FRAME);
	expect_call(path, huge, sizeof huge, 1, TC_ERR_FRAME_TOO_LARGE);
	expect_call(path, v2, sizeof v2, 1, TC_ERR_VERSION);
	expect_call(path, mismatch, sizeof mismatch, 1, TC_ERR_VERSION);
	expect_call(path, busy, sizeof busy, 1, TC_ERR_REFUSED);
	expect_call(path, garbage, sizeof garbage, 1, TC_ERR_PROTOCOL);
	expect_call(path, short_frame, sizeof short_frame, 0, TC_ERR_IO);
	expect_call(path, short_frame, sizeof short_frame, 1, TC_ERR_TIMEOUT);
	expect_call(path, NULL, 0, 0, TC_ERR_CLOSED);
	expect_call(path, NULL, 0, 1, TC_ERR_TIMEOUT);

	/* The service hangs up right after Hello: the request's write fails
	 * (EPIPE, without SIGPIPE, whose default would kill us) or its read
	 * sees the end of the stream. */
	{
		static const uint8_t hello_ok[] = {0, 0, 0, 4, 0x81, 0xa1, 0x01, 0x01};
		pid_t p = fake_server(path, hello_ok, sizeof hello_ok, 0);
		CHECK_RC(tc_conn_open(&c, path, "unit"), TC_OK);
		uint8_t big[64 << 10];
		memset(big, 0xa0, sizeof big);
		int rc = tc_conn_call(c, 0x02, big, sizeof big, &f);
		CHECK(rc == TC_ERR_IO || rc == TC_ERR_CLOSED);
		tc_conn_close(c);
		kill(p, SIGTERM);
		waitpid(p, NULL, 0);
		unlink(path);
	}

	/* Signals without SA_RESTART every millisecond while the call waits:
	 * EINTR is retried, and the Hello reply still arrives. */
	static const uint8_t v1[] = {0, 0, 0, 4, 0x81, 0xa1, 0x01, 0x01};
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_alarm;
	sigaction(SIGALRM, &sa, NULL);
	struct itimerval every = {{0, 1000}, {0, 1000}}, off = {{0, 0}, {0, 0}};
	fake_delay_ms = 100;
	pid_t pid = fake_server(path, v1, sizeof v1, 1);
	setitimer(ITIMER_REAL, &every, NULL);
	CHECK_RC(tc_conn_open(&c, path, "unit"), TC_OK);
	tc_conn_set_timeout(c, 300);
	/* The server answers Hello late, then never the call: the timeout
	 * holds although every wait is interrupted. */
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	CHECK_RC(tc_conn_call(c, 0x02, NULL, 0, &f), TC_ERR_TIMEOUT);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	setitimer(ITIMER_REAL, &off, NULL);
	CHECK(alarms > 10);
	long ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
	CHECK(ms >= 350 && ms < 3000);
	tc_conn_close(c);
	int st;
	kill(pid, SIGTERM);
	waitpid(pid, &st, 0);
	fake_delay_ms = 0;
	signal(SIGALRM, SIG_DFL);
	unlink(path);
}

/* echo_server answers Hello, then every request with an Ack frame (0x80)
 * that carries the request's body, in order, on up to `conns`
 * connections one after another. */
static int read_all(int fd, uint8_t *buf, size_t n)
{
	for (size_t got = 0; got < n;) {
		ssize_t k = recv(fd, buf + got, n - got, 0);
		if (k <= 0)
			return -1;
		got += (size_t)k;
	}
	return 0;
}

static pid_t echo_server(const char *path, int conns)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
	unlink(path);
	int l = socket(AF_UNIX, SOCK_STREAM, 0);
	if (l < 0 || bind(l, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(l, 4) != 0) {
		perror("echo server");
		exit(2);
	}
	pid_t pid = fork();
	if (pid == 0) {
		alarm(60);
		static uint8_t buf[1 << 16];
		for (int k = 0; k < conns; k++) {
			int c = accept(l, NULL, NULL);
			if (c < 0)
				_exit(1);
			for (int first = 1;; first = 0) {
				uint8_t hdr[4];
				if (read_all(c, hdr, 4) != 0)
					break;
				uint32_t n = (uint32_t)hdr[0] << 24 | (uint32_t)hdr[1] << 16 | (uint32_t)hdr[2] << 8 | hdr[3];
				if (n == 0 || n > sizeof buf || read_all(c, buf, n) != 0)
					_exit(1);
				if (first) {
					static const uint8_t hello_ok[] = {0, 0, 0, 4, 0x81, 0xa1, 0x01, 0x01};
					send(c, hello_ok, sizeof hello_ok, MSG_NOSIGNAL);
					continue;
				}
				buf[0] = 0x80; /* the type byte becomes Ack's; the body stays */
				send(c, hdr, 4, MSG_NOSIGNAL);
				send(c, buf, n, MSG_NOSIGNAL);
			}
			close(c);
		}
		_exit(0);
	}
	close(l);
	return pid;
}

static int echoes(const tc_frame *f, const uint8_t *body, size_t n)
{
	return f->type == 0x80 && f->len == n && memcmp(f->body, body, n) == 0;
}

struct pipe_worker {
	tc_conn *c;
	int id, bad;
};

static void *pipe_worker_run(void *arg)
{
	struct pipe_worker *w = arg;
	for (int i = 0; i < 300; i++) {
		uint8_t body[8] = {0x82, 0x18, (uint8_t)w->id, 0x19, (uint8_t)(i >> 8), (uint8_t)i, 0, 0};
		tc_frame f;
		if (tc_conn_call(w->c, 0x02, body, 6, &f) != TC_OK || !echoes(&f, body, 6))
			w->bad++;
		tc_frame_release(&f);
	}
	return NULL;
}

/* Numbered requests: replies reach their own callers whatever the order
 * in which the callers come for them, a forgotten reply is dropped, and
 * a ticket of a connection that is gone never reaches the next one. */
static void unit_pipeline(void)
{
	char path[100]; /* fits sun_path */
	const char *dir = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	snprintf(path, sizeof path, "%s/tc_pipe_%d.sock", dir, (int)getpid());
	pid_t pid = echo_server(path, 2);
	tc_conn *c;
	CHECK_RC(tc_conn_open(&c, path, "unit"), TC_OK);
	static const uint8_t a[] = {0x01}, b[] = {0x02}, d[] = {0x03}, e[] = {0x04};
	tc_ticket ta, tb, td, te;
	CHECK_RC(tc_conn_send(c, 0, 0x02, a, 1, &ta), TC_OK);
	CHECK_RC(tc_conn_send(c, ta.gen, 0x02, b, 1, &tb), TC_OK);
	CHECK_RC(tc_conn_send(c, ta.gen, 0x02, d, 1, &td), TC_OK);
	CHECK(tb.seq == ta.seq + 1 && td.seq == tb.seq + 1);
	tc_frame f;
	CHECK_RC(tc_conn_recv(c, &td, &f), TC_OK); /* reads a and b on the way */
	CHECK(echoes(&f, d, 1));
	tc_frame_release(&f);
	CHECK_RC(tc_conn_recv(c, &ta, &f), TC_OK);
	CHECK(echoes(&f, a, 1));
	CHECK(f.gen == ta.gen); /* kept for us, and still names its connection */
	tc_frame_release(&f);
	tc_conn_forget(c, &tb); /* arrived and kept: dropped now */
	CHECK_RC(tc_conn_recv(c, &tb, &f), TC_ERR_ARGS);
	CHECK_RC(tc_conn_send(c, ta.gen, 0x02, d, 1, &td), TC_OK);
	tc_conn_forget(c, &td); /* not arrived: dropped when it comes */
	CHECK_RC(tc_conn_send(c, ta.gen, 0x02, e, 1, &te), TC_OK);
	CHECK_RC(tc_conn_recv(c, &te, &f), TC_OK);
	CHECK(echoes(&f, e, 1));
	tc_frame_release(&f);

	struct pipe_worker w[4];
	pthread_t th[4];
	for (int i = 0; i < 4; i++) {
		w[i] = (struct pipe_worker){.c = c, .id = i};
		pthread_create(&th[i], NULL, pipe_worker_run, &w[i]);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		CHECK(w[i].bad == 0);
	}

	/* A pending ticket dies with its connection; a request for that
	 * connection is refused, one for any connection dials anew. */
	CHECK_RC(tc_conn_send(c, ta.gen, 0x02, a, 1, &tb), TC_OK);
	tc_conn_drop(c);
	CHECK_RC(tc_conn_recv(c, &tb, &f), TC_ERR_CLOSED);
	CHECK_RC(tc_conn_send(c, ta.gen, 0x02, a, 1, &tb), TC_ERR_CLOSED);
	CHECK_RC(tc_conn_send(c, 0, 0x02, a, 1, &tb), TC_OK);
	CHECK(tb.gen == ta.gen + 1 && tb.seq == 0);
	CHECK_RC(tc_conn_recv(c, &tb, &f), TC_OK);
	CHECK(echoes(&f, a, 1));
	tc_frame_release(&f);
	tc_conn_close(c);
	int st;
	waitpid(pid, &st, 0);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	unlink(path);
}

static int unit(void)
{
	/* A write to a socket the peer closed must not kill us. */
	signal(SIGPIPE, SIG_DFL);
	unit_encoder();
	unit_decoder();
	unit_frames();
	unit_conn();
	unit_pipeline();
	if (failures) {
		fprintf(stderr, "%d failures\n", failures);
		return 1;
	}
	printf("unit ok\n");
	return 0;
}

/* ------------------------------------------------------------------ */

static int roundtrip(void)
{
	static char line[4 << 20];
	static uint8_t in[2 << 20], out[2 << 20];
	while (fgets(line, sizeof line, stdin) != NULL) {
		line[strcspn(line, "\r\n")] = 0;
		size_t n = unhex(line, in, sizeof in);
		tc_val v;
		int rc = tc_decode(in, n, &v);
		tc_enc e;
		tc_enc_init(&e, out, sizeof out);
		if (rc == TC_OK)
			rc = tc_reencode(v, &e);
		if (rc == TC_OK && e.len > 0) {
			/* One byte short must not fit. */
			tc_enc e2;
			tc_enc_init(&e2, out + e.len, e.len - 1);
			if (tc_reencode(v, &e2) != TC_ERR_NOSPACE)
				rc = -1;
		}
		if (rc != TC_OK) {
			printf("err %d\n", rc);
			continue;
		}
		printf("ok ");
		for (size_t k = 0; k < e.len; k++)
			printf("%02x", out[k]);
		printf("\n");
	}
	return 0;
}

/* ------------------------------------------------------------------ */

/* call sends type with body (hex) and prints the reply type and body. */
static int call_print(tc_conn *c, const char *name, uint8_t type, const char *hex)
{
	uint8_t body[256];
	size_t n = unhex(hex, body, sizeof body);
	tc_frame f;
	int rc = tc_conn_call(c, type, body, n, &f);
	if (rc != TC_OK) {
		printf("%s err %d %s\n", name, rc, tc_strerror(rc));
		return rc;
	}
	tc_val v;
	int drc = tc_decode(f.body, f.len, &v);
	printf("%s type %02x decode %d gen %llu len %zu\n", name, f.type, drc, (unsigned long long)f.gen, f.len);
	tc_val cards, card, serial;
	tc_iter it;
	size_t count;
	const char *s;
	size_t sn;
	memset(&it, 0, sizeof it);
	if (drc == TC_OK && f.type == 0x82) {
		/* Cards{1: [TokenInfo{1: serial, ...}, ...]} */
		if (tc_map_find(v, 1, &cards) != TC_OK || tc_array_open(cards, &it, &count) != TC_OK)
			count = 0;
		printf("%s cards %zu\n", name, count);
		while (tc_array_next(&it, &card) == TC_OK)
			if (tc_map_find(card, 1, &serial) == TC_OK && tc_get_text(serial, &s, &sn) == TC_OK)
				printf("%s serial %.*s\n", name, (int)sn, s);
	}
	tc_frame_release(&f);
	return drc;
}

static int service(void)
{
	tc_conn *c;
	int rc = tc_conn_open(&c, NULL, "pkcs11-c-test/1");
	if (rc != TC_OK)
		return 1;
	rc |= call_print(c, "ListCards", 0x02, "a0");
	rc |= call_print(c, "GetStatus", 0x42, "a0");
	rc |= call_print(c, "Unknown", 0x7e, "a0");
	rc |= call_print(c, "BadBody", 0x05, "ff");
	rc |= call_print(c, "ListCards", 0x02, "a0");
	tc_conn_close(c);
	return rc != TC_OK;
}

/* ------------------------------------------------------------------ */

static int list_cards(tc_conn *c, uint64_t *gen)
{
	static const uint8_t body[] = {0xa0};
	tc_frame f;
	int rc = tc_conn_call(c, 0x02, body, sizeof body, &f);
	if (rc != TC_OK)
		return rc;
	tc_val v;
	rc = f.type == 0x82 ? tc_decode(f.body, f.len, &v) : -1;
	if (gen != NULL)
		*gen = f.gen;
	tc_frame_release(&f);
	return rc;
}

static volatile int stop_busy;

static void *busy(void *arg)
{
	tc_conn *c = arg;
	long calls = 0, errs = 0;
	while (!stop_busy) {
		if (list_cards(c, NULL) != TC_OK)
			errs++;
		calls++;
	}
	return (void *)(errs > 0 ? (intptr_t)-1 : (intptr_t)calls);
}

static int forks(int n)
{
	tc_conn *c;
	uint64_t gen0, gen1;
	if (tc_conn_open(&c, NULL, "pkcs11-c-fork/1") != TC_OK || list_cards(c, &gen0) != TC_OK) {
		printf("parent: cannot connect\n");
		return 1;
	}
	pthread_t th;
	if (pthread_create(&th, NULL, busy, c) != 0)
		return 1;
	int hangs = 0, fails = 0;
	for (int k = 0; k < n; k++) {
		pid_t pid = fork();
		if (pid < 0) {
			perror("fork");
			return 1;
		}
		if (pid == 0) {
			alarm(10);
			uint64_t g;
			int rc = list_cards(c, &g);
			/* A connection of its own: the generation moved on. */
			_exit(rc == TC_OK && g == gen0 + 1 ? 0 : 1);
		}
		int st;
		while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
			;
		if (WIFSIGNALED(st) && WTERMSIG(st) == SIGALRM)
			hangs++;
		else if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
			fails++;
	}
	stop_busy = 1;
	void *calls;
	pthread_join(th, &calls);
	/* The parent's connection is the one it had. */
	int rc = list_cards(c, &gen1);
	printf("children %d hangs %d fails %d parent %d gen %llu->%llu busy %ld\n", n, hangs, fails, rc,
	       (unsigned long long)gen0, (unsigned long long)gen1, (long)(intptr_t)calls);
	tc_conn_close(c);
	return hangs || fails || rc != TC_OK || gen1 != gen0 || (intptr_t)calls < 0;
}

int main(int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "unit") == 0)
		return unit();
	if (argc >= 2 && strcmp(argv[1], "roundtrip") == 0)
		return roundtrip();
	if (argc >= 2 && strcmp(argv[1], "service") == 0)
		return service();
	if (argc >= 3 && strcmp(argv[1], "fork") == 0)
		return forks(atoi(argv[2]));
	fprintf(stderr, "usage: tc_test unit|roundtrip|service|fork N\n");
	return 2;
}
