package tpmtest

import (
	"errors"
	"testing"

	"github.com/google/go-tpm/tpm2/transport"
	"github.com/tpmcard/tpmcard/tpmcard/backend"
)

// Sim opens the in-process simulator, freshly manufactured, and closes it when
// t ends. It skips without cgo and fails t if the simulator is already open.
func Sim(t testing.TB) transport.TPM {
	t.Helper()
	tpm, err := backend.Open(backend.Spec{Kind: backend.Sim})
	return simOpened(t, tpm, err)
}

// SimFixedSeed is Sim with hierarchy seeds derived from seed, so primary keys
// and signatures repeat from run to run: for golden output only.
func SimFixedSeed(t testing.TB, seed int64) transport.TPM {
	t.Helper()
	tpm, err := backend.OpenSimFixedSeedInsecure(seed)
	return simOpened(t, tpm, err)
}

func simOpened(t testing.TB, tpm transport.TPMCloser, err error) transport.TPM {
	t.Helper()
	switch {
	case errors.Is(err, backend.ErrSimUnavailable):
		t.Skip("in-process TPM simulator needs cgo")
	case errors.Is(err, backend.ErrSimBusy):
		t.Fatalf("tpmtest: %v: close it first; tests that use it must not call t.Parallel", err)
	case err != nil:
		t.Fatalf("tpmtest: %v", err)
	}
	t.Cleanup(func() {
		if err := tpm.Close(); err != nil {
			t.Errorf("tpmtest: closing the simulator: %v", err)
		}
	})
	return tpm
}
