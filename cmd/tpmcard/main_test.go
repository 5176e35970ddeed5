package main

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"time"

	"github.com/tpmcard/tpmcard/tpmcard/tpmtest"
)

// The CLI is tested as users run it: the built binary, against the service
// it starts itself, on the in-process TPM simulator.

var cliBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "tpmcard-cli-test")
	if err != nil {
		panic(err)
	}
	cliBin = filepath.Join(dir, "tpmcard")
	if out, err := exec.Command("go", "build", "-o", cliBin, ".").CombinedOutput(); err != nil {
		os.Stderr.Write(out)
		panic(err)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// cli runs the binary with stdin and returns stdout, stderr and the exit
// status.
func cli(t *testing.T, env []string, stdin string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(cliBin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("running tpmcard %v: %v", args, err)
	}
	return out.String(), errb.String(), code
}

// startService runs `tpmcard service run` on the simulator and returns the
// environment that points clients at it.
func startService(t *testing.T, extra ...string) []string {
	t.Helper()
	env, _ := startServiceOn(t, "sim", t.TempDir(), extra...)
	return env
}

// startServiceOn runs the service on a TPM with its state in dir; stop
// ends it as a SIGTERM from systemd would.
func startServiceOn(t *testing.T, tpm, dir string, extra ...string) (env []string, stop func()) {
	t.Helper()
	// Other users must reach the socket (the service decides what they may
	// do): open the test's directories to them.
	for _, d := range []string{dir, filepath.Dir(dir)} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	env, stop, _ = serviceAt(t, tpm, filepath.Join(dir, "state"), filepath.Join(dir, "run"), extra...)
	return env, stop
}

// syncBuf is a bytes.Buffer that the service's output goroutine and the
// test may use at once.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// serviceAt runs `tpmcard service run` with its state in state and its
// socket in run (a new temporary directory when empty), and returns the
// client environment, a stop (SIGTERM) and the service's log.
func serviceAt(t *testing.T, tpm, state, run string, extra ...string) (env []string, stop func(), log *syncBuf) {
	t.Helper()
	if run == "" {
		run = filepath.Join(t.TempDir(), "run")
	}
	sock := filepath.Join(run, "tpmcard.sock")
	args := append([]string{"service", "run", "--tpm", tpm, "--state-dir", state, "--socket", sock,
		"--config", "/dev/null", "--log-level", "debug"}, extra...)
	cmd := exec.Command(cliBin, args...)
	log = &syncBuf{}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cmd.Process.Signal(syscall.SIGTERM)
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("the service exited with %v on SIGTERM", err)
				}
			case <-time.After(10 * time.Second):
				cmd.Process.Kill()
				t.Error("the service did not stop on SIGTERM")
			}
			if t.Failed() {
				t.Logf("service log:\n%s", log.String())
			}
		})
	}
	t.Cleanup(stop)
	for i := 0; ; i++ {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("the service exited: %v\n%s", err, log.String())
		case <-time.After(50 * time.Millisecond):
		}
		if i > 200 {
			t.Fatalf("no socket after 10s:\n%s", log.String())
		}
	}
	return []string{"TPMCARD_SOCKET=" + sock}, stop, log
}

func TestDemoScript(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl not installed: the demo verifies signatures with it")
	}
	out, err := exec.Command("sh", "demo.sh", cliBin).CombinedOutput()
	if err != nil {
		t.Fatalf("demo.sh: %v\n%s", err, out)
	}
	for _, want := range []string{
		"NOT hardware-protected",
		"the PIN must be changed first",
		"Verified OK",
		"PIN incorrect: 2 tries left",
		"card locked: unblock it with `tpmcard pin unblock`",
		"unblocked: the new PIN must be changed",
	} {
		if !bytes.Contains(out, []byte(want)) {
			t.Errorf("demo output lacks %q", want)
		}
	}
	if n := bytes.Count(out, []byte("Verified OK")); n != 2 {
		t.Errorf("%d verified signatures, want 2", n)
	}
}

// A user outside the admin group may list cards but not create one.
func TestNonAdminIsDenied(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to run a client as another user")
	}
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skip("setpriv (util-linux) not installed")
	}
	env := startService(t)
	if err := os.Chmod(filepath.Dir(cliBin), 0o755); err != nil {
		t.Fatal(err)
	}
	as := asNobody(setpriv, env)
	if out, errs, code := as("card", "list", "--json"); code != 0 || strings.TrimSpace(out) != "[]" {
		t.Fatalf("card list as nobody: %d %s %s", code, out, errs)
	}
	_, errs, code := as("card", "create")
	if code == 0 || !strings.Contains(errs, "permission denied") {
		t.Fatalf("card create as nobody: %d %q", code, errs)
	}
}

// Cards and their PIN counters live in the TPM and the state directory:
// a service restart (the process, then the TPM too) keeps both.
func TestServiceRestartKeepsCardsAndCounter(t *testing.T) {
	sw := tpmtest.StartSWTPM(t)
	dir := t.TempDir()
	env, stop := startServiceOn(t, sw.Spec(), dir)
	out, errs, code := cli(t, env, "restart PIN 42\n", "card", "create", "--pin-stdin", "--json")
	if code != 0 {
		t.Fatalf("card create: %s", errs)
	}
	var created struct{ Serial string }
	json.Unmarshal([]byte(out), &created)
	if _, errs, code = cli(t, env, "", "key", "generate"); code != 0 {
		t.Fatalf("key generate: %s", errs)
	}
	if _, _, code = cli(t, env, "wrong PIN 1\n", "sign", "--pin-stdin", "--in", "/dev/null"); code != 3 {
		t.Fatalf("wrong PIN: exit %d", code)
	}
	tries := func(env []string) int {
		out, errs, code := cli(t, env, "", "card", "status", "--json")
		if code != 0 {
			t.Fatalf("card status: %s", errs)
		}
		var v cardView
		if err := json.Unmarshal([]byte(out), &v); err != nil || v.Serial != created.Serial {
			t.Fatalf("card status: %q %v", out, err)
		}
		return v.PINTriesLeft
	}
	if n := tries(env); n != 4 {
		t.Fatalf("%d tries left after a wrong PIN, want 4", n)
	}
	stop()
	env, stop = startServiceOn(t, sw.Spec(), dir)
	if n := tries(env); n != 4 {
		t.Fatalf("after a service restart: %d tries left, want 4", n)
	}
	stop()
	sw.Restart(t)
	env, _ = startServiceOn(t, sw.Spec(), dir)
	if n := tries(env); n != 4 {
		t.Fatalf("after a TPM restart: %d tries left, want 4", n)
	}
	if _, errs, code := cli(t, env, "restart PIN 42\nhello\n", "sign", "--pin-stdin"); code != 0 {
		t.Fatalf("sign after the restarts: %s", errs)
	}
}

func TestTPMInfo(t *testing.T) {
	out, errs, code := cli(t, nil, "", "tpm", "info", "--tpm", "sim", "--json")
	if code != 0 {
		t.Fatalf("tpm info: %s", errs)
	}
	var info struct {
		Manufacturer      string
		HardwareProtected bool     `json:"hardware_protected"`
		CardAlgorithms    []string `json:"card_algorithms"`
	}
	if err := json.Unmarshal([]byte(out), &info); err != nil {
		t.Fatal(err)
	}
	// The reference TPM built into the simulator has RSA-2048 but not 3072.
	if info.Manufacturer == "" || info.HardwareProtected || strings.Join(info.CardAlgorithms, ",") != "ecdsa-p256,ecdsa-p384,rsa-2048" {
		t.Fatalf("tpm info: %+v", info)
	}
}

// asNobody runs the CLI as uid and gid 65534 with no supplementary groups
// (through setpriv) and returns its standard output, its standard error
// and its exit status.
func asNobody(setpriv string, env []string) func(args ...string) (string, string, int) {
	return func(args ...string) (string, string, int) {
		cmd := exec.Command(setpriv, append([]string{"--reuid=65534", "--regid=65534", "--clear-groups", cliBin}, args...)...)
		cmd.Env = append(os.Environ(), env...)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return out.String(), errb.String(), ee.ExitCode()
		}
		return out.String(), errb.String(), 0
	}
}

// cardWithKey creates a card with pin and one ECDSA key through the CLI and
// returns the key's ID.
func cardWithKey(t *testing.T, env []string, pin string) []byte {
	t.Helper()
	if _, errs, code := cli(t, env, pin+"\n", "card", "create", "--pin-stdin"); code != 0 {
		t.Fatalf("card create: %s", errs)
	}
	if _, errs, code := cli(t, env, "", "key", "generate"); code != 0 {
		t.Fatalf("key generate: %s", errs)
	}
	out, _, _ := cli(t, env, "", "key", "list", "--json")
	var keys []keyView
	if err := json.Unmarshal([]byte(out), &keys); err != nil || len(keys) != 1 {
		t.Fatalf("key list: %q %v", out, err)
	}
	id, err := hex.DecodeString(keys[0].ID)
	if err != nil {
		t.Fatalf("key ID %q: %v", keys[0].ID, err)
	}
	return id
}
