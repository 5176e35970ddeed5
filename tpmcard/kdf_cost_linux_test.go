package tpmcard

import (
	"syscall"
	"testing"
	"time"
)

// One derivation must cost at least 10 ms of CPU: each offline guess
// against a stolen authValue costs that much. It measures the
// process's CPU time (argon2 works in its own goroutines), not the wall
// clock, so other processes on the machine neither make it pass nor fail;
// the cheapest of a few runs counts.
func TestAuthValueCost(t *testing.T) {
	if testing.Short() {
		t.Skip("timing")
	}
	p, err := newKDFParams()
	if err != nil {
		t.Fatal(err)
	}
	best := time.Hour
	for i := 0; i < 5; i++ {
		before := processCPU(t)
		a, err := p.derive("pin", []byte("12345678"))
		if err != nil {
			t.Fatal(err)
		}
		best = min(best, processCPU(t)-before)
		wipe(a)
	}
	t.Logf("cheapest derivation: %v of CPU", best)
	if best < 10*time.Millisecond {
		t.Errorf("a derivation costs %v of CPU, want at least 10ms: raise kdfMemory", best)
	}
}

func processCPU(t *testing.T) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
