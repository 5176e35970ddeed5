package main

import (
	"bufio"
	"bytes"
	"crypto"
	"crypto/sha256"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
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

var benchPIN = secret.FromString("bench PIN 1234")

// BenchmarkService measures signatures through the real service process
// (socket, sessions, one TPM worker) with 1, 8 and 64 clients, against
// tpmcard signing directly on the same TPM, and the service's memory.
func BenchmarkService(b *testing.B) {
	b.Run("swtpm", func(b *testing.B) {
		s := tpmtest.StartSWTPM(b)
		benchService(b, func() transport.TPM { return s.TPM() }, "swtpm:"+s.Addr())
	})
	b.Run("sim", func(b *testing.B) {
		benchService(b, func() transport.TPM { return tpmtest.Sim(b) }, "sim")
	})
}

func benchService(b *testing.B, open func() transport.TPM, spec string) {
	dir := b.TempDir()
	state := filepath.Join(dir, "state")
	tpm := open()
	m, err := tpmcard.Open(tpm, tpmcard.WithStateDir(state))
	if err != nil {
		b.Fatal(err)
	}
	c, err := m.Create(tpmcard.CreateOptions{PIN: benchPIN, PUK: secret.FromString("BENCHPUK1234")})
	if err != nil {
		b.Fatal(err)
	}
	serial := c.Card.Serial
	k, err := m.GenerateKey(b.Context(), serial, tpmcard.KeyOptions{Algorithm: tpmcard.ECDSAP256}, nil)
	if err != nil {
		b.Fatal(err)
	}
	if err := m.Login(serial, benchPIN); err != nil {
		b.Fatal(err)
	}
	d := sha256.Sum256([]byte("challenge"))
	var direct time.Duration
	b.Run("direct", func(b *testing.B) {
		lat := make([]time.Duration, 0, b.N)
		for i := 0; i < b.N; i++ {
			t0 := time.Now()
			if _, err := m.Sign(serial, k.ID, d[:], tpmcard.SignOptions{Hash: crypto.SHA256}); err != nil {
				b.Fatal(err)
			}
			lat = append(lat, time.Since(t0))
		}
		direct = report(b, lat)
	})
	m.Close()
	if cl, ok := tpm.(interface{ Close() error }); ok && spec != "sim" {
		cl.Close() // swtpm serves one connection: hand it to the service
	}
	if spec == "sim" {
		// The service process runs its own simulator; give it the card.
		b.Skip("sim: the service process has its own simulator, so only the direct figure compares")
	}

	sock := filepath.Join(dir, "tpmcard.sock")
	cmd := exec.Command(cliBin, "service", "run", "--tpm", spec, "--state-dir", state, "--socket", sock,
		"--config", "/dev/null", "--log-level", "warn")
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() {
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
	}()
	for i := 0; ; i++ {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		if i > 200 {
			b.Fatalf("service did not start:\n%s", log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	idle := rssMiB(b, cmd.Process.Pid)
	// The socket's own cost, without the TPM's noise: a request the
	// service answers without the TPM (a signature length query).
	b.Run("roundtrip", func(b *testing.B) {
		cl, err := client.Dial(sock)
		if err != nil {
			b.Fatal(err)
		}
		defer cl.Close()
		sess, err := cl.OpenSession(serial, false)
		if err != nil {
			b.Fatal(err)
		}
		if err := cl.Login(sess, wire.UserNormal, benchPIN); err != nil {
			b.Fatal(err)
		}
		hs, err := cl.FindObjects(sess, wire.Attribute{Type: p11.CKAClass, Value: wire.ULong(p11.CKOPrivateKey)})
		if err != nil || len(hs) != 1 {
			b.Fatalf("private key: %v %v", hs, err)
		}
		b.ResetTimer()
		start := time.Now()
		for i := 0; i < b.N; i++ {
			if _, err := cl.SignLength(sess, hs[0], p11.CKMECDSASHA256); err != nil {
				b.Fatal(err)
			}
		}
		per := time.Since(start) / time.Duration(b.N)
		if direct > 0 {
			b.ReportMetric(100*float64(per)/float64(direct), "of-a-signature-%")
		}
	})
	var peak float64
	for _, n := range []int{1, 8, 64} {
		b.Run("clients="+strconv.Itoa(n), func(b *testing.B) {
			signers := make([]*client.Signer, n)
			for i := range signers {
				cl, err := client.Dial(sock)
				if err != nil {
					b.Fatal(err)
				}
				defer cl.Close()
				sess, err := cl.OpenSession(serial, false)
				if err != nil {
					b.Fatal(err)
				}
				if err := cl.Login(sess, wire.UserNormal, benchPIN); err != nil {
					b.Fatal(err)
				}
				if signers[i], err = cl.Signer(serial, k.ID); err != nil {
					b.Fatal(err)
				}
			}
			var next atomic.Int64
			var mu sync.Mutex
			lat := make([]time.Duration, 0, b.N)
			var wg sync.WaitGroup
			b.ResetTimer()
			start := time.Now()
			for _, s := range signers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					var mine []time.Duration
					for next.Add(1) <= int64(b.N) {
						t0 := time.Now()
						if _, err := s.Sign(nil, d[:], crypto.SHA256); err != nil {
							b.Error(err)
							return
						}
						mine = append(mine, time.Since(t0))
					}
					mu.Lock()
					lat = append(lat, mine...)
					mu.Unlock()
				}()
			}
			wg.Wait()
			elapsed := time.Since(start)
			b.StopTimer()
			report(b, lat)
			b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "sig/s")
			if n == 1 && direct > 0 {
				per := elapsed / time.Duration(len(lat))
				b.ReportMetric(100*float64(per-direct)/float64(direct), "overhead-%")
			}
			peak = max(peak, rssMiB(b, cmd.Process.Pid))
			b.ReportMetric(idle, "rss-idle-MiB")
			b.ReportMetric(peak, "rss-load-MiB")
		})
	}
}

// report adds p50 and p99 and returns the mean.
func report(b *testing.B, lat []time.Duration) time.Duration {
	if len(lat) == 0 {
		return 0
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	var total time.Duration
	for _, d := range lat {
		total += d
	}
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
	mean := total / time.Duration(len(lat))
	b.ReportMetric(float64(time.Second)/float64(mean), "sig/s-per-client")
	return mean
}

func rssMiB(b *testing.B, pid int) float64 {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.Atoi(strings.Fields(v)[0])
			return float64(kb) / 1024
		}
	}
	b.Fatal("no VmRSS")
	return 0
}
