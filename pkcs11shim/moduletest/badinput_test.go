//go:build linux

package moduletest

import (
	"os"
	"os/exec"
	"testing"
)

// TestBadInput runs testdata/badinput.c against the module: calls before
// C_Initialize and after C_Finalize (CKR_CRYPTOKI_NOT_INITIALIZED),
// C_Initialize twice (CKR_CRYPTOKI_ALREADY_INITIALIZED), C_Finalize with
// an argument and NULL for every pointer argument (CKR_ARGUMENTS_BAD),
// short buffers (CKR_BUFFER_TOO_SMALL with the length set, nothing
// written, the operation still usable), templates of 100000 attributes
// and 2 MiB to sign (refused), and handles that name nothing
// (CKR_SESSION_HANDLE_INVALID, CKR_OBJECT_HANDLE_INVALID,
// CKR_SLOT_ID_INVALID).
func TestBadInput(t *testing.T) {
	runBadInput(t, module(t), nil)
}

// TestBadInputASan is TestBadInput against the ASan module.
func TestBadInputASan(t *testing.T) {
	lib := asanLib(t)
	runBadInput(t, lib, asanEnv(t))
}

func runBadInput(t *testing.T, lib string, env []string) {
	t.Helper()
	bin := cProgram(t, "badinput")
	startService(t)
	cmd := exec.Command(bin, lib, testPIN)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	t.Logf("badinput:\n%s", out)
	if err != nil {
		t.Fatalf("badinput: %v", err)
	}
	if sanitizerReport(string(out)) {
		t.Fatal("badinput: a sanitizer report")
	}
}
