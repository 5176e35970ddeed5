package tpmcard

import (
	"sort"
	"testing"
	"time"

	"github.com/google/go-tpm/tpm2/transport"
)

// BenchmarkLogin is a C_Login: the PIN's slow derivation (kdf.go), a
// salted HMAC session and PolicySecret of the PIN index; the aim is under
// 30 ms with a derivation of at least 10 ms of CPU.
func BenchmarkLogin(b *testing.B) {
	benchTPMs(b, func(b *testing.B, tpm transport.TPM) {
		m, err := Open(tpm, WithStateDir(b.TempDir()))
		if err != nil {
			b.Fatal(err)
		}
		defer m.Close()
		c, err := m.Create(CreateOptions{PIN: testPIN, PUK: testPUK})
		if err != nil {
			b.Fatal(err)
		}
		var l []time.Duration
		for b.Loop() {
			t0 := time.Now()
			if err := m.Login(c.Card.Serial, testPIN); err != nil {
				b.Fatal(err)
			}
			l = append(l, time.Since(t0))
			m.Logout(c.Card.Serial)
		}
		sort.Slice(l, func(i, j int) bool { return l[i] < l[j] })
		b.ReportMetric(float64(l[len(l)/2].Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(l[len(l)*99/100].Microseconds())/1000, "p99-ms")
	})
}
