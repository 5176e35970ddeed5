//go:build linux

package moduletest

import (
	"os/exec"
	"strings"
	"testing"
)

// TestValgrind runs pkcs11-tool's self-test of the token (--test, logged
// in) and testdata/badinput.c under valgrind's memcheck against the
// module (not the ASan build): no invalid read or write, no use of
// uninitialised memory, no bad free. Leaks are not checked: the consumers
// leak.
func TestValgrind(t *testing.T) {
	valgrind := need(t, "valgrind", "valgrind")
	lib := module(t)
	startService(t)
	memcheck := []string{"--error-exitcode=99", "--leak-check=no"}
	for _, tc := range []struct {
		name, want string
		cmd        []string
	}{
		{"pkcs11-tool", "No errors", []string{need(t, "pkcs11-tool", "opensc"), "--module", lib, "--test", "--login", "--pin", testPIN}},
		{"badinput", "0 failures", []string{cProgram(t, "badinput"), lib, testPIN}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := exec.Command(valgrind, append(memcheck, tc.cmd...)...).CombinedOutput()
			if err != nil || !strings.Contains(string(out), "ERROR SUMMARY: 0 errors") {
				t.Errorf("valgrind %s: %v\n%s", strings.Join(tc.cmd, " "), err, out)
			}
			if !strings.Contains(string(out), tc.want) {
				t.Errorf("%s under valgrind does not say %q:\n%s", tc.name, tc.want, out)
			}
		})
	}
}
