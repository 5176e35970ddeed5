package backend

import (
	"errors"
	"fmt"
	"net"
	"strconv"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"
	"github.com/google/go-tpm/tpm2/transport/tcp"
)

var (
	// ErrNoTPM means the TPM device is missing on this computer.
	ErrNoTPM = errors.New("no TPM")
	// ErrSimUnavailable means this binary was built without cgo, which the
	// in-process simulator needs.
	ErrSimUnavailable = errors.New("the in-process TPM simulator needs cgo (build with CGO_ENABLED=1 and libssl-dev)")
	// ErrSimBusy means the in-process simulator is already open in this process.
	ErrSimBusy = errors.New("the in-process TPM simulator is already open in this process (it is a process-wide singleton)")
)

// useInstead tells a user without a TPM device which backends remain.
const useInstead = "use --tpm swtpm:HOST:PORT for a software TPM or --tpm sim for the in-process simulator (keys NOT hardware-protected)"

// Open opens the TPM that spec names. The caller closes it.
//
// For Sim, the TPM is freshly manufactured and started; see [ErrSimBusy].
// For SWTPM, Open sends TPM2_Startup(CLEAR) and accepts an already started TPM.
func Open(spec Spec) (transport.TPMCloser, error) {
	switch spec.Kind {
	case Device:
		return openDevice(spec.Path)
	case SWTPM:
		addr := spec.Addr
		if addr == "" {
			addr = DefaultSWTPMAddr
		}
		return openSWTPM(addr)
	case Sim:
		return openSim(nil)
	}
	return nil, fmt.Errorf("unknown TPM backend %q: use device, swtpm:HOST:PORT or sim", spec.Kind)
}

// OpenSimFixedSeedInsecure opens the in-process simulator with hierarchy
// seeds derived from seed, so that keys and signatures repeat from run to run.
// The seeds are predictable: for golden test output only.
func OpenSimFixedSeedInsecure(seed int64) (transport.TPMCloser, error) {
	return openSim(&seed)
}

// openSWTPM connects to the command port at addr and the platform port after
// it, then starts the TPM.
func openSWTPM(addr string) (transport.TPMCloser, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("opening swtpm at %s: %w", addr, err)
	}
	p, err := commandPort(port)
	if err != nil {
		return nil, fmt.Errorf("opening swtpm at %s: %w", addr, err)
	}
	platform := net.JoinHostPort(host, strconv.Itoa(p+1))
	t, err := tcp.Open(tcp.Config{CommandAddress: addr, PlatformAddress: platform})
	if err != nil {
		return nil, fmt.Errorf("opening swtpm at %s (platform port %s): %w", addr, platform, err)
	}
	if err := startup(t); err != nil {
		if errors.Is(err, tcp.ErrEmptyResponse) {
			// The reference simulator starts powered off; swtpm started with
			// --flags not-need-init never is.
			if perr := t.PowerOn(); perr == nil {
				err = startup(t)
			}
		}
		if err != nil {
			t.Close()
			return nil, fmt.Errorf("starting swtpm at %s (run swtpm with --flags not-need-init,startup-clear): %w", addr, err)
		}
	}
	return t, nil
}

// startup sends TPM2_Startup(CLEAR); TPM_RC_INITIALIZE means already started.
func startup(t transport.TPM) error {
	_, err := tpm2.Startup{StartupType: tpm2.TPMSUClear}.Execute(t)
	if errors.Is(err, tpm2.TPMRCInitialize) {
		return nil
	}
	return err
}
