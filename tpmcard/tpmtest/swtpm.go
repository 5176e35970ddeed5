package tpmtest

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"
	"github.com/tpmcard/tpmcard/tpmcard/backend"
)

// RequireSWTPMEnv names the environment variable that, set to 1, turns a
// missing swtpm from a skip into a failure.
const RequireSWTPMEnv = "TPMCARD_REQUIRE_SWTPM"

const (
	readyTimeout    = 20 * time.Second // swtpm has bound its ports
	connectTimeout  = 30 * time.Second // a connection waits while another is open
	shutdownTimeout = 5 * time.Second  // TPM2_Shutdown before stopping
	termTimeout     = 5 * time.Second  // SIGTERM before SIGKILL
	portTries       = 8
)

// swtpmFeatures are the `swtpm socket --print-capabilities` features used here.
var swtpmFeatures = []string{"tpm-2.0", "tpm-send-command-header", "flags-opt-startup"}

// SWTPM is a running `swtpm socket --tpm2` process with its state in a
// temporary directory.
type SWTPM struct {
	t        testing.TB
	bin      string
	stateDir string
	logDir   string

	mu       sync.Mutex
	port     int // command port; the control (platform) port is port+1
	proc     *process
	launches int
	conns    map[*conn]struct{}
	opening  bool
}

// StartSWTPM starts swtpm on free loopback ports and stops it when t ends.
// It skips t when swtpm is not installed, or fails t if TPMCARD_REQUIRE_SWTPM=1.
func StartSWTPM(t testing.TB) *SWTPM {
	t.Helper()
	s := &SWTPM{
		t:        t,
		bin:      swtpmBinary(t),
		stateDir: t.TempDir(),
		logDir:   t.TempDir(),
		conns:    make(map[*conn]struct{}),
	}
	t.Cleanup(s.Stop)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.startLocked(0); err != nil {
		t.Fatalf("tpmtest: %v", err)
	}
	return s
}

// SecondTPM starts an independent swtpm and returns a connection to it, for
// tests that move a key blob to another TPM. It skips or fails as StartSWTPM.
func SecondTPM(t testing.TB) transport.TPMCloser {
	t.Helper()
	return StartSWTPM(t).connect(t)
}

// TPM opens a connection, started with TPM2_Startup, and closes it when the
// test that started s ends, or at Stop or Restart. swtpm serves one
// connection at a time: TPM fails the test if one from TPM is still open.
func (s *SWTPM) TPM() transport.TPMCloser {
	s.t.Helper()
	return s.connect(s.t)
}

// Addr is the command address HOST:PORT. It can change at Restart if the
// old ports were taken meanwhile.
func (s *SWTPM) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addrLocked()
}

// Spec is the --tpm value for this swtpm: swtpm:127.0.0.1:PORT.
func (s *SWTPM) Spec() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.specLocked().String()
}

// StateDir is the directory that holds the TPM's state.
func (s *SWTPM) StateDir() string { return s.stateDir }

// Restart stops swtpm and starts it again on the same state directory, as a
// reboot: NV indices, persistent keys and hierarchy seeds survive. Open
// connections are closed; get a new one with TPM. The TPM is shut down with
// TPM2_Shutdown(CLEAR) first, as an OS does, so the restart is orderly.
func (s *SWTPM) Restart(t testing.TB) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.stopLocked(); err != nil {
		t.Errorf("tpmtest: %v", err)
	}
	if err := s.startLocked(s.port); err != nil {
		t.Fatalf("tpmtest: restarting swtpm: %v", err)
	}
}

// Stop closes open connections, shuts the TPM down and ends the process. It
// runs by itself when the test ends; a second call does nothing.
func (s *SWTPM) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.stopLocked(); err != nil {
		s.t.Errorf("tpmtest: %v", err)
	}
}

func (s *SWTPM) addrLocked() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port))
}

func (s *SWTPM) specLocked() backend.Spec {
	return backend.Spec{Kind: backend.SWTPM, Addr: s.addrLocked()}
}

// connect opens a tracked connection; failures go to t.
func (s *SWTPM) connect(t testing.TB) transport.TPMCloser {
	t.Helper()
	s.mu.Lock()
	switch {
	case s.proc == nil:
		s.mu.Unlock()
		t.Fatalf("tpmtest: swtpm is stopped: Restart it first")
	case len(s.conns) > 0 || s.opening:
		s.mu.Unlock()
		t.Fatalf("tpmtest: swtpm serves one connection at a time: close the previous one from SWTPM.TPM first")
	}
	s.opening = true
	spec := s.specLocked()
	s.mu.Unlock()

	tpm, err := openTimeout(spec, connectTimeout)

	s.mu.Lock()
	defer s.mu.Unlock()
	s.opening = false
	if err != nil {
		t.Fatalf("tpmtest: %v", err)
	}
	c := &conn{TPMCloser: tpm, s: s}
	s.conns[c] = struct{}{}
	return c
}

// openTimeout opens spec, giving up after d: a swtpm that is serving another
// connection does not answer.
func openTimeout(spec backend.Spec, d time.Duration) (transport.TPMCloser, error) {
	type result struct {
		tpm transport.TPMCloser
		err error
	}
	ch := make(chan result, 1)
	go func() {
		tpm, err := backend.Open(spec)
		ch <- result{tpm, err}
	}()
	select {
	case r := <-ch:
		return r.tpm, r.err
	case <-time.After(d):
		go func() { // close it if it ever opens
			if r := <-ch; r.err == nil {
				r.tpm.Close()
			}
		}()
		return nil, fmt.Errorf("%s did not answer in %v: swtpm serves one connection at a time; is another one open?", spec, d)
	}
}

// conn is a connection that s closes at Stop and Restart.
type conn struct {
	transport.TPMCloser
	s    *SWTPM
	once sync.Once
	err  error
}

// Close closes the connection; later calls return the first result.
func (c *conn) Close() error {
	c.s.mu.Lock()
	delete(c.s.conns, c)
	c.s.mu.Unlock()
	return c.close()
}

func (c *conn) close() error {
	c.once.Do(func() { c.err = c.TPMCloser.Close() })
	return c.err
}

// process is one swtpm process.
type process struct {
	cmd     *exec.Cmd
	done    chan struct{} // closed when it has exited
	waitErr error
	logPath string
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// output is the process's log, for error messages.
func (p *process) output() string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	out := strings.TrimSpace(string(b))
	if len(out) > 2000 {
		out = "..." + out[len(out)-2000:]
	}
	return out
}

// kill ends the process: SIGTERM, then SIGKILL, and waits for it.
func (p *process) kill() {
	if p.exited() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return
	case <-time.After(termTimeout):
	}
	_ = p.cmd.Process.Kill()
	<-p.done
}

// errPortBusy means swtpm could not bind its ports.
var errPortBusy = errors.New("port in use")

// startLocked launches swtpm on port and port+1, or on a free pair when port
// is 0 or taken.
func (s *SWTPM) startLocked(port int) error {
	var last error
	for try := 0; try < portTries; try++ {
		if port == 0 || try > 0 {
			p, err := freePortPair()
			if err != nil {
				return err
			}
			port = p
		}
		p, err := s.launch(port)
		if err == nil {
			s.port, s.proc = port, p
			return nil
		}
		if !errors.Is(err, errPortBusy) {
			return err
		}
		last = err
	}
	return fmt.Errorf("starting swtpm: no free port pair after %d tries: %w", portTries, last)
}

// launch runs swtpm on port (commands) and port+1 (control) and waits
// until it has bound both.
//
// swtpm writes its pid file only after it has bound its command and
// control sockets (swtpm.c: handle_ctrlchannel_options and
// handle_server_options come before pidfile_write), and it exits if a
// bind fails. So a pid file holding our child's pid means both ports are
// ours. Nothing is sent to either port: each serves one client at a time,
// and a client that reconnects by itself (the service's TPM link, which
// holds the command port and, as the TCP transport's platform port, the
// control port) may already hold them; connections made meanwhile wait in
// the backlog until swtpm's main loop takes them.
func (s *SWTPM) launch(port int) (*process, error) {
	s.launches++
	logPath := filepath.Join(s.logDir, fmt.Sprintf("swtpm-%d.log", s.launches))
	pidPath := filepath.Join(s.logDir, fmt.Sprintf("swtpm-%d.pid", s.launches))
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	cmd := exec.Command(s.bin, "socket", "--tpm2",
		"--server", fmt.Sprintf("type=tcp,port=%d,bindaddr=127.0.0.1", port),
		"--ctrl", fmt.Sprintf("type=tcp,port=%d,bindaddr=127.0.0.1", port+1),
		"--tpmstate", "dir="+s.stateDir,
		"--flags", "not-need-init,startup-clear",
		"--pid", "file="+pidPath,
		"--log", "file="+logPath,
	)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	dieWithParent(cmd)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", s.bin, err)
	}
	p := &process{cmd: cmd, done: make(chan struct{}), logPath: logPath}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.done)
	}()

	want := strconv.Itoa(cmd.Process.Pid)
	for deadline := time.Now().Add(readyTimeout); ; time.Sleep(10 * time.Millisecond) {
		if p.exited() {
			return nil, exitError(p)
		}
		if b, err := os.ReadFile(pidPath); err == nil && strings.TrimSpace(string(b)) == want {
			return p, nil
		}
		if time.Now().After(deadline) {
			p.kill()
			return nil, fmt.Errorf("swtpm did not bind 127.0.0.1:%d and :%d within %v: %s", port, port+1, readyTimeout, p.output())
		}
	}
}

// exitError explains why swtpm exited at start.
func exitError(p *process) error {
	out := p.output()
	if strings.Contains(out, "Address already in use") {
		return fmt.Errorf("swtpm: %w: %s", errPortBusy, out)
	}
	return fmt.Errorf("swtpm exited at start (%v): %s", p.waitErr, out)
}

// stopLocked closes connections, shuts the TPM down and ends the process.
func (s *SWTPM) stopLocked() error {
	for c := range s.conns {
		c.close()
		delete(s.conns, c)
	}
	p := s.proc
	if p == nil {
		return nil
	}
	s.proc = nil
	if p.exited() {
		return fmt.Errorf("swtpm exited during the test (%v): %s", p.waitErr, p.output())
	}
	// An orderly shutdown, so that startup does not count a power loss
	// against the dictionary-attack lockout. Best effort: on timeout (another
	// connection is open) the process is ended anyway.
	if tpm, err := openTimeout(s.specLocked(), shutdownTimeout); err == nil {
		tpm2.Shutdown{ShutdownType: tpm2.TPMSUClear}.Execute(tpm)
		tpm.Close()
	}
	p.kill()
	return nil
}

// freePortPair finds a loopback port p with p+1 free as well.
func freePortPair() (int, error) {
	var last error
	for range 50 {
		l1, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, fmt.Errorf("finding a free port: %w", err)
		}
		p := l1.Addr().(*net.TCPAddr).Port
		if p >= 65535 {
			l1.Close()
			continue
		}
		l2, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p+1)))
		l1.Close()
		if err != nil {
			last = err
			continue
		}
		l2.Close()
		return p, nil
	}
	return 0, fmt.Errorf("finding two adjacent free ports: %w", last)
}

// swtpmBinary finds a usable swtpm, or skips (fails under TPMCARD_REQUIRE_SWTPM=1).
func swtpmBinary(t testing.TB) string {
	t.Helper()
	path, err := findSWTPM()
	if err != nil {
		if os.Getenv(RequireSWTPMEnv) == "1" {
			t.Fatalf("tpmtest: %v (%s=1 forbids skipping)", err, RequireSWTPMEnv)
		}
		t.Skip(err.Error())
	}
	return path
}

// findSWTPM looks swtpm up on PATH and checks its features.
func findSWTPM() (string, error) {
	path, err := exec.LookPath("swtpm")
	if err != nil {
		return "", errors.New("swtpm not installed: install it (Debian/Ubuntu: apt install swtpm) to run the tests against a software TPM")
	}
	out, err := exec.Command(path, "socket", "--tpm2", "--print-capabilities").Output()
	if err != nil {
		return "", fmt.Errorf("swtpm not usable: %s socket --print-capabilities: %v", path, err)
	}
	var caps struct {
		Features []string `json:"features"`
		Version  string   `json:"version"`
	}
	if err := json.Unmarshal(out, &caps); err != nil {
		return "", fmt.Errorf("swtpm not usable: reading %s --print-capabilities: %v", path, err)
	}
	for _, f := range swtpmFeatures {
		if !slices.Contains(caps.Features, f) {
			return "", fmt.Errorf("swtpm not usable: %s (version %s) lacks feature %q", path, caps.Version, f)
		}
	}
	return path, nil
}
