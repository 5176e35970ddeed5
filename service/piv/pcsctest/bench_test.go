//go:build linux

package pcsctest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-tpm/tpm2/transport"
	"github.com/tpmcard/tpmcard/tpmcard/tpmtest"
)

// BenchmarkPIVSign compares ECDSA P-256 signatures through OpenSC's
// PKCS#11 module, PC/SC and the PIV reader (opensc-pkcs11.so -> pcscd ->
// vpcd -> the service) against the service's own module
// (libtpmcard-pkcs11.so -> the socket), with the same C program
// (pkcs11shim/moduletest/testdata/bench.c), the same card and the same
// TPM, on the simulator and on swtpm. The native module is
// TPMCARD_PKCS11_MODULE (make bench sets it) or bin/libtpmcard-pkcs11.so.
func BenchmarkPIVSign(b *testing.B) {
	requireParts(b)
	prog := benchProgram(b)
	native := os.Getenv("TPMCARD_PKCS11_MODULE")
	if native == "" {
		native, _ = filepath.Abs("../../../bin/libtpmcard-pkcs11.so")
	}
	if _, err := os.Stat(native); err != nil {
		absent(b, "the native module %s is missing: make module", native)
	}
	for _, backend := range []string{"sim", "swtpm"} {
		b.Run(backend, func(b *testing.B) {
			var tpm transport.TPM
			if backend == "sim" {
				tpm = tpmtest.Sim(b)
			} else {
				tpm = tpmtest.StartSWTPM(b).TPM()
			}
			r := setUp(b, tpm, false)
			b.Run("opensc-pcsc", func(b *testing.B) { runBench(b, prog, openscPKCS11, r.pc.env) })
			env := append(os.Environ(), "TPMCARD_SOCKET="+r.sock)
			b.Run("native", func(b *testing.B) { runBench(b, prog, native, env) })
		})
	}
}

func benchProgram(b *testing.B) string {
	gcc, err := exec.LookPath("gcc")
	if err != nil {
		absent(b, "gcc is not installed")
	}
	inc, err := exec.Command("pkg-config", "--cflags", "p11-kit-1").Output()
	if err != nil {
		absent(b, "pkg-config --cflags p11-kit-1 failed (Debian package libp11-kit-dev): %v", err)
	}
	out := filepath.Join(b.TempDir(), "bench")
	args := append([]string{"-std=c11", "-O2", "-pthread"}, strings.Fields(string(inc))...)
	args = append(args, "-o", out, "../../../pkcs11shim/moduletest/testdata/bench.c", "-ldl")
	if o, err := exec.Command(gcc, args...).CombinedOutput(); err != nil {
		b.Fatalf("compiling bench.c: %v\n%s", err, o)
	}
	return out
}

func runBench(b *testing.B, prog, lib string, env []string) {
	cmd := exec.Command(prog, lib, testPIN, strconv.Itoa(max(b.N, 1)), "1")
	cmd.Env = env
	b.ResetTimer()
	out, err := cmd.CombinedOutput()
	b.StopTimer()
	if err != nil {
		b.Fatalf("bench with %s: %v\n%s", lib, err, out)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		k, v, _ := strings.Cut(line, " ")
		f, _ := strconv.ParseFloat(v, 64)
		switch k {
		case "sig_per_s":
			b.ReportMetric(f, "sig/s")
		case "p50_us":
			b.ReportMetric(f, "p50-µs")
		case "p99_us":
			b.ReportMetric(f, "p99-µs")
		case "cold_us":
			b.ReportMetric(f/1000, "cold-ms")
		}
	}
}
