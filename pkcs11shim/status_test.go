package main

import (
	"errors"
	"fmt"
	"testing"

	"github.com/tpmcard/tpmcard/service/p11"
	"github.com/tpmcard/tpmcard/service/server"
	"github.com/tpmcard/tpmcard/service/wire"
)

// TestServiceRVs checks that the CK_RVs the service sends are the module's:
// every p11.CKR* constant has the value and name of the module's (rvNames,
// whose values the C ABI test checks against the header), and every CK_RV
// the service's table gives, for any request and status, is one of them.
func TestServiceRVs(t *testing.T) {
	for v, name := range p11.RVNames {
		if got := rvNames[rv(v)]; got != name {
			t.Errorf("p11 names %#x %s, the module %q", v, name, got)
		}
	}
	for _, ty := range wire.Types() {
		for _, s := range append(wire.Statuses(), wire.Status(9999)) {
			r := server.RV(ty, s)
			if _, ok := rvNames[rv(r)]; !ok {
				t.Errorf("%v in reply to %v: CK_RV %#x is not a PKCS#11 code this module knows", s, ty, r)
			}
		}
	}
}

func TestRVOf(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want rv
	}{
		{"ok/nil", nil, ckrOK},
		{"ok/service-rv", &wire.StatusError{Status: wire.ObjectNotFound, RV: p11.CKRKeyHandleInvalid}, ckrKeyHandleInvalid},
		{"ok/value-wrapped", fmt.Errorf("x: %w", wire.StatusError{Status: wire.PINLocked, RV: p11.CKRPINLocked}), ckrPINLocked},
		{"fail/unsupported-reply", wire.Errorf(wire.Unsupported, "server does not support it"), ckrFunctionNotSupported},
		{"fail/no-rv", wire.NewError(wire.PINIncorrect, "wrong PIN"), ckrFunctionFailed},
		{"fail/not-a-reply", errors.New("broken pipe"), ckrFunctionFailed},
	} {
		if got := rvOf(tc.err); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
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
		c := make([]byte, tc.n)
		if pad(c, unpad(b)); string(c) != string(b) {
			t.Errorf("pad(unpad(%q)) = %q", b, c)
		}
	}
}
