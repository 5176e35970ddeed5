package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
)

// TestScripts runs the CLI's transcripts, testdata/script/*.txtar: the
// built binary as a person or a script types it, each transcript against a
// service of its own (`service start`, on the simulator), so they run in
// parallel.
//
// Besides testscript's own commands, a transcript has:
//
//	service start [FLAG...]    tpmcard service run --tpm sim in the background, with its
//	                           state in $WORK/state and its socket at $TPMCARD_SOCKET, its
//	                           log in $WORK/service.log; ended at the end of the script
//	service stop               SIGTERM; it must exit 0
//	exits CODE PROG [ARG...]   run PROG, which must exit with CODE; stdout and stderr as exec's
//	json FILE [PATH=VALUE | PATH~REGEXP | PATH]...
//	                           FILE (or stdout, stderr) is one JSON value, whose PATH
//	                           (a.b.0.c) is VALUE, matches REGEXP, or exists
//	capture NAME FILE [PATH]   set $NAME to FILE's trimmed text, or the JSON value at PATH
//	expand FILE...             replace $NAME in FILE by its value (for stdin files)
//
// and the condition [tool:NAME], true when the program NAME is installed;
// with TPMCARD_REQUIRE_TOOLS=1 (CI) a missing one fails the script.
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/script",
		RequireExplicitExec: true,
		RequireUniqueNames:  true,
		Setup: func(env *testscript.Env) error {
			env.Setenv("PATH", filepath.Dir(cliBin)+string(os.PathListSeparator)+env.Getenv("PATH"))
			env.Setenv("TPMCARD_SOCKET", filepath.Join(env.WorkDir, "run", "tpmcard.sock"))
			svc := &scriptService{}
			env.Values[scriptService{}] = svc
			// Whatever still runs at the end is killed: the script has
			// failed already, or did not care to stop it.
			env.Defer(func() {
				if svc.cmd != nil {
					svc.cmd.Process.Kill()
					<-svc.done
				}
			})
			return nil
		},
		Condition: func(cond string) (bool, error) {
			name, ok := strings.CutPrefix(cond, "tool:")
			if !ok {
				return false, fmt.Errorf("unknown condition %q", cond)
			}
			if _, err := exec.LookPath(name); err != nil {
				if os.Getenv("TPMCARD_REQUIRE_TOOLS") == "1" {
					return false, fmt.Errorf("%s is not installed (TPMCARD_REQUIRE_TOOLS=1): make setup installs it", name)
				}
				return false, nil
			}
			return true, nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"service": cmdService,
			"exits":   cmdExits,
			"json":    cmdJSON,
			"capture": cmdCapture,
			"expand":  cmdExpand,
		},
	})
}

// scriptService is the service a transcript started.
type scriptService struct {
	cmd  *exec.Cmd
	done chan error
}

func cmdService(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) == 0 {
		ts.Fatalf("usage: service start [FLAG...] | service stop")
	}
	svc := ts.Value(scriptService{}).(*scriptService)
	switch args[0] {
	case "start":
		if svc.cmd != nil {
			ts.Fatalf("the service runs already")
		}
		sock := ts.Getenv("TPMCARD_SOCKET")
		log, err := os.OpenFile(ts.MkAbs("service.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		ts.Check(err)
		// Its admin group is the test's own, so that the test is an
		// administrator without being root. Later flags win.
		flags := append([]string{"service", "run", "--tpm", "sim", "--config", os.DevNull,
			"--state-dir", ts.MkAbs("state"), "--socket", sock, "--admin-group", strconv.Itoa(os.Getgid()),
			"--log-level", "debug", "--log-format", "console"}, args[1:]...)
		cmd := exec.Command(cliBin, flags...)
		cmd.Stdout, cmd.Stderr = log, log
		err = cmd.Start()
		log.Close()
		ts.Check(err)
		svc.cmd, svc.done = cmd, make(chan error, 1)
		go func() { svc.done <- cmd.Wait() }()
		deadline := time.Now().Add(20 * time.Second)
		for {
			if _, err := os.Stat(sock); err == nil {
				return
			}
			select {
			case err := <-svc.done:
				svc.cmd = nil
				ts.Fatalf("the service exited: %v\n%s", err, ts.ReadFile("service.log"))
			case <-time.After(20 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				ts.Fatalf("no socket after 20s:\n%s", ts.ReadFile("service.log"))
			}
		}
	case "stop":
		if svc.cmd == nil {
			ts.Fatalf("no service runs")
		}
		ts.Check(svc.cmd.Process.Signal(syscall.SIGTERM))
		select {
		case err := <-svc.done:
			svc.cmd = nil
			if err != nil {
				ts.Fatalf("the service exited with %v on SIGTERM", err)
			}
		case <-time.After(15 * time.Second):
			ts.Fatalf("the service did not stop on SIGTERM")
		}
	default:
		ts.Fatalf("usage: service start [FLAG...] | service stop")
	}
}

func cmdExits(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: exits CODE PROG [ARG...]")
	}
	want, err := strconv.Atoi(args[0])
	if err != nil {
		ts.Fatalf("exits: %q is not an exit code", args[0])
	}
	err = ts.Exec(args[1], args[2:]...)
	got := 0
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		got = ee.ExitCode()
	case err != nil:
		ts.Fatalf("running %s: %v", args[1], err)
	}
	if got != want {
		ts.Fatalf("%s exited with %d, want %d", args[1], got, want)
	}
}

// jsonAt walks a decoded JSON value along a dotted path.
func jsonAt(v any, path string) (any, bool) {
	if path == "" || path == "." {
		return v, true
	}
	for _, p := range strings.Split(path, ".") {
		switch x := v.(type) {
		case map[string]any:
			var ok bool
			if v, ok = x[p]; !ok {
				return nil, false
			}
		case []any:
			i, err := strconv.Atoi(p)
			if err != nil || i < 0 || i >= len(x) {
				return nil, false
			}
			v = x[i]
		default:
			return nil, false
		}
	}
	return v, true
}

// jsonText is a JSON value as an assertion compares it: strings bare,
// everything else as JSON.
func jsonText(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	b, _ := json.Marshal(v)
	return string(b)
}

func readJSON(ts *testscript.TestScript, file string) any {
	var v any
	dec := json.NewDecoder(strings.NewReader(ts.ReadFile(file)))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		ts.Fatalf("%s is not JSON: %v", file, err)
	}
	if dec.More() {
		ts.Fatalf("%s holds more than one JSON value", file)
	}
	return v
}

func cmdJSON(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) < 1 {
		ts.Fatalf("usage: json FILE [PATH=VALUE | PATH~REGEXP | PATH]...")
	}
	v := readJSON(ts, args[0])
	failed := ""
	for _, a := range args[1:] {
		path, want, op := a, "", byte(0)
		if i := strings.IndexAny(a, "=~"); i >= 0 {
			path, want, op = a[:i], a[i+1:], a[i]
		}
		got, ok := jsonAt(v, path)
		switch {
		case !ok:
			failed = fmt.Sprintf("%s has no %s", args[0], path)
		case op == '=' && jsonText(got) != want:
			failed = fmt.Sprintf("%s: %s is %s, want %s", args[0], path, jsonText(got), want)
		case op == '~' && !regexp.MustCompile(want).MatchString(jsonText(got)):
			failed = fmt.Sprintf("%s: %s is %s, which does not match %s", args[0], path, jsonText(got), want)
		default:
			continue
		}
		if !neg {
			ts.Fatalf("%s", failed)
		}
		return
	}
	if neg && len(args) > 1 {
		ts.Fatalf("%s: every assertion holds", args[0])
	}
}

func cmdCapture(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 || len(args) > 3 {
		ts.Fatalf("usage: capture NAME FILE [PATH]")
	}
	if len(args) == 2 {
		ts.Setenv(args[0], strings.TrimSpace(ts.ReadFile(args[1])))
		return
	}
	got, ok := jsonAt(readJSON(ts, args[1]), args[2])
	if !ok {
		ts.Fatalf("%s has no %s", args[1], args[2])
	}
	ts.Setenv(args[0], jsonText(got))
}

func cmdExpand(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) == 0 {
		ts.Fatalf("usage: expand FILE...")
	}
	for _, f := range args {
		s := os.Expand(ts.ReadFile(f), ts.Getenv)
		ts.Check(os.WriteFile(ts.MkAbs(f), []byte(s), 0o600))
	}
}
