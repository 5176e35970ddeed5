/*
 * tc_conn.c: frames and the connection to the service (see tc_conn.h).
 */
#define _GNU_SOURCE /* SOCK_CLOEXEC, MSG_NOSIGNAL */

#include "tc_conn.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <time.h>
#include <sys/un.h>
#include <unistd.h>

/* ------------------------------------------------------------------ */
/* Frames. */

void tc_frame_release(tc_frame *f)
{
	if (f == NULL)
		return;
	if (f->mem != NULL) {
		tc_wipe(f->mem, f->memlen);
		free(f->mem);
	}
	memset(f, 0, sizeof *f);
}

int tc_frame_header(uint8_t hdr[5], uint8_t type, size_t body_len)
{
	if (body_len > TC_MAX_FRAME - 1)
		return TC_ERR_FRAME_TOO_LARGE;
	uint32_t n = (uint32_t)body_len + 1;
	hdr[0] = (uint8_t)(n >> 24);
	hdr[1] = (uint8_t)(n >> 16);
	hdr[2] = (uint8_t)(n >> 8);
	hdr[3] = (uint8_t)n;
	hdr[4] = type;
	return TC_OK;
}

/* read_full reads n bytes; *got says how many arrived. */
static int read_full(tc_read_fn rd, void *ctx, uint8_t *buf, size_t n, size_t *got)
{
	*got = 0;
	while (*got < n) {
		long k = rd(ctx, buf + *got, n - *got);
		if (k < 0)
			return TC_ERR_IO;
		if (k == 0)
			return *got == 0 ? TC_ERR_CLOSED : TC_ERR_IO;
		if ((size_t)k > n - *got)
			return TC_ERR_IO; /* a reader that claims more than asked */
		*got += (size_t)k;
	}
	return TC_OK;
}

int tc_frame_read(tc_read_fn rd, void *ctx, uint32_t limit, tc_frame *out)
{
	uint8_t hdr[4];
	size_t got;
	if (rd == NULL || out == NULL)
		return TC_ERR_ARGS;
	memset(out, 0, sizeof *out);
	if (limit == 0 || limit > TC_MAX_FRAME)
		limit = TC_MAX_FRAME;
	int rc = read_full(rd, ctx, hdr, sizeof hdr, &got);
	if (rc != TC_OK)
		return rc;
	uint32_t n = (uint32_t)hdr[0] << 24 | (uint32_t)hdr[1] << 16 | (uint32_t)hdr[2] << 8 | hdr[3];
	if (n == 0)
		return TC_ERR_EMPTY_FRAME;
	if (n > limit)
		return TC_ERR_FRAME_TOO_LARGE;
	uint8_t *mem = malloc(n);
	if (mem == NULL)
		return TC_ERR_NOMEM;
	rc = read_full(rd, ctx, mem, n, &got);
	if (rc != TC_OK) {
		tc_wipe(mem, got);
		free(mem);
		return rc == TC_ERR_CLOSED ? TC_ERR_IO : rc;
	}
	out->type = mem[0];
	out->body = mem + 1;
	out->len = n - 1;
	out->mem = mem;
	out->memlen = n;
	return TC_OK;
}

/* ------------------------------------------------------------------ */
/* The connection. */

struct tc_conn {
	pthread_mutex_t mu; /* serializes calls; re-made in a forked child */
	atomic_int fd;      /* -1 when not connected */
	atomic_int dead;    /* set on an error and in a forked child */
	uint64_t gen;
	int timeout_ms;
	char *path, *client;
	struct tc_conn *prev, *next; /* the fork handler's registry */
};

/*
 * The registry of live connections is the library's only global state:
 * the fork handler must find every connection the child inherited.
 */
static pthread_mutex_t registry_mu = PTHREAD_MUTEX_INITIALIZER;
static struct tc_conn *registry;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static void atfork_prepare(void) { pthread_mutex_lock(&registry_mu); }
static void atfork_parent(void) { pthread_mutex_unlock(&registry_mu); }

/* atfork_child runs in the child, which has only the forking thread: a
 * call another thread was making holds a mutex nobody will release, and
 * the descriptor is shared with the parent. Drop the child's copy without
 * a word on it (a write, or shutdown(2), would reach the parent's peer)
 * and make the mutex afresh. Only async-signal-safe work here. */
static void atfork_child(void)
{
	for (struct tc_conn *c = registry; c != NULL; c = c->next) {
		int fd = atomic_exchange(&c->fd, -1);
		if (fd >= 0)
			close(fd);
		atomic_store(&c->dead, 1);
		pthread_mutex_init(&c->mu, NULL);
	}
	pthread_mutex_unlock(&registry_mu);
}

static void atfork_register(void) { pthread_atfork(atfork_prepare, atfork_parent, atfork_child); }

int tc_conn_open(tc_conn **out, const char *path, const char *client)
{
	if (out == NULL)
		return TC_ERR_ARGS;
	*out = NULL;
	if (path == NULL || path[0] == '\0') {
		path = getenv(TC_SOCKET_ENV);
		if (path == NULL || path[0] == '\0')
			path = TC_DEFAULT_SOCKET;
	}
	if (client == NULL)
		client = "";
	if (strlen(path) >= sizeof(((struct sockaddr_un *)0)->sun_path) || strlen(client) > 200)
		return TC_ERR_ARGS;
	if (pthread_once(&atfork_once, atfork_register) != 0)
		return TC_ERR_NOMEM;
	struct tc_conn *c = calloc(1, sizeof *c);
	if (c == NULL)
		return TC_ERR_NOMEM;
	c->path = strdup(path);
	c->client = strdup(client);
	if (c->path == NULL || c->client == NULL || pthread_mutex_init(&c->mu, NULL) != 0) {
		free(c->path);
		free(c->client);
		free(c);
		return TC_ERR_NOMEM;
	}
	atomic_init(&c->fd, -1);
	atomic_init(&c->dead, 0);
	c->timeout_ms = TC_DEFAULT_TIMEOUT_MS;
	pthread_mutex_lock(&registry_mu);
	c->next = registry;
	if (registry != NULL)
		registry->prev = c;
	registry = c;
	pthread_mutex_unlock(&registry_mu);
	*out = c;
	return TC_OK;
}

/* drop ends the connection. The descriptor is taken out of c before it is
 * closed, so that a fork in between cannot have the child close a number
 * the parent has already reused. */
static void drop(struct tc_conn *c)
{
	int fd = atomic_exchange(&c->fd, -1);
	if (fd >= 0)
		close(fd);
	atomic_store(&c->dead, 0);
}

void tc_conn_close(tc_conn *c)
{
	if (c == NULL)
		return;
	pthread_mutex_lock(&registry_mu);
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		registry = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	pthread_mutex_unlock(&registry_mu);
	drop(c);
	pthread_mutex_destroy(&c->mu);
	free(c->path);
	free(c->client);
	free(c);
}

static void set_timeouts(int fd, int ms)
{
	struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

void tc_conn_set_timeout(tc_conn *c, int ms)
{
	if (c == NULL || ms <= 0)
		return;
	pthread_mutex_lock(&c->mu);
	c->timeout_ms = ms;
	int fd = atomic_load(&c->fd);
	if (fd >= 0)
		set_timeouts(fd, ms);
	pthread_mutex_unlock(&c->mu);
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* fd_reader is the tc_read_fn of a socket; timed_out records an expired
 * SO_RCVTIMEO. A socket timeout starts afresh on each recv(2), and
 * signals interrupt it even with SA_RESTART (signal(7)), so a process with
 * a busy interval timer would retry forever: the deadline bounds the
 * retries. */
struct fd_reader {
	int fd;
	int timed_out;
	int64_t deadline;
};

static long fd_read(void *ctx, uint8_t *buf, size_t n)
{
	struct fd_reader *r = ctx;
	for (;;) {
		ssize_t k = recv(r->fd, buf, n, 0);
		if (k >= 0)
			return (long)k;
		if (errno == EINTR && now_ms() < r->deadline)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
			r->timed_out = 1;
		return -1;
	}
}

/* send_frame writes one frame in as few sendmsg calls as the socket
 * allows, never raising SIGPIPE. */
static int send_frame(int fd, uint8_t type, const uint8_t *body, size_t len, int timeout_ms)
{
	int64_t deadline = now_ms() + timeout_ms;
	uint8_t hdr[5];
	int rc = tc_frame_header(hdr, type, len);
	if (rc != TC_OK)
		return rc;
	struct iovec iov[2] = {{.iov_base = hdr, .iov_len = sizeof hdr},
	                       {.iov_base = (void *)body, .iov_len = len}};
	struct msghdr msg = {.msg_iov = iov, .msg_iovlen = len > 0 ? 2 : 1};
	while (msg.msg_iovlen > 0) {
		ssize_t k = sendmsg(fd, &msg, MSG_NOSIGNAL);
		if (k < 0) {
			if (errno == EINTR && now_ms() < deadline)
				continue;
			return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? TC_ERR_TIMEOUT : TC_ERR_IO;
		}
		size_t done = (size_t)k;
		while (msg.msg_iovlen > 0 && done >= msg.msg_iov[0].iov_len) {
			done -= msg.msg_iov[0].iov_len;
			msg.msg_iov++;
			msg.msg_iovlen--;
		}
		if (msg.msg_iovlen > 0) {
			msg.msg_iov[0].iov_base = (uint8_t *)msg.msg_iov[0].iov_base + done;
			msg.msg_iov[0].iov_len -= done;
		}
	}
	return TC_OK;
}

/* recv_reply reads frames until one that is not Progress, each within
 * timeout_ms. */
static int recv_reply(int fd, tc_frame *reply, int timeout_ms)
{
	struct fd_reader r = {.fd = fd};
	for (;;) {
		r.deadline = now_ms() + timeout_ms;
		int rc = tc_frame_read(fd_read, &r, TC_MAX_FRAME, reply);
		if (rc != TC_OK)
			return r.timed_out ? TC_ERR_TIMEOUT : rc;
		if (reply->type != TC_TYPE_PROGRESS)
			return TC_OK;
		tc_frame_release(reply);
	}
}

/* connect_fd connects fd to sa, waiting out an interrupted connect(2)
 * (which goes on in the background) up to ms. */
static int connect_fd(int fd, const struct sockaddr_un *sa, int ms)
{
	if (connect(fd, (const struct sockaddr *)sa, sizeof *sa) == 0)
		return TC_OK;
	if (errno != EINTR && errno != EINPROGRESS)
		return TC_ERR_CONNECT;
	struct pollfd pfd = {.fd = fd, .events = POLLOUT};
	int64_t deadline = now_ms() + ms;
	int k;
	while ((k = poll(&pfd, 1, (int)(deadline - now_ms() > 0 ? deadline - now_ms() : 0))) < 0 && errno == EINTR)
		;
	if (k <= 0)
		return k == 0 ? TC_ERR_TIMEOUT : TC_ERR_CONNECT;
	int err = 0;
	socklen_t errlen = sizeof err;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &errlen) != 0 || err != 0)
		return TC_ERR_CONNECT;
	return TC_OK;
}

/* hello performs the handshake: Hello{1: version, 2: client}, and a
 * HelloReply{1: version} that names our version. */
static int hello(struct tc_conn *c, int fd)
{
	uint8_t buf[256];
	size_t n;
	tc_enc e;
	tc_enc_init(&e, buf, sizeof buf);
	size_t clen = strlen(c->client);
	tc_enc_map(&e, clen > 0 ? 2 : 1);
	tc_enc_uint(&e, 1);
	tc_enc_uint(&e, TC_PROTOCOL_VERSION);
	if (clen > 0) {
		tc_enc_uint(&e, 2);
		tc_enc_text(&e, c->client, clen);
	}
	int rc = tc_enc_finish(&e, &n);
	if (rc != TC_OK)
		return rc;
	if ((rc = send_frame(fd, TC_TYPE_HELLO, buf, n, c->timeout_ms)) != TC_OK)
		return rc;
	tc_frame reply;
	if ((rc = recv_reply(fd, &reply, c->timeout_ms)) != TC_OK)
		return rc;
	tc_val m, v;
	uint64_t version = 0, status = 0;
	if (reply.type == TC_TYPE_ERROR) {
		/* StatusError{1: status}; 4 is VersionMismatch. */
		if (tc_decode(reply.body, reply.len, &m) == TC_OK && tc_map_find(m, 1, &v) == TC_OK)
			tc_get_uint(v, &status);
		rc = status == 4 ? TC_ERR_VERSION : TC_ERR_REFUSED;
	} else if (reply.type != TC_TYPE_HELLO_REPLY || tc_decode(reply.body, reply.len, &m) != TC_OK ||
	           tc_kind_of(m) != TC_MAP) {
		rc = TC_ERR_PROTOCOL;
	} else {
		rc = tc_map_find(m, 1, &v);
		if (rc == TC_OK)
			rc = tc_get_uint(v, &version);
		if (rc == TC_OK || rc == TC_ERR_NOTFOUND)
			rc = version == TC_PROTOCOL_VERSION ? TC_OK : TC_ERR_VERSION;
		else
			rc = TC_ERR_PROTOCOL;
	}
	tc_frame_release(&reply);
	return rc;
}

static int dial(struct tc_conn *c)
{
	struct sockaddr_un sa;
	memset(&sa, 0, sizeof sa);
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path, c->path, strlen(c->path) + 1); /* length checked in tc_conn_open */
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return TC_ERR_CONNECT;
	set_timeouts(fd, c->timeout_ms);
	int rc = connect_fd(fd, &sa, c->timeout_ms);
	if (rc == TC_OK)
		rc = hello(c, fd);
	if (rc != TC_OK) {
		close(fd);
		return rc;
	}
	c->gen++;
	atomic_store(&c->fd, fd);
	return TC_OK;
}

int tc_conn_call(tc_conn *c, uint8_t type, const uint8_t *body, size_t len, tc_frame *reply)
{
	if (c == NULL || reply == NULL || (body == NULL && len != 0))
		return TC_ERR_ARGS;
	memset(reply, 0, sizeof *reply);
	if (len > TC_MAX_FRAME - 1)
		return TC_ERR_FRAME_TOO_LARGE;
	pthread_mutex_lock(&c->mu);
	int rc = TC_OK;
	if (atomic_load(&c->dead) || atomic_load(&c->fd) < 0) {
		drop(c);
		rc = dial(c);
	}
	if (rc == TC_OK) {
		int fd = atomic_load(&c->fd);
		rc = send_frame(fd, type, body, len, c->timeout_ms);
		if (rc == TC_OK)
			rc = recv_reply(fd, reply, c->timeout_ms);
		if (rc != TC_OK)
			drop(c);
		else
			reply->gen = c->gen;
	}
	pthread_mutex_unlock(&c->mu);
	return rc;
}

int tc_conn_connected(tc_conn *c, uint64_t *gen)
{
	if (c == NULL)
		return 0;
	pthread_mutex_lock(&c->mu);
	int up = !atomic_load(&c->dead) && atomic_load(&c->fd) >= 0;
	if (gen != NULL)
		*gen = c->gen;
	pthread_mutex_unlock(&c->mu);
	return up;
}
