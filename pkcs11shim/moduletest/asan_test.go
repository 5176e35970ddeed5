//go:build linux

package moduletest

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// The module built with -fsanitize=address,undefined (make module-asan)
// under the C harness, pkcs11-tool's self-test and the bad-input program
// (badinput_test.go): any ASan or UBSan report aborts the consumer.

// TestCHarnessASan runs testdata/harness.c against the ASan module.
func TestCHarnessASan(t *testing.T) {
	lib := asanLib(t)
	env := asanEnv(t)
	startService(t)
	runHarness(t, lib, env)
}

// TestPKCS11ToolASan runs OpenSC's self-test of the token (pkcs11-tool
// --test, logged in) and a listing of every object against the ASan
// module.
func TestPKCS11ToolASan(t *testing.T) {
	tool := need(t, "pkcs11-tool", "opensc")
	lib := asanLib(t)
	env := asanEnv(t)
	startService(t)
	for _, args := range [][]string{
		{"--test", "--login", "--pin", testPIN},
		{"-L"}, {"-M"}, {"-O", "--login", "--pin", testPIN},
	} {
		cmd := exec.Command(tool, append([]string{"--module", lib}, args...)...)
		cmd.Env = append(os.Environ(), env...)
		out, err := cmd.CombinedOutput()
		if err != nil || sanitizerReport(string(out)) {
			t.Fatalf("pkcs11-tool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		if args[0] == "--test" && !strings.Contains(string(out), "No errors") {
			t.Errorf("pkcs11-tool --test:\n%s", out)
		}
	}
}
