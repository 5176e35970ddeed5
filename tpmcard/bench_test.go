package tpmcard

import (
	"crypto"
	"crypto/sha256"
	"sort"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"
	"github.com/tpmcard/tpmcard/tpmcard/tpmtest"
)

// countingTPM counts the commands sent to the TPM.
type countingTPM struct {
	transport.TPM
	n atomic.Int64
}

func (c *countingTPM) Send(cmd []byte) ([]byte, error) {
	c.n.Add(1)
	return c.TPM.Send(cmd)
}

// latencies reports p50 and p99 next to ns/op.
type latencies []time.Duration

func (l latencies) report(b *testing.B) {
	if len(l) == 0 {
		return
	}
	sort.Slice(l, func(i, j int) bool { return l[i] < l[j] })
	b.ReportMetric(float64(l[len(l)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(l[len(l)*99/100].Microseconds()), "p99-µs")
	var total time.Duration
	for _, d := range l {
		total += d
	}
	b.ReportMetric(float64(len(l))/total.Seconds(), "sig/s")
}

func benchTPMs(b *testing.B, fn func(b *testing.B, tpm transport.TPM)) {
	b.Run("sim", func(b *testing.B) { fn(b, tpmtest.Sim(b)) })
	b.Run("swtpm", func(b *testing.B) {
		s := tpmtest.StartSWTPM(b)
		fn(b, s.TPM())
	})
}

// benchCard opens a Manager on raw, counting its TPM commands, with one
// card logged in; the Manager closes with the benchmark.
func benchCard(b *testing.B, raw transport.TPM) (*Manager, *countingTPM, string) {
	b.Helper()
	tpm := &countingTPM{TPM: raw}
	m, err := Open(tpm, WithStateDir(b.TempDir()))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { m.Close() })
	c, err := m.Create(CreateOptions{PIN: testPIN, PUK: testPUK})
	if err != nil {
		b.Fatal(err)
	}
	if err := m.Login(c.Card.Serial, testPIN); err != nil {
		b.Fatal(err)
	}
	return m, tpm, c.Card.Serial
}

// BenchmarkSign signs with a loaded key and a proven PIN: PolicySecret +
// TPM2_Sign per signature.
func BenchmarkSign(b *testing.B) {
	benchTPMs(b, func(b *testing.B, raw transport.TPM) {
		m, tpm, serial := benchCard(b, raw)
		for _, a := range []Algorithm{ECDSAP256, ECDSAP384, RSA2048} {
			k, err := m.GenerateKey(b.Context(), serial, KeyOptions{Algorithm: a}, nil)
			if err != nil {
				b.Fatal(err)
			}
			d := sha256.Sum256([]byte("challenge"))
			opts := SignOptions{Hash: crypto.SHA256}
			b.Run(string(a), func(b *testing.B) {
				if _, err := m.Sign(serial, k.ID, d[:], opts); err != nil { // load the key
					b.Fatal(err)
				}
				lat := make(latencies, 0, b.N)
				start := tpm.n.Load()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					t0 := time.Now()
					if _, err := m.Sign(serial, k.ID, d[:], opts); err != nil {
						b.Fatal(err)
					}
					lat = append(lat, time.Since(t0))
				}
				b.StopTimer()
				b.ReportMetric(float64(tpm.n.Load()-start)/float64(b.N), "tpm-cmds/op")
				lat.report(b)
			})
		}
	})
}

// BenchmarkRawSign is the floor: one TPM2_Sign with a password session on
// a key that needs no policy, on the same TPM.
func BenchmarkRawSign(b *testing.B) {
	benchTPMs(b, func(b *testing.B, tpm transport.TPM) {
		srk, err := tpm2.CreatePrimary{
			PrimaryHandle: tpm2.AuthHandle{Handle: tpm2.TPMRHOwner, Auth: tpm2.PasswordAuth(nil)},
			InPublic:      tpm2.New2B(tpm2.ECCSRKTemplate),
		}.Execute(tpm)
		if err != nil {
			b.Fatal(err)
		}
		defer flush(tpm, srk.ObjectHandle)
		tmpl, _ := ECDSAP256.template(nil)
		tmpl.ObjectAttributes.UserWithAuth = true
		tmpl.ObjectAttributes.AdminWithPolicy = false
		key, err := tpm2.CreateLoaded{
			ParentHandle: tpm2.AuthHandle{Handle: srk.ObjectHandle, Name: srk.Name, Auth: tpm2.PasswordAuth(nil)},
			InPublic:     tpm2.New2BTemplate(&tmpl),
		}.Execute(tpm)
		if err != nil {
			b.Fatal(err)
		}
		defer flush(tpm, key.ObjectHandle)
		d := sha256.Sum256([]byte("challenge"))
		sign := tpm2.Sign{
			KeyHandle:  tpm2.AuthHandle{Handle: key.ObjectHandle, Name: key.Name, Auth: tpm2.PasswordAuth(nil)},
			Digest:     tpm2.TPM2BDigest{Buffer: d[:]},
			InScheme:   tpm2.TPMTSigScheme{Scheme: tpm2.TPMAlgECDSA, Details: tpm2.NewTPMUSigScheme(tpm2.TPMAlgECDSA, &tpm2.TPMSSchemeHash{HashAlg: tpm2.TPMAlgSHA256})},
			Validation: tpm2.TPMTTKHashCheck{Tag: tpm2.TPMSTHashCheck, Hierarchy: tpm2.TPMRHNull},
		}
		b.Run(string(ECDSAP256), func(b *testing.B) {
			lat := make(latencies, 0, b.N)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				t0 := time.Now()
				if _, err := sign.Execute(tpm); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(t0))
			}
			b.StopTimer()
			b.ReportMetric(1, "tpm-cmds/op")
			lat.report(b)
		})
	})
}
