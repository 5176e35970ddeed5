//go:build linux

package moduletest

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// entryPoints are the functions of the PKCS#11 v2.40 CK_FUNCTION_LIST
// (§5.2), in its order, and the v3.0 C_GetInterfaceList and C_GetInterface
// (v3.0 §5.4), which the module offers too: everything it may export.
var entryPoints = []string{
	"C_Initialize", "C_Finalize", "C_GetInfo", "C_GetFunctionList",
	"C_GetSlotList", "C_GetSlotInfo", "C_GetTokenInfo", "C_GetMechanismList", "C_GetMechanismInfo",
	"C_InitToken", "C_InitPIN", "C_SetPIN",
	"C_OpenSession", "C_CloseSession", "C_CloseAllSessions", "C_GetSessionInfo",
	"C_GetOperationState", "C_SetOperationState", "C_Login", "C_Logout",
	"C_CreateObject", "C_CopyObject", "C_DestroyObject", "C_GetObjectSize",
	"C_GetAttributeValue", "C_SetAttributeValue", "C_FindObjectsInit", "C_FindObjects", "C_FindObjectsFinal",
	"C_EncryptInit", "C_Encrypt", "C_EncryptUpdate", "C_EncryptFinal",
	"C_DecryptInit", "C_Decrypt", "C_DecryptUpdate", "C_DecryptFinal",
	"C_DigestInit", "C_Digest", "C_DigestUpdate", "C_DigestKey", "C_DigestFinal",
	"C_SignInit", "C_Sign", "C_SignUpdate", "C_SignFinal", "C_SignRecoverInit", "C_SignRecover",
	"C_VerifyInit", "C_Verify", "C_VerifyUpdate", "C_VerifyFinal", "C_VerifyRecoverInit", "C_VerifyRecover",
	"C_DigestEncryptUpdate", "C_DecryptDigestUpdate", "C_SignEncryptUpdate", "C_DecryptVerifyUpdate",
	"C_GenerateKey", "C_GenerateKeyPair", "C_WrapKey", "C_UnwrapKey", "C_DeriveKey",
	"C_SeedRandom", "C_GenerateRandom", "C_GetFunctionStatus", "C_CancelFunction", "C_WaitForSlotEvent",
	"C_GetInterfaceList", "C_GetInterface",
}

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

// soSymbol is a defined dynamic symbol of the shared object.
type soSymbol struct{ kind, name string }

// soExports returns the defined dynamic symbols of the module (nm -D),
// names without their symbol version (C_Initialize@@V1 is C_Initialize)
// and without the version nodes themselves (the absolute symbol V1 of a
// version script).
func soExports(t *testing.T) []soSymbol {
	t.Helper()
	nm := need(t, "nm", "binutils")
	var syms []soSymbol
	versions := map[string]bool{}
	for _, line := range strings.Split(run(t, nm, "-D", "--defined-only", module(t)), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 {
			continue
		}
		name, version, _ := strings.Cut(f[2], "@")
		if version != "" {
			versions[strings.TrimPrefix(version, "@")] = true
		}
		syms = append(syms, soSymbol{f[1], name})
	}
	return slices.DeleteFunc(syms, func(s soSymbol) bool { return s.kind == "A" && versions[s.name] })
}

// windowsDLLExports builds (or takes) the Windows DLL and returns its
// export table.
func windowsDLLExports(t *testing.T) []string {
	t.Helper()
	objdump := need(t, "x86_64-w64-mingw32-objdump", "binutils-mingw-w64-x86-64")
	return dllExports(run(t, objdump, "-p", windowsDLL.get(t)))
}

// TestWindowsDLL checks that the Windows DLL (make dll: mingw-w64) exports
// the discovery functions and every entry point the Linux module does, and
// no tpmcard_ internals. The DLL does not run here.
func TestWindowsDLL(t *testing.T) {
	exports := windowsDLLExports(t)
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
	for _, s := range soExports(t) {
		if strings.HasPrefix(s.name, "C_") && !slices.Contains(exports, s.name) {
			t.Errorf("the DLL does not export %s, which the Linux module does", s.name)
		}
	}
}

// TestDLLExportsOnlyEntryPoints: the DLL's export table is exactly the
// entry points, no runtime or helper symbols.
func TestDLLExportsOnlyEntryPoints(t *testing.T) {
	exports := windowsDLLExports(t)
	checkExactly(t, "the DLL", exports)
}

// TestSOExportsOnlyEntryPoints: the module's defined dynamic symbols are
// exactly the entry points, each a function (nm type T), and no other
// global symbol.
func TestSOExportsOnlyEntryPoints(t *testing.T) {
	var names []string
	for _, s := range soExports(t) {
		names = append(names, s.name)
		if strings.HasPrefix(s.name, "C_") && s.kind != "T" {
			t.Errorf("%s is of nm type %s, want T (a function in .text)", s.name, s.kind)
		}
	}
	checkExactly(t, "the module", names)
}

// checkExactly fails t unless names are the entry points, each once.
func checkExactly(t *testing.T, what string, names []string) {
	t.Helper()
	var extra []string
	seen := map[string]int{}
	for _, n := range names {
		seen[n]++
		if !slices.Contains(entryPoints, n) {
			extra = append(extra, n)
		}
	}
	var missing []string
	for _, n := range entryPoints {
		if seen[n] == 0 {
			missing = append(missing, n)
		}
		if seen[n] > 1 {
			t.Errorf("%s exports %s %d times", what, n, seen[n])
		}
	}
	if len(missing) > 0 {
		t.Errorf("%s does not export %d entry points: %v", what, len(missing), missing)
	}
	if len(extra) > 0 {
		show := extra
		if len(show) > 20 {
			show = show[:20]
		}
		t.Errorf("%s exports %d symbols besides the %d entry points, among them %v", what, len(extra), len(entryPoints), show)
	}
}

// TestEntryPointsMatchHeader checks the list the export tests hold
// against the header: entryPoints without the v3.0 pair is
// CK_FUNCTION_LIST, member by member, in order.
func TestEntryPointsMatchHeader(t *testing.T) {
	gcc := need(t, "gcc", "gcc")
	inc := strings.Fields(run(t, need(t, "pkg-config", "pkg-config"), "--cflags", "p11-kit-1"))
	v2 := entryPoints[:len(entryPoints)-2]
	var b strings.Builder
	b.WriteString("#include <stddef.h>\n#include <p11-kit/pkcs11.h>\n")
	for i, name := range v2 {
		fmt.Fprintf(&b, "_Static_assert(offsetof(CK_FUNCTION_LIST, %s) == offsetof(CK_FUNCTION_LIST, C_Initialize) + %d * sizeof(void (*)(void)), \"%s is member %d\");\n", name, i, name, i)
	}
	fmt.Fprintf(&b, "_Static_assert(sizeof(CK_FUNCTION_LIST) == offsetof(CK_FUNCTION_LIST, C_Initialize) + %d * sizeof(void (*)(void)), \"%d members\");\n", len(v2), len(v2))
	src := filepath.Join(t.TempDir(), "list.c")
	writeFile(t, src, b.String(), 0o600)
	run(t, gcc, append(append([]string{"-std=c11", "-Wall", "-Wextra", "-Werror", "-c", "-o", os.DevNull}, inc...), src)...)
}

// TestModuleSize: the module is under 1 MiB.
func TestModuleSize(t *testing.T) {
	fi, err := os.Stat(module(t))
	if err != nil {
		t.Fatal(err)
	}
	const limit = 1 << 20
	t.Logf("%s: %d bytes", fi.Name(), fi.Size())
	if fi.Size() >= limit {
		t.Errorf("the module is %d bytes (%.1f MiB), want under 1 MiB", fi.Size(), float64(fi.Size())/limit)
	}
}
