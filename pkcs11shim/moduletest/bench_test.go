//go:build linux

package moduletest

import (
	"crypto"
	"crypto/sha256"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-tpm/tpm2/transport"
	"github.com/tpmcard/tpmcard/service/client"
	"github.com/tpmcard/tpmcard/service/p11"
	"github.com/tpmcard/tpmcard/service/wire"
	"github.com/tpmcard/tpmcard/tpmcard"
	"github.com/tpmcard/tpmcard/tpmcard/secret"
	"github.com/tpmcard/tpmcard/tpmcard/tpmtest"
)

// BenchmarkSign compares signatures through the module (a C program, see
// testdata/bench.c), through the socket API (service/client) and straight
// through tpmcard, on the simulator and on swtpm, with 1 and 4 sessions.
// The module rows also report C_Initialize-to-first-signature and C_Login.
// The softhsm rows run the same C program against SoftHSM2, which signs
// in software: what a PKCS#11 module costs with no TPM behind it.
func BenchmarkSign(b *testing.B) {
	b.Run("softhsm", func(b *testing.B) {
		lib := softHSM(b)
		for _, sessions := range []int{1, 4} {
			b.Run("sessions="+strconv.Itoa(sessions), func(b *testing.B) { runBench(b, lib, sessions) })
		}
	})
	for _, backend := range []string{"sim", "swtpm"} {
		b.Run(backend, func(b *testing.B) {
			var tpm transport.TPM
			if backend == "sim" {
				tpm = tpmtest.Sim(b)
			} else {
				tpm = tpmtest.StartSWTPM(b).TPM()
			}
			s := startServiceOn(b, tpm)
			for _, sessions := range []int{1, 4} {
				name := "sessions=" + strconv.Itoa(sessions)
				b.Run("module/"+name, func(b *testing.B) { benchModule(b, sessions) })
				b.Run("socket/"+name, func(b *testing.B) { benchSocket(b, s, sessions) })
				b.Run("direct/"+name, func(b *testing.B) { benchDirect(b, s, sessions) })
			}
		})
	}
}

func benchModule(b *testing.B, sessions int) { runBench(b, module(b), sessions) }

// softHSM returns SoftHSM2's module with a token holding one ECDSA P-256
// key, whose user PIN is testPIN.
func softHSM(b *testing.B) string {
	const lib = "/usr/lib/softhsm/libsofthsm2.so"
	if _, err := os.Stat(lib); err != nil {
		b.Skip("SoftHSM2 is not installed (Debian package softhsm2)")
	}
	tool, err := exec.LookPath("pkcs11-tool")
	if err != nil {
		b.Skip("pkcs11-tool is not installed (Debian package opensc)")
	}
	dir := b.TempDir()
	conf := filepath.Join(dir, "softhsm2.conf")
	if err := os.Mkdir(filepath.Join(dir, "tokens"), 0o700); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(conf, []byte("directories.tokendir = "+filepath.Join(dir, "tokens")+"\nobjectstore.backend = file\n"), 0o600); err != nil {
		b.Fatal(err)
	}
	b.Setenv("SOFTHSM2_CONF", conf)
	for _, args := range [][]string{
		{"softhsm2-util", "--init-token", "--free", "--label", "bench", "--pin", testPIN, "--so-pin", testPUK},
		{tool, "--module", lib, "--token-label", "bench", "--login", "--pin", testPIN,
			"--keypairgen", "--key-type", "EC:prime256v1", "--label", "bench key", "--id", "01"},
	} {
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			b.Fatalf("%v: %v\n%s", args, err, out)
		}
	}
	return lib
}

// runBench runs testdata/bench.c against a PKCS#11 module.
func runBench(b *testing.B, lib string, sessions int) {
	bin := cProgram(b, "bench")
	b.ResetTimer()
	out, err := exec.Command(bin, lib, testPIN, strconv.Itoa(max(b.N, sessions)), strconv.Itoa(sessions)).CombinedOutput()
	b.StopTimer()
	if err != nil {
		b.Fatalf("bench: %v\n%s", err, out)
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
		case "cold_login_us":
			// The PIN's key derivation (argon2id) is most of a cold
			// start on a TPM: cold-ms minus this is the module's own.
			b.ReportMetric(f/1000, "cold-login-ms")
		case "login_us":
			b.ReportMetric(f/1000, "login-ms")
		}
	}
}

// spread runs n operations over k goroutines and reports throughput and
// latency percentiles.
func spread(b *testing.B, k int, op func(worker int) error) {
	n := max(b.N, k)
	per := (n + k - 1) / k
	lat := make([]time.Duration, per*k)
	var wg sync.WaitGroup
	errs := make(chan error, k)
	b.ResetTimer()
	start := time.Now()
	for w := range k {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range per {
				t0 := time.Now()
				if err := op(w); err != nil {
					errs <- err
					return
				}
				lat[w*per+i] = time.Since(t0)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "sig/s")
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}

func benchSocket(b *testing.B, s *testService, sessions int) {
	c, err := client.Dial(s.sock)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	ids := make([]uint32, sessions)
	for i := range ids {
		if ids[i], err = c.OpenSession(s.serial, false); err != nil {
			b.Fatal(err)
		}
	}
	if err := c.Login(ids[0], wire.UserNormal, secret.FromString(testPIN)); err != nil {
		b.Fatal(err)
	}
	objs, err := c.FindObjects(ids[0], wire.Attribute{Type: p11.CKAClass, Value: wire.ULong(p11.CKOPrivateKey)})
	if err != nil || len(objs) != 1 {
		b.Fatalf("finding the key: %v %v", objs, err)
	}
	digest := sha256.Sum256([]byte("bench"))
	spread(b, sessions, func(w int) error {
		_, err := c.Sign(ids[w], objs[0], p11.CKMECDSA, nil, digest[:])
		return err
	})
}

func benchDirect(b *testing.B, s *testService, sessions int) {
	digest := sha256.Sum256([]byte("bench"))
	if err := s.m.Login(s.serial, secret.FromString(testPIN)); err != nil {
		b.Fatal(err)
	}
	spread(b, sessions, func(int) error {
		_, err := s.m.Sign(s.serial, s.keyID, digest[:], tpmcard.SignOptions{Hash: crypto.SHA256})
		return err
	})
}
