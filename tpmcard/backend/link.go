package backend

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/google/go-tpm/tpm2/transport"
)

// ErrUnreachable wraps every error a Link gives while its TPM cannot be
// reached: the connection broke (swtpm restarted, a device error) and has
// not been reopened yet.
var ErrUnreachable = errors.New("the TPM cannot be reached")

// Backoff bounds of a Link's reconnection attempts.
const (
	firstRetry = 50 * time.Millisecond
	maxRetry   = 2 * time.Second
)

// Link is a TPM connection that reopens itself. When sending a command
// fails (the transport's error, not a TPM response code), the Link closes
// the connection and reopens it in the background with backoff; meanwhile
// every command fails at once with ErrUnreachable. Each reopened
// connection starts a new epoch: whatever the TPM held for the old one
// (loaded objects, sessions) may be gone, and its user starts over.
//
// A Link does not resend the command that failed: the TPM may or may not
// have run it, which only its user can judge.
type Link struct {
	open func() (transport.TPMCloser, error)

	mu        sync.Mutex
	tpm       transport.TPMCloser // nil while unreachable
	epoch     uint64
	downSince time.Time
	lastErr   error
	closed    bool
	reopening bool
	done      chan struct{} // closed by Close, stops the reconnection loop
}

// NewLink opens the TPM with open and returns a Link that reopens it the
// same way whenever the connection breaks.
func NewLink(open func() (transport.TPMCloser, error)) (*Link, error) {
	t, err := open()
	if err != nil {
		return nil, err
	}
	return &Link{open: open, tpm: t, done: make(chan struct{})}, nil
}

// OpenLink is NewLink for a backend spec. The in-process simulator has no
// connection to lose: it is opened as it is.
func OpenLink(spec Spec) (transport.TPMCloser, error) {
	if spec.Kind == Sim {
		return Open(spec)
	}
	return NewLink(func() (transport.TPMCloser, error) { return Open(spec) })
}

// Send implements transport.TPM.
func (l *Link) Send(cmd []byte) ([]byte, error) {
	l.mu.Lock()
	t, closed, since, lastErr := l.tpm, l.closed, l.downSince, l.lastErr
	l.mu.Unlock()
	switch {
	case closed:
		return nil, errors.New("the TPM link is closed")
	case t == nil:
		return nil, fmt.Errorf("%w since %s: %v", ErrUnreachable, since.Format(time.RFC3339), lastErr)
	}
	// One command at a time is the TPM's rule; the caller serializes.
	rsp, err := t.Send(cmd)
	if err == nil {
		return rsp, nil
	}
	l.lost(t, err)
	return nil, fmt.Errorf("%w: %v", ErrUnreachable, err)
}

// lost marks the connection t broken and starts reopening it.
func (l *Link) lost(t transport.TPMCloser, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.tpm != t || l.closed {
		return // already noticed, or closing
	}
	_ = t.Close()
	l.tpm, l.lastErr, l.downSince = nil, err, time.Now()
	if !l.reopening {
		l.reopening = true
		go l.reopen()
	}
}

// reopen tries to open the TPM again until it succeeds or the Link closes.
func (l *Link) reopen() {
	wait := firstRetry
	for {
		select {
		case <-l.done:
			return
		case <-time.After(wait):
		}
		t, err := l.open()
		l.mu.Lock()
		if l.closed {
			l.mu.Unlock()
			if err == nil {
				_ = t.Close()
			}
			return
		}
		if err == nil {
			l.tpm, l.reopening = t, false
			l.epoch++
			l.mu.Unlock()
			return
		}
		l.lastErr = err
		l.mu.Unlock()
		wait = min(2*wait, maxRetry)
	}
}

// Epoch counts the connections opened after the first: it changes each
// time the Link reconnected.
func (l *Link) Epoch() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.epoch
}

// LinkState is what a Link says about its TPM.
type LinkState struct {
	Up         bool
	DownSince  time.Time // when the connection broke, while !Up
	Err        error     // why it broke, or why reopening still fails
	Reconnects uint64    // the epoch
}

// State reports whether the TPM can be reached now.
func (l *Link) State() LinkState {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := LinkState{Up: l.tpm != nil, Reconnects: l.epoch}
	if !s.Up {
		s.DownSince, s.Err = l.downSince, l.lastErr
	}
	return s
}

// Close closes the connection and stops reconnecting.
func (l *Link) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	close(l.done)
	if l.tpm != nil {
		err := l.tpm.Close()
		l.tpm = nil
		return err
	}
	return nil
}
