//go:build cgo

package backend

import (
	"fmt"
	"sync"

	"github.com/google/go-tpm-tools/simulator"
	"github.com/google/go-tpm/tpm2/transport"
)

// simGuard makes a second open of the process-wide simulator fail with
// ErrSimBusy instead of blocking until the first is closed.
var simGuard struct {
	mu   sync.Mutex
	open bool
}

// openSim opens the in-process simulator, with fixed seeds when seed is set.
func openSim(seed *int64) (transport.TPMCloser, error) {
	simGuard.mu.Lock()
	defer simGuard.mu.Unlock()
	if simGuard.open {
		return nil, ErrSimBusy
	}
	var (
		s   *simulator.Simulator
		err error
	)
	if seed != nil {
		s, err = simulator.GetWithFixedSeedInsecure(*seed)
	} else {
		s, err = simulator.Get()
	}
	if err != nil {
		return nil, fmt.Errorf("opening the in-process TPM simulator: %w", err)
	}
	simGuard.open = true
	return &simTPM{TPMCloser: transport.FromReadWriteCloser(s)}, nil
}

// simTPM releases the guard once, when the simulator is closed.
type simTPM struct {
	transport.TPMCloser
	once sync.Once
}

// Close shuts the simulator down; later calls do nothing.
func (s *simTPM) Close() error {
	var err error
	s.once.Do(func() {
		err = s.TPMCloser.Close()
		simGuard.mu.Lock()
		simGuard.open = false
		simGuard.mu.Unlock()
	})
	return err
}

// Send runs the command on a copy that it wipes afterwards: the simulator
// works in the buffer it is given and decrypts encrypted parameters there,
// which would leave a new authValue in clear in the caller's memory.
func (s *simTPM) Send(cmd []byte) ([]byte, error) {
	c := append([]byte(nil), cmd...)
	defer clear(c)
	return s.TPMCloser.Send(c)
}
