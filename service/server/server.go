package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"github.com/tpmcard/tpmcard/service/wire"
	"github.com/tpmcard/tpmcard/tpmcard"
)

// Defaults for the Config's zero values. The CLI's help and the README
// quote these numbers; a test holds them to it.
const (
	DefaultSocket          = wire.DefaultSocket
	DefaultMaxConns        = 256
	DefaultMaxConnsPerUser = 16
	DefaultIdleTimeout     = 2 * time.Minute
	DefaultRequestTimeout  = 30 * time.Second
	maxSessionsPerConn     = 256
	maxRejecting           = 64 // connections being told TooManyConnections at once
)

// RandomSource gives random bytes from the TPM (TPM2_GetRandom, TPM 2.0
// Part 3 §16.1). crypto/rand is not a substitute: PKCS#11 C_GenerateRandom
// on a token promises the token's generator. tpmcard.Manager is one; New
// uses the Manager unless Config.Random names another source.
type RandomSource interface {
	Random(n int) ([]byte, error)
}

// Config configures a Server. Socket and Manager are required.
type Config struct {
	// Socket is the path of the unix socket; empty means DefaultSocket.
	Socket string
	// Manager owns the TPM and the cards. The server never closes it.
	Manager *tpmcard.Manager
	// Backend names the TPM backend ("device", "swtpm", "sim") for status
	// replies; Simulated says the TPM is software, so keys are not
	// hardware-protected (said in Hello replies, token info and status).
	Backend   string
	Simulated bool
	// CardGroup may use cards (list, sessions, login, sign, PIN changes);
	// empty means everyone may. AdminGroup may also provision, destroy,
	// generate and delete keys. uid 0 is always an admin. Each is a group
	// name or a numeric gid.
	CardGroup  string
	AdminGroup string
	// Logger receives the audit log: one debug line per request, info and
	// warn lines for security events. PINs and PUKs never reach it.
	Logger zerolog.Logger
	// MaxConns bounds the open connections (0: DefaultMaxConns); one more
	// gets a TooManyConnections error frame and is closed. An eighth of
	// them (at least one) is kept for administrators: other users
	// together never hold more than the rest, so no user can lock root
	// out.
	MaxConns int
	// MaxConnsPerUser bounds the open connections of one uid
	// (0: DefaultMaxConnsPerUser). Administrators have no such bound.
	MaxConnsPerUser int
	// IdleTimeout closes a connection that holds no session (and so no
	// login) and sends no request for that long (0: DefaultIdleTimeout;
	// negative: never). A connection with an open session is never
	// closed for being idle: a PKCS#11 application that stays logged in
	// keeps its connection for as long as it runs, and the PKCS#11
	// module opens a new connection by itself after an idle one closed.
	IdleTimeout time.Duration
	// RequestTimeout bounds how long a frame may take to arrive once its
	// first byte did, how long a reply may take to be written, and the
	// context handed to tpmcard calls that take one (0:
	// DefaultRequestTimeout). A TPM command already sent cannot be
	// interrupted; tpmcard's own retry limit bounds those.
	RequestTimeout time.Duration
	// Random serves GenerateRandom; nil means the Manager's (TPM2_GetRandom).
	Random RandomSource
	// Version is the service's build version, for Hello and status replies.
	Version string
	// TPMManufacturer and TPMFirmware describe the TPM in status replies.
	TPMManufacturer, TPMFirmware string
	// TPMState reports whether the TPM can be reached, for status replies
	// (backend.Link.State); nil means it always can.
	TPMState func() TPMState
	// TraceWire logs every frame at debug level, secrets redacted. The
	// environment switch TPMCARD_DEBUG=wire turns it on too.
	TraceWire bool
	// PIVState is the file that says which cards sit in PIV readers and
	// which keys in their slots (service/piv, docs/piv.md); empty leaves
	// PIV off.
	PIVState string
}

// TPMState is what the service knows of its TPM connection.
type TPMState struct {
	Up         bool
	DownSince  time.Time
	Err        error
	Reconnects uint64
}

func (c *Config) validate() error {
	switch {
	case c.Manager == nil:
		return errors.New("server: no card manager")
	case c.MaxConns < 0:
		return errors.New("server: negative MaxConns")
	case c.MaxConnsPerUser < 0:
		return errors.New("server: negative MaxConnsPerUser")
	case c.RequestTimeout < 0:
		return errors.New("server: negative RequestTimeout")
	}
	return nil
}

// Server serves cards over a unix socket. Create it with New, then Start
// and Stop it once.
type Server struct {
	cfg          Config
	m            *tpmcard.Manager
	log          zerolog.Logger
	cardGroup    groupSpec
	adminGroup   groupSpec
	random       RandomSource
	reqTimeout   time.Duration
	idleTimeout  time.Duration
	maxConns     int
	maxPerUser   int
	adminReserve int // connections only administrators may take
	baseCtx      context.Context
	cancelBase   context.CancelFunc
	peerOverride func(Peer) Peer // tests: pretend to be another peer
	beforeHandle func(wire.Type) // tests: hold a request in flight

	mu       sync.Mutex
	ln       *net.UnixListener
	conns    map[*conn]struct{}
	perUID   map[uint32]int // open connections of each non-admin uid
	others   int            // open connections of non-admins
	nextConn uint64
	started  bool
	stopping bool
	wg       sync.WaitGroup

	rejecting atomic.Int32

	logins logins
	events *events
	piv    pivReaders // pivreaders.go

	// ownerGen counts owner changes: a session opened before the last
	// one has its card's access checked again at its next use.
	ownerGen atomic.Uint64
}

// New checks cfg and returns a Server that is not yet listening.
func New(cfg Config) (*Server, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if cfg.Socket == "" {
		cfg.Socket = DefaultSocket
	}
	s := &Server{
		cfg:         cfg,
		m:           cfg.Manager,
		log:         cfg.Logger,
		random:      cfg.Random,
		reqTimeout:  cfg.RequestTimeout,
		idleTimeout: cfg.IdleTimeout,
		maxConns:    cfg.MaxConns,
		maxPerUser:  cfg.MaxConnsPerUser,
		conns:       map[*conn]struct{}{},
		perUID:      map[uint32]int{},
		events:      newEvents(),
	}
	if s.reqTimeout == 0 {
		s.reqTimeout = DefaultRequestTimeout
	}
	if s.maxConns == 0 {
		s.maxConns = DefaultMaxConns
	}
	if s.maxPerUser == 0 {
		s.maxPerUser = DefaultMaxConnsPerUser
	}
	s.adminReserve = max(1, s.maxConns/8)
	if s.maxConns == 1 {
		s.adminReserve = 0
	}
	switch {
	case s.idleTimeout == 0:
		s.idleTimeout = DefaultIdleTimeout
	case s.idleTimeout < 0:
		s.idleTimeout = 0 // never
	}
	if os.Getenv("TPMCARD_DEBUG") == "wire" {
		s.cfg.TraceWire = true
	}
	if s.random == nil {
		if r, ok := any(cfg.Manager).(RandomSource); ok {
			s.random = r
		}
	}
	var err error
	if s.cardGroup, err = resolveGroup(cfg.CardGroup); err != nil {
		return nil, fmt.Errorf("server: card group: %w", err)
	}
	if s.adminGroup, err = resolveGroup(cfg.AdminGroup); err != nil {
		return nil, fmt.Errorf("server: admin group: %w", err)
	}
	s.logins.init(s.m)
	return s, nil
}

// Socket is the path the server listens on.
func (s *Server) Socket() string { return s.cfg.Socket }

// Start listens on the socket and serves connections in the background. It
// returns once the socket accepts connections. ctx bounds only the start
// itself; use Stop to stop.
func (s *Server) Start(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if !platformSupported {
		_, err := listen(s.cfg.Socket)
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		return errors.New("server: already started")
	}
	ln, err := listen(s.cfg.Socket)
	if err != nil {
		return fmt.Errorf("server: listening on %s: %w", s.cfg.Socket, err)
	}
	s.ln = ln
	s.started = true
	s.baseCtx, s.cancelBase = context.WithCancel(context.Background())
	s.wg.Add(1)
	go s.acceptLoop(ln)
	ev := s.log.Info().Str("socket", s.cfg.Socket).Str("backend", s.cfg.Backend).Bool("simulated", s.cfg.Simulated)
	if s.cardGroup.set {
		ev = ev.Uint32("card_gid", s.cardGroup.gid)
	}
	if s.adminGroup.set {
		ev = ev.Uint32("admin_gid", s.adminGroup.gid)
	}
	ev.Int("max_conns", s.maxConns).Int("max_conns_per_user", s.maxPerUser).Dur("idle_timeout", s.idleTimeout).
		Msg("service listening")
	if s.cfg.Simulated {
		s.log.Warn().Str("backend", s.cfg.Backend).Msg("the TPM is simulated: keys are NOT hardware-protected")
	}
	s.warnOwnerless()
	s.startPIV()
	return nil
}

func (s *Server) acceptLoop(ln *net.UnixListener) {
	defer s.wg.Done()
	var backoff time.Duration
	for {
		nc, err := ln.AcceptUnix()
		if err != nil {
			s.mu.Lock()
			stopping := s.stopping
			s.mu.Unlock()
			if stopping || errors.Is(err, net.ErrClosed) {
				return
			}
			// EMFILE and friends: wait and try again.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.log.Error().Err(err).Dur("retry_in", backoff).Msg("accepting a connection")
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		s.admit(nc)
	}
}

// admit registers a new connection and serves it, or turns it away. The
// peer's credentials are read here, before any frame, so that the limits
// can count connections per uid.
func (s *Server) admit(nc *net.UnixConn) {
	p, err := peerOf(nc)
	if err != nil {
		s.log.Error().Err(err).Msg("reading peer credentials: closing")
		nc.Close()
		return
	}
	if s.peerOverride != nil {
		p = s.peerOverride(p)
	}
	r := roleOf(p, s.cardGroup, s.adminGroup)
	s.mu.Lock()
	if s.stopping {
		s.mu.Unlock()
		nc.Close()
		return
	}
	s.nextConn++
	id := s.nextConn
	if why := s.full(p, r); why != "" {
		s.mu.Unlock()
		s.log.Warn().Uint64("conn", id).Uint32("uid", p.UID).Int32("pid", p.PID).Int("max_conns", s.maxConns).
			Int("max_conns_per_user", s.maxPerUser).Str("reason", why).Msg("too many connections: refusing one")
		if s.rejecting.Add(1) > maxRejecting {
			s.rejecting.Add(-1)
			nc.Close() // a flood: no explanation for this one
			return
		}
		go func() {
			defer s.rejecting.Add(-1)
			reject(nc, wire.NewError(wire.TooManyConnections, why))
		}()
		return
	}
	c := newConn(s, id, nc)
	c.peer, c.role, c.groups = p, r, append([]uint32{p.GID}, p.Groups...)
	s.conns[c] = struct{}{}
	if !r.admin {
		s.perUID[p.UID]++
		s.others++
	}
	s.wg.Add(1)
	s.mu.Unlock()
	go c.serve()
}

// full says why a connection of peer p may not be admitted now, or "".
// Administrators may use every slot; other users share all but
// adminReserve of them, at most maxPerUser each. s.mu is held.
func (s *Server) full(p Peer, r role) string {
	switch {
	case len(s.conns) >= s.maxConns:
		return fmt.Sprintf("the service already serves %d connections", s.maxConns)
	case r.admin:
		return ""
	case s.perUID[p.UID] >= s.maxPerUser:
		return fmt.Sprintf("uid %d already has %d connections open", p.UID, s.maxPerUser)
	case s.others >= s.maxConns-s.adminReserve:
		return fmt.Sprintf("the service already serves %d connections of users who are not administrators", s.others)
	}
	return ""
}

// reject answers the connection's Hello with an error frame and closes.
// Reading the Hello first (briefly, and at most a small frame) lets the
// client finish its write and read the reason instead of a broken pipe.
func reject(nc *net.UnixConn, se *wire.StatusError) {
	_ = nc.SetDeadline(time.Now().Add(time.Second))
	_, _, _ = wire.ReadFrame(nc, 4096)
	_ = wire.NewConn(nc).Send(wire.TypeError, se)
	nc.Close()
}

func (s *Server) forget(c *conn) {
	s.mu.Lock()
	if _, ok := s.conns[c]; ok && !c.role.admin {
		s.others--
		if s.perUID[c.peer.UID]--; s.perUID[c.peer.UID] <= 0 {
			delete(s.perUID, c.peer.UID)
		}
	}
	delete(s.conns, c)
	s.mu.Unlock()
}

// Stop stops accepting connections, lets requests in progress finish and
// send their replies, then closes every connection, which logs each one
// out. If ctx ends first, Stop closes the connections at once and returns
// ctx's error; requests still inside a TPM command then finish without
// anyone to reply to. Stop never exits the process and does not close the
// Manager.
func (s *Server) Stop(ctx context.Context) error {
	s.mu.Lock()
	if !s.started || s.stopping {
		s.mu.Unlock()
		return nil
	}
	s.stopping = true
	s.events.stop()     // WaitEvent requests end now
	err := s.ln.Close() // unlinks the socket
	for c := range s.conns {
		c.shutdown()
	}
	s.mu.Unlock()

	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		s.mu.Lock()
		for c := range s.conns {
			c.nc.Close()
		}
		s.mu.Unlock()
		s.cancelBase()
		s.stopPIV()
		s.log.Warn().Msg("service stop: gave up waiting for requests in progress")
		return ctx.Err()
	}
	s.cancelBase()
	s.stopPIV()
	s.log.Info().Msg("service stopped")
	if err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("server: closing listener: %w", err)
	}
	return nil
}

// TPMLost tells the server that the Manager lost the TPM and forgot every
// PIN proof (tpmcard.WithTPMLost): every application's login ends, and
// each must log in again once the TPM answers. It returns at once (it may
// run with the Manager locked, which a connection holding a card's login
// lock may be waiting for).
func (s *Server) TPMLost() {
	s.log.Warn().Str("event", "tpm_lost").Msg("the TPM cannot be reached: every login ended; reconnecting")
	go s.logins.endAll()
}
