package tpmcard

import (
	"crypto/sha256"
	"testing"
	"time"

	"github.com/google/go-tpm/tpm2/transport"
)

// BenchmarkSignAlways is one signature with a PINAlways key as PKCS#11
// makes it: ProvePIN (the PIN's derivation and its check in the TPM, the
// C_Login(CKU_CONTEXT_SPECIFIC)) and Sign with the proof. Compare with
// BenchmarkSign, a login's signature, and BenchmarkSessionKeySign.
func BenchmarkSignAlways(b *testing.B) {
	benchTPMs(b, func(b *testing.B, raw transport.TPM) {
		m, tpm, serial := benchCard(b, raw)
		k, err := m.GenerateKey(b.Context(), serial, KeyOptions{Algorithm: ECDSAP256, PINUse: PINAlways}, nil)
		if err != nil {
			b.Fatal(err)
		}
		d := sha256.Sum256([]byte("challenge"))
		sign := func() {
			p, err := m.ProvePIN(serial, testPIN)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := m.Sign(serial, k.ID, d[:], SignOptions{PIN: p}); err != nil {
				b.Fatal(err)
			}
		}
		sign() // load the key
		lat := make(latencies, 0, b.N)
		start := tpm.n.Load()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			t0 := time.Now()
			sign()
			lat = append(lat, time.Since(t0))
		}
		b.StopTimer()
		b.ReportMetric(float64(tpm.n.Load()-start)/float64(b.N), "tpm-cmds/op")
		lat.report(b)
	})
}

// BenchmarkSessionKeySign signs with a session key after Login: as a card
// key, PolicySecret + TPM2_Sign.
func BenchmarkSessionKeySign(b *testing.B) {
	benchTPMs(b, func(b *testing.B, raw transport.TPM) {
		m, tpm, serial := benchCard(b, raw)
		k, err := m.GenerateSessionKey(b.Context(), serial, KeyOptions{Algorithm: ECDSAP256}, nil)
		if err != nil {
			b.Fatal(err)
		}
		defer m.DropSessionKey(k)
		d := sha256.Sum256([]byte("challenge"))
		if _, err := m.SignSessionKey(k, d[:], SignOptions{}); err != nil { // load the key
			b.Fatal(err)
		}
		lat := make(latencies, 0, b.N)
		start := tpm.n.Load()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			t0 := time.Now()
			if _, err := m.SignSessionKey(k, d[:], SignOptions{}); err != nil {
				b.Fatal(err)
			}
			lat = append(lat, time.Since(t0))
		}
		b.StopTimer()
		b.ReportMetric(float64(tpm.n.Load()-start)/float64(b.N), "tpm-cmds/op")
		lat.report(b)
	})
}
