package tpmcard

import (
	"encoding/binary"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"
)

// retryTPM re-sends a command the TPM declined to run with a warning that
// asks to be called back: TPM_RC_RETRY, TPM_RC_YIELDED, TPM_RC_TESTING,
// TPM_RC_NV_RATE and TPM_RC_NV_UNAVAILABLE (TPM 2.0 Part 2 §6.6.3). The TPM
// did not execute the command, so its sessions and the PIN counters are
// untouched and the identical bytes can be sent again; a PIN attempt turned
// away for NV_RATE is never counted as a try.
//
// A command the transport could not send at all (a broken connection, a
// device error) fails with ErrTPMUnreachable, and lost is set: the Manager
// then starts over with the TPM (Manager.forgetTPM).
type retryTPM struct {
	tpm     transport.TPM
	maxWait time.Duration // total time spent waiting before giving up
	sleep   func(time.Duration)
	lost    *atomic.Bool
}

func (r *retryTPM) Send(cmd []byte) ([]byte, error) {
	delay := 5 * time.Millisecond
	var waited time.Duration
	for {
		rsp, err := r.tpm.Send(cmd)
		if err != nil {
			if r.lost != nil {
				r.lost.Store(true)
			}
			return nil, fmt.Errorf("%w: %w", ErrTPMUnreachable, err)
		}
		if !retryable(rsp) || waited >= r.maxWait {
			return rsp, err
		}
		r.sleep(delay)
		waited += delay
		delay = min(2*delay, time.Second)
	}
}

func retryable(rsp []byte) bool {
	if len(rsp) < 10 {
		return false
	}
	switch tpm2.TPMRC(binary.BigEndian.Uint32(rsp[6:10])) {
	case tpm2.TPMRCRetry, tpm2.TPMRCYielded, tpm2.TPMRCTesting, tpm2.TPMRCNVRate, tpm2.TPMRCNVUnavailable:
		return true
	}
	return false
}
