package server

import (
	"testing"

	"github.com/tpmcard/tpmcard/service/p11"
	"github.com/tpmcard/tpmcard/service/wire"
)

// TestRVTable checks the CK_RV table both ways: every status the wire
// package defines has its own entry, every entry is a defined status, and
// every CK_RV the table or its context rules give is a PKCS#11 code
// (p11.RVNames, which the module's C ABI test ties to the header).
func TestRVTable(t *testing.T) {
	for _, s := range wire.Statuses() {
		r, ok := statusRV[s]
		if !ok {
			t.Errorf("status %v has no CK_RV", s)
			continue
		}
		if (s == wire.OK) != (r == p11.CKROK) {
			t.Errorf("status %v maps to %#x", s, r)
		}
	}
	for s, r := range statusRV {
		if !s.Known() {
			t.Errorf("table entry for unknown status %v", s)
		}
		if _, ok := p11.RVNames[r]; !ok {
			t.Errorf("status %v maps to %#x, not a PKCS#11 code", s, r)
		}
	}
	for ty, rules := range contextRV {
		if !wire.IsRequest(ty) {
			t.Errorf("context rules for %v, not a request", ty)
		}
		for s, r := range rules {
			if _, ok := p11.RVNames[r]; !ok || r == p11.CKROK || !s.Known() {
				t.Errorf("%v: %v -> %#x", ty, s, r)
			}
		}
	}
	if got := RV(wire.TypeSign, wire.Status(9999)); got != p11.CKRFunctionFailed {
		t.Errorf("unknown status maps to %#x, want CKR_FUNCTION_FAILED", got)
	}
	for _, tc := range []struct {
		name string
		t    wire.Type
		s    wire.Status
		r    uint64
	}{
		{"ok/pin-incorrect", wire.TypeLogin, wire.PINIncorrect, p11.CKRPINIncorrect},
		{"ok/puk-incorrect", wire.TypeInitPIN, wire.PUKIncorrect, p11.CKRPINIncorrect},
		{"ok/pin-locked", wire.TypeLogin, wire.PINLocked, p11.CKRPINLocked},
		{"ok/pin-expired", wire.TypeSign, wire.PINExpired, p11.CKRPINExpired},
		{"ok/not-logged-in", wire.TypeSign, wire.NotLoggedIn, p11.CKRUserNotLoggedIn},
		{"ok/another-user", wire.TypeLogin, wire.AnotherUserLoggedIn, p11.CKRUserAnotherAlreadyLoggedIn},
		{"ok/session-invalid", wire.TypeSessionInfo, wire.SessionInvalid, p11.CKRSessionHandleInvalid},
		{"ok/object-invalid", wire.TypeGetAttributes, wire.ObjectNotFound, p11.CKRObjectHandleInvalid},
		{"ok/sign-object-is-key", wire.TypeSign, wire.ObjectNotFound, p11.CKRKeyHandleInvalid},
		{"ok/signlength-object-is-key", wire.TypeSignLength, wire.ObjectNotFound, p11.CKRKeyHandleInvalid},
		{"ok/signinit-object-is-key", wire.TypeSignInit, wire.ObjectNotFound, p11.CKRKeyHandleInvalid},
		{"ok/seed-random", wire.TypeSeedRandom, wire.Unsupported, p11.CKRRandomSeedNotSupported},
		{"ok/generate-random-unsupported", wire.TypeGenerateRandom, wire.Unsupported, p11.CKRFunctionNotSupported},
		{"ok/login-so-ro-exists", wire.TypeLogin, wire.SessionReadOnly, p11.CKRSessionReadOnlyExists},
		{"ok/open-ro-so-exists", wire.TypeOpenSession, wire.SessionReadOnly, p11.CKRSessionReadWriteSOExists},
		{"ok/keygen-read-only", wire.TypeGenerateKeyPair, wire.SessionReadOnly, p11.CKRSessionReadOnly},
		{"ok/parallel", wire.TypeOpenSession, wire.SessionParallel, p11.CKRSessionParallelNotSupported},
		{"ok/slot-invalid", wire.TypeGetSlotInfo, wire.SlotInvalid, p11.CKRSlotIDInvalid},
		{"ok/no-token", wire.TypeGetTokenInfo, wire.CardNotFound, p11.CKRTokenNotPresent},
		{"ok/stopping-token", wire.TypeGetTokenInfo, wire.ServiceStopping, p11.CKRTokenNotPresent},
		{"ok/stopping-session", wire.TypeSign, wire.ServiceStopping, p11.CKRDeviceRemoved},
		{"ok/unsupported", wire.TypeWaitEvent, wire.Unsupported, p11.CKRFunctionNotSupported},
		{"ok/state-dir-full", wire.TypeSetPIN, wire.StateDirFull, p11.CKRDeviceMemory},
		{"ok/state-dir-ro", wire.TypeCreateObject, wire.StateDirReadOnly, p11.CKRTokenWriteProtected},
		{"ok/destroy-incomplete", wire.TypeDestroyObject, wire.DestroyIncomplete, p11.CKRDeviceError},
	} {
		if got := RV(tc.t, tc.s); got != tc.r {
			t.Errorf("%s: %v to %v -> %s, want %s", tc.name, tc.s, tc.t, p11.RVNames[got], p11.RVNames[tc.r])
		}
	}
}

// TestWithRV checks that an error's CK_RV is set on a copy: handlers may
// return shared errors.
func TestWithRV(t *testing.T) {
	se := wire.NewError(wire.ObjectNotFound, "no object 3")
	got := withRV(wire.TypeSign, se)
	if got.RV != p11.CKRKeyHandleInvalid || se.RV != 0 {
		t.Errorf("withRV: copy %#x, original %#x", got.RV, se.RV)
	}
	if again := withRV(wire.TypeGetAttributes, got); again.RV != p11.CKRKeyHandleInvalid {
		t.Errorf("an RV already chosen changed to %#x", again.RV)
	}
}

func TestSlots(t *testing.T) {
	for _, s := range []string{"", "0", "00112233aabbccdd", "ffffffffffffffffffffffffffffffff"} {
		if id := slotHash(s); id == 0 || id > 0x7fffffff {
			t.Errorf("slotHash(%q) = %#x", s, id)
		}
	}
	// Stable: the same serial has the same slot on every run (FNV-1a).
	if got := slotHash("00112233aabbccdd"); got != 0x71d5370d {
		t.Errorf("slotHash changed: %#x", got)
	}
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{
		{"ok", 5, "ok   "},
		{"", 3, "   "},
		{"exactly", 7, "exactly"},
		{"too long", 3, "too"},
		{"aé", 2, "a "},
	} {
		if got := padded(tc.in, tc.n); string(got) != tc.want {
			t.Errorf("padded(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
	}
	ti := wire.TokenInfo{Serial: "00112233aabbccdd", State: wire.CardStateLost}
	if got := tokenLabel(ti); got != "tpmcard 00112233aabbccdd (lost)" {
		t.Errorf("lost card label %q", got)
	}
	ti.Label = "a label of exactly thirty-two by"
	if got := string(tokenDescription(ti).Label); len(got) != 32 || got[len(got)-7:] != " (lost)" {
		t.Errorf("long damaged label %q", got)
	}
}
