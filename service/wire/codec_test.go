package wire

import (
	"bytes"
	"encoding/hex"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/fxamacker/cbor/v2"
	"github.com/tpmcard/tpmcard/tpmcard/secret"
)

func TestSamplesCoverCatalog(t *testing.T) {
	s := samples()
	for _, typ := range Types() {
		if _, ok := s[typ]; !ok {
			t.Errorf("no sample for %v", typ)
		}
	}
	if len(s) != len(catalog) {
		t.Errorf("%d samples for %d catalog types", len(s), len(catalog))
	}
}

func TestRoundTrip(t *testing.T) {
	for typ, msg := range samples() {
		t.Run("ok/"+typ.String(), func(t *testing.T) {
			if got, ok := TypeOf(msg); !ok || got != typ {
				t.Fatalf("TypeOf(%T) = %v, %v; want %v", msg, got, ok, typ)
			}
			b, err := Marshal(msg)
			if err != nil {
				t.Fatal(err)
			}
			out := New(typ)
			if err := Unmarshal(b, out); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(out, msg) {
				t.Fatalf("round trip:\n got %#v\nwant %#v", out, msg)
			}
			// Deterministic: encoding the decoded value gives the same bytes.
			b2, err := Marshal(out)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(b, b2) {
				t.Fatalf("re-encoding differs:\n%x\n%x", b, b2)
			}
		})
	}
}

// TestZeroValuesRoundTrip checks that zero messages encode to an empty map
// and come back as zero values.
func TestZeroValuesRoundTrip(t *testing.T) {
	for _, typ := range Types() {
		b, err := Marshal(New(typ))
		if err != nil {
			t.Fatalf("%v: %v", typ, err)
		}
		if !bytes.Equal(b, []byte{0xa0}) {
			t.Errorf("%v: zero value encodes as %x, want a0", typ, b)
		}
	}
}

// TestSecretEncoding pins how secret.Secret goes on the wire: a CBOR byte
// string holding the PIN bytes, not the redacted text of its MarshalText or
// MarshalJSON.
func TestSecretEncoding(t *testing.T) {
	b, err := Marshal(&Login{Session: 1, UserType: UserNormal, PIN: secret.FromString("123456")})
	if err != nil {
		t.Fatal(err)
	}
	// {1: 1, 2: 1, 3: h'313233343536'}
	const want = "a3010102010346313233343536"
	if got := hex.EncodeToString(b); got != want {
		t.Fatalf("Login encodes as %s, want %s", got, want)
	}
	if bytes.Contains(b, []byte("REDACTED")) {
		t.Fatal("secret was encoded through its redacting marshaler")
	}

	// A text string where a PIN belongs is refused, not converted.
	var l Login
	if err := Unmarshal(mustHex(t, "a103 66 313233343536"), &l); err == nil {
		t.Fatalf("text-string PIN accepted: %v", []byte(l.PIN))
	}
	// Empty secrets are omitted and decode as nil.
	b, err = Marshal(&Provision{Label: "x", PIN: secret.Secret{}})
	if err != nil {
		t.Fatal(err)
	}
	var p Provision
	if err := Unmarshal(b, &p); err != nil || p.PIN != nil || p.PUK != nil {
		t.Fatalf("empty secret: %x -> %v %v", b, p.PIN == nil, err)
	}
}

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestUnmarshalStrict(t *testing.T) {
	deep := strings.Repeat("81", 20) + "00"
	tests := []struct {
		name string
		hex  string
		into func() any
		ok   bool
	}{
		{"ok/login", "a3010102010346313233343536", func() any { return new(Login) }, true},
		{"ok/unknown-field-ignored", "a2010718636461626364", func() any { return new(CloseSession) }, true},
		{"ok/unknown-text-key-ignored", "a2010761786179", func() any { return new(CloseSession) }, true},
		{"ok/nested-within-limit", "a109" + strings.Repeat("81", 10) + "00", func() any { return new(CloseSession) }, true},
		{"fail/empty", "", func() any { return new(Ack) }, false},
		{"fail/garbage", "ff", func() any { return new(Ack) }, false},
		{"fail/truncated", "a30101020103463132", func() any { return new(Login) }, false},
		{"fail/trailing-bytes", "a00000", func() any { return new(Ack) }, false},
		{"fail/not-a-map", "01", func() any { return new(CloseSession) }, false},
		{"fail/null", "f6", func() any { return new(Ack) }, false},
		{"fail/undefined", "f7", func() any { return new(Ack) }, false},
		{"fail/array", "80", func() any { return new(Ack) }, false},
		{"fail/wrong-field-type", "a10161 78", func() any { return new(CloseSession) }, false},
		{"fail/duplicate-key", "a201070108", func() any { return new(CloseSession) }, false},
		{"fail/duplicate-unknown-key", "a30107186301186302", func() any { return new(CloseSession) }, false},
		{"fail/indefinite-map", "bf0107ff", func() any { return new(CloseSession) }, false},
		{"fail/indefinite-bytes", "a1035f4131ff", func() any { return new(Login) }, false},
		{"fail/indefinite-array", "a1019f00ff", func() any { return new(Objects) }, false},
		{"fail/deeply-nested", "a109" + deep, func() any { return new(CloseSession) }, false},
		{"fail/tag", "a101c11a00000001", func() any { return new(CloseSession) }, false},
		{"fail/invalid-utf8", "a10162ffff", func() any { return new(Mechanisms) }, false},
		{"fail/overflow-uint32", "a1011b0000000100000000", func() any { return new(CloseSession) }, false},
		{"fail/negative-into-uint", "a10120", func() any { return new(CloseSession) }, false},
	}
	// An array of 4097 handles: over maxArrayElements.
	big := "a101" + "991001" + strings.Repeat("00", maxArrayElements+1)
	tests = append(tests, struct {
		name string
		hex  string
		into func() any
		ok   bool
	}{"fail/array-over-limit", big, func() any { return new(Objects) }, false})
	atLimit := "a101" + "991000" + strings.Repeat("00", maxArrayElements)
	tests = append(tests, struct {
		name string
		hex  string
		into func() any
		ok   bool
	}{"ok/array-at-limit", atLimit, func() any { return new(Objects) }, true})

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Unmarshal(mustHex(t, tt.hex), tt.into())
			if tt.ok && err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if !tt.ok && err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

func TestUnmarshalErrorKinds(t *testing.T) {
	var dup *cbor.DupMapKeyError
	if err := Unmarshal(mustHex(t, "a201070108"), new(CloseSession)); !errors.As(err, &dup) {
		t.Errorf("duplicate key: %v, want DupMapKeyError", err)
	}
	var depth *cbor.MaxNestedLevelError
	if err := Unmarshal(mustHex(t, "a109"+strings.Repeat("81", 20)+"00"), new(CloseSession)); !errors.As(err, &depth) {
		t.Errorf("deep nesting: %v, want MaxNestedLevelError", err)
	}
}

func TestMarshalPinnedBytes(t *testing.T) {
	// A few golden encodings: keys sorted, shortest integers, zero fields
	// omitted. Changing these breaks deployed peers.
	tests := []struct {
		name string
		msg  any
		hex  string
	}{
		{"ok/hello", &Hello{Version: 1, Client: "c"}, "a20101026163"},
		{"ok/error", &StatusError{Status: PINLocked, TriesLeft: 0}, "a10115"},
		{"ok/error-unknown-tries", &StatusError{Status: Internal, TriesLeft: -1}, "a201030220"},
		{"ok/sign", &Sign{Session: 1, Object: 2, Mechanism: 0x1041, Data: []byte{0xaa}}, "a4 0101 0202 03191041 0541aa"},
		{"ok/attribute-result", &AttributeValues{Values: []AttributeResult{{Type: 1, Status: AttributeSensitive}}}, "a1 01 81 a2 0101 031832"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := Marshal(tt.msg)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := hex.EncodeToString(b), strings.ReplaceAll(tt.hex, " ", ""); got != want {
				t.Fatalf("got %s, want %s", got, want)
			}
		})
	}
}
