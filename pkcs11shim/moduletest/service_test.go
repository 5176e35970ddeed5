//go:build linux

package moduletest

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-tpm/tpm2/transport"
	"github.com/rs/zerolog"
	"github.com/tpmcard/tpmcard/service/server"
	"github.com/tpmcard/tpmcard/tpmcard"
	"github.com/tpmcard/tpmcard/tpmcard/secret"
	"github.com/tpmcard/tpmcard/tpmcard/tpmtest"
)

// The card every test provisions.
const (
	testPIN   = "24681012"
	testPUK   = "1357911131"
	testLabel = "test card"
	pinTries  = 3
)

// testService is the real service: a tpmcard.Manager on the in-process
// TPM simulator behind the real socket server.
type testService struct {
	t      testing.TB
	m      *tpmcard.Manager
	srv    *server.Server
	sock   string
	serial string
	keyID  []byte
	key    tpmcard.KeyInfo
}

// startService starts the service on a socket in a temporary directory
// with one card holding one ECDSA P-256 key, and points TPMCARD_SOCKET at
// it. The simulator is a process-wide singleton: no t.Parallel.
func startService(t testing.TB) *testService {
	t.Helper()
	return startServiceOn(t, tpmtest.Sim(t))
}

// startServiceOn is startService on a given TPM.
func startServiceOn(t testing.TB, tpm transport.TPM) *testService {
	t.Helper()
	m, err := tpmcard.Open(tpm, tpmcard.WithStateDir(filepath.Join(t.TempDir(), "state")))
	if err != nil {
		t.Fatalf("opening the card manager: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	policy := tpmcard.DefaultPINPolicy()
	cr, err := m.Create(tpmcard.CreateOptions{
		Label: testLabel, PIN: secret.FromString(testPIN), PUK: secret.FromString(testPUK),
		PINPolicy: &policy, PINTries: pinTries, PUKTries: 3,
	})
	if err != nil {
		t.Fatalf("provisioning: %v", err)
	}
	k, err := m.GenerateKey(context.Background(), cr.Card.Serial, tpmcard.KeyOptions{Algorithm: tpmcard.ECDSAP256, Label: "test key"}, nil)
	if err != nil {
		t.Fatalf("generating a key: %v", err)
	}
	// A short path: unix socket paths are limited to 108 bytes.
	dir, err := os.MkdirTemp("", "tpmcard-p11-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	s := &testService{t: t, m: m, sock: filepath.Join(dir, "s.sock"), serial: cr.Card.Serial, keyID: k.ID, key: k}
	s.start()
	t.Cleanup(s.stop)
	t.Setenv(socketEnv, s.sock)
	return s
}

func (s *testService) start() {
	s.t.Helper()
	srv, err := server.New(server.Config{
		Socket: s.sock, Manager: s.m, Backend: "sim", Simulated: true,
		Logger: zerolog.Nop(), Version: "test",
	})
	if err != nil {
		s.t.Fatalf("server: %v", err)
	}
	if err := srv.Start(context.Background()); err != nil {
		s.t.Fatalf("starting the server: %v", err)
	}
	s.srv = srv
}

func (s *testService) stop() {
	if s.srv == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = s.srv.Stop(ctx)
	s.srv = nil
}
