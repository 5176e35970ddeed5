//go:build linux

package moduletest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// The environment variables that name the artifacts under test.
const (
	moduleEnv     = "TPMCARD_PKCS11_MODULE"
	asanModuleEnv = "TPMCARD_PKCS11_ASAN_MODULE"
	dllEnv        = "TPMCARD_PKCS11_DLL"
	socketEnv     = "TPMCARD_SOCKET"
	debugEnv      = "TPMCARD_PKCS11_DEBUG"
)

// progDir holds the C programs compiled from testdata/.
var progDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "tpmcard-moduletest-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	progDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// repoRoot is the repository root, two levels above this package.
func repoRoot(t testing.TB) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// artifact is one file the Makefile builds, made at most once per run.
type artifact struct {
	env, target, path string // path relative to the repository root

	once     sync.Once
	file     string
	out      string
	err      error
	noTarget bool // make has no rule for target
}

var (
	plainModule = &artifact{env: moduleEnv, target: "module", path: "bin/libtpmcard-pkcs11.so"}
	asanModule  = &artifact{env: asanModuleEnv, target: "module-asan", path: "bin/asan/libtpmcard-pkcs11.so"}
	windowsDLL  = &artifact{env: dllEnv, target: "dll", path: "bin/tpmcard-pkcs11.dll"}
)

// resolve finds or builds the artifact: the file its environment variable
// names, or else what `make -s TARGET` builds in the repository root.
func (a *artifact) resolve(t testing.TB) {
	t.Helper()
	a.once.Do(func() {
		if p := os.Getenv(a.env); p != "" {
			a.file, a.err = filepath.Abs(p)
			if a.err == nil {
				_, a.err = os.Stat(a.file)
			}
			if a.err != nil {
				a.err = fmt.Errorf("%s=%s: %w", a.env, p, a.err)
			}
			return
		}
		root := repoRoot(t)
		out, err := exec.Command("make", "-s", "-C", root, a.target).CombinedOutput()
		a.out = strings.TrimSpace(string(out))
		if err != nil {
			a.err = fmt.Errorf("make %s: %w", a.target, err)
			a.noTarget = strings.Contains(a.out, "No rule to make target '"+a.target+"'")
			return
		}
		a.file = filepath.Join(root, a.path)
		if _, err := os.Stat(a.file); err != nil {
			a.err = fmt.Errorf("make %s did not build %s: %w", a.target, a.path, err)
		}
	})
}

// get returns the artifact's absolute path or fails t.
func (a *artifact) get(t testing.TB) string {
	t.Helper()
	a.resolve(t)
	if a.err != nil {
		t.Fatalf("%v\n%s\n(or set %s to one built elsewhere)", a.err, a.out, a.env)
	}
	return a.file
}

// module returns the module under test.
func module(t testing.TB) string {
	t.Helper()
	return plainModule.get(t)
}

// asanLib returns the module built with AddressSanitizer and
// UndefinedBehaviorSanitizer. It skips while the Makefile has no
// module-asan target; any other failure to build it fails t.
func asanLib(t *testing.T) string {
	t.Helper()
	asanModule.resolve(t)
	if asanModule.noTarget {
		absent(t, "module-asan not available: %v: %s", asanModule.err, asanModule.out)
	}
	return asanModule.get(t)
}

// asanEnv is what the environment of a process that loads the ASan module
// adds:
// the sanitizer runtimes preloaded (the consumers are not built with
// them), leak reports off (the consumers leak) and every report fatal.
func asanEnv(t *testing.T) []string {
	t.Helper()
	gcc := need(t, "gcc", "gcc")
	var libs []string
	for _, name := range []string{"libasan.so", "libubsan.so"} {
		out, err := exec.Command(gcc, "-print-file-name="+name).Output()
		p := strings.TrimSpace(string(out))
		if err != nil || !filepath.IsAbs(p) {
			t.Fatalf("gcc -print-file-name=%s: %v %q (Debian package gcc ships the sanitizer runtimes)", name, err, p)
		}
		libs = append(libs, p)
	}
	return []string{
		"LD_PRELOAD=" + strings.Join(libs, " "),
		"ASAN_OPTIONS=detect_leaks=0:abort_on_error=1",
		"UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1",
	}
}

// sanitizerReport says whether output holds an ASan or UBSan report.
func sanitizerReport(out string) bool {
	return strings.Contains(out, "ERROR: AddressSanitizer") ||
		strings.Contains(out, "runtime error:") ||
		strings.Contains(out, "ERROR: UndefinedBehaviorSanitizer")
}

// need skips the test when a tool is not installed.
func need(t testing.TB, tool, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(tool)
	if err != nil {
		absent(t, "%s is not installed (Debian package %s)", tool, pkg)
	}
	return p
}

// absent skips a test whose tool or part is missing, except where
// TPMCARD_REQUIRE_TOOLS is set (make test in CI): there a missing part is
// a missing install step, and fails.
func absent(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv("TPMCARD_REQUIRE_TOOLS") != "" {
		t.Fatalf("TPMCARD_REQUIRE_TOOLS: "+format, args...)
	}
	t.Skipf(format, args...)
}

// run runs a command and returns its combined output; it fails the test
// unless the command succeeds.
func run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// runFail runs a command that must fail and returns its output.
func runFail(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err == nil {
		t.Fatalf("%s %s succeeded, want a failure\n%s", name, strings.Join(args, " "), out)
	}
	return string(out)
}

func writeFile(t testing.TB, path, data string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), mode); err != nil {
		t.Fatal(err)
	}
}

// cFlags are those of every C program here: C11, every warning an error.
var cFlags = []string{"-std=c11", "-Wall", "-Wextra", "-Werror", "-g", "-O2", "-pthread"}

var programs sync.Map // name -> *program

type program struct {
	once sync.Once
	path string
	out  []byte
	err  error
}

// cProgram compiles testdata/NAME.c once per run and returns the binary.
func cProgram(t testing.TB, name string) string {
	t.Helper()
	gcc := need(t, "gcc", "gcc")
	pc := need(t, "pkg-config", "pkg-config")
	v, _ := programs.LoadOrStore(name, &program{})
	p := v.(*program)
	p.once.Do(func() {
		var inc []byte
		if inc, p.err = exec.Command(pc, "--cflags", "p11-kit-1").Output(); p.err != nil {
			p.err = fmt.Errorf("pkg-config --cflags p11-kit-1 (Debian package libp11-kit-dev): %w", p.err)
			return
		}
		p.path = filepath.Join(progDir, name)
		args := append(append([]string{}, cFlags...), strings.Fields(string(inc))...)
		args = append(args, "-o", p.path, filepath.Join("testdata", name+".c"), "-ldl")
		p.out, p.err = exec.Command(gcc, args...).CombinedOutput()
	})
	if p.err != nil {
		t.Fatalf("compiling testdata/%s.c: %v\n%s", name, p.err, p.out)
	}
	return p.path
}
