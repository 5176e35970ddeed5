package tpmcard

import (
	"fmt"

	"github.com/google/go-tpm/tpm2"
)

// maxRandom bounds one Random call; the TPM returns at most a digest's
// worth per TPM2_GetRandom, so larger requests loop.
const maxRandom = 4096

// Random returns n bytes from the TPM's random number generator
// (TPM2_GetRandom, Part 3 §16.1).
func (m *Manager) Random(n int) ([]byte, error) {
	if n < 0 || n > maxRandom {
		return nil, fmt.Errorf("%w: %d random bytes (at most %d)", ErrInvalidOptions, n, maxRandom)
	}
	if err := m.lock(); err != nil {
		return nil, err
	}
	defer m.unlock()
	out := make([]byte, 0, n)
	for len(out) < n {
		rsp, err := tpm2.GetRandom{BytesRequested: uint16(min(n-len(out), 32))}.Execute(m.tpm)
		if err != nil {
			return nil, fmt.Errorf("reading random bytes: %w", busy(err))
		}
		if len(rsp.RandomBytes.Buffer) == 0 {
			return nil, fmt.Errorf("reading random bytes: the TPM returned none")
		}
		out = append(out, rsp.RandomBytes.Buffer...)
	}
	return out[:n], nil
}
