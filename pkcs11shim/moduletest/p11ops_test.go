//go:build linux

package moduletest

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/tpmcard/tpmcard/tpmcard/tpmtest"
)

// runP11Ops runs testdata/p11ops.c (digests, verification, data objects)
// against lib and the running test service.
func runP11Ops(t *testing.T, lib string, env []string) {
	t.Helper()
	bin := cProgram(t, "p11ops")
	cmd := exec.Command(bin, lib, testPIN)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	t.Logf("p11ops:\n%s", out)
	if err != nil || !strings.Contains(string(out), "0 failures") {
		t.Fatalf("p11ops: %v", err)
	}
	if sanitizerReport(string(out)) {
		t.Fatal("p11ops: a sanitizer report")
	}
}

// TestP11Ops: the module's digest, verify and object-editing functions
// from a C program, on the simulator.
func TestP11Ops(t *testing.T) {
	lib := module(t)
	startService(t)
	runP11Ops(t, lib, nil)
}

// TestP11OpsASan is TestP11Ops against the sanitizer build.
func TestP11OpsASan(t *testing.T) {
	lib := asanLib(t)
	startService(t)
	runP11Ops(t, lib, asanEnv(t))
}

// TestP11OpsSWTPM is TestP11Ops with the service on swtpm.
func TestP11OpsSWTPM(t *testing.T) {
	lib := module(t)
	startServiceOn(t, tpmtest.StartSWTPM(t).TPM())
	runP11Ops(t, lib, nil)
}
