//go:build cgo && linux

package main

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// exportRE matches a line of the export name table objdump -p prints.
var exportRE = regexp.MustCompile(`^\s*\[\s*\d+\]\s+(\S+)$`)

// dllExports returns the names in the export table of objdump -p's output.
func dllExports(dump string) []string {
	var names []string
	in := false
	sc := bufio.NewScanner(strings.NewReader(dump))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.Contains(line, "[Ordinal/Name Pointer] Table"):
			in = true
		case in && strings.TrimSpace(line) == "":
			in = false
		case in:
			if m := exportRE.FindStringSubmatch(line); m != nil {
				names = append(names, m[1])
			}
		}
	}
	return names
}

// TestWindowsDLL cross-builds the module as a Windows DLL with mingw-w64
// and checks that it exports the entry points the Linux module does. The
// DLL does not run here; structs.c checks the packing at compile time.
func TestWindowsDLL(t *testing.T) {
	cc := need(t, "x86_64-w64-mingw32-gcc", "gcc-mingw-w64-x86-64")
	objdump := need(t, "x86_64-w64-mingw32-objdump", "binutils-mingw-w64-x86-64")
	dll := filepath.Join(t.TempDir(), "tpmcard-pkcs11.dll")
	cmd := exec.Command(goTool(), "build", "-buildmode=c-shared", "-o", dll, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=1", "GOOS=windows", "GOARCH=amd64", "CC="+cc)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("cross-building the DLL: %v\n%s", err, out)
	}
	exports := dllExports(run(t, objdump, "-p", dll))
	for _, name := range []string{"C_GetFunctionList", "C_GetInterface", "C_GetInterfaceList"} {
		if !slices.Contains(exports, name) {
			t.Errorf("the DLL does not export %s; it exports %v", name, exports)
		}
	}
	for _, name := range exports {
		if strings.HasPrefix(name, "tpmcard_") {
			t.Errorf("the DLL exports the internal %s", name)
		}
	}

	// Every entry point of the Linux module.
	need(t, "nm", "binutils")
	for _, line := range strings.Split(run(t, "nm", "-D", "--defined-only", buildModule(t)), "\n") {
		f := strings.Fields(line)
		if len(f) == 3 && strings.HasPrefix(f[2], "C_") && !slices.Contains(exports, f[2]) {
			t.Errorf("the DLL does not export %s", f[2])
		}
	}
}
