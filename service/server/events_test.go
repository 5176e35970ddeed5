//go:build linux

package server

import (
	"context"
	"testing"
	"time"

	"github.com/tpmcard/tpmcard/service/wire"
)

func TestWaitEvent(t *testing.T) {
	e := newEnv(t, nil, nil)
	waiter, admin := e.dial(), e.dial()
	defer waiter.Close()
	defer admin.Close()

	if _, err := waiter.WaitEvent(0); wire.StatusOf(err) != wire.Timeout {
		t.Fatalf("WaitEvent(0) with nothing new: %v", err)
	}
	got := make(chan *wire.Event, 1)
	go func() {
		ev, err := waiter.WaitEvent(10 * time.Second)
		if err != nil {
			t.Errorf("WaitEvent: %v", err)
		}
		got <- ev
	}()
	time.Sleep(100 * time.Millisecond) // let the waiter block
	serial := e.provision(admin)
	select {
	case ev := <-got:
		if ev == nil || ev.Serial != serial || ev.Kind != wire.EventAdded {
			t.Fatalf("event %+v, want %s added", ev, serial)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no event after a provisioning")
	}

	// A wrong PIN changes the token's flags: the waiter hears of it.
	s := mustOpen(t, admin, serial, false)
	if err := admin.Login(s, wire.UserNormal, []byte("wrong PIN 000")); wire.StatusOf(err) != wire.PINIncorrect {
		t.Fatal(err)
	}
	ev, err := waiter.WaitEvent(5 * time.Second)
	if err != nil || ev.Serial != serial || ev.Kind != wire.EventChanged {
		t.Fatalf("after a wrong PIN: %+v %v", ev, err)
	}
	if err := admin.DestroyCard(serial); err != nil {
		t.Fatal(err)
	}
	if ev, err := waiter.WaitEvent(5 * time.Second); err != nil || ev.Kind != wire.EventRemoved {
		t.Fatalf("after destroy: %+v %v", ev, err)
	}
	// A connection made now does not hear of the past.
	late := e.dial()
	defer late.Close()
	if _, err := late.WaitEvent(0); wire.StatusOf(err) != wire.Timeout {
		t.Fatalf("a new connection was told of old events: %v", err)
	}
}

func TestStopEndsWaitEvent(t *testing.T) {
	e := newEnv(t, nil, nil)
	c := e.dial()
	defer c.Close()
	done := make(chan error, 1)
	go func() {
		_, err := c.WaitEvent(time.Minute)
		done <- err
	}()
	time.Sleep(100 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	if err := e.s.Stop(ctx); err != nil {
		t.Fatalf("Stop with a waiter: %v", err)
	}
	if time.Since(start) > 3*time.Second {
		t.Fatalf("Stop waited %v for a WaitEvent", time.Since(start))
	}
	if err := <-done; err == nil {
		t.Fatal("WaitEvent returned no error when the service stopped")
	}
}
