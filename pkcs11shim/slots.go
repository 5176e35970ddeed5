package main

import (
	"slices"
	"time"

	"github.com/tpmcard/tpmcard/service/wire"
)

// ---------------------------------------------------------------------------
// Slots and tokens (§5.5). The service names the slots and describes them
// ready to copy (service/server/slots.go); the module only remembers the
// slot IDs it was given, for the time the service is away.

// remember records slot IDs the service named.
func (m *module) remember(ids ...uint64) {
	for _, id := range ids {
		if id != 0 && m.slots[id] == nil {
			m.slots[id] = &slot{id: id}
		}
	}
}

// known reports whether id is a slot of this application: one the service
// named, or the empty slot 0 while it named none.
func (m *module) known(id uint64) bool {
	return m.slots[id] != nil || (id == 0 && len(m.slots) == 0)
}

// slotRV is the CK_RV for a slot the service could not be asked about, or
// does not know since it restarted: a slot of this application has no
// token, any other is invalid.
func (m *module) slotRV(id uint64) rv {
	if m.known(id) {
		return ckrTokenNotPresent
	}
	return ckrSlotIDInvalid
}

// slotFailed maps the service's answer to a slot request: SlotInvalid for
// a slot of this application is a card gone with the service's restart.
func (m *module) slotFailed(id uint64, err error) rv {
	if wire.StatusOf(err) == wire.SlotInvalid {
		return m.slotRV(id)
	}
	return rvOf(err)
}

// GetSlotList is C_GetSlotList. list nil asks for the count only; a list
// too short gets CKR_BUFFER_TOO_SMALL. n is the number of slots either way.
// The slots of cards gone since an earlier connection show, without a
// token; with no card known and the service down, one empty slot shows.
func (m *module) GetSlotList(tokenPresent bool, list []uint64) (n int, r rv) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if r := m.ready(); r != ckrOK {
		return 0, r
	}
	var ids []uint64
	err, up := m.withConn(func(b Backend) (err error) {
		ids, err = b.SlotList(tokenPresent)
		return err
	})
	if err != nil {
		return 0, rvOf(err)
	}
	m.remember(ids...)
	if !up {
		ids = nil
	}
	if !tokenPresent {
		for id := range m.slots {
			if !slices.Contains(ids, id) {
				ids = append(ids, id)
			}
		}
		if len(m.slots) > 0 {
			ids = slices.DeleteFunc(ids, func(id uint64) bool { return id == 0 })
		} else if len(ids) == 0 {
			ids = []uint64{0}
		}
		slices.Sort(ids)
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

// SlotInfo is CK_SLOT_INFO.
type SlotInfo struct {
	Description, Manufacturer string
	Flags                     uint64
	Hardware, Firmware        [2]byte // major, minor
}

// slotInfo is the service's CK_SLOT_INFO, its blank padding trimmed (the C
// layer pads again, to the same bytes).
func slotInfo(d wire.SlotDescription) SlotInfo {
	return SlotInfo{
		Description: unpad(d.Description), Manufacturer: unpad(d.Manufacturer), Flags: d.Flags,
		Hardware: [2]byte{d.HardwareMajor, d.HardwareMinor}, Firmware: [2]byte{d.FirmwareMajor, d.FirmwareMinor},
	}
}

// GetSlotInfo is C_GetSlotInfo: the service's answer, or, while it is away,
// its last one for the slot without the token.
func (m *module) GetSlotInfo(id uint64) (SlotInfo, rv) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if r := m.ready(); r != ckrOK {
		return SlotInfo{}, r
	}
	var d wire.SlotDescription
	err, up := m.withConn(func(b Backend) (err error) {
		d, err = b.SlotInfo(id)
		return err
	})
	switch {
	case up && err == nil:
		m.remember(id)
		if s := m.slots[id]; s != nil {
			s.info = &d
		}
		return slotInfo(d), ckrOK
	case up && wire.StatusOf(err) != wire.SlotInvalid:
		return SlotInfo{}, rvOf(err)
	case !m.known(id):
		return SlotInfo{}, ckrSlotIDInvalid
	}
	si := SlotInfo{Description: slotDescription, Manufacturer: libraryManufacturer, Flags: ckfRemovableDevice, Firmware: [2]byte{libraryMajor, libraryMinor}}
	if s := m.slots[id]; s != nil && s.info != nil {
		si = slotInfo(*s.info)
		si.Flags &^= ckfTokenPresent | ckfHWSlot
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
	Hardware, Firmware                           [2]byte // major, minor
	UTCTime                                      string
}

// GetTokenInfo is C_GetTokenInfo, the service's answer as it is.
func (m *module) GetTokenInfo(id uint64) (TokenInfo, rv) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if r := m.ready(); r != ckrOK {
		return TokenInfo{}, r
	}
	var d wire.TokenDescription
	err, up := m.withConn(func(b Backend) (err error) {
		d, err = b.TokenInfo(id)
		return err
	})
	switch {
	case !up:
		return TokenInfo{}, m.slotRV(id)
	case err != nil:
		return TokenInfo{}, m.slotFailed(id, err)
	}
	m.remember(id)
	return TokenInfo{
		Label: unpad(d.Label), Manufacturer: unpad(d.Manufacturer), Model: unpad(d.Model), Serial: unpad(d.SerialNumber),
		Flags:       d.Flags,
		MaxSessions: d.MaxSessionCount, Sessions: d.SessionCount, MaxRW: d.MaxRWSessionCount, RW: d.RWSessionCount,
		MaxPINLen: d.MaxPINLen, MinPINLen: d.MinPINLen,
		TotalPublic: d.TotalPublicMemory, FreePublic: d.FreePublicMemory,
		TotalPriv: d.TotalPrivateMemory, FreePriv: d.FreePrivateMemory,
		Hardware: [2]byte{d.HardwareMajor, d.HardwareMinor}, Firmware: [2]byte{d.FirmwareMajor, d.FirmwareMinor},
		UTCTime: unpad(d.UTCTime),
	}, ckrOK
}

func (m *module) mechanisms(id uint64) ([]wire.MechanismInfo, rv) {
	var mechs []wire.MechanismInfo
	err, up := m.withConn(func(b Backend) (err error) {
		mechs, err = b.SlotMechanisms(id)
		return err
	})
	switch {
	case !up:
		return nil, m.slotRV(id)
	case err != nil:
		return nil, m.slotFailed(id, err)
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
		return m.eventSlot(ev), ckrOK
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
			var ids []uint64
			err, up := m.withConn(func(b Backend) (err error) {
				ids, err = b.SlotList(true)
				return err
			})
			if up && err == nil && len(ids) > 0 {
				m.remember(ids...)
				return ids[0], ckrOK
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
			return m.eventSlot(ev), ckrOK
		case wire.StatusOf(err) == wire.Timeout:
			continue
		case wire.StatusOf(err) == wire.Unsupported:
			return 0, ckrFunctionNotSupported
		}
		if !m.eventError(err) {
			return 0, rvOf(err)
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

// eventSlot returns the slot an event names, remembering a new card's.
func (m *module) eventSlot(ev wire.Event) uint64 {
	m.remember(ev.Slot)
	return ev.Slot
}
