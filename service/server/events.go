package server

import (
	"context"
	"sync"
	"time"

	"github.com/tpmcard/tpmcard/service/wire"
	"github.com/tpmcard/tpmcard/tpmcard"
)

// events tells waiting clients (PKCS#11 C_WaitForSlotEvent) that a card
// was added, removed or changed state. Each connection remembers the last
// event it saw; a wait returns the next one after it.
type events struct {
	mu      sync.Mutex
	seq     uint64        // number of the newest event
	recent  []numbered    // the newest events, oldest first
	wake    chan struct{} // closed and replaced when an event arrives
	stopped chan struct{} // closed when the server stops
	once    sync.Once
}

type numbered struct {
	seq   uint64
	ev    wire.Event
	owner *tpmcard.Owner // the card's owner when it happened: who may be told
	// lostBy, for the removal an owner change means to the old owner's
	// side: the old owner, whom only those it allowed and the new owner
	// does not are told of.
	lostBy *tpmcard.Owner
}

// keep bounds recent: a waiter that fell further behind gets the oldest
// kept event; PKCS#11 then re-reads every slot anyway.
const keepEvents = 64

func newEvents() *events {
	return &events{wake: make(chan struct{}), stopped: make(chan struct{})}
}

func (e *events) publish(serial, kind string, owner *tpmcard.Owner) {
	e.add(numbered{ev: wire.Event{Serial: serial, Kind: kind}, owner: owner})
}

func (e *events) add(n numbered) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.seq++
	n.seq = e.seq
	e.recent = append(e.recent, n)
	if len(e.recent) > keepEvents {
		e.recent = e.recent[len(e.recent)-keepEvents:]
	}
	close(e.wake)
	e.wake = make(chan struct{})
}

// now is the number of the newest event: a new connection waits for what
// comes after it.
func (e *events) now() uint64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.seq
}

func (e *events) stop() { e.once.Do(func() { close(e.stopped) }) }

// next returns the first event after seq that visible lets through,
// waiting up to timeout (0: do not wait) or until ctx ends or the server
// stops.
func (e *events) next(ctx context.Context, seq uint64, timeout time.Duration, visible func(numbered) bool) (wire.Event, uint64, error) {
	var timer <-chan time.Time
	if timeout > 0 {
		t := time.NewTimer(timeout)
		defer t.Stop()
		timer = t.C
	}
	for {
		e.mu.Lock()
		for _, n := range e.recent {
			if n.seq <= seq {
				continue
			}
			seq = n.seq
			if visible(n) {
				e.mu.Unlock()
				return n.ev, n.seq, nil
			}
		}
		wake := e.wake
		e.mu.Unlock()
		if timer == nil {
			return wire.Event{}, seq, wire.NewError(wire.Timeout, "no card event")
		}
		select {
		case <-wake:
		case <-timer:
			return wire.Event{}, seq, wire.NewError(wire.Timeout, "no card event")
		case <-ctx.Done():
			return wire.Event{}, seq, wire.NewError(wire.Timeout, "no card event before the request timeout")
		case <-e.stopped:
			return wire.Event{}, seq, wire.NewError(wire.ServiceStopping, "the service is stopping")
		}
	}
}

// waitEvent serves WaitEvent.
func (c *conn) waitEvent(ctx context.Context, m *wire.WaitEvent) (any, error) {
	if err := c.needUser(wire.TypeWaitEvent); err != nil {
		return nil, err
	}
	if m.TimeoutMillis < 0 {
		return nil, wire.NewError(wire.BadRequest, "negative timeout")
	}
	ev, seq, err := c.s.events.next(ctx, c.eventSeq, time.Duration(m.TimeoutMillis)*time.Millisecond, c.sees)
	c.eventSeq = seq // past the events this peer may not see, too
	if err != nil {
		return nil, err
	}
	ev.Slot = c.slotFor(ev.Serial) // slots.go
	return &ev, nil
}

// sees reports whether the peer may be told of an event.
func (c *conn) sees(n numbered) bool {
	if n.lostBy != nil {
		return !c.role.admin && c.mayUse(n.lostBy) && !c.mayUse(n.owner)
	}
	return c.mayUse(n.owner)
}

// publishAfter reports the card event a finished request caused.
func (c *conn) publishAfter(msg, reply any) {
	var serial, kind string
	bySession := func(id uint32) string {
		if s, ok := c.sessions[id]; ok {
			return s.serial
		}
		return ""
	}
	switch m := msg.(type) {
	case *wire.Provision:
		if p, ok := reply.(*wire.Provisioned); ok {
			serial, kind = p.Serial, wire.EventAdded
		}
	case *wire.DestroyCard:
		if reply != nil {
			serial, kind = m.Serial, wire.EventRemoved
		}
	case *wire.Unblock:
		serial, kind = m.Serial, wire.EventChanged
	case *wire.Login:
		serial, kind = bySession(m.Session), wire.EventChanged
	case *wire.SetPIN:
		serial, kind = bySession(m.Session), wire.EventChanged
	case *wire.InitPIN:
		serial, kind = bySession(m.Session), wire.EventChanged
	case *wire.GenerateKeyPair:
		serial, kind = bySession(m.Session), wire.EventChanged
	case *wire.DestroyObject:
		serial, kind = bySession(m.Session), wire.EventChanged
	case *wire.SetOwner:
		if reply != nil {
			serial, kind = m.Serial, wire.EventChanged
		}
	}
	if serial == "" {
		return
	}
	// Only the card's owner, its group and administrators hear of it.
	var owner *tpmcard.Owner
	if kind == wire.EventRemoved {
		owner, c.destroyedOwner = c.destroyedOwner, nil
	} else if ci, err := c.s.m.Card(serial); err == nil {
		owner = ci.Owner
	} else {
		return // no such card: nothing changed
	}
	if !c.mayUse(owner) {
		return // refused as CardNotFound: nothing changed
	}
	c.s.events.publish(serial, kind, owner)
}
