package attack

import (
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/google/go-tpm/tpm2"
	"github.com/tpmcard/tpmcard/tpmcard/tpmtest"
)

// TestAttackParallelGuessing guesses wrong PINs from several goroutines at
// once, each with its own HMAC session, through PolicySecret on the card's
// PIN index. The TPM must count every guess on the one index: exactly
// pinLimit TPM_RC_BAD_AUTH in all, then TPM_RC_AUTH_UNAVAILABLE for
// everyone, the right PIN included. (The TPM runs one command at a time;
// the goroutines take turns on the bus guess by guess, keeping their
// sessions context-saved in between, as a resource manager would, because
// the reference TPM loads only three sessions at once.) A design that
// counted per session, or let a success in one session reset another's
// failures, would show more than pinLimit failures here.
func TestAttackParallelGuessing(t *testing.T) {
	tpmtest.ForEachTPM(t, func(t *testing.T, b *tpmtest.Backend) {
		v := newVictim(t, b, withPUK)
		v.close()
		r := v.record(t)
		const workers = 4
		perWorker := int(r.PINLimit) // workers × limit guesses in all

		var bus sync.Mutex
		var mu sync.Mutex
		counts := map[string]int{}
		var wg sync.WaitGroup
		start := make(chan struct{})
		for w := 0; w < workers; w++ {
			bus.Lock()
			hs, closeHS, err := tpm2.HMACSession(b.TPM, tpm2.TPMAlgSHA256, 16, tpm2.Auth([]byte(fmt.Sprintf("wrong guess %d", w))))
			if err != nil {
				bus.Unlock()
				t.Fatalf("HMAC session: %v", err)
			}
			saved, err := tpm2.ContextSave{SaveHandle: hs.Handle()}.Execute(b.TPM)
			bus.Unlock()
			if err != nil {
				t.Fatalf("ContextSave: %v", err)
			}
			ctx := saved.Context
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				for g := 0; g < perWorker; g++ {
					bus.Lock()
					err := guess(b, r, hs, &ctx)
					bus.Unlock()
					mu.Lock()
					switch {
					case errors.Is(err, tpm2.TPMRCBadAuth):
						counts["TPM_RC_BAD_AUTH"]++
					case errors.Is(err, tpm2.TPMRCAuthUnavailable):
						counts["TPM_RC_AUTH_UNAVAILABLE"]++
					case err == nil:
						counts["accepted"]++
					default:
						counts[err.Error()]++
					}
					mu.Unlock()
				}
				bus.Lock()
				if _, err := (tpm2.ContextLoad{Context: ctx}).Execute(b.TPM); err == nil {
					_ = closeHS()
				}
				bus.Unlock()
			}()
		}
		close(start)
		wg.Wait()

		total := workers * perWorker
		if counts["TPM_RC_BAD_AUTH"] != int(r.PINLimit) || counts["TPM_RC_AUTH_UNAVAILABLE"] != total-int(r.PINLimit) {
			t.Errorf("ATTACK parallel-guess %s: %d guesses from %d sessions got %v, want %d TPM_RC_BAD_AUTH then TPM_RC_AUTH_UNAVAILABLE", b.Name, total, workers, counts, r.PINLimit)
		}
		// The right PIN is refused too now.
		a := &attacker{t: t, tpm: b.TPM}
		s, done := a.policySession()
		err := a.secretStep(r.PINIndex, r.PINName, r.pinAuth(t, victimPIN))(s)
		done()
		if !errors.Is(err, tpm2.TPMRCAuthUnavailable) {
			t.Errorf("ATTACK parallel-guess %s: the right PIN after the limit: %v, want TPM_RC_AUTH_UNAVAILABLE", b.Name, err)
			return
		}
		t.Logf("ATTACK parallel-guess %s: %d guesses from %d HMAC sessions at once: %d TPM_RC_BAD_AUTH, then refused with TPM_RC_AUTH_UNAVAILABLE (%d, and the right PIN too)",
			b.Name, total, workers, counts["TPM_RC_BAD_AUTH"], counts["TPM_RC_AUTH_UNAVAILABLE"])
	})
}

// guess loads a worker's HMAC session, proves its (wrong) authValue on the
// PIN index with PolicySecret in a fresh policy session, and saves the HMAC
// session again.
func guess(b *tpmtest.Backend, r *cardRecord, hs tpm2.Session, ctx *tpm2.TPMSContext) error {
	if _, err := (tpm2.ContextLoad{Context: *ctx}).Execute(b.TPM); err != nil {
		return fmt.Errorf("ContextLoad: %w", err)
	}
	defer func() {
		if saved, err := (tpm2.ContextSave{SaveHandle: hs.Handle()}).Execute(b.TPM); err == nil {
			*ctx = saved.Context
		}
	}()
	ps, closePS, err := tpm2.PolicySession(b.TPM, tpm2.TPMAlgSHA256, 16)
	if err != nil {
		return fmt.Errorf("policy session: %w", err)
	}
	defer func() { _ = closePS() }()
	_, err = tpm2.PolicySecret{
		AuthHandle:    tpm2.AuthHandle{Handle: tpm2.TPMHandle(r.PINIndex), Name: tpm2.TPM2BName{Buffer: r.PINName}, Auth: hs},
		PolicySession: ps.Handle(),
		NonceTPM:      ps.NonceTPM(),
	}.Execute(b.TPM)
	return err
}
