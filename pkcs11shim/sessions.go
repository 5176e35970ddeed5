package main

import (
	"github.com/tpmcard/tpmcard/service/wire"
	"github.com/tpmcard/tpmcard/tpmcard/secret"
)

// ---------------------------------------------------------------------------
// Sessions (§5.6).

// OpenSession is C_OpenSession. The service checks the flags
// (CKF_SERIAL_SESSION, CKF_RW_SESSION against an SO login) and the slot.
func (m *module) OpenSession(id, flags uint64) (uint64, rv) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if r := m.ready(); r != ckrOK {
		return 0, r
	}
	var wid uint32
	err, up := m.withConn(func(b Backend) (err error) {
		wid, err = b.OpenSlotSession(id, flags)
		return err
	})
	switch {
	case !up:
		return 0, m.slotRV(id)
	case err != nil:
		return 0, m.slotFailed(id, err)
	}
	m.remember(id)
	m.nextSess++
	ss := &session{handle: m.nextSess, slot: id, wireID: wid, gen: m.gen}
	m.sessions[ss.handle] = ss
	m.log.printf("C_OpenSession slot=%d flags=%#x -> %d", id, flags, ss.handle)
	return ss.handle, ckrOK
}

// session returns a live session: CKR_SESSION_HANDLE_INVALID for an
// unknown handle, CKR_DEVICE_REMOVED when its connection was lost.
func (m *module) session(h uint64) (*session, Backend, rv) {
	if r := m.ready(); r != ckrOK {
		return nil, nil, r
	}
	s := m.sessions[h]
	if s == nil {
		return nil, nil, ckrSessionHandleInvalid
	}
	if s.gen != m.gen || m.be == nil {
		return nil, nil, ckrDeviceRemoved
	}
	return s, m.be, ckrOK
}

// CloseSession is C_CloseSession. A session whose connection was lost
// closes without a word to the service.
func (m *module) CloseSession(h uint64) rv {
	m.mu.Lock()
	defer m.mu.Unlock()
	if r := m.ready(); r != ckrOK {
		return r
	}
	s := m.sessions[h]
	if s == nil {
		return ckrSessionHandleInvalid
	}
	delete(m.sessions, h)
	if s.gen != m.gen || m.be == nil {
		return ckrOK
	}
	return m.result(m.be.CloseSession(s.wireID), ckrOK)
}

// CloseAllSessions is C_CloseAllSessions.
func (m *module) CloseAllSessions(id uint64) rv {
	m.mu.Lock()
	defer m.mu.Unlock()
	if r := m.ready(); r != ckrOK {
		return r
	}
	live := false
	for h, ss := range m.sessions {
		if ss.slot == id {
			live = live || ss.gen == m.gen
			delete(m.sessions, h)
		}
	}
	if live && m.be != nil {
		return m.result(m.be.CloseSlotSessions(id), ckrOK)
	}
	if !m.known(id) {
		return ckrSlotIDInvalid
	}
	return ckrOK
}

// SessionInfo is CK_SESSION_INFO.
type SessionInfo struct {
	Slot, State, Flags, DeviceError uint64
}

// GetSessionInfo is C_GetSessionInfo.
func (m *module) GetSessionInfo(h uint64) (SessionInfo, rv) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, b, r := m.session(h)
	if r != ckrOK {
		return SessionInfo{}, r
	}
	st, err := b.SessionInfo(s.wireID)
	if err != nil {
		return SessionInfo{}, m.result(err, ckrDeviceRemoved)
	}
	return SessionInfo{Slot: st.Slot, State: uint64(st.State), Flags: st.Flags, DeviceError: st.DeviceError}, ckrOK
}

// Login is C_Login with the raw CK_USER_TYPE, which the service checks, as
// it checks the SO's rule (no read-only session). The PIN goes to the
// service and nowhere else; the caller wipes it.
func (m *module) Login(h, userType uint64, pin secret.Secret) rv {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, b, r := m.session(h)
	if r != ckrOK {
		return r
	}
	r = m.result(b.Login(s.wireID, wire.UserType(userType), pin), ckrDeviceRemoved)
	m.log.printf("C_Login session=%d user=%d -> %v", h, userType, r)
	return r
}

// Logout is C_Logout.
func (m *module) Logout(h uint64) rv {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, b, r := m.session(h)
	if r != ckrOK {
		return r
	}
	return m.result(b.Logout(s.wireID), ckrDeviceRemoved)
}

// InitPIN is C_InitPIN (in an SO session: unblock with the PUK given at
// C_Login and set this PIN).
func (m *module) InitPIN(h uint64, pin secret.Secret) rv {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, b, r := m.session(h)
	if r != ckrOK {
		return r
	}
	r = m.result(b.InitPIN(s.wireID, pin), ckrDeviceRemoved)
	m.log.printf("C_InitPIN session=%d -> %v", h, r)
	return r
}

// SetPIN is C_SetPIN.
func (m *module) SetPIN(h uint64, oldPIN, newPIN secret.Secret) rv {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, b, r := m.session(h)
	if r != ckrOK {
		return r
	}
	r = m.result(b.SetPIN(s.wireID, oldPIN, newPIN), ckrDeviceRemoved)
	m.log.printf("C_SetPIN session=%d -> %v", h, r)
	return r
}
