/*
 * tc_conn.h: frames and the connection to the tpmcard service, for the
 * PKCS#11 module (service/wire/frame.go, conn.go on the Go side).
 *
 * A frame is a 4-byte big-endian length, then that many bytes: one type
 * byte and the CBOR body. The length is never 0 and never above
 * TC_MAX_FRAME, in either direction.
 *
 * A tc_conn is one connection to the service's AF_UNIX socket, dialed (and
 * greeted with Hello) when first used and again after an error. Requests
 * pipeline: a thread writes its request (tc_conn_send, which numbers it)
 * and then waits for the reply to that number (tc_conn_recv), while other
 * threads write theirs; the service answers in order, and whichever thread
 * reads the socket keeps the replies it reads for others. It starts no
 * thread. Blocking I/O retries EINTR, a reply that does not come within
 * the timeout (60 s by default) ends the connection, writes never raise
 * SIGPIPE, and the descriptor is close-on-exec.
 *
 * Fork: a pthread_atfork child handler marks every tc_conn of the process
 * dead and closes the child's copy of its descriptor without writing to
 * it, so the parent's connection is untouched; the child's next call dials
 * a connection of its own. glibc drops the handler when the library is
 * dlclose'd.
 *
 * Windows (10 1803 and later, which have AF_UNIX): the same, over Winsock,
 * started once per process and never cleaned up; the socket is not
 * inherited by child processes, and there is no fork to handle.
 */
#ifndef TPMCARD_TC_CONN_H
#define TPMCARD_TC_CONN_H

#include <stddef.h>
#include <stdint.h>

#include "tc_cbor.h"

#define TC_MAX_FRAME (1u << 20)
#define TC_PROTOCOL_VERSION 1
#ifdef _WIN32
/* %ProgramData%\tpmcard\tpmcard.sock (C:\ProgramData when unset). */
#define TC_DEFAULT_SOCKET_BASE_ENV "ProgramData"
#define TC_DEFAULT_SOCKET_BASE "C:\\ProgramData"
#define TC_DEFAULT_SOCKET_NAME "\\tpmcard\\tpmcard.sock"
#else
#define TC_DEFAULT_SOCKET "/run/tpmcard/tpmcard.sock"
#endif
#define TC_SOCKET_ENV "TPMCARD_SOCKET"
#define TC_DEFAULT_TIMEOUT_MS 60000

/* Frame types the connection itself handles (service/wire/messages.go). */
#define TC_TYPE_HELLO 0x01
#define TC_TYPE_HELLO_REPLY 0x81
#define TC_TYPE_PROGRESS 0xfd
#define TC_TYPE_UNSUPPORTED 0xfe
#define TC_TYPE_ERROR 0xff

/* Connection results (the codec's are below 100). */
enum {
	TC_ERR_CONNECT = 100,     /* no service at the socket */
	TC_ERR_IO = 101,          /* a read or write failed, or the stream ended inside a frame */
	TC_ERR_TIMEOUT = 102,     /* no reply within the timeout */
	TC_ERR_CLOSED = 103,      /* the service closed the connection */
	TC_ERR_PROTOCOL = 104,    /* a Hello reply that does not decode */
	TC_ERR_VERSION = 105,     /* the service speaks another protocol version */
	TC_ERR_NOMEM = 106,
	TC_ERR_EMPTY_FRAME = 107, /* a frame of length 0 */
	TC_ERR_FRAME_TOO_LARGE = 108,
	TC_ERR_REFUSED = 109,     /* the service answered Hello with an error */
};

/* One received frame. body points into mem, which tc_frame_release wipes
 * and frees. gen is the number of the connection it came on (see
 * tc_conn_call). */
typedef struct {
	uint8_t type;
	const uint8_t *body;
	size_t len;
	uint64_t gen;
	uint8_t *mem;
	size_t memlen;
} tc_frame;

void tc_frame_release(tc_frame *f);

/* tc_frame_header writes the 5 bytes before a body of body_len bytes:
 * TC_ERR_FRAME_TOO_LARGE if the frame would exceed TC_MAX_FRAME. */
int tc_frame_header(uint8_t hdr[5], uint8_t type, size_t body_len);

/* A reader in the manner of read(2): it returns the number of bytes read
 * (at least 1), 0 at the end of the stream, or -1 on an error. */
typedef long (*tc_read_fn)(void *ctx, uint8_t *buf, size_t n);

/* tc_frame_read reads one frame. limit caps its length (0 or anything
 * above TC_MAX_FRAME means TC_MAX_FRAME). A stream that ends before the
 * first byte gives TC_ERR_CLOSED, one that ends inside a frame or a reader
 * error TC_ERR_IO; a length of 0 gives TC_ERR_EMPTY_FRAME and one over the
 * limit TC_ERR_FRAME_TOO_LARGE, after only the 4 length bytes were read
 * and with nothing allocated. */
int tc_frame_read(tc_read_fn rd, void *ctx, uint32_t limit, tc_frame *out);

typedef struct tc_conn tc_conn;

/* tc_conn_open makes a connection object for the socket at path (NULL:
 * $TPMCARD_SOCKET, or the default above) that says client in Hello; it
 * dials when first used. */
int tc_conn_open(tc_conn **out, const char *path, const char *client);

/* tc_conn_close closes the connection and frees c. No call may be under
 * way on it. */
void tc_conn_close(tc_conn *c);

/* tc_conn_set_timeout sets how long a call waits for each reply frame
 * (and for a write to go through). */
void tc_conn_set_timeout(tc_conn *c, int ms);

/* A tc_ticket names one request written on one connection. */
typedef struct {
	uint64_t gen; /* the connection's generation */
	uint64_t seq; /* the request's number on it */
} tc_ticket;

/* tc_conn_send writes one request and returns its ticket. gen 0 means any
 * connection: it dials first if there is none (it never was, it failed,
 * or this is a forked child). Any other gen is a connection the caller
 * holds state on (sessions): if that one is gone, TC_ERR_CLOSED and
 * nothing is sent. A write error ends the connection. */
int tc_conn_send(tc_conn *c, uint64_t gen, uint8_t type, const uint8_t *body, size_t len, tc_ticket *t);

/* tc_conn_recv waits for the final reply to t (Progress frames skipped)
 * and returns it in *reply, which the caller releases. Each ticket is
 * received once, or forgotten. TC_ERR_CLOSED: the connection ended
 * before the reply came; an I/O or framing error ends it for every
 * ticket on it. */
int tc_conn_recv(tc_conn *c, const tc_ticket *t, tc_frame *reply);

/* tc_conn_forget says nobody will receive t: its reply is dropped when
 * it arrives (or now, if it has). */
void tc_conn_forget(tc_conn *c, const tc_ticket *t);

/* tc_conn_drop ends the connection now (C_Finalize): threads waiting on
 * it get TC_ERR_CLOSED; the next tc_conn_send with gen 0 dials again. */
void tc_conn_drop(tc_conn *c);

/* tc_conn_call sends one request (type, body[0:len]) and returns its final
 * reply in *reply, skipping Progress frames: the success reply, Error or
 * Unsupported, which the caller decodes: tc_conn_send with gen 0, then
 * tc_conn_recv. Any I/O
 * or framing error ends the connection; reply->gen then changes at the
 * next call, which tells the caller that the service forgot the sessions
 * and logins of the old one. The caller wipes body if it holds a PIN. */
int tc_conn_call(tc_conn *c, uint8_t type, const uint8_t *body, size_t len, tc_frame *reply);

/* tc_conn_connected reports whether c has a live connection, and its
 * generation (how many connections it has dialed). */
int tc_conn_connected(tc_conn *c, uint64_t *gen);

#endif
