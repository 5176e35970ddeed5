//go:build linux

package server

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/tpmcard/tpmcard/service/p11"
	"github.com/tpmcard/tpmcard/service/wire"
)

// wantRV fails unless err is an Error reply carrying the CK_RV r.
func wantRV(t *testing.T, what string, err error, r uint64) {
	t.Helper()
	var se *wire.StatusError
	if !errors.As(err, &se) {
		t.Fatalf("%s: %v, want an error reply with %s", what, err, p11.RVNames[r])
	}
	if se.RV != r {
		t.Fatalf("%s: %v with RV %#x (%s), want %s", what, se, se.RV, p11.RVNames[se.RV], p11.RVNames[r])
	}
}

// TestSlotsTokensSessions drives the PKCS#11 slot, token and session
// requests as the module sends them: slot IDs, raw flags and user types,
// and the CK_RV of every failure.
func TestSlotsTokensSessions(t *testing.T) {
	e := newEnv(t, nil, nil)
	c := e.dial()

	// No card: the empty reader, slot 0.
	ids, err := c.SlotList(false)
	if err != nil || !slices.Equal(ids, []uint64{0}) {
		t.Fatalf("SlotList(false) with no card = %v, %v; want [0]", ids, err)
	}
	if ids, err := c.SlotList(true); err != nil || len(ids) != 0 {
		t.Fatalf("SlotList(true) with no card = %v, %v", ids, err)
	}
	si, err := c.SlotInfo(0)
	if err != nil || si.Flags != p11.CKFRemovableDevice || len(si.Description) != 64 || len(si.Manufacturer) != 32 {
		t.Fatalf("SlotInfo(0) = %+v, %v", si, err)
	}
	_, err = c.TokenInfo(0)
	wantRV(t, "TokenInfo(empty reader)", err, p11.CKRTokenNotPresent)
	_, err = c.SlotInfo(5)
	wantRV(t, "SlotInfo(5)", err, p11.CKRSlotIDInvalid)
	_, err = c.OpenSlotSession(0, p11.CKFSerialSession)
	wantRV(t, "OpenSlotSession(empty reader)", err, p11.CKRTokenNotPresent)

	serial := e.provision(c)
	ids, err = c.SlotList(true)
	if err != nil || len(ids) != 1 || ids[0] != slotHash(serial) {
		t.Fatalf("SlotList(true) = %v, %v; want [%d]", ids, err, slotHash(serial))
	}
	slot := ids[0]
	if cards, err := c.ListCards(); err != nil || len(cards) != 1 || cards[0].Slot != slot {
		t.Errorf("ListCards = %+v, %v: not slot %d", cards, err, slot)
	}
	if ids, _ := c.SlotList(false); !slices.Equal(ids, []uint64{slot}) {
		t.Errorf("SlotList(false) = %v: slot 0 stays after a card came", ids)
	}
	si, err = c.SlotInfo(slot)
	if err != nil || si.Flags != p11.CKFRemovableDevice|p11.CKFTokenPresent || // simulated: no CKF_HW_SLOT
		string(si.Description) != "tpmcard virtual reader"+strings.Repeat(" ", 42) || si.FirmwareMinor != 1 {
		t.Fatalf("SlotInfo = %+v, %v", si, err)
	}
	ti, err := c.TokenInfo(slot)
	if err != nil {
		t.Fatalf("TokenInfo: %v", err)
	}
	if string(ti.Label) != "test"+strings.Repeat(" ", 28) || string(ti.Model) != "TPM2 vcard      " ||
		len(ti.Manufacturer) != 32 || len(ti.SerialNumber) != 16 || !strings.HasPrefix(serial, strings.TrimRight(string(ti.SerialNumber), " ")) ||
		len(ti.UTCTime) != 16 {
		t.Errorf("TokenInfo text %q %q %q %q %q", ti.Label, ti.Manufacturer, ti.Model, ti.SerialNumber, ti.UTCTime)
	}
	want := uint64(wire.FlagLoginRequired | wire.FlagUserPINInitialized | wire.FlagTokenInitialized)
	if ti.Flags&want != want || ti.MaxSessionCount != p11.CKEffectivelyInfinite || ti.SessionCount != p11.CKUnavailableInformation ||
		ti.FreePrivateMemory != p11.CKUnavailableInformation || ti.MinPINLen == 0 || ti.MaxPINLen < ti.MinPINLen {
		t.Errorf("TokenInfo numbers %+v", ti)
	}
	mechs, err := c.SlotMechanisms(slot)
	if err != nil || len(mechs) == 0 {
		t.Errorf("SlotMechanisms = %v, %v", mechs, err)
	}

	// Sessions: raw CK_FLAGS.
	_, err = c.OpenSlotSession(slot, p11.CKFRWSession)
	wantRV(t, "OpenSlotSession without CKF_SERIAL_SESSION", err, p11.CKRSessionParallelNotSupported)
	_, err = c.OpenSlotSession(slot+1, p11.CKFSerialSession)
	wantRV(t, "OpenSlotSession(bad slot)", err, p11.CKRSlotIDInvalid)
	ro, err := c.OpenSlotSession(slot, p11.CKFSerialSession)
	if err != nil {
		t.Fatalf("OpenSlotSession: %v", err)
	}
	st, err := c.SessionInfo(ro)
	if err != nil || st.Slot != slot || st.State != p11.CKSROPublic || st.Flags != p11.CKFSerialSession || st.DeviceError != 0 {
		t.Fatalf("SessionInfo = %+v, %v", st, err)
	}
	// Raw CK_USER_TYPE, and the SO's rule.
	err = c.Login(ro, 7, testPIN.Clone())
	wantRV(t, "Login(user type 7)", err, p11.CKRUserTypeInvalid)
	err = c.Login(ro, 1<<40, testPIN.Clone())
	wantRV(t, "Login(user type 2^40)", err, p11.CKRUserTypeInvalid)
	err = c.Login(ro, wire.UserSO, testPUK.Clone())
	wantRV(t, "SO Login with a read-only session", err, p11.CKRSessionReadOnlyExists)
	err = c.Login(ro, wire.UserContextSpecific, testPIN.Clone())
	wantRV(t, "context-specific Login", err, p11.CKROperationNotInitialized)
	_, err = c.SignLength(ro, 999, p11.CKMECDSA)
	wantRV(t, "SignLength with no such key", err, p11.CKRKeyHandleInvalid)
	if err := c.CloseSession(ro); err != nil {
		t.Fatalf("CloseSession: %v", err)
	}
	err = c.CloseSession(ro)
	wantRV(t, "CloseSession twice", err, p11.CKRSessionHandleInvalid)

	rw, err := c.OpenSlotSession(slot, p11.CKFSerialSession|p11.CKFRWSession)
	if err != nil {
		t.Fatalf("OpenSlotSession(RW): %v", err)
	}
	if err := c.Login(rw, wire.UserSO, testPUK.Clone()); err != nil {
		t.Fatalf("SO Login: %v", err)
	}
	if st, _ := c.SessionInfo(rw); st.State != p11.CKSRWSO || st.Flags != p11.CKFSerialSession|p11.CKFRWSession {
		t.Errorf("SO session %+v", st)
	}
	_, err = c.OpenSlotSession(slot, p11.CKFSerialSession)
	wantRV(t, "read-only session while the SO is logged in", err, p11.CKRSessionReadWriteSOExists)
	if err := c.CloseSlotSessions(slot); err != nil {
		t.Fatalf("CloseSlotSessions: %v", err)
	}
	_, err = c.SessionInfo(rw)
	wantRV(t, "session after CloseSlotSessions", err, p11.CKRSessionHandleInvalid)
	// A session opened by serial on a connection never shown the slot.
	c2 := e.dial()
	s2 := mustOpen(t, c2, serial, false)
	if err := c2.CloseSlotSessions(slot); err != nil {
		t.Fatalf("CloseSlotSessions on a fresh connection: %v", err)
	}
	_, err = c2.SessionInfo(s2)
	wantRV(t, "a serial-opened session after CloseSlotSessions", err, p11.CKRSessionHandleInvalid)

	// A card gone: its slot stays on this connection, without a token.
	if err := c.DestroyCard(serial); err != nil {
		t.Fatalf("DestroyCard: %v", err)
	}
	if ids, _ := c.SlotList(false); !slices.Equal(ids, []uint64{slot}) {
		t.Errorf("SlotList(false) after the destroy = %v", ids)
	}
	if ids, _ := c.SlotList(true); len(ids) != 0 {
		t.Errorf("SlotList(true) after the destroy = %v", ids)
	}
	if si, err := c.SlotInfo(slot); err != nil || si.Flags != p11.CKFRemovableDevice {
		t.Errorf("SlotInfo after the destroy = %+v, %v", si, err)
	}
	_, err = c.TokenInfo(slot)
	wantRV(t, "TokenInfo after the destroy", err, p11.CKRTokenNotPresent)
	// Another connection never saw it.
	if ids, _ := e.dial().SlotList(false); !slices.Equal(ids, []uint64{0}) {
		t.Errorf("a new connection's SlotList(false) = %v", ids)
	}
}

// TestSlotsAfterOwnerChange: a card given away leaves its slot on the old
// owner's connection without a token, the new owner's connection sees it
// at the same slot ID, and a session the service closed closes with CKR_OK.
func TestSlotsAfterOwnerChange(t *testing.T) {
	e := newEnv(t, nil, nil)
	admin := e.dial()
	serial := e.provisionFor(admin, &wire.CardOwner{UID: 1000})
	owner := e.dialAs(Peer{UID: 1000, GID: 1000})
	heir := e.dialAs(Peer{UID: 1002, GID: 1002})

	ids, err := owner.SlotList(true)
	if err != nil || len(ids) != 1 {
		t.Fatalf("owner's SlotList = %v, %v", ids, err)
	}
	slot := ids[0]
	if ids, _ := heir.SlotList(false); !slices.Equal(ids, []uint64{0}) {
		t.Fatalf("another user's SlotList(false) = %v", ids)
	}
	s, err := owner.OpenSlotSession(slot, p11.CKFSerialSession)
	if err != nil {
		t.Fatalf("OpenSlotSession: %v", err)
	}
	if err := admin.SetOwner(serial, &wire.CardOwner{UID: 1002}); err != nil {
		t.Fatal(err)
	}
	_, err = owner.SessionInfo(s)
	wantRV(t, "session of a card given away", err, p11.CKRSessionHandleInvalid)
	if err := owner.CloseSession(s); err != nil {
		t.Errorf("CloseSession of a session the service closed: %v", err)
	}
	err = owner.CloseSession(s)
	wantRV(t, "CloseSession of it again", err, p11.CKRSessionHandleInvalid)
	if ids, _ := owner.SlotList(false); !slices.Equal(ids, []uint64{slot}) {
		t.Errorf("old owner's SlotList(false) = %v", ids)
	}
	_, err = owner.TokenInfo(slot)
	wantRV(t, "old owner's TokenInfo", err, p11.CKRTokenNotPresent)
	if ids, _ := heir.SlotList(true); !slices.Equal(ids, []uint64{slot}) {
		t.Errorf("new owner's SlotList(true) = %v, want [%d]", ids, slot)
	}
	if admins, _ := admin.SlotList(true); !slices.Equal(admins, []uint64{slot}) {
		t.Errorf("admin's SlotList(true) = %v", admins)
	}
}

// TestSessionStates: C_GetSessionInfo follows the state table of PKCS#11
// v2.40 §5.6 (Table 8): a user login moves every session of the
// application on the card to RO/RW user functions, a logout back to
// public; an SO login exists only with read-write sessions.
func TestSessionStates(t *testing.T) {
	e := newEnv(t, nil, nil)
	c := e.dial()
	serial := e.provisionFor(c, &wire.CardOwner{UID: 1000})
	ro, rw := mustOpen(t, c, serial, false), mustOpen(t, c, serial, true)
	state := func(s uint32) uint32 {
		t.Helper()
		st, err := c.SessionInfo(s)
		if err != nil {
			t.Fatal(err)
		}
		return st.State
	}
	for _, tc := range []struct {
		what   string
		do     func() error
		ro, rw uint32
	}{
		{"opened", func() error { return nil }, p11.CKSROPublic, p11.CKSRWPublic},
		{"user login in the RO session", func() error { return c.Login(ro, wire.UserNormal, testPIN.Clone()) }, p11.CKSROUser, p11.CKSRWUser},
		{"logout in the RW session", func() error { return c.Logout(rw) }, p11.CKSROPublic, p11.CKSRWPublic},
	} {
		if err := tc.do(); err != nil {
			t.Fatalf("%s: %v", tc.what, err)
		}
		if gotRO, gotRW := state(ro), state(rw); gotRO != tc.ro || gotRW != tc.rw {
			t.Errorf("%s: states RO %d, RW %d; want %d, %d", tc.what, gotRO, gotRW, tc.ro, tc.rw)
		}
	}
	err := c.Login(rw, wire.UserSO, testPUK.Clone())
	wantRV(t, "SO login with a read-only session open", err, p11.CKRSessionReadOnlyExists)
	if err := c.CloseSession(ro); err != nil {
		t.Fatal(err)
	}
	if err := c.Login(rw, wire.UserSO, testPUK.Clone()); err != nil {
		t.Fatalf("SO login: %v", err)
	}
	if got := state(rw); got != p11.CKSRWSO {
		t.Errorf("SO session state %d, want CKS_RW_SO_FUNCTIONS", got)
	}
	_, err = c.OpenSession(serial, false)
	wantRV(t, "read-only session while the SO is logged in", err, p11.CKRSessionReadWriteSOExists)
	rw2 := mustOpen(t, c, serial, true)
	if got := state(rw2); got != p11.CKSRWSO {
		t.Errorf("a new RW session during the SO login: state %d, want CKS_RW_SO_FUNCTIONS", got)
	}
}
