package main

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// buildCLI builds the real binary, as users run it.
func buildCLI(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "tpmcard")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func TestDemoOnSimulator(t *testing.T) {
	bin := buildCLI(t)
	out, err := exec.Command(bin, "demo", "--tpm", "sim").CombinedOutput()
	if err != nil {
		t.Fatalf("tpmcard demo: %v\n%s", err, out)
	}
	for _, want := range []string{
		"NOT hardware-protected",
		"refused: PIN must be changed",
		"PIN incorrect: 2 tries left",
		"PIN locked",
		"PIN tries left 3/3",
		"signature verified",
		"done",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("demo output lacks %q:\n%s", want, out)
		}
	}
}

func TestNoTPMSaysWhatToDo(t *testing.T) {
	bin := buildCLI(t)
	out, err := exec.Command(bin, "demo", "--tpm", "device:/nonexistent/tpmrm0").CombinedOutput()
	if err == nil {
		t.Fatalf("demo on a missing TPM succeeded:\n%s", out)
	}
	if s := string(out); !strings.HasPrefix(s, "tpmcard: ") || !strings.Contains(s, "--tpm sim") {
		t.Fatalf("error does not say what to do: %q", s)
	}
	out, err = exec.Command(bin, "frobnicate").CombinedOutput()
	if err == nil || !strings.Contains(string(out), `unknown command "frobnicate"`) {
		t.Fatalf("unknown command: %v %q", err, out)
	}
}
