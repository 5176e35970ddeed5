package main

import "sync"

// fairMutex is a first-come, first-served lock. The module holds its lock
// for a whole request to the service, and sync.Mutex lets the thread that
// just released it take it again ahead of threads that have waited for
// several requests, which shows as a long tail in signature latency with
// several sessions at once. Unlock hands the lock to the longest waiter
// and wakes only that one.
type fairMutex struct {
	mu      sync.Mutex
	held    bool
	waiters []chan struct{}
}

func (f *fairMutex) Lock() {
	f.mu.Lock()
	if !f.held {
		f.held = true
		f.mu.Unlock()
		return
	}
	ch := make(chan struct{})
	f.waiters = append(f.waiters, ch)
	f.mu.Unlock()
	<-ch // Unlock handed the lock over: held stays true
}

func (f *fairMutex) Unlock() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.waiters) == 0 {
		f.held = false
		return
	}
	ch := f.waiters[0]
	f.waiters[0] = nil
	f.waiters = f.waiters[1:]
	close(ch)
}
