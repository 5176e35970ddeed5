/*
 * tc_conn.c: frames and the connection to the service (see tc_conn.h).
 */
#define _GNU_SOURCE /* SOCK_CLOEXEC, MSG_NOSIGNAL */

#include "tc_conn.h"
#include "tc_sys.h"

#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef _WIN32
#include <afunix.h> /* AF_UNIX, Windows 10 1803 and later */
#else
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#endif

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
/* Sockets: a descriptor on POSIX, a SOCKET on Windows. */

#ifdef _WIN32
typedef SOCKET sock_t;
typedef atomic_uintptr_t atomic_sock; /* SOCKET is a UINT_PTR */
#define NO_SOCK INVALID_SOCKET
#define sock_close closesocket
#else
typedef int sock_t;
typedef atomic_int atomic_sock;
#define NO_SOCK (-1)
#define sock_close close
#endif

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
	tc_mutex wmu;        /* writers: dial, number and write a request */
	tc_mutex mu;         /* everything below; never held across I/O */
	tc_cond cv;          /* a reply arrived, the reader left, or the connection died */
	atomic_sock fd;      /* NO_SOCK when not connected */
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
 * the fork handler must find every connection the child inherited. (On
 * Windows, which has no fork, nothing reads it.)
 */
static tc_mutex registry_mu = TC_MUTEX_INITIALIZER;
static struct tc_conn *registry;
static tc_once sys_once = TC_ONCE_INIT;

#ifdef _WIN32
/* sys_init starts Winsock (version 2.2) for the process; if it cannot,
 * every dial fails (WSANOTINITIALISED). It is never cleaned up: WSACleanup
 * may not be called from DllMain, and a C_Finalize would take Winsock
 * from under the application's own sockets if the count went wrong. */
static void sys_init(void)
{
	WSADATA wsa;
	WSAStartup(MAKEWORD(2, 2), &wsa);
}
#else
static void atfork_prepare(void) { tc_mutex_lock(&registry_mu); }
static void atfork_parent(void) { tc_mutex_unlock(&registry_mu); }

/* atfork_child runs in the child, which has only the forking thread: a
 * call another thread was making holds a mutex nobody will release, and
 * the descriptor is shared with the parent. Drop the child's copy without
 * a word on it (a write, or shutdown(2), would reach the parent's peer),
 * make the locks afresh and leave the parent's stash behind (freeing it
 * here is not async-signal-safe). */
static void atfork_child(void)
{
	for (struct tc_conn *c = registry; c != NULL; c = c->next) {
		sock_t fd = atomic_exchange(&c->fd, NO_SOCK);
		if (fd != NO_SOCK)
			close(fd);
		c->dead = 1;
		c->reading = 0;
		c->stash = NULL;
		c->sent = c->read = 0;
		tc_mutex_init(&c->wmu);
		tc_mutex_init(&c->mu);
		tc_cond_init(&c->cv);
	}
	tc_mutex_unlock(&registry_mu);
}

static void sys_init(void) { pthread_atfork(atfork_prepare, atfork_parent, atfork_child); }
#endif

/* default_socket is the socket's path when neither the caller nor
 * $TPMCARD_SOCKET names one; on Windows it is under %ProgramData%. */
#ifdef _WIN32
static const char *default_socket(char *buf, size_t n)
{
	const char *base = getenv(TC_DEFAULT_SOCKET_BASE_ENV);
	if (base == NULL || base[0] == '\0')
		base = TC_DEFAULT_SOCKET_BASE;
	int k = snprintf(buf, n, "%s%s", base, TC_DEFAULT_SOCKET_NAME);
	return k < 0 || (size_t)k >= n ? NULL : buf;
}
#else
static const char *default_socket(char *buf, size_t n)
{
	(void)buf;
	(void)n;
	return TC_DEFAULT_SOCKET;
}
#endif

int tc_conn_open(tc_conn **out, const char *path, const char *client)
{
	if (out == NULL)
		return TC_ERR_ARGS;
	*out = NULL;
	char defbuf[sizeof(((struct sockaddr_un *)0)->sun_path)];
	if (path == NULL || path[0] == '\0') {
		path = getenv(TC_SOCKET_ENV);
		if (path == NULL || path[0] == '\0')
			path = default_socket(defbuf, sizeof defbuf);
		if (path == NULL)
			return TC_ERR_ARGS; /* too long for sun_path */
	}
	if (client == NULL)
		client = "";
	if (strlen(path) >= sizeof(((struct sockaddr_un *)0)->sun_path) || strlen(client) > 200)
		return TC_ERR_ARGS;
	if (tc_once_run(&sys_once, sys_init) != 0)
		return TC_ERR_NOMEM;
	struct tc_conn *c = calloc(1, sizeof *c);
	if (c == NULL)
		return TC_ERR_NOMEM;
	c->path = strdup(path);
	c->client = strdup(client);
	if (c->path == NULL || c->client == NULL || tc_mutex_init(&c->mu) != 0) {
		free(c->path);
		free(c->client);
		free(c);
		return TC_ERR_NOMEM;
	}
	if (tc_mutex_init(&c->wmu) != 0 || tc_cond_init(&c->cv) != 0) {
		tc_mutex_destroy(&c->mu);
		free(c->path);
		free(c->client);
		free(c);
		return TC_ERR_NOMEM;
	}
	atomic_init(&c->fd, NO_SOCK);
	c->timeout_ms = TC_DEFAULT_TIMEOUT_MS;
	tc_mutex_lock(&registry_mu);
	c->next = registry;
	if (registry != NULL)
		registry->prev = c;
	registry = c;
	tc_mutex_unlock(&registry_mu);
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

/* wake_reader ends a recv another thread is blocked in on fd: shutdown(2)
 * does on POSIX. On Windows shutdown only stops further receives, so the
 * blocked call is also cancelled (CancelIoEx cancels a socket's I/O of
 * every thread). */
static void wake_reader(sock_t fd)
{
#ifdef _WIN32
	shutdown(fd, SD_BOTH);
	CancelIoEx((HANDLE)fd, NULL);
#else
	shutdown(fd, SHUT_RDWR);
#endif
}

/* fail ends the connection after an error: every request on it is lost.
 * A thread blocked reading is woken (wake_reader) and closes the
 * descriptor itself when it leaves; otherwise it is closed here. The
 * descriptor is taken out of c before it is closed, so that a fork in
 * between cannot have the child close a number the parent has reused.
 * mu held. */
static void fail(struct tc_conn *c)
{
	c->dead = 1;
	sock_t fd = atomic_load(&c->fd);
	if (fd != NO_SOCK) {
		if (c->reading) {
			wake_reader(fd);
		} else {
			atomic_store(&c->fd, NO_SOCK);
			sock_close(fd);
		}
	}
	clear_stash(c);
	tc_cond_broadcast(&c->cv);
}

void tc_conn_close(tc_conn *c)
{
	if (c == NULL)
		return;
	tc_mutex_lock(&registry_mu);
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		registry = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	tc_mutex_unlock(&registry_mu);
	tc_mutex_lock(&c->mu);
	fail(c);
	tc_mutex_unlock(&c->mu);
	tc_cond_destroy(&c->cv);
	tc_mutex_destroy(&c->mu);
	tc_mutex_destroy(&c->wmu);
	free(c->path);
	free(c->client);
	free(c);
}

void tc_conn_drop(tc_conn *c)
{
	if (c == NULL)
		return;
	tc_mutex_lock(&c->mu);
	fail(c);
	tc_mutex_unlock(&c->mu);
}

#ifdef _WIN32
/* ------------------------------------------------------------------ */
/* Socket I/O, Windows. Winsock has no EINTR, no SIGPIPE and no sendmsg:
 * a frame goes out in one WSASend of two buffers. */

static void set_timeouts(sock_t fd, int ms)
{
	DWORD v = (DWORD)ms; /* milliseconds, not a timeval */
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, (const char *)&v, sizeof v);
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, (const char *)&v, sizeof v);
}

/* sock_open makes a socket that child processes do not inherit.
 * WSA_FLAG_OVERLAPPED is what the timeouts need on a WSASocket; the
 * calls on it still block. */
static sock_t sock_open(void)
{
	return WSASocketW(AF_UNIX, SOCK_STREAM, 0, NULL, 0, WSA_FLAG_OVERLAPPED | WSA_FLAG_NO_HANDLE_INHERIT);
}

/* fd_reader is the tc_read_fn of a socket; timed_out records an expired
 * SO_RCVTIMEO. */
struct fd_reader {
	sock_t fd;
	int timed_out;
};

static long fd_read(void *ctx, uint8_t *buf, size_t n)
{
	struct fd_reader *r = ctx;
	int k = recv(r->fd, (char *)buf, n > INT_MAX ? INT_MAX : (int)n, 0);
	if (k >= 0)
		return (long)k;
	if (WSAGetLastError() == WSAETIMEDOUT)
		r->timed_out = 1;
	return -1;
}

static int send_frame(sock_t fd, uint8_t type, const uint8_t *body, size_t len, int timeout_ms)
{
	(void)timeout_ms; /* SO_SNDTIMEO bounds each WSASend */
	uint8_t hdr[5];
	int rc = tc_frame_header(hdr, type, len);
	if (rc != TC_OK)
		return rc;
	WSABUF iov[2] = {{.len = sizeof hdr, .buf = (char *)hdr}, {.len = (ULONG)len, .buf = (char *)body}};
	WSABUF *v = iov;
	DWORD nv = len > 0 ? 2 : 1;
	while (nv > 0) {
		DWORD done;
		if (WSASend(fd, v, nv, &done, 0, NULL, NULL) != 0)
			return WSAGetLastError() == WSAETIMEDOUT ? TC_ERR_TIMEOUT : TC_ERR_IO;
		while (nv > 0 && done >= v[0].len) {
			done -= v[0].len;
			v++;
			nv--;
		}
		if (nv > 0) {
			v[0].buf += done;
			v[0].len -= done;
		}
	}
	return TC_OK;
}

/* connect_fd connects fd to sa; SO_SNDTIMEO does not bound a connect,
 * but the service accepts at once or refuses. */
static int connect_fd(sock_t fd, const struct sockaddr_un *sa, int ms)
{
	(void)ms;
	return connect(fd, (const struct sockaddr *)sa, sizeof *sa) == 0 ? TC_OK : TC_ERR_CONNECT;
}

#else
/* ------------------------------------------------------------------ */
/* Socket I/O, POSIX. */

static void set_timeouts(sock_t fd, int ms)
{
	struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

static sock_t sock_open(void) { return socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0); }

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
	sock_t fd;
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
static int send_frame(sock_t fd, uint8_t type, const uint8_t *body, size_t len, int timeout_ms)
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

/* connect_fd connects fd to sa, waiting out an interrupted connect(2)
 * (which goes on in the background) up to ms. */
static int connect_fd(sock_t fd, const struct sockaddr_un *sa, int ms)
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

#endif

void tc_conn_set_timeout(tc_conn *c, int ms)
{
	if (c == NULL || ms <= 0)
		return;
	tc_mutex_lock(&c->mu);
	c->timeout_ms = ms;
	sock_t fd = atomic_load(&c->fd);
	if (fd != NO_SOCK)
		set_timeouts(fd, ms);
	tc_mutex_unlock(&c->mu);
}

/* recv_reply reads frames until one that is not Progress, each within
 * timeout_ms. */
static int recv_reply(sock_t fd, tc_frame *reply, int timeout_ms)
{
	struct fd_reader r = {.fd = fd};
	for (;;) {
#ifdef _WIN32
		(void)timeout_ms; /* SO_RCVTIMEO bounds each recv; nothing interrupts it */
#else
		r.deadline = now_ms() + timeout_ms;
#endif
		int rc = tc_frame_read(fd_read, &r, TC_MAX_FRAME, reply);
		if (rc != TC_OK)
			return r.timed_out ? TC_ERR_TIMEOUT : rc;
		if (reply->type != TC_TYPE_PROGRESS)
			return TC_OK;
		tc_frame_release(reply);
	}
}

/* hello performs the handshake: Hello{1: version, 2: client}, and a
 * HelloReply{1: version} that names our version. */
static int hello(struct tc_conn *c, sock_t fd)
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
	sock_t fd = sock_open();
	if (fd == NO_SOCK)
		return TC_ERR_CONNECT;
	set_timeouts(fd, c->timeout_ms);
	int rc = connect_fd(fd, &sa, c->timeout_ms);
	if (rc == TC_OK)
		rc = hello(c, fd);
	if (rc != TC_OK) {
		sock_close(fd);
		return rc;
	}
	tc_mutex_lock(&c->mu);
	c->gen++;
	c->sent = c->read = 0;
	c->dead = 0;
	atomic_store(&c->fd, fd);
	tc_mutex_unlock(&c->mu);
	return TC_OK;
}

int tc_conn_send(tc_conn *c, uint64_t gen, uint8_t type, const uint8_t *body, size_t len, tc_ticket *t)
{
	if (c == NULL || t == NULL || (body == NULL && len != 0))
		return TC_ERR_ARGS;
	memset(t, 0, sizeof *t);
	if (len > TC_MAX_FRAME - 1)
		return TC_ERR_FRAME_TOO_LARGE;
	tc_mutex_lock(&c->wmu);
	tc_mutex_lock(&c->mu);
	int rc = TC_OK;
	if (c->dead || atomic_load(&c->fd) == NO_SOCK) {
		if (gen != 0) {
			rc = TC_ERR_CLOSED; /* the connection the caller means is gone */
		} else {
			/* Wait for a reader of the dead connection to leave. */
			while (c->reading)
				tc_cond_wait(&c->cv, &c->mu);
			sock_t fd = atomic_exchange(&c->fd, NO_SOCK);
			if (fd != NO_SOCK)
				sock_close(fd);
			clear_stash(c);
			tc_mutex_unlock(&c->mu);
			rc = dial(c);
			tc_mutex_lock(&c->mu);
		}
	} else if (gen != 0 && gen != c->gen) {
		rc = TC_ERR_CLOSED;
	}
	if (rc != TC_OK) {
		tc_mutex_unlock(&c->mu);
		tc_mutex_unlock(&c->wmu);
		return rc;
	}
	sock_t fd = atomic_load(&c->fd);
	t->gen = c->gen;
	t->seq = c->sent;
	tc_mutex_unlock(&c->mu);
	rc = send_frame(fd, type, body, len, c->timeout_ms);
	tc_mutex_lock(&c->mu);
	if (rc == TC_OK && t->gen == c->gen && !c->dead)
		c->sent++;
	else if (rc == TC_OK)
		rc = TC_ERR_CLOSED;
	else if (t->gen == c->gen)
		fail(c);
	tc_mutex_unlock(&c->mu);
	tc_mutex_unlock(&c->wmu);
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
	tc_mutex_lock(&c->mu);
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
			tc_cond_wait(&c->cv, &c->mu);
			continue;
		}
		/* Become the reader: read replies in order until ours. */
		c->reading = 1;
		sock_t fd = atomic_load(&c->fd);
		rc = TC_OK;
		while (rc == TC_OK && c->read <= t->seq) {
			uint64_t seq = c->read;
			tc_mutex_unlock(&c->mu);
			tc_frame f;
			rc = recv_reply(fd, &f, c->timeout_ms);
			tc_mutex_lock(&c->mu);
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
			tc_cond_broadcast(&c->cv);
		}
		c->reading = 0;
		if (rc != TC_OK && t->gen == c->gen)
			fail(c);
		if (c->dead && atomic_load(&c->fd) == fd) {
			atomic_store(&c->fd, NO_SOCK);
			sock_close(fd); /* fail() left it to us */
		}
		tc_cond_broadcast(&c->cv);
		if (rc == TC_OK)
			reply->gen = t->gen;
		break;
	}
	tc_mutex_unlock(&c->mu);
	return rc;
}

void tc_conn_forget(tc_conn *c, const tc_ticket *t)
{
	if (c == NULL || t == NULL)
		return;
	tc_mutex_lock(&c->mu);
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
	tc_mutex_unlock(&c->mu);
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
	tc_mutex_lock(&c->mu);
	int up = !c->dead && atomic_load(&c->fd) != NO_SOCK;
	if (gen != NULL)
		*gen = c->gen;
	tc_mutex_unlock(&c->mu);
	return up;
}
