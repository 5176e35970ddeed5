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

	"github.com/tpmcard/tpmcard/tpmcard/tpmtest"
	"time"
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

func TestCardCommands(t *testing.T) {
	env := startService(t)
	out, _, code := cli(t, env, "", "card", "list", "--json")
	if code != 0 || strings.TrimSpace(out) != "[]" {
		t.Fatalf("card list on an empty service: %d %q", code, out)
	}
	out, errs, code := cli(t, env, "", "card", "create", "--label", "cli", "--json")
	if code != 0 {
		t.Fatalf("card create: %d %s", code, errs)
	}
	var created struct{ Serial, PUK string }
	if err := json.Unmarshal([]byte(out), &created); err != nil || len(created.Serial) != 16 || len(created.PUK) != 16 {
		t.Fatalf("card create --json: %q (%v)", out, err)
	}

	// The default PIN must change; a wrong current PIN is counted.
	_, errs, code = cli(t, env, "not the PIN\nanother PIN 99\n", "pin", "change", "--pin-stdin", "--new-pin-stdin")
	if code != 3 || !strings.Contains(errs, "tpmcard: PIN incorrect: 4 tries left") {
		t.Fatalf("pin change with a wrong PIN: %d %q", code, errs)
	}
	_, errs, code = cli(t, env, "12345678\nshort\n", "pin", "change", "--pin-stdin", "--new-pin-stdin")
	if code == 0 || !strings.Contains(errs, "new PIN is refused") {
		t.Fatalf("pin change to a short PIN: %d %q", code, errs)
	}
	if _, errs, code = cli(t, env, "12345678\nchanged PIN 77\n", "pin", "change", "--pin-stdin", "--new-pin-stdin"); code != 0 {
		t.Fatalf("pin change: %d %s", code, errs)
	}

	for _, alg := range []string{"ecdsa-p384", "rsa-2048"} {
		if _, errs, code = cli(t, env, "", "key", "generate", "--alg", alg, "--label", alg); code != 0 {
			t.Fatalf("key generate %s: %d %s", alg, code, errs)
		}
	}
	out, _, _ = cli(t, env, "", "key", "list", "--json")
	var keys []keyView
	if err := json.Unmarshal([]byte(out), &keys); err != nil || len(keys) != 2 {
		t.Fatalf("key list --json: %q (%v)", out, err)
	}
	_, errs, code = cli(t, env, "changed PIN 77\n", "sign", "--pin-stdin", "--in", "/dev/null")
	if code != 2 || !strings.Contains(errs, "choose one with --key") {
		t.Fatalf("sign with two keys and no --key: %d %q", code, errs)
	}
	for _, k := range keys {
		sig, errs, code := cli(t, env, "changed PIN 77\nhello\n", "sign", "--pin-stdin", "--key", k.Label, "--hash", "sha384")
		if code != 0 || len(sig) < 64 {
			t.Fatalf("sign with %s: %d %s", k.Label, code, errs)
		}
		pub, _, _ := cli(t, env, "", "key", "export", "--key", k.ID)
		if !strings.HasPrefix(pub, "-----BEGIN PUBLIC KEY-----") {
			t.Fatalf("key export: %q", pub)
		}
		if _, err := exec.LookPath("openssl"); err == nil {
			dir := t.TempDir()
			os.WriteFile(filepath.Join(dir, "pub.pem"), []byte(pub), 0o600)
			os.WriteFile(filepath.Join(dir, "sig"), []byte(sig), 0o600)
			os.WriteFile(filepath.Join(dir, "data"), []byte("hello\n"), 0o600)
			if out, err := exec.Command("openssl", "dgst", "-sha384", "-verify", filepath.Join(dir, "pub.pem"),
				"-signature", filepath.Join(dir, "sig"), filepath.Join(dir, "data")).CombinedOutput(); err != nil {
				t.Fatalf("openssl verify (%s): %v %s", k.Algorithm, err, out)
			}
		}
	}
	ssh, _, code := cli(t, env, "", "key", "export", "--key", "ecdsa-p384", "--format", "ssh")
	if code != 0 || !strings.HasPrefix(ssh, "ecdsa-sha2-nistp384 ") {
		t.Fatalf("ssh export: %q", ssh)
	}

	// Destroying needs --yes.
	if _, errs, code = cli(t, env, "", "card", "destroy", "--card", created.Serial); code != 2 || !strings.Contains(errs, "--yes") {
		t.Fatalf("destroy without --yes: %d %q", code, errs)
	}
	if _, errs, code = cli(t, env, "", "card", "destroy", "--card", created.Serial, "--yes"); code != 0 {
		t.Fatalf("destroy: %d %s", code, errs)
	}
	if _, errs, code = cli(t, env, "", "card", "status", "--card", created.Serial); code == 0 || !strings.Contains(errs, "no such card") {
		t.Fatalf("status of a destroyed card: %d %q", code, errs)
	}
}

func TestErrorsSayWhatToDo(t *testing.T) {
	env := []string{"TPMCARD_SOCKET=" + filepath.Join(t.TempDir(), "none.sock")}
	_, errs, code := cli(t, env, "", "card", "list")
	if code != 1 || !strings.Contains(errs, "tpmcard service start") {
		t.Fatalf("no service: %d %q", code, errs)
	}
	// A missing input file is not a missing service.
	missing := filepath.Join(t.TempDir(), "no-such-file")
	if _, errs, code = cli(t, env, "some PIN\n", "sign", "--pin-stdin", "--in", missing); code != 1 ||
		!strings.Contains(errs, missing) || strings.Contains(errs, "service") {
		t.Fatalf("missing input file: %d %q", code, errs)
	}
	if _, errs, code = cli(t, nil, "", "frobnicate"); code != 2 || !strings.Contains(errs, `unknown command "frobnicate"`) {
		t.Fatalf("unknown command: %d %q", code, errs)
	}
	if _, errs, code = cli(t, nil, "", "card", "list", "--bogus"); code != 2 || !strings.Contains(errs, "flag provided but not defined") {
		t.Fatalf("bad flag: %d %q", code, errs)
	}
	if _, errs, code = cli(t, env, "", "pin", "change", "--pin-stdin", "--new-pin-stdin"); code != 2 || !strings.Contains(errs, "standard input ended") {
		t.Fatalf("missing PIN lines: %d %q", code, errs)
	}
	if _, errs, code = cli(t, nil, "", "service", "run", "--tpm", "device:/nonexistent/tpmrm0", "--config", "/dev/null",
		"--socket", filepath.Join(t.TempDir(), "s"), "--state-dir", t.TempDir()); code != 1 || !strings.Contains(errs, "--tpm sim") {
		t.Fatalf("service without a TPM: %d %q", code, errs)
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

func TestSystemdUnit(t *testing.T) {
	for _, tc := range []struct {
		tpm  string
		want []string
		not  []string
	}{
		{"device", []string{"ProtectSystem=strict", "DeviceAllow=/dev/tpmrm0 rw", "PrivateNetwork=true", "NoNewPrivileges=true", "PrivateTmp=true", "StateDirectory=tpmcard", "RuntimeDirectory=tpmcard"}, []string{"AF_INET"}},
		{"swtpm:127.0.0.1:2321", []string{"ProtectSystem=strict", "AF_INET", "PrivateDevices=true"}, []string{"PrivateNetwork", "DeviceAllow"}},
	} {
		out, errs, code := cli(t, nil, "", "service", "unit", "--tpm", tc.tpm, "--config", "/dev/null")
		if code != 0 {
			t.Fatalf("service unit: %s", errs)
		}
		for _, w := range tc.want {
			if !strings.Contains(out, w+"\n") && !strings.Contains(out, w+" ") {
				t.Errorf("%s unit lacks %q:\n%s", tc.tpm, w, out)
			}
		}
		for _, n := range tc.not {
			if strings.Contains(out, n) {
				t.Errorf("%s unit has %q", tc.tpm, n)
			}
		}
		// The service runs with the flags the unit was made with.
		want := "ExecStart=" + cliBin + " service run --config=/dev/null --tpm=" + tc.tpm + "\n"
		if !strings.Contains(out, want) {
			t.Errorf("unit does not start this binary with its flags (%q):\n%s", want, out)
		}
	}
	// Flags keep their meaning: paths become absolute, and words systemd
	// would split or expand are quoted.
	out, errs, code := cli(t, nil, "", "service", "unit", "--config", "/dev/null", "--tpm", "device:/dev/tpm0",
		"--state-dir", "rel dir", "--card-group", "50%")
	wd, _ := os.Getwd()
	if code != 0 || !strings.Contains(out, "--tpm=device:/dev/tpm0") || !strings.Contains(out, "DeviceAllow=/dev/tpm0 rw") ||
		!strings.Contains(out, `"--state-dir=`+filepath.Join(wd, "rel dir")+`"`) || !strings.Contains(out, "--card-group=50%%") {
		t.Errorf("service unit with a device, a relative path and a %%: %d %s\n%s", code, errs, out)
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

// `key export --format ssh` of a key with a short chosen ID names it by
// that ID (it panicked cutting the ID to 8 hex digits).
func TestSSHExportOfShortID(t *testing.T) {
	env := startService(t)
	if _, errs, code := cli(t, env, "short id PIN 1\n", "card", "create", "--pin-stdin"); code != 0 {
		t.Fatalf("card create: %s", errs)
	}
	if _, errs, code := cli(t, env, "", "key", "generate", "--id", "01"); code != 0 {
		t.Fatalf("key generate --id 01: %s", errs)
	}
	out, errs, code := cli(t, env, "", "key", "export", "--format", "ssh", "--key", "01")
	if code != 0 || !strings.HasPrefix(out, "ecdsa-sha2-nistp256 ") || !strings.HasSuffix(strings.TrimSpace(out), "-01") {
		t.Fatalf("key export --format ssh: exit %d, %q, %s", code, out, errs)
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
