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

/*
 * Requests are numbered in the order they are written; the service
 * answers a connection's requests one at a time, in that order, so reply
 * n answers request n. One thread at a time reads the socket (the reader):
 * it reads replies in order until its own, and keeps the others it reads
 * for their callers (the stash), who take them when they come for them.
 * A request nobody waits for (tc_conn_forget) has its reply dropped when
 * it arrives.
 */
struct stashed {
	uint64_t seq;
	int forgotten; /* drop the reply when it comes */
	int arrived;
	tc_frame frame;
	struct stashed *next;
};

struct tc_conn {
	pthread_mutex_t wmu; /* writers: dial, number and write a request */
	pthread_mutex_t mu;  /* everything below; never held across I/O */
	pthread_cond_t cv;   /* a reply arrived, the reader left, or the connection died */
	atomic_int fd;       /* -1 when not connected */
	int dead;            /* the connection failed, or this is a forked child */
	int reading;         /* a thread is reading the socket */
	uint64_t gen;        /* connections dialed so far */
	uint64_t sent, read; /* requests written, replies read, on this connection */
	struct stashed *stash;
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
 * a word on it (a write, or shutdown(2), would reach the parent's peer),
 * make the locks afresh and leave the parent's stash behind (freeing it
 * here is not async-signal-safe). */
static void atfork_child(void)
{
	for (struct tc_conn *c = registry; c != NULL; c = c->next) {
		int fd = atomic_exchange(&c->fd, -1);
		if (fd >= 0)
			close(fd);
		c->dead = 1;
		c->reading = 0;
		c->stash = NULL;
		c->sent = c->read = 0;
		pthread_mutex_init(&c->wmu, NULL);
		pthread_mutex_init(&c->mu, NULL);
		pthread_cond_init(&c->cv, NULL);
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
	if (pthread_mutex_init(&c->wmu, NULL) != 0 || pthread_cond_init(&c->cv, NULL) != 0) {
		pthread_mutex_destroy(&c->mu);
		free(c->path);
		free(c->client);
		free(c);
		return TC_ERR_NOMEM;
	}
	atomic_init(&c->fd, -1);
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

/* clear_stash frees the replies kept for a connection that is gone. mu held. */
static void clear_stash(struct tc_conn *c)
{
	while (c->stash != NULL) {
		struct stashed *st = c->stash;
		c->stash = st->next;
		tc_frame_release(&st->frame);
		free(st);
	}
}

/* fail ends the connection after an error: every request on it is lost.
 * A thread blocked reading is woken by shutdown(2) and closes the
 * descriptor itself when it leaves; otherwise it is closed here. The
 * descriptor is taken out of c before it is closed, so that a fork in
 * between cannot have the child close a number the parent has reused.
 * mu held. */
static void fail(struct tc_conn *c)
{
	c->dead = 1;
	int fd = atomic_load(&c->fd);
	if (fd >= 0) {
		if (c->reading) {
			shutdown(fd, SHUT_RDWR);
		} else {
			atomic_store(&c->fd, -1);
			close(fd);
		}
	}
	clear_stash(c);
	pthread_cond_broadcast(&c->cv);
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
	pthread_mutex_lock(&c->mu);
	fail(c);
	pthread_mutex_unlock(&c->mu);
	pthread_cond_destroy(&c->cv);
	pthread_mutex_destroy(&c->mu);
	pthread_mutex_destroy(&c->wmu);
	free(c->path);
	free(c->client);
	free(c);
}

void tc_conn_drop(tc_conn *c)
{
	if (c == NULL)
		return;
	pthread_mutex_lock(&c->mu);
	fail(c);
	pthread_mutex_unlock(&c->mu);
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

/* dial makes a new connection. wmu held, no reader on the old one. */
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
	pthread_mutex_lock(&c->mu);
	c->gen++;
	c->sent = c->read = 0;
	c->dead = 0;
	atomic_store(&c->fd, fd);
	pthread_mutex_unlock(&c->mu);
	return TC_OK;
}

int tc_conn_send(tc_conn *c, uint64_t gen, uint8_t type, const uint8_t *body, size_t len, tc_ticket *t)
{
	if (c == NULL || t == NULL || (body == NULL && len != 0))
		return TC_ERR_ARGS;
	memset(t, 0, sizeof *t);
	if (len > TC_MAX_FRAME - 1)
		return TC_ERR_FRAME_TOO_LARGE;
	pthread_mutex_lock(&c->wmu);
	pthread_mutex_lock(&c->mu);
	int rc = TC_OK;
	if (c->dead || atomic_load(&c->fd) < 0) {
		if (gen != 0) {
			rc = TC_ERR_CLOSED; /* the connection the caller means is gone */
		} else {
			/* Wait for a reader of the dead connection to leave. */
			while (c->reading)
				pthread_cond_wait(&c->cv, &c->mu);
			int fd = atomic_exchange(&c->fd, -1);
			if (fd >= 0)
				close(fd);
			clear_stash(c);
			pthread_mutex_unlock(&c->mu);
			rc = dial(c);
			pthread_mutex_lock(&c->mu);
		}
	} else if (gen != 0 && gen != c->gen) {
		rc = TC_ERR_CLOSED;
	}
	if (rc != TC_OK) {
		pthread_mutex_unlock(&c->mu);
		pthread_mutex_unlock(&c->wmu);
		return rc;
	}
	int fd = atomic_load(&c->fd);
	t->gen = c->gen;
	t->seq = c->sent;
	pthread_mutex_unlock(&c->mu);
	rc = send_frame(fd, type, body, len, c->timeout_ms);
	pthread_mutex_lock(&c->mu);
	if (rc == TC_OK && t->gen == c->gen && !c->dead)
		c->sent++;
	else if (rc == TC_OK)
		rc = TC_ERR_CLOSED;
	else if (t->gen == c->gen)
		fail(c);
	pthread_mutex_unlock(&c->mu);
	pthread_mutex_unlock(&c->wmu);
	return rc;
}

/* find_stashed returns the stash entry of seq, or NULL. mu held. */
static struct stashed **find_stashed(struct tc_conn *c, uint64_t seq)
{
	for (struct stashed **p = &c->stash; *p != NULL; p = &(*p)->next)
		if ((*p)->seq == seq)
			return p;
	return NULL;
}

int tc_conn_recv(tc_conn *c, const tc_ticket *t, tc_frame *reply)
{
	if (c == NULL || t == NULL || reply == NULL)
		return TC_ERR_ARGS;
	memset(reply, 0, sizeof *reply);
	pthread_mutex_lock(&c->mu);
	int rc;
	for (;;) {
		if (t->gen != c->gen || c->dead) {
			rc = TC_ERR_CLOSED;
			break;
		}
		struct stashed **p = find_stashed(c, t->seq);
		if (p != NULL && (*p)->arrived) {
			struct stashed *st = *p;
			*p = st->next;
			*reply = st->frame;
			reply->gen = t->gen;
			free(st);
			rc = TC_OK;
			break;
		}
		if (c->read > t->seq) { /* read, and not kept: forgotten, or a second recv */
			rc = TC_ERR_ARGS;
			break;
		}
		if (c->reading) {
			pthread_cond_wait(&c->cv, &c->mu);
			continue;
		}
		/* Become the reader: read replies in order until ours. */
		c->reading = 1;
		int fd = atomic_load(&c->fd);
		rc = TC_OK;
		while (rc == TC_OK && c->read <= t->seq) {
			uint64_t seq = c->read;
			pthread_mutex_unlock(&c->mu);
			tc_frame f;
			rc = recv_reply(fd, &f, c->timeout_ms);
			pthread_mutex_lock(&c->mu);
			if (rc != TC_OK)
				break;
			c->read++;
			if (seq == t->seq) {
				*reply = f;
				break;
			}
			struct stashed **q = find_stashed(c, seq);
			if (q != NULL && (*q)->forgotten) {
				struct stashed *st = *q;
				*q = st->next;
				free(st);
				tc_frame_release(&f);
				continue;
			}
			struct stashed *st = q != NULL ? *q : calloc(1, sizeof *st);
			if (st == NULL) {
				tc_frame_release(&f);
				rc = TC_ERR_NOMEM;
				break;
			}
			st->seq = seq;
			st->arrived = 1;
			st->frame = f;
			if (q == NULL) {
				st->next = c->stash;
				c->stash = st;
			}
			pthread_cond_broadcast(&c->cv);
		}
		c->reading = 0;
		if (rc != TC_OK && t->gen == c->gen)
			fail(c);
		if (c->dead && atomic_load(&c->fd) == fd) {
			atomic_store(&c->fd, -1);
			close(fd); /* fail() left it to us */
		}
		pthread_cond_broadcast(&c->cv);
		if (rc == TC_OK)
			reply->gen = t->gen;
		break;
	}
	pthread_mutex_unlock(&c->mu);
	return rc;
}

void tc_conn_forget(tc_conn *c, const tc_ticket *t)
{
	if (c == NULL || t == NULL)
		return;
	pthread_mutex_lock(&c->mu);
	if (t->gen == c->gen && !c->dead) {
		struct stashed **p = find_stashed(c, t->seq);
		if (p != NULL && (*p)->arrived) {
			struct stashed *st = *p;
			*p = st->next;
			tc_frame_release(&st->frame);
			free(st);
		} else if (p == NULL && c->read <= t->seq) {
			struct stashed *st = calloc(1, sizeof *st);
			if (st != NULL) { /* without memory, the reply is kept until the connection ends */
				st->seq = t->seq;
				st->forgotten = 1;
				st->next = c->stash;
				c->stash = st;
			}
		}
	}
	pthread_mutex_unlock(&c->mu);
}

int tc_conn_call(tc_conn *c, uint8_t type, const uint8_t *body, size_t len, tc_frame *reply)
{
	if (reply == NULL)
		return TC_ERR_ARGS;
	memset(reply, 0, sizeof *reply);
	tc_ticket t;
	int rc = tc_conn_send(c, 0, type, body, len, &t);
	if (rc != TC_OK)
		return rc;
	return tc_conn_recv(c, &t, reply);
}

int tc_conn_connected(tc_conn *c, uint64_t *gen)
{
	if (c == NULL)
		return 0;
	pthread_mutex_lock(&c->mu);
	int up = !c->dead && atomic_load(&c->fd) >= 0;
	if (gen != NULL)
		*gen = c->gen;
	pthread_mutex_unlock(&c->mu);
	return up;
}
