package attest

import (
	"testing"

	"github.com/google/go-tpm/tpm2"
)

// TestKeyPolicy: a key's authPolicy is accepted only when it is exactly
// one of tpmcard's two key policies on the card's PIN index.
func TestKeyPolicy(t *testing.T) {
	pin := append([]byte{0, 0x0b}, make([]byte, 32)...)
	pin[2] = 1
	other := append([]byte{0, 0x0b}, make([]byte, 32)...)
	other[2] = 2
	for _, tc := range []struct {
		name   string
		policy []byte
		want   int
	}{
		{"ok/once", newCalc().secret(pin).digest(), pinOnce},
		{"ok/always", newCalc().cc(tpm2.TPMCCSign).secretRef(pin, refSignAlways).digest(), pinAlways},
		{"fail/always without the command code", newCalc().secretRef(pin, refSignAlways).digest(), pinNone},
		{"fail/always without the policyRef", newCalc().cc(tpm2.TPMCCSign).secret(pin).digest(), pinNone},
		{"fail/always with another policyRef", newCalc().cc(tpm2.TPMCCSign).secretRef(pin, "tpmcard sign").digest(), pinNone},
		{"fail/always with another command", newCalc().cc(tpm2.TPMCCDuplicate).secretRef(pin, refSignAlways).digest(), pinNone},
		{"fail/always on another index", newCalc().cc(tpm2.TPMCCSign).secretRef(other, refSignAlways).digest(), pinNone},
		{"fail/once on another index", newCalc().secret(other).digest(), pinNone},
		{"fail/or of both", or(newCalc().secret(pin).digest(), newCalc().cc(tpm2.TPMCCSign).secretRef(pin, refSignAlways).digest()), pinNone},
		{"fail/empty", nil, pinNone},
		{"fail/zero", make([]byte, 32), pinNone},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := keyPolicy(tc.policy, pin); got != tc.want {
				t.Fatalf("keyPolicy = %d, want %d", got, tc.want)
			}
		})
	}
}
