//go:build linux

package ctest

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tpmcard/tpmcard/service/client"
	"github.com/tpmcard/tpmcard/service/wire"
	"github.com/tpmcard/tpmcard/tpmcard/secret"
)

// raceEnabled is set under -race (race_test.go): the C code is not Go, so
// a race build has nothing to add and the tests skip.
var raceEnabled bool

// The sources under test, relative to this directory.
var (
	libSources    = []string{"../tc_cbor.c", "../tc_conn.c"}
	driverSources = []string{"../test/tc_reencode.c", "../test/tc_test.c"}
)

// cflags are those of make test: C11, every warning an error, ASan and
// UBSan with every report fatal.
var cflags = []string{"-std=c11", "-Wall", "-Wextra", "-Werror", "-g", "-O1",
	"-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer", "-pthread"}

var (
	buildDir  string
	buildOnce sync.Map // name -> *sync.Once-guarded result
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "tpmcard-ctest")
	if err != nil {
		panic(err)
	}
	buildDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// need skips the test when tool is missing, except in CI, where the
// Makefile installs it and its absence is a failure.
func need(t *testing.T, tool string) string {
	t.Helper()
	if raceEnabled {
		t.Skip("the C tests do not run under -race")
	}
	p, err := exec.LookPath(tool)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is not installed (make setup installs it)", tool)
		}
		t.Skipf("%s is not installed", tool)
	}
	return p
}

type built struct {
	once sync.Once
	path string
	err  error
}

// build compiles the sources with cc and extra flags into name, once per
// test binary.
func build(t *testing.T, cc, name string, extra []string, sources ...string) string {
	t.Helper()
	v, _ := buildOnce.LoadOrStore(name, &built{})
	b := v.(*built)
	b.once.Do(func() {
		b.path = filepath.Join(buildDir, name)
		args := append(append(append([]string{}, extra...), "-o", b.path), sources...)
		out, err := exec.Command(cc, args...).CombinedOutput()
		if err != nil {
			b.err = fmt.Errorf("%s %s: %v\n%s", cc, strings.Join(args, " "), err, out)
		}
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path
}

// driver returns the sanitized test driver, test/tc_test.c.
func driver(t *testing.T) string {
	t.Helper()
	cc := need(t, "gcc")
	return build(t, cc, "tc_test", cflags, append(append([]string{}, libSources...), driverSources...)...)
}

// run runs the driver with args, stdin and env, bounded by timeout.
func run(t *testing.T, timeout time.Duration, stdin string, env []string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, driver(t), args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("tc_test %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, out.String(), errb.String())
	}
	return out.String()
}

func TestUnit(t *testing.T) {
	t.Setenv("TMPDIR", t.TempDir())
	if out := run(t, time.Minute, "", nil, "unit"); !strings.Contains(out, "unit ok") {
		t.Fatalf("unit: %s", out)
	}
}

// samples returns the encoding of every sample message of service/wire,
// by frame type, as its TestDumpSamples writes them.
func samples(t *testing.T) map[wire.Type][]byte {
	t.Helper()
	dir := t.TempDir()
	cmd := exec.Command("go", "test", "-count=1", "-run", "^TestDumpSamples$", ".", "-args", "-dump-samples", dir)
	cmd.Dir = "../../../service/wire"
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("dumping the wire samples: %v\n%s", err, out)
	}
	got := map[wire.Type][]byte{}
	for _, typ := range wire.Types() {
		b, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf("%02x.cbor", uint8(typ))))
		if err != nil {
			t.Fatalf("no sample of %v: %v", typ, err)
		}
		got[typ] = b
	}
	return got
}

// roundtrip has the C codec decode and re-encode each input; it returns
// the re-encoding, or the C error code as "err N".
func roundtrip(t *testing.T, inputs [][]byte) []string {
	t.Helper()
	var in strings.Builder
	for _, b := range inputs {
		in.WriteString(hex.EncodeToString(b) + "\n")
	}
	lines := strings.Split(strings.TrimSuffix(run(t, time.Minute, in.String(), nil, "roundtrip"), "\n"), "\n")
	if len(lines) != len(inputs) {
		t.Fatalf("%d results for %d inputs", len(lines), len(inputs))
	}
	return lines
}

// TestSamples: every sample message, encoded by the Go codec, decodes in C
// and re-encodes to the same bytes.
func TestSamples(t *testing.T) {
	s := samples(t)
	types := wire.Types()
	var inputs [][]byte
	for _, typ := range types {
		b := s[typ]
		// The dump is the Go codec's own fixed point.
		v := wire.New(typ)
		if err := wire.Unmarshal(b, v); err != nil {
			t.Fatalf("%v: %v", typ, err)
		}
		if again, err := wire.Marshal(v); err != nil || !bytes.Equal(again, b) {
			t.Fatalf("%v: Go re-encoding differs: %x, %v", typ, again, err)
		}
		inputs = append(inputs, b)
	}
	for i, line := range roundtrip(t, inputs) {
		want := "ok " + hex.EncodeToString(inputs[i])
		if line != want {
			t.Errorf("%v: C round trip gives %q, want %q", types[i], line, want)
		}
	}
}

// C error codes (tc_cbor.h).
const (
	errTruncated    = 1
	errTrailing     = 2
	errIndefinite   = 3
	errTag          = 4
	errSimple       = 5
	errMalformed    = 6
	errNonCanonical = 7
	errKey          = 8
	errDupKey       = 9
	errKeyOrder     = 10
	errDepth        = 11
	errLimit        = 12
	errUTF8         = 13
)

func TestMalformed(t *testing.T) {
	nested := func(n int) string { return strings.Repeat("81", n) + "00" }
	manyPairs := "b90101"
	for i := range 257 {
		manyPairs += fmt.Sprintf("19%04x00", i+0x100)
	}
	cases := []struct {
		name string
		hex  string
		err  int
		// goToo: the Go decoder refuses it as well. Where it does not,
		// the C decoder is stricter: it accepts only the canonical
		// encoding the service's Go encoder writes.
		goToo bool
	}{
		{"fail/empty", "", errTruncated, true},
		{"fail/truncated-map", "a1", errTruncated, true},
		{"fail/truncated-value", "a101", errTruncated, true},
		{"fail/truncated-head", "19ff", errTruncated, true},
		{"fail/bytes-past-end", "4201", errTruncated, true},
		{"fail/text-past-end", "63616263"[:6], errTruncated, true},
		{"fail/huge-length", "5bffffffffffffffff", errTruncated, true},
		{"fail/trailing", "a1010700", errTrailing, true},
		{"fail/two-items", "a0a0", errTrailing, true},
		{"fail/indefinite-map", "bf0107ff", errIndefinite, true},
		{"fail/indefinite-array", "9f00ff", errIndefinite, true},
		{"fail/indefinite-bytes", "5f4100ff", errIndefinite, true},
		{"fail/indefinite-text", "7f6161ff", errIndefinite, true},
		{"fail/break", "ff", errIndefinite, true},
		{"fail/tag", "c100", errTag, true},
		{"fail/tag-inside", "a101c100", errTag, true},
		{"fail/reserved-28", "1c", errMalformed, true},
		{"fail/reserved-30-bytes", "5e", errMalformed, true},
		{"fail/duplicate-key", "a201070108", errDupKey, true},
		{"fail/too-deep", nested(17), errDepth, true},
		{"fail/array-too-long", "9a00010000", errLimit, true},
		{"fail/map-too-long", manyPairs, errLimit, true},
		{"fail/utf8-invalid", "62c328", errUTF8, true},
		{"fail/utf8-overlong", "62c0af", errUTF8, true},
		{"fail/utf8-surrogate", "63eda080", errUTF8, true},
		{"fail/utf8-above-10ffff", "64f4908080", errUTF8, true},
		{"fail/float16", "f93c00", errSimple, false},
		{"fail/float64", "fb3ff0000000000000", errSimple, false},
		{"fail/null", "f6", errSimple, false},
		{"fail/undefined", "f7", errSimple, false},
		{"fail/simple-32", "f820", errSimple, false},
		{"fail/null-in-map", "a101f6", errSimple, false},
		{"fail/noncanonical-uint", "1817", errNonCanonical, false},
		{"fail/noncanonical-uint16", "1900ff", errNonCanonical, false},
		{"fail/noncanonical-length", "5800", errNonCanonical, false},
		{"fail/noncanonical-key", "a1180100", errNonCanonical, false},
		{"fail/key-order", "a202070107", errKeyOrder, false},
		{"fail/text-key", "a1616100", errKey, false},
		{"fail/negative-key", "a12000", errKey, false},
	}
	var inputs [][]byte
	for _, c := range cases {
		b, err := hex.DecodeString(c.hex)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		inputs = append(inputs, b)
	}
	for i, line := range roundtrip(t, inputs) {
		c := cases[i]
		if want := "err " + strconv.Itoa(c.err); line != want {
			t.Errorf("%s: C gives %q, want %q", c.name, line, want)
		}
		var v any
		if err := wire.Unmarshal(inputs[i], &v); (err != nil) != c.goToo {
			t.Errorf("%s: Go decoder error %v, want refused=%v", c.name, err, c.goToo)
		}
	}

	// The edges that are still fine.
	ok := []string{"00", "17", "1818", "20", "3bffffffffffffffff", "1bffffffffffffffff", "f4", "f5",
		"40", "60", "80", "a0", "62c3a9", "64f48fbfbf", nested(16), "a3000001001818f4", "991000" + strings.Repeat("00", 4096)}
	inputs = nil
	for _, h := range ok {
		b, _ := hex.DecodeString(h)
		inputs = append(inputs, b)
	}
	for i, line := range roundtrip(t, inputs) {
		if want := "ok " + ok[i]; line != want {
			t.Errorf("ok/%s: C gives %.40q", ok[i][:min(len(ok[i]), 20)], line)
		}
	}
}

// service starts tpmcard service run --tpm sim with a card and returns
// the environment that points the driver at it, and the card's serial.
func service(t *testing.T) (env []string, serial string) {
	t.Helper()
	if raceEnabled {
		t.Skip("the C tests do not run under -race")
	}
	bin := filepath.Join(buildDir, "tpmcard")
	v, _ := buildOnce.LoadOrStore("tpmcard", &built{})
	b := v.(*built)
	b.once.Do(func() {
		out, err := exec.Command("go", "build", "-o", bin, "../../../cmd/tpmcard").CombinedOutput()
		if err != nil {
			b.err = fmt.Errorf("building tpmcard: %v\n%s", err, out)
		}
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	dir := t.TempDir()
	sock := filepath.Join(dir, "run", "tpmcard.sock")
	cmd := exec.Command(bin, "service", "run", "--tpm", "sim", "--state-dir", filepath.Join(dir, "state"),
		"--socket", sock, "--config", "/dev/null", "--max-connections-per-user", "1024")
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			t.Error("the service did not stop on SIGTERM")
		}
		if t.Failed() {
			t.Logf("service log:\n%s", log.String())
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("the service exited: %v\n%s", err, log.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("no socket after 20s:\n%s", log.String())
		}
	}
	c, err := client.Dial(sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	p, err := c.Provision(wire.Provision{Label: "ctest", PIN: secret.FromString("ctest-PIN-1"), PUK: secret.FromString("12345678")})
	if err != nil {
		t.Fatalf("provisioning a card: %v", err)
	}
	return []string{"TPMCARD_SOCKET=" + sock}, p.Serial
}

func TestService(t *testing.T) {
	env, serial := service(t)
	out := run(t, time.Minute, "", env, "service")
	for _, want := range []string{
		"ListCards type 82 decode 0 gen 1",
		"ListCards cards 1\n",
		"ListCards serial " + serial + "\n",
		"Unknown type fe decode 0 gen 1",
		"BadBody type ff decode 0 gen 1",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in:\n%s", want, out)
		}
	}
	// GetStatus answers (ServiceStatus, or an Error if this peer may not
	// ask), and the connection is still the first one at the end.
	if !strings.Contains(out, "GetStatus type c2 decode 0 gen 1") && !strings.Contains(out, "GetStatus type ff decode 0 gen 1") {
		t.Errorf("GetStatus: %s", out)
	}
	if strings.Count(out, "gen 1 ") != 5 {
		t.Errorf("the connection did not last:\n%s", out)
	}
}

// TestFork: a connected parent, with a thread that keeps calling, forks
// children one after another; each child calls on a connection of its
// own within its alarm(10), and the parent's connection is untouched.
func TestFork(t *testing.T) {
	env, _ := service(t)
	const n = 200
	out := run(t, 5*time.Minute, "", env, "fork", strconv.Itoa(n))
	if !strings.Contains(out, fmt.Sprintf("children %d hangs 0 fails 0 parent 0 gen 1->1", n)) {
		t.Fatalf("fork: %s", out)
	}
	t.Log(strings.TrimSpace(out))
}

// TestLibFuzzer runs the libFuzzer targets for the decoder and the frame
// reader, seeded from the wire samples, for TPMCARD_CFUZZ_RUNS iterations
// each (make test sets it; 20000 otherwise).
func TestLibFuzzer(t *testing.T) {
	cc := need(t, "clang")
	runs := os.Getenv("TPMCARD_CFUZZ_RUNS")
	if runs == "" {
		runs = "20000"
	}
	s := samples(t)
	flags := []string{"-std=c11", "-Wall", "-Wextra", "-Werror", "-g", "-O1",
		"-fsanitize=fuzzer,address,undefined", "-fno-sanitize-recover=all"}
	for _, target := range []string{"decode", "frame"} {
		t.Run(target, func(t *testing.T) {
			bin := build(t, cc, "fuzz_"+target, flags,
				append(append([]string{}, libSources...), "../test/tc_reencode.c", "../test/fuzz_"+target+".c")...)
			corpus := t.TempDir()
			for typ, body := range s {
				seed := body
				if target == "frame" {
					var hdr [5]byte
					n := len(body) + 1
					hdr = [5]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n), byte(typ)}
					// Reads of 3 bytes, no cap but the protocol's.
					seed = append(append([]byte{2, 0, 0}, hdr[:]...), body...)
				}
				if err := os.WriteFile(filepath.Join(corpus, fmt.Sprintf("%02x", uint8(typ))), seed, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			start := time.Now()
			cmd := exec.CommandContext(ctx, bin, "-runs="+runs, "-max_len=4096", "-timeout=10", corpus)
			cmd.Dir = t.TempDir() // crash files land here
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("fuzz_%s: %v\n%s", target, err, out)
			}
			t.Logf("fuzz_%s: %s runs in %v", target, runs, time.Since(start).Round(time.Millisecond))
		})
	}
}
