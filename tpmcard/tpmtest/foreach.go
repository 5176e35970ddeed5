package tpmtest

import (
	"testing"

	"github.com/google/go-tpm/tpm2/transport"
)

// Backend is one TPM that ForEachTPM runs a test on.
type Backend struct {
	Name string // "sim" or "swtpm"
	// TPM is open and started; it is closed when the subtest ends.
	TPM transport.TPM
	// Restart reboots the TPM keeping its state, closes the old TPM and
	// returns (and stores in TPM) a new connection. It is nil for the
	// simulator, which keeps nothing across a close.
	Restart func(t *testing.T) transport.TPM
	// SWTPM is the swtpm process, nil for the simulator.
	SWTPM *SWTPM
}

// ForEachTPM runs fn as the subtests "sim" and "swtpm", each on a fresh TPM.
// Each subtest skips (or fails) as Sim and StartSWTPM do.
func ForEachTPM(t *testing.T, fn func(t *testing.T, b *Backend)) {
	t.Helper()
	t.Run("sim", func(t *testing.T) {
		fn(t, &Backend{Name: "sim", TPM: Sim(t)})
	})
	t.Run("swtpm", func(t *testing.T) {
		s := StartSWTPM(t)
		b := &Backend{Name: "swtpm", SWTPM: s, TPM: s.TPM()}
		b.Restart = func(t *testing.T) transport.TPM {
			t.Helper()
			s.Restart(t)
			b.TPM = s.connect(t)
			return b.TPM
		}
		fn(t, b)
	})
}
