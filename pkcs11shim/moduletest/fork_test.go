//go:build linux

package moduletest

import (
	"flag"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

var forkChildren = flag.Int("fork-children", 2000, "children TestFork forks")

// forkSignEvery is how often a child logs in and signs: a login costs the
// service an argon2 derivation (some 15-20 ms), too much for every one of
// 2000 children; the others open a session and find the public key, which
// takes the module's whole connection path in the child.
const forkSignEvery = 10

// forkResult is what testdata/fork.c reports.
type forkResult struct {
	children, ok, hung, failed int
	perSecond                  float64
	out                        string
}

var forkLine = regexp.MustCompile(`(?m)^children (\d+) ok (\d+) hung (\d+) failed (\d+)$`)

// runFork runs testdata/fork.c against the module with the test service
// running. It stops forking after maxHung hung children (each costs 10 s)
// or after budget.
func runFork(t testing.TB, children, maxHung int, budget time.Duration) forkResult {
	t.Helper()
	bin := cProgram(t, "fork")
	lib := module(t)
	cmd := exec.Command(bin, lib, testPIN, strconv.Itoa(children), strconv.Itoa(forkSignEvery),
		strconv.Itoa(maxHung), fmt.Sprintf("%.0f", budget.Seconds()))
	out, err := cmd.CombinedOutput()
	r := forkResult{out: string(out)}
	m := forkLine.FindStringSubmatch(r.out)
	if m == nil {
		t.Fatalf("fork: %v, no summary line:\n%s", err, out)
	}
	r.children, _ = strconv.Atoi(m[1])
	r.ok, _ = strconv.Atoi(m[2])
	r.hung, _ = strconv.Atoi(m[3])
	r.failed, _ = strconv.Atoi(m[4])
	for _, line := range strings.Split(r.out, "\n") {
		if v, ok := strings.CutPrefix(line, "children_per_s "); ok {
			r.perSecond, _ = strconv.ParseFloat(v, 64)
		}
	}
	if err != nil && r.ok == children {
		// Every child was fine, the parent was not.
		t.Errorf("fork: %v", err)
	}
	return r
}

// TestFork forks -fork-children children, one at a time, off a process
// that uses the module while a second thread of it keeps calling
// C_GetSlotList and C_GetTokenInfo. Every child must find the parent's
// state gone (CKR_CRYPTOKI_NOT_INITIALIZED), start afresh with
// C_Initialize, open a session and find the public key, every 10th also
// log in and sign, and finalize, within 10 s; the parent's calls must all
// succeed and its session must still sign afterwards (PKCS#11 v2.40
// §5.4, §6.7.7).
func TestFork(t *testing.T) {
	startService(t)
	n := *forkChildren
	r := runFork(t, n, 3, 150*time.Second)
	t.Logf("fork:\n%s", r.out)
	if r.children != n || r.ok != n || r.hung != 0 || r.failed != 0 {
		t.Errorf("children %d ok %d hung %d failed %d, want %d children all ok (a hung child is one SIGALRM ended after 10 s)",
			r.children, r.ok, r.hung, r.failed, n)
	}
}

// BenchmarkFork forks b.N children the way TestFork does and reports
// children per second and how many hung or failed; any that did fails
// the benchmark, which stops forking after three hung children.
func BenchmarkFork(b *testing.B) {
	startService(b)
	b.ResetTimer()
	r := runFork(b, b.N, 3, time.Hour)
	b.StopTimer()
	b.ReportMetric(r.perSecond, "children/s")
	b.ReportMetric(float64(r.hung), "hung")
	b.ReportMetric(float64(r.failed), "failed")
	if r.ok != b.N {
		b.Errorf("children %d ok %d hung %d failed %d:\n%s", r.children, r.ok, r.hung, r.failed, r.out)
	}
}
