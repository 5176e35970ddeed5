package wire

import "testing"

func TestULongRoundTrip(t *testing.T) {
	for _, v := range []uint64{0, 1, 3, 0x1041, 1<<32 - 1} {
		b := ULong(v)
		if len(b) != ULongSize {
			t.Fatalf("ULong(%d) has %d bytes, want %d", v, len(b), ULongSize)
		}
		got, ok := ParseULong(b)
		if !ok || got != v {
			t.Errorf("ParseULong(ULong(%d)) = %d, %v", v, got, ok)
		}
	}
	if _, ok := ParseULong(make([]byte, ULongSize+1)); ok {
		t.Error("ParseULong accepted a wrong length")
	}
}

func TestBool(t *testing.T) {
	for _, c := range []struct {
		in    []byte
		v, ok bool
	}{{[]byte{0}, false, true}, {[]byte{1}, true, true}, {[]byte{0xff}, true, true}, {nil, false, false}, {[]byte{1, 0}, false, false}} {
		v, ok := ParseBool(c.in)
		if v != c.v || ok != c.ok {
			t.Errorf("ParseBool(%x) = %v, %v; want %v, %v", c.in, v, ok, c.v, c.ok)
		}
	}
	if b, _ := ParseBool(Bool(true)); !b {
		t.Error("Bool(true) does not parse as true")
	}
}
