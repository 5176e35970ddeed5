package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"sync"

	"github.com/tpmcard/tpmcard/service/piv"
	"github.com/tpmcard/tpmcard/service/wire"
	"github.com/tpmcard/tpmcard/tpmcard"
)

// pivReaders are the cards the service presents in vpcd's virtual
// readers (docs/piv.md), each a piv.Link in a goroutine of its own that
// connects to vpcd, and reconnects, in the background: a reader that
// cannot reach vpcd never holds up the service.
type pivReaders struct {
	mu      sync.Mutex
	path    string     // Config.PIVState; empty: PIV is off
	state   *piv.State // nil when the file could not be read
	loadErr error
	readers map[string]*pivReader
	check   func(port int) error // tests may stand in for piv.CheckListener
	wg      sync.WaitGroup
}

type pivReader struct {
	link   *piv.Link
	cancel context.CancelFunc
	done   chan struct{}
}

// startPIV reads the PIV state and inserts every enabled card in its
// reader. A state file that cannot be read leaves PIV off, said in the
// log and in answers to PIV requests; the service runs on.
func (s *Server) startPIV() {
	p := &s.piv
	p.mu.Lock()
	defer p.mu.Unlock()
	p.path = s.cfg.PIVState
	p.readers = map[string]*pivReader{}
	if p.check == nil {
		p.check = piv.CheckListener
	}
	if p.path == "" {
		return
	}
	p.state, p.loadErr = piv.LoadState(p.path)
	if p.loadErr != nil {
		s.log.Error().Err(p.loadErr).Msg("PIV readers are off: the PIV state file cannot be read (fix or remove it, then restart the service)")
		return
	}
	for _, c := range p.state.Cards {
		if _, err := s.m.Card(c.Serial); errors.Is(err, tpmcard.ErrNotFound) {
			// Destroyed while it was in a reader: no card to insert.
			s.log.Warn().Str("card", c.Serial).Int("port", c.Port).
				Msg("the PIV state names a card that no longer exists: its reader stays empty (tpmcard piv disable --card SERIAL drops it)")
			continue
		}
		s.startReaderLocked(c)
	}
}

// stopPIV takes every card out of its reader.
func (s *Server) stopPIV() {
	p := &s.piv
	p.mu.Lock()
	for serial, r := range p.readers {
		r.cancel()
		delete(p.readers, serial)
	}
	p.mu.Unlock()
	p.wg.Wait()
}

func (s *Server) startReaderLocked(c piv.CardState) {
	p := &s.piv
	slots, err := c.SlotKeys()
	if err != nil { // LoadState checked them
		s.log.Error().Str("card", c.Serial).Err(err).Msg("PIV reader not started")
		return
	}
	name := "vpcd:" + strconv.Itoa(c.Port)
	card := s.newPIVCard(c.Serial, name, slots)
	link := &piv.Link{
		Addr:   net.JoinHostPort("127.0.0.1", strconv.Itoa(c.Port)),
		Applet: piv.NewApplet(c.Serial, card, slots),
		Log:    s.log.With().Str("reader", name).Str("card", c.Serial).Logger(),
		Check:  p.check,
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &pivReader{link: link, cancel: cancel, done: make(chan struct{})}
	p.readers[c.Serial] = r
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		defer close(r.done)
		link.Run(ctx)
	}()
}

// stopReaderLocked takes the card out of its reader and waits until the
// link ended, so that a new one does not race it for the port.
func (s *Server) stopReaderLocked(serial string) {
	if r := s.piv.readers[serial]; r != nil {
		r.cancel()
		<-r.done
		delete(s.piv.readers, serial)
	}
}

// pivRequest handles the PIV requests, administrators' only.
func (c *conn) pivRequest(m wire.PIVRequest) (any, error) {
	t, _ := wire.TypeOf(m)
	if err := c.needAdmin(t); err != nil {
		return nil, err
	}
	s := c.s
	p := &s.piv
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.path == "":
		return nil, wire.NewError(wire.Internal, "PIV readers are off: the service runs without a state directory for them")
	case p.loadErr != nil:
		return nil, wire.NewError(wire.Internal, fmt.Sprintf("PIV readers are off: %v", p.loadErr))
	}
	var err error
	switch m := m.(type) {
	case *wire.PIVEnable:
		err = c.pivEnable(m)
	case *wire.PIVDisable:
		err = c.pivDisable(m)
	case *wire.PIVAssign:
		err = c.pivAssign(m)
	}
	if err != nil {
		return nil, err
	}
	return s.pivCardsLocked(), nil
}

func (s *Server) pivCardsLocked() *wire.PIVCards {
	out := &wire.PIVCards{}
	for _, c := range s.piv.state.Cards {
		pc := wire.PIVCard{Serial: c.Serial, Port: c.Port}
		if r := s.piv.readers[c.Serial]; r != nil {
			pc.Connected = r.link.Connected()
		}
		slots, _ := c.SlotKeys()
		for _, slot := range piv.Slots {
			if id := slots[slot]; id != nil {
				pc.Slots = append(pc.Slots, wire.PIVSlot{Slot: slot, KeyID: id})
			}
		}
		out.Cards = append(out.Cards, pc)
	}
	return out
}

// savePIVLocked writes the new state, and keeps it only once it is on disk.
func (s *Server) savePIVLocked(next *piv.State) error {
	if err := next.Save(s.piv.path); err != nil {
		s.log.Error().Err(err).Msg("saving the PIV state failed")
		return wire.NewError(wire.Internal, err.Error())
	}
	s.piv.state = next
	return nil
}

func (p *pivReaders) clone() *piv.State {
	next := &piv.State{Cards: slices.Clone(p.state.Cards)}
	for i := range next.Cards {
		slots := make(map[string]string, len(next.Cards[i].Slots))
		for k, v := range next.Cards[i].Slots {
			slots[k] = v
		}
		next.Cards[i].Slots = slots
	}
	return next
}

// pivEnable checks the consent and the card's PIN policy, records the
// card and inserts it in its reader. A PIV PIN field holds at most 8
// bytes (SP 800-73-4 Part 2 §2.4.3): a card whose PIN may be longer
// could be given a PIN, through the PKCS#11 module or the CLI, that no
// PIV client can enter. The PUK is at least 8 characters on every card
// and the service never knows its length: a longer PUK still unblocks
// the card with tpmcard's CLI, and RESET RETRY COUNTER answers it 63Cx.
func (c *conn) pivEnable(m *wire.PIVEnable) error {
	s := c.s
	if !m.AnyLocalUser {
		return wire.NewError(wire.BadRequest, "a card in a PIV reader can be used by any local user who knows its PIN (pcsc-lite lets every local user use every reader): say so with --any-local-user")
	}
	ci, err := s.m.Card(m.Serial)
	if err != nil {
		return err
	}
	if ci.Policy.MaxLength > piv.MaxPINLength {
		return wire.NewError(wire.BadRequest, fmt.Sprintf(
			"card %s takes PINs of up to %d characters, PIV at most %d: make a card with --max-pin-len %d (and a PUK of 8 characters) for PIV",
			m.Serial, ci.Policy.MaxLength, piv.MaxPINLength, piv.MaxPINLength))
	}
	if m.Port < 0 || m.Port > 65535 {
		return wire.NewError(wire.BadRequest, fmt.Sprintf("port %d is no TCP port", m.Port))
	}
	next := s.piv.clone()
	port := m.Port
	if port == 0 {
		port = next.FreePort()
		if old := next.Card(m.Serial); old != nil {
			port = old.Port
		}
	}
	for _, o := range next.Cards {
		if o.Port == port && o.Serial != m.Serial {
			return wire.NewError(wire.BadRequest, fmt.Sprintf("port %d is card %s's reader: choose another --port", port, o.Serial))
		}
	}
	if cs := next.Card(m.Serial); cs != nil {
		if cs.Port == port {
			return nil // enabled already
		}
		cs.Port = port
	} else {
		next.Cards = append(next.Cards, piv.CardState{Serial: m.Serial, Port: port})
	}
	if err := s.savePIVLocked(next); err != nil {
		return err
	}
	s.stopReaderLocked(m.Serial)
	s.startReaderLocked(*next.Card(m.Serial))
	c.log.Warn().Str("event", "piv_enabled").Str("card", m.Serial).Int("port", port).
		Msg("card enabled in a PIV reader: any local user may use it with its PIN")
	return nil
}

// pivForget takes a destroyed card out of its reader and out of the PIV
// state, so that a reader does not go on answering for a card that is
// gone and a later card cannot inherit its slots.
func (s *Server) pivForget(serial string) {
	p := &s.piv
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.path == "" || p.state == nil || p.state.Card(serial) == nil {
		return
	}
	next := p.clone()
	next.Cards = slices.DeleteFunc(next.Cards, func(cs piv.CardState) bool { return cs.Serial == serial })
	if err := s.savePIVLocked(next); err != nil {
		return // logged; the next start finds the card gone and says so
	}
	s.stopReaderLocked(serial)
	s.log.Info().Str("event", "piv_disabled").Str("card", serial).Msg("destroyed card taken out of its PIV reader")
}

func (c *conn) pivDisable(m *wire.PIVDisable) error {
	s := c.s
	next := s.piv.clone()
	i := slices.IndexFunc(next.Cards, func(cs piv.CardState) bool { return cs.Serial == m.Serial })
	if i < 0 {
		return wire.NewError(wire.BadRequest, fmt.Sprintf("card %s is not in a PIV reader", m.Serial))
	}
	next.Cards = slices.Delete(next.Cards, i, i+1)
	if err := s.savePIVLocked(next); err != nil {
		return err
	}
	s.stopReaderLocked(m.Serial)
	c.log.Info().Str("event", "piv_disabled").Str("card", m.Serial).Msg("card taken out of its PIV reader")
	return nil
}

func (c *conn) pivAssign(m *wire.PIVAssign) error {
	s := c.s
	next := s.piv.clone()
	cs := next.Card(m.Serial)
	if cs == nil {
		return wire.NewError(wire.BadRequest, fmt.Sprintf("card %s is not in a PIV reader: tpmcard piv enable first", m.Serial))
	}
	if !slices.Contains(piv.Slots, m.Slot) {
		return wire.NewError(wire.BadRequest, fmt.Sprintf("%02x is no PIV key slot: use 9a, 9c, 9d or 9e", m.Slot))
	}
	name := piv.SlotName(m.Slot)
	if len(m.KeyID) == 0 {
		delete(cs.Slots, name)
	} else {
		k, err := s.m.Key(m.Serial, m.KeyID)
		if err != nil {
			return err
		}
		if k.PrivateDestroyed {
			return wire.NewError(wire.BadRequest, fmt.Sprintf("key %x has no private key left", m.KeyID))
		}
		if k.Algorithm != tpmcard.RSA2048 && k.Algorithm != tpmcard.ECDSAP256 && k.Algorithm != tpmcard.ECDSAP384 {
			return wire.NewError(wire.BadRequest, fmt.Sprintf("key %x is %v: PIV slots take RSA-2048, ECDSA P-256 and P-384 keys", m.KeyID, k.Algorithm))
		}
		for other, id := range cs.Slots {
			if other != name && id == fmt.Sprintf("%x", m.KeyID) {
				return wire.NewError(wire.BadRequest, fmt.Sprintf("key %x is in slot %s already", m.KeyID, other))
			}
		}
		if cs.Slots == nil {
			cs.Slots = map[string]string{}
		}
		cs.Slots[name] = fmt.Sprintf("%x", k.ID)
	}
	if err := s.savePIVLocked(next); err != nil {
		return err
	}
	s.stopReaderLocked(m.Serial)
	s.startReaderLocked(*cs)
	c.log.Info().Str("event", "piv_assigned").Str("card", m.Serial).Str("slot", name).Hex("key", m.KeyID).Msg("PIV slot assigned")
	return nil
}
