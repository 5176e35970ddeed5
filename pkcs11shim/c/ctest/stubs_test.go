//go:build linux

package ctest

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var updateStubs = flag.Bool("update-stubs", false, "rewrite ../p11_stubs.c from p11-kit's pkcs11.h and the functions the module defines")

// stubsSource is the generator of ../p11_stubs.c and so its source of
// truth: every PKCS#11 v2.40 function that p11-kit's pkcs11.h declares
// and no other source file of the module defines, in the header's order,
// with the header's parameter names and the CK_* type names, each
// answering CKR_CRYPTOKI_NOT_INITIALIZED before C_Initialize and then
// CKR_FUNCTION_NOT_SUPPORTED (CKR_FUNCTION_NOT_PARALLEL for
// C_GetFunctionStatus and C_CancelFunction, PKCS#11 v2.40 §5.16).
func stubsSource(t *testing.T) []byte {
	t.Helper()
	pc := need(t, "pkg-config")
	inc, err := exec.Command(pc, "--variable=includedir", "p11-kit-1").Output()
	if err != nil {
		t.Fatalf("pkg-config p11-kit-1 (Debian package libp11-kit-dev): %v", err)
	}
	header, err := os.ReadFile(filepath.Join(strings.TrimSpace(string(inc)), "p11-kit-1", "p11-kit", "pkcs11.h"))
	if err != nil {
		t.Fatal(err)
	}
	defined := map[string]bool{}
	impls, _ := filepath.Glob("../*.c")
	for _, f := range impls {
		if filepath.Base(f) == "p11_stubs.c" {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range regexp.MustCompile(`(?m)^CK_RV (C_\w+)\(`).FindAllSubmatch(src, -1) {
			defined[string(m[1])] = true
		}
	}
	var out bytes.Buffer
	out.WriteString("/* p11_stubs.c: the PKCS#11 v2.40 functions the card does not offer. Generated\n" +
		" * from the declarations of p11-kit's pkcs11.h by ctest/stubs_test.go\n" +
		" * (go test ./pkcs11shim/c/ctest -run TestStubs -update-stubs); each checks\n" +
		" * C_Initialize first. */\n#include \"p11.h\"\n")
	decl := regexp.MustCompile(`_CK_DECLARE_FUNCTION \((C_\w+),\s*\(([^)]*)\)\);`)
	for _, m := range decl.FindAllSubmatch(header, -1) {
		name := string(m[1])
		if defined[name] {
			continue
		}
		var params, names []string
		for _, p := range strings.Split(string(m[2]), ",") {
			p = strings.Join(strings.Fields(p), " ")
			if p == "void" || p == "" {
				continue
			}
			i := strings.LastIndexAny(p, " *")
			typ, pname := strings.TrimSpace(p[:i+1]), p[i+1:]
			if fixed, ok := paramNames[pname]; ok {
				pname = fixed
			}
			ck, ok := ckTypes[typ]
			if !ok {
				t.Fatalf("%s: no CK_* name for parameter type %q", name, typ)
			}
			params = append(params, ck+" "+pname)
			names = append(names, pname)
		}
		answer := "p11_not_supported"
		if name == "C_GetFunctionStatus" || name == "C_CancelFunction" {
			answer = "p11_not_parallel"
		}
		fmt.Fprintf(&out, "\nCK_RV %s(%s)\n{\n", name, strings.Join(params, ", "))
		for _, n := range names {
			fmt.Fprintf(&out, "\t(void)%s;\n", n)
		}
		fmt.Fprintf(&out, "\treturn %s(\"%s\");\n}\n", answer, name)
	}
	return out.Bytes()
}

// paramNames mends the header's misspelt parameter names.
var paramNames = map[string]string{"authentiation_key": "authentication_key"}

// ckTypes names p11-kit's parameter types as PKCS#11 does.
var ckTypes = map[string]string{
	"ck_slot_id_t":                "CK_SLOT_ID",
	"ck_session_handle_t":         "CK_SESSION_HANDLE",
	"ck_object_handle_t":          "CK_OBJECT_HANDLE",
	"ck_object_handle_t *":        "CK_OBJECT_HANDLE_PTR",
	"unsigned char *":             "CK_BYTE_PTR",
	"unsigned long":               "CK_ULONG",
	"unsigned long *":             "CK_ULONG_PTR",
	"struct ck_mechanism *":       "CK_MECHANISM_PTR",
	"struct ck_attribute *":       "CK_ATTRIBUTE_PTR",
	"ck_flags_t":                  "CK_FLAGS",
	"ck_user_type_t":              "CK_USER_TYPE",
	"ck_slot_id_t *":              "CK_SLOT_ID_PTR",
	"void *":                      "CK_VOID_PTR",
	"ck_mechanism_type_t":         "CK_MECHANISM_TYPE",
	"ck_mechanism_type_t *":       "CK_MECHANISM_TYPE_PTR",
	"struct ck_mechanism_info *":  "CK_MECHANISM_INFO_PTR",
	"struct ck_session_info *":    "CK_SESSION_INFO_PTR",
	"struct ck_token_info *":      "CK_TOKEN_INFO_PTR",
	"struct ck_slot_info *":       "CK_SLOT_INFO_PTR",
	"struct ck_info *":            "CK_INFO_PTR",
	"ck_session_handle_t *":       "CK_SESSION_HANDLE_PTR",
	"ck_notify_t":                 "CK_NOTIFY",
	"struct ck_function_list **":  "CK_FUNCTION_LIST_PTR_PTR",
	"unsigned char":               "CK_BYTE",
	"struct ck_function_list * *": "CK_FUNCTION_LIST_PTR_PTR",
}

// TestStubsGenerated: ../p11_stubs.c is what its generator makes, so that
// a function the module comes to define leaves the stubs (the two
// definitions would not link) only through the generator.
func TestStubsGenerated(t *testing.T) {
	want := stubsSource(t)
	if *updateStubs {
		if err := os.WriteFile("../p11_stubs.c", want, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	have, err := os.ReadFile("../p11_stubs.c")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(have, want) {
		t.Fatalf("../p11_stubs.c is not what the generator makes: run go test ./pkcs11shim/c/ctest -run TestStubs -update-stubs\n--- generated:\n%s", want)
	}
}
