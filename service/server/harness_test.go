//go:build linux

package server

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/x509"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-tpm/tpm2/transport"
	"github.com/rs/zerolog"
	"github.com/tpmcard/tpmcard/service/client"
	"github.com/tpmcard/tpmcard/service/p11"
	"github.com/tpmcard/tpmcard/service/wire"
	"github.com/tpmcard/tpmcard/tpmcard"
	"github.com/tpmcard/tpmcard/tpmcard/secret"
	"github.com/tpmcard/tpmcard/tpmcard/tpmtest"
)

var (
	testPIN = secret.FromString("correct horse")
	testPUK = secret.FromString("PUKPUKPUK123")
)

// logBuffer collects the audit log.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// env is a real Manager on a real TPM behind a real server on a unix
// socket in a temporary directory.
type env struct {
	t    *testing.T
	m    *tpmcard.Manager
	s    *Server
	sock string
	logs *logBuffer

	mu      sync.Mutex
	pending *Peer // identity the next connection pretends to have

	// secrets must never show in the audit log.
	secrets []string
}

// newEnv starts a server on tpm (the simulator when nil).
func newEnv(t *testing.T, tpm transport.TPM, mod func(*Config)) *env {
	t.Helper()
	if tpm == nil {
		tpm = tpmtest.Sim(t)
	}
	m, err := tpmcard.Open(tpm, tpmcard.WithStateDir(t.TempDir()))
	if err != nil {
		t.Fatalf("tpmcard.Open: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	e := &env{t: t, m: m, logs: &logBuffer{}, sock: filepath.Join(t.TempDir(), "run", "tpmcard.sock"),
		secrets: []string{string(testPIN), string(testPUK)}}
	cfg := Config{
		Socket:         e.sock,
		Manager:        m,
		Backend:        "sim",
		Simulated:      true,
		Logger:         zerolog.New(e.logs).Level(zerolog.DebugLevel),
		RequestTimeout: 10 * time.Second,
		Version:        "test",
		TraceWire:      true,
	}
	if mod != nil {
		mod(&cfg)
	}
	e.sock = cfg.Socket
	s, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	s.peerOverride = e.override
	e.s = s
	if err := s.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := s.Stop(ctx); err != nil {
			t.Errorf("Stop: %v", err)
		}
		logs := e.logs.String()
		for _, s := range e.secrets {
			if strings.Contains(logs, s) {
				t.Errorf("the audit log shows the secret %q", s)
			}
		}
		if strings.Contains(logs, `"type":"Login"`) && !strings.Contains(logs, "PIN:[REDACTED]") {
			t.Errorf("the wire trace shows no redacted secret")
		}
		if t.Failed() {
			t.Logf("audit log:\n%s", e.logs)
		}
	})
	return e
}

func (e *env) override(p Peer) Peer {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.pending != nil {
		p, e.pending = *e.pending, nil
	}
	return p
}

// dial connects as the test process (root in CI: an admin).
func (e *env) dial() *client.Client {
	e.t.Helper()
	c, err := client.Dial(e.sock)
	if err != nil {
		e.t.Fatalf("Dial: %v", err)
	}
	e.t.Cleanup(func() { c.Close() })
	return c
}

// dialAs connects pretending to be peer p: the server's authorization sees
// p instead of the kernel's answer.
func (e *env) dialAs(p Peer) *client.Client {
	e.t.Helper()
	e.mu.Lock()
	e.pending = &p
	e.mu.Unlock()
	return e.dial()
}

// provision creates a card with testPIN and testPUK, 3 PIN and 2 PUK
// tries, through the service.
func (e *env) provision(c *client.Client) string {
	e.t.Helper()
	return e.provisionFor(c, nil)
}

// provisionFor is provision for a card that belongs to owner (nil: the
// user who asks).
func (e *env) provisionFor(c *client.Client, owner *wire.CardOwner) string {
	e.t.Helper()
	p, err := c.Provision(wire.Provision{Label: "test", PIN: testPIN.Clone(), PUK: testPUK.Clone(), PINTries: 3, PUKTries: 2, Owner: owner})
	if err != nil {
		e.t.Fatalf("Provision: %v", err)
	}
	if p.PUK != nil {
		e.t.Fatal("a given PUK came back as generated")
	}
	return p.Serial
}

// generate makes a key through the service and returns its ID.
func (e *env) generate(c *client.Client, serial, alg string) []byte {
	e.t.Helper()
	s := mustOpen(e.t, c, serial, true)
	defer c.CloseSession(s)
	pub, _, err := c.GenerateKeyPair(s, alg, "", nil, nil)
	if err != nil {
		e.t.Fatalf("GenerateKeyPair(%s): %v", alg, err)
	}
	v, err := c.GetAttributes(s, pub, p11.CKAID)
	if err != nil || v[0].Status != wire.OK {
		e.t.Fatalf("reading CKA_ID: %v %v", err, v)
	}
	return v[0].Value
}

func mustOpen(t *testing.T, c *client.Client, serial string, rw bool) uint32 {
	t.Helper()
	s, err := c.OpenSession(serial, rw)
	if err != nil {
		t.Fatalf("OpenSession: %v", err)
	}
	return s
}

func mustLogin(t *testing.T, c *client.Client, s uint32) {
	t.Helper()
	if err := c.Login(s, wire.UserNormal, testPIN.Clone()); err != nil {
		t.Fatalf("Login: %v", err)
	}
}

// privateKey finds the private key object with the given ID.
func privateKey(t *testing.T, c *client.Client, s uint32, id []byte) uint64 {
	t.Helper()
	hs, err := c.FindObjects(s, wire.Attribute{Type: p11.CKAClass, Value: wire.ULong(ckoPrivateKey)}, wire.Attribute{Type: p11.CKAID, Value: id})
	if err != nil || len(hs) != 1 {
		t.Fatalf("finding private key %x: %v, %v", id, hs, err)
	}
	return hs[0]
}

// wantStatus fails unless err carries status s.
func wantStatus(t *testing.T, what string, err error, s wire.Status) {
	t.Helper()
	if got := wire.StatusOf(err); got != s {
		t.Fatalf("%s: got %v (%v), want %v", what, got, err, s)
	}
	var se *wire.StatusError
	if s != wire.OK && !errors.As(err, &se) {
		t.Fatalf("%s: %T is not a *wire.StatusError", what, err)
	}
}

// publicKeyOf reads the key's public half through the service.
func publicKeyOf(t *testing.T, c *client.Client, s uint32, id []byte) any {
	t.Helper()
	hs, err := c.FindObjects(s, wire.Attribute{Type: p11.CKAClass, Value: wire.ULong(ckoPublicKey)}, wire.Attribute{Type: p11.CKAID, Value: id})
	if err != nil || len(hs) != 1 {
		t.Fatalf("finding public key %x: %v, %v", id, hs, err)
	}
	v, err := c.GetAttributes(s, hs[0], p11.CKAPublicKeyInfo)
	if err != nil || v[0].Status != wire.OK {
		t.Fatalf("reading public key: %v, %v", err, v)
	}
	pub, err := x509.ParsePKIXPublicKey(v[0].Value)
	if err != nil {
		t.Fatal(err)
	}
	return pub
}

func verifyECDSA(t *testing.T, pub any, digest, rs []byte) {
	t.Helper()
	ec := pub.(*ecdsa.PublicKey)
	sig, err := rawToASN1ForTest(rs)
	if err != nil {
		t.Fatal(err)
	}
	if !ecdsa.VerifyASN1(ec, digest, sig) {
		t.Fatal("ECDSA signature does not verify")
	}
}

func rawToASN1ForTest(rs []byte) ([]byte, error) { return tpmcard.RawToASN1(rs) }

// rawConn speaks frames directly, for malformed input.
type rawConn struct {
	t  *testing.T
	nc net.Conn
	w  *wire.Conn
}

func (e *env) raw(hello bool) *rawConn {
	e.t.Helper()
	nc, err := net.Dial("unix", e.sock)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { nc.Close() })
	r := &rawConn{t: e.t, nc: nc, w: wire.NewConn(nc)}
	if hello {
		if _, err := r.w.Hello("raw test"); err != nil {
			e.t.Fatalf("Hello: %v", err)
		}
	}
	return r
}

// next reads one frame within a few seconds.
func (r *rawConn) next() (wire.Type, []byte, error) {
	_ = r.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	return wire.ReadFrame(r.nc, wire.MaxFrame)
}

// waitFor polls cond for a few seconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
