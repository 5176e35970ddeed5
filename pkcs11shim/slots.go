package main

import (
	"time"
	"unicode/utf8"

	"github.com/tpmcard/tpmcard/service/wire"
)

// ---------------------------------------------------------------------------
// Slots and tokens (§5.5).

// refresh asks the service for its cards and updates the slots. It
// reports whether the service answered.
func (m *module) refresh() bool {
	had := m.be != nil
	b, ok := m.conn()
	if !ok {
		return false
	}
	cards, err := b.ListCards()
	if err != nil {
		m.result(err, ckrTokenNotPresent)
		if isStatusError(err) { // e.g. permission denied: no cards for us
			for _, s := range m.slots {
				s.present = false
			}
			return true
		}
		if had {
			// The service restarted since the last call: the old
			// connection is dead, a new one may work.
			return m.refresh()
		}
		return false
	}
	for _, s := range m.slots {
		s.present = false
	}
	for _, ti := range cards {
		s := m.bySerial[ti.Serial]
		if s == nil {
			s = m.addSlot(ti.Serial)
		}
		s.info = ti
		s.present = true
	}
	return true
}

func (m *module) addSlot(serial string) *slot {
	s := &slot{id: uint64(len(m.slots)), serial: serial}
	m.slots = append(m.slots, s)
	m.bySerial[serial] = s
	return s
}

// GetSlotList is C_GetSlotList. list nil asks for the count only; a list
// too short gets CKR_BUFFER_TOO_SMALL. n is the number of slots either way.
// With no card known and the service down, one empty slot shows, the one
// the first card will take.
func (m *module) GetSlotList(tokenPresent bool, list []uint64) (n int, r rv) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if r := m.ready(); r != ckrOK {
		return 0, r
	}
	m.refresh()
	var ids []uint64
	for _, s := range m.slots {
		if s.present || !tokenPresent {
			ids = append(ids, s.id)
		}
	}
	if len(m.slots) == 0 && !tokenPresent {
		ids = append(ids, 0)
	}
	if list == nil {
		return len(ids), ckrOK
	}
	if len(list) < len(ids) {
		return len(ids), ckrBufferTooSmall
	}
	copy(list, ids)
	return len(ids), ckrOK
}

// slot returns a slot by ID; with no card known, slot 0 exists, empty.
func (m *module) slot(id uint64) (*slot, rv) {
	if id < uint64(len(m.slots)) {
		return m.slots[id], ckrOK
	}
	if id == 0 && len(m.slots) == 0 {
		return &slot{}, ckrOK
	}
	return nil, ckrSlotIDInvalid
}

// SlotInfo is CK_SLOT_INFO.
type SlotInfo struct {
	Description, Manufacturer string
	Flags                     uint64
}

// GetSlotInfo is C_GetSlotInfo.
func (m *module) GetSlotInfo(id uint64) (SlotInfo, rv) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if r := m.ready(); r != ckrOK {
		return SlotInfo{}, r
	}
	if m.be == nil {
		m.refresh()
	}
	s, r := m.slot(id)
	if r != ckrOK {
		return SlotInfo{}, r
	}
	si := SlotInfo{Description: slotDescription, Manufacturer: libraryManufacturer, Flags: ckfRemovableDevice}
	if s.present {
		si.Flags |= ckfTokenPresent
		if !s.info.Simulated {
			si.Flags |= ckfHWSlot
		}
	}
	return si, ckrOK
}

// TokenInfo is CK_TOKEN_INFO.
type TokenInfo struct {
	Label, Manufacturer, Model, Serial           string
	Flags                                        uint64
	MaxSessions, Sessions, MaxRW, RW             uint64
	MaxPINLen, MinPINLen                         uint64
	TotalPublic, FreePublic, TotalPriv, FreePriv uint64
}

// GetTokenInfo is C_GetTokenInfo. The flags are the service's, whose bits
// are CK_TOKEN_INFO's.
func (m *module) GetTokenInfo(id uint64) (TokenInfo, rv) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if r := m.ready(); r != ckrOK {
		return TokenInfo{}, r
	}
	m.refresh()
	s, r := m.slot(id)
	if r != ckrOK {
		return TokenInfo{}, r
	}
	if !s.present {
		return TokenInfo{}, ckrTokenNotPresent
	}
	ti := s.info
	label := ti.Label
	if label == "" {
		label = "tpmcard " + ti.Serial
	}
	if ti.State.Damaged() {
		// CK_TOKEN_INFO has no field for it: the label, which tools show,
		// ends with the state ("(lost)", "(destroy incomplete)"), within
		// its 32 bytes.
		suffix := " (" + ti.State.String() + ")"
		label = truncateUTF8(label, 32-len(suffix)) + suffix
	}
	return TokenInfo{
		Label: label, Manufacturer: ti.Manufacturer, Model: ti.Model, Serial: ti.Serial,
		Flags:       uint64(ti.Flags),
		MaxSessions: ckEffectivelyInfinite, Sessions: ckUnavailableInformation,
		MaxRW: ckEffectivelyInfinite, RW: ckUnavailableInformation,
		MaxPINLen: uint64(max(ti.MaxPINLen, 0)), MinPINLen: uint64(max(ti.MinPINLen, 0)),
		TotalPublic: ckUnavailableInformation, FreePublic: ckUnavailableInformation,
		TotalPriv: ckUnavailableInformation, FreePriv: ckUnavailableInformation,
	}, ckrOK
}

// presentSlot returns a slot whose token is there, with the connection.
func (m *module) presentSlot(id uint64) (*slot, Backend, rv) {
	s, r := m.slot(id)
	if r != ckrOK {
		return nil, nil, r
	}
	if !s.present || m.be == nil {
		if !m.refresh() {
			return nil, nil, ckrTokenNotPresent
		}
		if s, r = m.slot(id); r != ckrOK {
			return nil, nil, r
		}
	}
	if !s.present || m.be == nil {
		return nil, nil, ckrTokenNotPresent
	}
	return s, m.be, ckrOK
}

func (m *module) mechanisms(id uint64) ([]wire.MechanismInfo, rv) {
	s, b, r := m.presentSlot(id)
	if r != ckrOK {
		return nil, r
	}
	mechs, err := b.Mechanisms(s.serial)
	if err != nil {
		return nil, m.result(err, ckrTokenNotPresent)
	}
	return mechs, ckrOK
}

// GetMechanismList is C_GetMechanismList, with the two-call convention of
// GetSlotList.
func (m *module) GetMechanismList(id uint64, list []uint64) (int, rv) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if r := m.ready(); r != ckrOK {
		return 0, r
	}
	mechs, r := m.mechanisms(id)
	if r != ckrOK {
		return 0, r
	}
	if list == nil {
		return len(mechs), ckrOK
	}
	if len(list) < len(mechs) {
		return len(mechs), ckrBufferTooSmall
	}
	for i, mi := range mechs {
		list[i] = uint64(mi.Mechanism)
	}
	return len(mechs), ckrOK
}

// GetMechanismInfo is C_GetMechanismInfo.
func (m *module) GetMechanismInfo(id, mech uint64) (wire.MechanismInfo, rv) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if r := m.ready(); r != ckrOK {
		return wire.MechanismInfo{}, r
	}
	mechs, r := m.mechanisms(id)
	if r != ckrOK {
		return wire.MechanismInfo{}, r
	}
	for _, mi := range mechs {
		if uint64(mi.Mechanism) == mech {
			return mi, ckrOK
		}
	}
	return wire.MechanismInfo{}, ckrMechanismInvalid
}

// WaitForSlotEvent is C_WaitForSlotEvent (§5.5). Events come from the
// service on the module's event connection. With CKF_DONT_BLOCK it reports
// an event that is already there, or CKR_NO_EVENT. Otherwise it waits,
// without holding the module's lock, until an event, or C_Finalize
// (CKR_CRYPTOKI_NOT_INITIALIZED); while the service is down it waits for
// it to come back, which is itself an event: the cards are back.
func (m *module) WaitForSlotEvent(flags uint64) (uint64, rv) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if r := m.ready(); r != ckrOK {
		return 0, r
	}
	if flags&ckfDontBlock != 0 {
		if m.waiting {
			return 0, ckrNoEvent // the blocking wait will report it
		}
		w, _ := m.eventConn()
		if w == nil {
			return 0, ckrNoEvent
		}
		ev, err := w.WaitEvent(0)
		if err != nil {
			m.eventError(err)
			return 0, ckrNoEvent
		}
		return m.eventSlot(ev.Serial), ckrOK
	}
	if m.waiting {
		return 0, ckrFunctionFailed // one blocking wait at a time
	}
	m.waiting = true
	defer func() { m.waiting = false }()
	inst, stop := m.instance, m.stop
	down := false
	for {
		w, ok := m.eventConn()
		if !ok {
			return 0, ckrFunctionNotSupported
		}
		if w == nil {
			down = true
			m.mu.Unlock()
			select {
			case <-stop:
			case <-time.After(time.Second):
			}
			m.mu.Lock()
			if m.ready() != ckrOK || m.instance != inst {
				return 0, ckrCryptokiNotInitialized
			}
			continue
		}
		if down {
			// The service is back: its cards reappear.
			m.refresh()
			for _, s := range m.slots {
				if s.present {
					return s.id, ckrOK
				}
			}
			down = false
		}
		m.mu.Unlock()
		ev, err := w.WaitEvent(time.Minute)
		m.mu.Lock()
		if m.ready() != ckrOK || m.instance != inst {
			return 0, ckrCryptokiNotInitialized
		}
		switch {
		case err == nil:
			return m.eventSlot(ev.Serial), ckrOK
		case wire.StatusOf(err) == wire.Timeout:
			continue
		case wire.StatusOf(err) == wire.Unsupported:
			return 0, ckrFunctionNotSupported
		}
		if !m.eventError(err) {
			return 0, statusToRV(wire.StatusOf(err))
		}
		down = true
	}
}

// eventConn returns the event connection, dialing it if needed: nil when
// the service cannot be reached, ok false when it cannot wait for events.
func (m *module) eventConn() (eventWaiter, bool) {
	if m.waiter == nil {
		b, err := m.dial(m.socket)
		if err != nil {
			return nil, true
		}
		m.waiter = b
	}
	w, ok := m.waiter.(eventWaiter)
	return w, ok
}

// eventError drops the event connection when err says it broke, and
// reports whether it did.
func (m *module) eventError(err error) bool {
	if isStatusError(err) && wire.StatusOf(err) != wire.ServiceStopping {
		return false
	}
	if m.waiter != nil {
		m.waiter.Close()
		m.waiter = nil
	}
	return true
}

// eventSlot returns the slot of the card an event names, adding one for a
// new card.
func (m *module) eventSlot(serial string) uint64 {
	s := m.bySerial[serial]
	if s == nil {
		s = m.addSlot(serial)
	}
	return s.id
}

// truncateUTF8 cuts s to at most n bytes without splitting a character.
func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
