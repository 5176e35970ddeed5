package server

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime/debug"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"github.com/tpmcard/tpmcard/service/wire"
	"github.com/tpmcard/tpmcard/tpmcard"
)

// conn is one client connection: one PKCS#11 application with its
// sessions and object handles. Requests on a connection are handled one
// at a time, in order; connections run in parallel.
type conn struct {
	s      *Server
	id     uint64
	nc     *net.UnixConn
	br     *bufio.Reader
	w      *wire.Conn
	peer   Peer     // set by admit, then read-only
	role   role     // set by admit, then read-only
	groups []uint32 // the peer's primary and supplementary groups
	log    zerolog.Logger

	mu      sync.Mutex // guards busy and closing
	busy    bool       // a request is being handled
	closing bool       // Stop asked the connection to end after this request

	// Used by the serving goroutine only.
	sessions    map[uint32]*session
	nextSession uint32
	objects     objects
	eventSeq    uint64              // the last card event this connection was told of
	slots       map[uint64]string   // slot ID -> serial of every card slot shown (slots.go)
	revoked     map[uint32]struct{} // sessions the service closed, not the peer
	// destroyedOwner is the owner of the card DestroyCard just removed,
	// for the removal event.
	destroyedOwner *tpmcard.Owner
}

// session is a PKCS#11 session: a number inside the connection, bound to
// one card.
type session struct {
	serial string
	rw     bool
	gen    uint64 // Server.ownerGen when the card's access was last checked

	sign       *signOp           // the signature SignInit started (sign.go)
	signInitRV *wire.StatusError // the last SignInit's failure, not yet answered again
}

func newConn(s *Server, id uint64, nc *net.UnixConn) *conn {
	c := &conn{s: s, id: id, nc: nc, br: bufio.NewReader(nc), sessions: map[uint32]*session{}, eventSeq: s.events.now()}
	c.objects.init()
	c.w = wire.NewConn(struct {
		io.Reader
		io.Writer
	}{c.br, nc})
	if s.cfg.TraceWire {
		c.w.Trace = func(dir string, t wire.Type, msg any) {
			c.log.Debug().Str("dir", dir).Stringer("type", t).Str("msg", sprint(msg)).Msg("wire")
		}
	}
	return c
}

// serve runs the connection until the peer leaves, a frame-level error,
// a timeout or Stop.
func (c *conn) serve() {
	defer c.s.wg.Done()
	defer c.cleanup()

	p := c.peer
	c.log = c.s.log.With().Uint64("conn", c.id).Uint32("uid", p.UID).Uint32("gid", p.GID).
		Int32("pid", p.PID).Str("exe", p.Exe).Logger()
	c.log.Debug().Bool("admin", c.role.admin).Bool("card_user", c.role.user).Msg("connected")

	if !c.hello() {
		return
	}
	for {
		if !c.awaitRequest() {
			return
		}
		_ = c.nc.SetReadDeadline(time.Now().Add(c.s.reqTimeout))
		t, msg, err := c.w.RecvMsg()
		switch {
		case errors.Is(err, wire.ErrUnknownType):
			c.log.Debug().Stringer("type", t).Msg("unknown request type")
			c.reply(t, &wire.UnsupportedReply{Type: t})
			continue
		case errors.Is(err, wire.ErrDecode):
			c.log.Debug().Stringer("type", t).Err(err).Msg("undecodable request")
			c.reply(t, wire.Errorf(wire.BadRequest, "undecodable %v request", t))
			continue
		case err != nil:
			c.frameError(err)
			return
		}
		if !c.begin() {
			return
		}
		c.handle(t, msg)
		if !c.end() {
			return
		}
	}
}

// hello reads the first frame, which must be a Hello of our version.
func (c *conn) hello() bool {
	_ = c.nc.SetReadDeadline(time.Now().Add(c.s.reqTimeout))
	t, msg, err := c.w.RecvMsg()
	if err != nil && !errors.Is(err, wire.ErrUnknownType) && !errors.Is(err, wire.ErrDecode) {
		c.frameError(err)
		return false
	}
	h, ok := msg.(*wire.Hello)
	if !ok {
		c.log.Warn().Stringer("type", t).Msg("first frame is not Hello: closing")
		c.reply(t, wire.Errorf(wire.BadRequest, "the first frame must be Hello, not %v", t))
		return false
	}
	if h.Version != wire.Version {
		c.log.Warn().Uint16("version", h.Version).Str("client", h.Client).Msg("protocol version mismatch: closing")
		c.reply(t, wire.Errorf(wire.VersionMismatch, "server speaks protocol version %d, client %d", wire.Version, h.Version))
		return false
	}
	c.log = c.log.With().Str("client", h.Client).Logger()
	c.log.Debug().Msg("hello")
	return c.reply(t, &wire.HelloReply{Version: wire.Version, Server: c.s.serverName(), Simulated: c.s.cfg.Simulated})
}

func (s *Server) serverName() string {
	if s.cfg.Version == "" {
		return "tpmcard"
	}
	return "tpmcard/" + s.cfg.Version
}

// awaitRequest waits for the first byte of the next request: at most
// IdleTimeout when the connection holds no session, since without a
// session it holds no login either; for as long as it takes otherwise.
func (c *conn) awaitRequest() bool {
	var deadline time.Time
	if c.s.idleTimeout > 0 && len(c.sessions) == 0 {
		deadline = time.Now().Add(c.s.idleTimeout)
	}
	_ = c.nc.SetReadDeadline(deadline)
	if _, err := c.br.Peek(1); err != nil {
		var ne net.Error
		switch {
		case errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed):
		case errors.As(err, &ne) && ne.Timeout():
			c.log.Info().Dur("idle_timeout", c.s.idleTimeout).Msg("idle connection closed")
		default:
			c.log.Debug().Err(err).Msg("reading")
		}
		return false
	}
	return true
}

// frameError ends the connection after an error that leaves the stream out
// of step. Bad lengths get a last BadRequest frame saying why.
func (c *conn) frameError(err error) {
	var ne net.Error
	switch {
	case errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed):
		return
	case errors.Is(err, wire.ErrEmptyFrame), errors.Is(err, wire.ErrFrameTooLarge):
		c.log.Warn().Err(err).Msg("bad frame length: closing")
		c.reply(0, wire.Errorf(wire.BadRequest, "bad frame: %v", err))
	case errors.As(err, &ne) && ne.Timeout():
		c.log.Warn().Err(err).Dur("request_timeout", c.s.reqTimeout).Msg("incomplete frame: closing")
	default:
		c.log.Warn().Err(err).Msg("reading frame: closing")
	}
}

// reply sends one frame; t is the request it answers, for the log. It
// reports whether the write worked.
func (c *conn) reply(t wire.Type, msg any) bool {
	_ = c.nc.SetWriteDeadline(time.Now().Add(c.s.reqTimeout))
	var err error
	if se, ok := msg.(*wire.StatusError); ok {
		err = c.w.Send(wire.TypeError, withRV(t, se)) // ckrv.go
	} else {
		err = c.w.SendMsg(msg)
	}
	if err != nil {
		c.log.Debug().Err(err).Stringer("request", t).Msg("writing reply")
		return false
	}
	return true
}

// begin marks a request in progress; false means Stop came first.
func (c *conn) begin() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing {
		return false
	}
	c.busy = true
	return true
}

// end marks the request done; false means Stop is waiting for it.
func (c *conn) end() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.busy = false
	return !c.closing
}

// shutdown ends the connection now if it is idle, or after the request in
// progress.
func (c *conn) shutdown() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closing = true
	if !c.busy {
		c.nc.Close()
	}
}

// cleanup runs when the connection ends: PKCS#11 "Finalize" for this
// application.
func (c *conn) cleanup() {
	for _, serial := range c.s.logins.logoutAll(c) {
		c.log.Info().Str("card", serial).Msg("logged out: connection closed")
	}
	c.nc.Close()
	c.s.forget(c)
	c.log.Debug().Msg("disconnected")
}

// handle runs one request and sends its reply, then logs one line.
func (c *conn) handle(t wire.Type, msg any) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(c.s.baseCtx, c.s.reqTimeout)
	defer cancel()
	reply, err := c.safeDispatch(ctx, t, msg)
	c.publishAfter(msg, reply)
	status := wire.OK
	switch {
	case err != nil:
		se, generic := toStatus(err)
		if generic || serverSide(se.Status) {
			c.log.Error().Stringer("request", t).Err(err).Msg("request failed")
		}
		status = se.Status
		c.reply(t, se)
	case reply == nil:
		status = wire.Unsupported
		c.reply(t, &wire.UnsupportedReply{Type: t})
	default:
		c.reply(t, reply)
		if p, ok := reply.(*wire.Provisioned); ok {
			p.PUK.Wipe() // a generated PUK is shown once
		}
	}
	c.log.Debug().Stringer("request", t).Stringer("status", status).Dur("took", time.Since(start)).Msg("request")
}

// safeDispatch turns a panic in a handler into an Internal reply: one bad
// request must not take the service, and every other connection, down.
func (c *conn) safeDispatch(ctx context.Context, t wire.Type, msg any) (reply any, err error) {
	defer func() {
		if r := recover(); r != nil {
			c.log.Error().Stringer("request", t).Str("panic", fmt.Sprint(r)).Str("stack", string(debug.Stack())).Msg("request panicked")
			reply, err = nil, fmt.Errorf("handler panicked: %v", r)
		}
	}()
	if c.s.beforeHandle != nil {
		c.s.beforeHandle(t)
	}
	return c.dispatch(ctx, msg)
}

// progress sends a Progress frame before the final reply.
func (c *conn) progress(p wire.Progress) {
	_ = c.nc.SetWriteDeadline(time.Now().Add(c.s.reqTimeout))
	_ = c.w.Send(wire.TypeProgress, &p)
}
