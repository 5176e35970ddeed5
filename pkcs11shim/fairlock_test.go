package main

import (
	"sync"
	"testing"
	"time"
)

// TestFairMutexOrder checks that waiters get the lock in arrival order.
func TestFairMutexOrder(t *testing.T) {
	var m fairMutex
	m.Lock()
	var mu sync.Mutex
	var order []int
	var wg sync.WaitGroup
	for i := range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m.Lock()
			mu.Lock()
			order = append(order, i)
			mu.Unlock()
			m.Unlock()
		}()
		// Let goroutine i queue before i+1.
		for {
			m.mu.Lock()
			n := len(m.waiters)
			m.mu.Unlock()
			if n == i+1 {
				break
			}
			time.Sleep(time.Millisecond)
		}
	}
	m.Unlock()
	wg.Wait()
	for i, v := range order {
		if v != i {
			t.Fatalf("order %v", order)
		}
	}
	if m.held || len(m.waiters) != 0 {
		t.Errorf("lock left held=%v waiters=%d", m.held, len(m.waiters))
	}
}
