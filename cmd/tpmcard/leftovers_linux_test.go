package main

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/sha256"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tpmcard/tpmcard/service/client"
	"github.com/tpmcard/tpmcard/service/wire"
	"github.com/tpmcard/tpmcard/tpmcard/secret"
	"github.com/tpmcard/tpmcard/tpmcard/tpmtest"
)

// lockedLog is a service's output, read while it runs.
type lockedLog struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}
func (l *lockedLog) String() string { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

// killableService runs `tpmcard service run` and returns, once it has
// started (its start event: a killed service leaves its socket behind, so
// the socket's presence says nothing), its log and a kill -9 that returns
// once it is dead.
func killableService(t *testing.T, tpm, state, sock string) (kill func(), _ *lockedLog) {
	t.Helper()
	cmd := exec.Command(cliBin, "service", "run", "--tpm", tpm, "--state-dir", state, "--socket", sock,
		"--config", "/dev/null", "--log-level", "debug")
	log := &lockedLog{}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
		}
	})
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(log.String(), `"event":"start"`); {
		select {
		case <-done:
			t.Fatalf("the service exited at start:\n%s", log.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("the service did not start in 10s:\n%s", log.String())
		}
	}
	kill = func() {
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		<-done
	}
	return kill, log
}

// The service on swtpm (no resource manager) is killed with SIGKILL while
// a client is logged in and has signed, so that it holds its storage root
// key, the card key and sessions; twice. Each start after a kill flushes
// what the killed one left and logs how many; the third start succeeds
// and the card signs. Before, the second start already failed ("opening the
// owner session: TPM_RC_SESSION_MEMORY": the killed run's login and sign
// sessions and its owner session took all three slots).
func TestKilledServiceLeftovers(t *testing.T) {
	sw := tpmtest.StartSWTPM(t)
	dir := t.TempDir()
	state, sock := filepath.Join(dir, "state"), filepath.Join(dir, "run", "tpmcard.sock")
	env := []string{"TPMCARD_SOCKET=" + sock}
	pin := "leftover PIN 1"

	kill, log := killableService(t, sw.Spec(), state, sock)
	if strings.Contains(log.String(), "left in the TPM by an earlier run") {
		t.Errorf("the first start on a fresh TPM flushed something:\n%s", log.String())
	}
	id := cardWithKey(t, env, pin)

	// sign logs in through the Go client and signs; it returns the
	// client, which stays logged in.
	sign := func(run int) *client.Client {
		t.Helper()
		c, err := client.Dial(sock)
		if err != nil {
			t.Fatalf("run %d: %v", run, err)
		}
		cards, err := c.ListCards()
		if err != nil || len(cards) != 1 {
			t.Fatalf("run %d: cards %v %v", run, cards, err)
		}
		s, err := c.Signer(cards[0].Serial, id)
		if err != nil {
			t.Fatalf("run %d: %v", run, err)
		}
		sess, err := c.OpenSession(cards[0].Serial, false)
		if err == nil {
			err = c.Login(sess, wire.UserNormal, secret.FromString(pin))
		}
		if err != nil {
			t.Fatalf("run %d: login: %v", run, err)
		}
		d := sha256.Sum256([]byte("signed before a kill"))
		sig, err := s.Sign(nil, d[:], crypto.SHA256)
		if err != nil {
			t.Fatalf("run %d: sign: %v\n%s", run, err, log.String())
		}
		if !ecdsa.VerifyASN1(s.Public().(*ecdsa.PublicKey), d[:], sig) {
			t.Fatalf("run %d: the signature does not verify", run)
		}
		return c
	}
	flushed := regexp.MustCompile(`"objects":(\d+),"sessions":(\d+).*flushed (\d+) transient objects? and (\d+) sessions? left in the TPM by an earlier run`)
	for run := 1; run <= 3; run++ {
		if run > 1 {
			kill, log = killableService(t, sw.Spec(), state, sock)
			m := flushed.FindStringSubmatch(log.String())
			if m == nil || m[1] == "0" || m[2] == "0" || m[1] != m[3] || m[2] != m[4] {
				t.Fatalf("run %d: the start does not log flushing what the killed run left:\n%s", run, log.String())
			}
			t.Logf("run %d: flushed %s transient objects and %s sessions", run, m[1], m[2])
		}
		c := sign(run)
		if run < 3 {
			kill()
		}
		c.Close()
	}
}
