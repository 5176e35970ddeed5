//go:build linux

package server

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tpmcard/tpmcard/service/client"
	"github.com/tpmcard/tpmcard/service/p11"
	"github.com/tpmcard/tpmcard/service/wire"
)

// TestUnknownAndMalformedRequests: what the stream survives, and what ends
// only the offending connection.
func TestUnknownAndMalformedRequests(t *testing.T) {
	e := newEnv(t, nil, func(c *Config) { c.RequestTimeout = 300 * time.Millisecond })
	bystander := e.dial()
	serial := e.provision(bystander)

	served := func() {
		t.Helper()
		if _, err := bystander.ListCards(); err != nil {
			t.Fatalf("the other client is no longer served: %v", err)
		}
	}

	t.Run("ok/unknown-type-then-more", func(t *testing.T) {
		r := e.raw(true)
		if err := wire.WriteFrame(r.nc, 0x7e, []byte{0xa0}); err != nil {
			t.Fatal(err)
		}
		typ, body, err := r.next()
		if err != nil || typ != wire.TypeUnsupported {
			t.Fatalf("reply %v, %v", typ, err)
		}
		var u wire.UnsupportedReply
		if err := wire.Unmarshal(body, &u); err != nil || u.Type != 0x7e {
			t.Errorf("unsupported reply %+v, %v", u, err)
		}
		// Reply types sent as requests are Unsupported too.
		if err := wire.WriteFrame(r.nc, wire.TypeObjectCreated, []byte{0xa0}); err != nil {
			t.Fatal(err)
		}
		if typ, _, err := r.next(); err != nil || typ != wire.TypeUnsupported {
			t.Fatalf("ObjectCreated as request: %v, %v", typ, err)
		}
		if err := wire.WriteFrame(r.nc, wire.TypeAck, []byte{0xa0}); err != nil {
			t.Fatal(err)
		}
		if typ, _, err := r.next(); err != nil || typ != wire.TypeUnsupported {
			t.Fatalf("Ack as request: %v, %v", typ, err)
		}
		var cards wire.Cards
		if err := r.w.Call(&wire.ListCards{}, &cards); err != nil || len(cards.Cards) != 1 {
			t.Fatalf("ListCards after unknown types: %v, %v", cards, err)
		}
	})

	t.Run("ok/garbage-body-then-more", func(t *testing.T) {
		r := e.raw(true)
		for _, body := range [][]byte{{0xff, 0x00, 0x13}, {0x01}, {}, []byte("not cbor at all")} {
			if err := wire.WriteFrame(r.nc, wire.TypeOpenSession, body); err != nil {
				t.Fatal(err)
			}
			typ, b, err := r.next()
			if err != nil || typ != wire.TypeError {
				t.Fatalf("garbage %x: reply %v, %v", body, typ, err)
			}
			var se wire.StatusError
			if err := wire.Unmarshal(b, &se); err != nil || se.Status != wire.BadRequest {
				t.Fatalf("garbage %x: %+v, %v", body, se, err)
			}
		}
		var opened wire.SessionOpened
		if err := r.w.Call(&wire.OpenSession{Serial: serial}, &opened); err != nil {
			t.Fatalf("OpenSession after garbage: %v", err)
		}
	})

	closedAfterError := func(t *testing.T, r *rawConn, want wire.Status) {
		t.Helper()
		typ, b, err := r.next()
		if err != nil || typ != wire.TypeError {
			t.Fatalf("reply %v, %v", typ, err)
		}
		var se wire.StatusError
		if err := wire.Unmarshal(b, &se); err != nil || se.Status != want {
			t.Fatalf("error %+v, %v; want %v", se, err, want)
		}
		if _, _, err := r.next(); !errors.Is(err, io.EOF) {
			t.Fatalf("connection not closed: %v", err)
		}
	}

	t.Run("fail/zero-length-frame", func(t *testing.T) {
		r := e.raw(true)
		r.nc.Write([]byte{0, 0, 0, 0})
		closedAfterError(t, r, wire.BadRequest)
		served()
	})

	t.Run("fail/oversized-frame", func(t *testing.T) {
		r := e.raw(true)
		r.nc.Write(binary.BigEndian.AppendUint32(nil, wire.MaxFrame+1))
		closedAfterError(t, r, wire.BadRequest)
		served()
	})

	t.Run("fail/half-frame-then-silence", func(t *testing.T) {
		r := e.raw(true)
		r.nc.Write(append(binary.BigEndian.AppendUint32(nil, 100), byte(wire.TypeListCards), 0xa0))
		served() // while the half frame waits
		start := time.Now()
		if _, _, err := r.next(); !errors.Is(err, io.EOF) {
			t.Fatalf("half frame: %v, want the connection closed", err)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("closed after %v", d)
		}
		served()
		if !strings.Contains(e.logs.String(), "incomplete frame: closing") {
			t.Error("the timeout is not logged")
		}
	})

	t.Run("fail/first-frame-not-hello", func(t *testing.T) {
		r := e.raw(false)
		if err := r.w.Send(wire.TypeListCards, &wire.ListCards{}); err != nil {
			t.Fatal(err)
		}
		closedAfterError(t, r, wire.BadRequest)
	})

	t.Run("fail/version-mismatch", func(t *testing.T) {
		r := e.raw(false)
		if err := r.w.Send(wire.TypeHello, &wire.Hello{Version: wire.Version + 1}); err != nil {
			t.Fatal(err)
		}
		closedAfterError(t, r, wire.VersionMismatch)
	})

	t.Run("fail/second-hello", func(t *testing.T) {
		r := e.raw(true)
		wantStatus(t, "second Hello", r.w.Call(&wire.Hello{Version: wire.Version}, nil), wire.BadRequest)
	})

	t.Run("fail/unknown-session-and-object", func(t *testing.T) {
		_, err := bystander.GetAttributes(999, 1, p11.CKAClass)
		wantStatus(t, "unknown session", err, wire.SessionInvalid)
		s := mustOpen(t, bystander, serial, false)
		_, err = bystander.GetAttributes(s, 12345, p11.CKAClass)
		wantStatus(t, "unknown object", err, wire.ObjectNotFound)
		_, err = bystander.OpenSession("no-such-card", false)
		wantStatus(t, "unknown card", err, wire.CardNotFound)
		wantStatus(t, "logout when not logged in", bystander.Logout(s), wire.NotLoggedIn)
		wantStatus(t, "bad user type", bystander.Login(s, 9, testPIN.Clone()), wire.UserTypeInvalid)
	})
}

// TestConcurrentClients: 64 connections log in and sign at once.
func TestConcurrentClients(t *testing.T) {
	e := newEnv(t, nil, nil)
	admin := e.dial()
	serial := e.provision(admin)
	id := e.generate(admin, serial, wire.AlgECDSAP256)
	s0 := mustOpen(t, admin, serial, false)
	pub := publicKeyOf(t, admin, s0, id)

	const clients, signs = 64, 3
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := client.Dial(e.sock)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			s, err := c.OpenSession(serial, false)
			if err == nil {
				err = c.Login(s, wire.UserNormal, testPIN.Clone())
			}
			var hs []uint64
			if err == nil {
				hs, err = c.FindObjects(s, wire.Attribute{Type: p11.CKAClass, Value: wire.ULong(ckoPrivateKey)})
			}
			if err != nil {
				errs <- err
				return
			}
			for j := range signs {
				d := sha256.Sum256([]byte{byte(i), byte(j)})
				rs, err := c.Sign(s, hs[0], p11.CKMECDSA, nil, d[:])
				if err != nil {
					errs <- err
					return
				}
				verifyECDSA(t, pub, d[:], rs)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	waitFor(t, "every client's login is released", func() bool { return !e.m.LoggedIn(serial) })
}

// TestClientKilledMidSession: a connection that vanishes without Logout
// (a killed process) releases its login.
func TestClientKilledMidSession(t *testing.T) {
	e := newEnv(t, nil, nil)
	serial := e.provision(e.dial())
	r := e.raw(true)
	var opened wire.SessionOpened
	if err := r.w.Call(&wire.OpenSession{Serial: serial}, &opened); err != nil {
		t.Fatal(err)
	}
	if err := r.w.Call(&wire.Login{Session: opened.Session, UserType: wire.UserNormal, PIN: testPIN.Clone()}, nil); err != nil {
		t.Fatal(err)
	}
	if !e.m.LoggedIn(serial) {
		t.Fatal("not logged in")
	}
	// Half a request, then the process dies.
	r.nc.Write([]byte{0, 0, 0, 9, byte(wire.TypeSign)})
	r.nc.Close()
	waitFor(t, "the login is released", func() bool { return !e.m.LoggedIn(serial) })
}

// TestStopCompletesInFlight: Stop waits for a request in progress, which
// gets its reply, and new connections are refused.
func TestStopCompletesInFlight(t *testing.T) {
	e := newEnv(t, nil, nil)
	c := e.dial()
	serial := e.provision(c)
	id := e.generate(c, serial, wire.AlgECDSAP256)
	s := mustOpen(t, c, serial, false)
	mustLogin(t, c, s)
	priv := privateKey(t, c, s, id)
	idle := e.dial() // an idle connection is closed at once

	entered, release := make(chan struct{}), make(chan struct{})
	e.s.beforeHandle = func(t wire.Type) {
		if t == wire.TypeSign {
			close(entered)
			<-release
		}
	}
	type result struct {
		sig []byte
		err error
	}
	signed := make(chan result, 1)
	d := sha256.Sum256([]byte("in flight"))
	go func() {
		sig, err := c.Sign(s, priv, p11.CKMECDSA, nil, d[:])
		signed <- result{sig, err}
	}()
	<-entered
	stopped := make(chan error, 1)
	go func() { stopped <- e.s.Stop(context.Background()) }()
	waitFor(t, "the socket is gone", func() bool { _, err := os.Stat(e.sock); return err != nil })
	waitFor(t, "the idle connection is closed", func() bool { _, err := idle.ListCards(); return err != nil })
	select {
	case err := <-stopped:
		t.Fatalf("Stop returned (%v) with a request in flight", err)
	case <-time.After(200 * time.Millisecond):
	}
	close(release)
	r := <-signed
	if r.err != nil || len(r.sig) != 64 {
		t.Fatalf("the in-flight Sign: %x, %v", r.sig, r.err)
	}
	if err := <-stopped; err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if _, err := client.Dial(e.sock); err == nil {
		t.Error("Dial works after Stop")
	}
	if e.m.LoggedIn(serial) {
		t.Error("Stop left the card logged in")
	}
}

// TestStopTimeout: Stop gives up when its context ends.
func TestStopTimeout(t *testing.T) {
	e := newEnv(t, nil, nil)
	c := e.dial()
	release := make(chan struct{})
	entered := make(chan struct{})
	e.s.beforeHandle = func(t wire.Type) {
		if t == wire.TypeListCards {
			close(entered)
			<-release
		}
	}
	defer close(release)
	go c.ListCards()
	<-entered
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := e.s.Stop(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Stop = %v, want DeadlineExceeded", err)
	}
}

// TestMaxConns: one connection too many gets TooManyConnections.
func TestMaxConns(t *testing.T) {
	e := newEnv(t, nil, func(c *Config) { c.MaxConns = 2 })
	a, _ := e.dial(), e.dial()
	_, err := client.Dial(e.sock)
	wantStatus(t, "third connection", errors.Unwrap(err), wire.TooManyConnections)
	a.Close()
	waitFor(t, "a slot frees up", func() bool {
		c, err := client.Dial(e.sock)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
}

// TestIdleTimeout: a silent connection without a session is closed; one
// that holds a session (a logged-in PKCS#11 application) is not.
func TestIdleTimeout(t *testing.T) {
	const idle = 300 * time.Millisecond
	e := newEnv(t, nil, func(c *Config) { c.IdleTimeout = idle })
	admin := e.dial()
	serial := e.provision(admin)
	id := e.generate(admin, serial, wire.AlgECDSAP256)

	silent := e.dial() // sent Hello, nothing else: it holds a slot for nothing
	app := e.dial()
	s := mustOpen(t, app, serial, false)
	mustLogin(t, app, s)
	priv := privateKey(t, app, s, id)
	time.Sleep(3 * idle)
	if _, err := silent.ListCards(); err == nil {
		t.Fatal("an idle connection without a session still answers")
	}
	d := sha256.Sum256([]byte("still here"))
	if _, err := app.Sign(s, priv, p11.CKMECDSA, nil, d[:]); err != nil {
		t.Fatalf("a logged-in application was dropped for being idle: %v", err)
	}
	if !e.m.LoggedIn(serial) {
		t.Error("the logged-in application lost its login")
	}
	// Once its last session closes, the application may be dropped too.
	if err := app.CloseSession(s); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * idle)
	if _, err := app.ListCards(); err == nil {
		t.Fatal("an idle connection whose sessions closed still answers")
	}
	if !strings.Contains(e.logs.String(), `"idle connection closed"`) {
		t.Error("the audit log lacks the idle close")
	}
}

// TestDefaultLimits: the zero Config means the documented defaults.
func TestDefaultLimits(t *testing.T) {
	e := newEnv(t, nil, nil)
	if e.s.idleTimeout != DefaultIdleTimeout || e.s.maxConns != DefaultMaxConns || e.s.maxPerUser != DefaultMaxConnsPerUser {
		t.Errorf("idle %v, max %d, per user %d", e.s.idleTimeout, e.s.maxConns, e.s.maxPerUser)
	}
	if DefaultIdleTimeout <= 0 || DefaultMaxConnsPerUser >= DefaultMaxConns-e.s.adminReserve {
		t.Errorf("defaults make no sense: idle %v, per user %d of %d (%d reserved)", DefaultIdleTimeout, DefaultMaxConnsPerUser, DefaultMaxConns, e.s.adminReserve)
	}
	never, err := New(Config{Manager: e.m, IdleTimeout: -1})
	if err != nil || never.idleTimeout != 0 {
		t.Errorf("a negative IdleTimeout gives %v (%v), want never (0)", never.idleTimeout, err)
	}
}

// TestGenerateRandom reads from the TPM through the Manager.
func TestGenerateRandom(t *testing.T) {
	e := newEnv(t, nil, nil)
	c := e.dial()
	serial := e.provision(c)
	s := mustOpen(t, c, serial, false)
	a, err := c.GenerateRandom(s, 100)
	if err != nil || len(a) != 100 {
		t.Fatalf("GenerateRandom: %d bytes, %v", len(a), err)
	}
	b, _ := c.GenerateRandom(s, 100)
	if string(a) == string(b) {
		t.Error("two random reads are equal")
	}
	_, err = c.GenerateRandom(s, 0)
	wantStatus(t, "zero bytes", err, wire.DataLenRange)
	_, err = c.GenerateRandom(s, maxRandom+1)
	wantStatus(t, "too many bytes", err, wire.DataLenRange)
}

// TestSocketSetup: directory and socket permissions, stale sockets, and
// what is never removed.
func TestSocketSetup(t *testing.T) {
	e := newEnv(t, nil, nil)
	fi, err := os.Stat(filepath.Dir(e.sock))
	if err != nil || fi.Mode().Perm() != runtimeDirMode {
		t.Errorf("socket directory: %v, %v", fi.Mode(), err)
	}
	fi, err = os.Stat(e.sock)
	if err != nil || fi.Mode().Perm() != socketMode || fi.Mode().Type() != os.ModeSocket {
		t.Errorf("socket: %v, %v", fi.Mode(), err)
	}

	// A live socket is not taken over.
	s2, err := New(Config{Socket: e.sock, Manager: e.m})
	if err != nil {
		t.Fatal(err)
	}
	if err := s2.Start(context.Background()); err == nil || !strings.Contains(err.Error(), "another service") {
		t.Errorf("second server on a live socket: %v", err)
	}

	dir := t.TempDir()
	// A stale socket (its server died) is replaced.
	stale := filepath.Join(dir, "stale.sock")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: stale, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	l.SetUnlinkOnClose(false)
	l.Close()
	s3, _ := New(Config{Socket: stale, Manager: e.m})
	if err := s3.Start(context.Background()); err != nil {
		t.Fatalf("start over a stale socket: %v", err)
	}
	if err := s3.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket left behind after Stop: %v", err)
	}

	// A regular file is never removed.
	file := filepath.Join(dir, "file.sock")
	os.WriteFile(file, []byte("keep me"), 0o600)
	s4, _ := New(Config{Socket: file, Manager: e.m})
	if err := s4.Start(context.Background()); err == nil {
		t.Error("started over a regular file")
	}
	if b, _ := os.ReadFile(file); string(b) != "keep me" {
		t.Error("the regular file was touched")
	}

	// A world-writable directory without the sticky bit is refused.
	open := filepath.Join(dir, "open")
	os.Mkdir(open, 0o777)
	os.Chmod(open, 0o777)
	s5, _ := New(Config{Socket: filepath.Join(open, "s.sock"), Manager: e.m})
	if err := s5.Start(context.Background()); err == nil {
		t.Error("started in a world-writable directory")
	}
}

func TestConfigValidate(t *testing.T) {
	for _, c := range []struct {
		name string
		cfg  Config
	}{
		{"fail/no-manager", Config{}},
	} {
		if _, err := New(c.cfg); err == nil {
			t.Errorf("%s: New accepted %+v", c.name, c.cfg)
		}
	}
}

// TestHandlerPanic: a panicking handler answers Internal and the service
// keeps serving.
func TestHandlerPanic(t *testing.T) {
	e := newEnv(t, nil, nil)
	c := e.dial()
	e.s.beforeHandle = func(t wire.Type) {
		if t == wire.TypeMechanisms {
			panic("boom")
		}
	}
	_, err := c.Mechanisms("x")
	wantStatus(t, "panicking request", err, wire.Internal)
	if _, err := c.ListCards(); err != nil {
		t.Fatalf("after a panic: %v", err)
	}
	if !strings.Contains(e.logs.String(), `"request panicked"`) {
		t.Error("the panic is not logged")
	}
}
