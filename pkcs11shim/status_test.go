package main

import (
	"testing"

	"github.com/tpmcard/tpmcard/service/wire"
)

// TestStatusTable checks the status table both ways: every status the wire
// package defines has its own entry, and every CK_RV the table produces is
// a PKCS#11 code (rvNames, whose values the C ABI test checks against the
// header).
func TestStatusTable(t *testing.T) {
	for _, s := range wire.Statuses() {
		r, ok := statusRV[s]
		if !ok {
			t.Errorf("status %v has no CK_RV", s)
			continue
		}
		if _, ok := rvNames[r]; !ok {
			t.Errorf("status %v maps to %#x, not a PKCS#11 code this module knows", s, uint64(r))
		}
		if (s == wire.OK) != (r == ckrOK) {
			t.Errorf("status %v maps to %v", s, r)
		}
	}
	for s := range statusRV {
		if !s.Known() {
			t.Errorf("table entry for unknown status %v", s)
		}
	}
	if got := statusToRV(wire.Status(9999)); got != ckrFunctionFailed {
		t.Errorf("unknown status maps to %v, want CKR_FUNCTION_FAILED", got)
	}
	for _, tc := range []struct {
		s wire.Status
		r rv
	}{
		{wire.PINIncorrect, ckrPINIncorrect}, {wire.PINLocked, ckrPINLocked}, {wire.PINExpired, ckrPINExpired},
		{wire.PINLenRange, ckrPINLenRange}, {wire.PINInvalid, ckrPINInvalid}, {wire.NotLoggedIn, ckrUserNotLoggedIn},
		{wire.AlreadyLoggedIn, ckrUserAlreadyLoggedIn}, {wire.AnotherUserLoggedIn, ckrUserAnotherAlreadyLoggedIn},
		{wire.SessionInvalid, ckrSessionHandleInvalid}, {wire.OperationActive, ckrOperationActive},
		{wire.OperationNotInitialized, ckrOperationNotInitialized}, {wire.MechanismInvalid, ckrMechanismInvalid},
		{wire.KeyTypeInconsistent, ckrKeyTypeInconsistent}, {wire.AttributeSensitive, ckrAttributeSensitive},
		{wire.Unsupported, ckrFunctionNotSupported}, {wire.ServiceStopping, ckrDeviceRemoved},
		{wire.StateDirFull, ckrDeviceMemory}, {wire.StateDirReadOnly, ckrTokenWriteProtected},
		{wire.StateDirPermission, ckrDeviceError}, {wire.DestroyIncomplete, ckrDeviceError},
	} {
		if got := statusToRV(tc.s); got != tc.r {
			t.Errorf("%v -> %v, want %v", tc.s, got, tc.r)
		}
	}
}

func TestPad(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{
		{"ok", 5, "ok   "},
		{"", 3, "   "},
		{"exactly", 7, "exactly"},
		{"too long", 3, "too"},
		{"aé", 2, "a "}, // a two-byte rune does not fit: cut before it
	} {
		b := make([]byte, tc.n)
		pad(b, tc.in)
		if string(b) != tc.want {
			t.Errorf("pad(%q, %d) = %q, want %q", tc.in, tc.n, b, tc.want)
		}
	}
}
