package wire

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"testing"
)

// FuzzReadFrame checks the frame layer against arbitrary streams: whatever
// ReadFrame accepts re-encodes with WriteFrame to exactly the bytes it
// consumed, never exceeds the limit, and a refused header consumes only
// the 4 length bytes.
func FuzzReadFrame(f *testing.F) {
	for _, seed := range frameSeeds() {
		f.Add(seed.data, seed.limit)
	}
	f.Fuzz(func(t *testing.T, data []byte, limit uint32) {
		// Keep the limit mostly small so that accepted frames are common.
		if limit > MaxFrame+8 {
			limit %= 1 << 12
		}
		r := bytes.NewReader(data)
		typ, body, err := ReadFrame(r, limit)
		consumed := len(data) - r.Len()
		eff := limit
		if eff == 0 || eff > MaxFrame {
			eff = MaxFrame
		}
		switch {
		case err == nil:
			if uint32(len(body))+1 > eff {
				t.Fatalf("accepted %d-byte frame over limit %d", len(body)+1, eff)
			}
			var buf bytes.Buffer
			if err := WriteFrame(&buf, typ, body); err != nil {
				t.Fatalf("re-encoding accepted frame: %v", err)
			}
			if !bytes.Equal(buf.Bytes(), data[:consumed]) {
				t.Fatalf("re-encoding differs:\n got %x\nwant %x", buf.Bytes(), data[:consumed])
			}
		case errors.Is(err, ErrEmptyFrame), errors.Is(err, ErrFrameTooLarge):
			if consumed != headerLen {
				t.Fatalf("refused frame consumed %d bytes", consumed)
			}
		case err == io.EOF:
			if len(data) != 0 {
				t.Fatalf("io.EOF with %d bytes of input", len(data))
			}
		case errors.Is(err, io.ErrUnexpectedEOF):
			if consumed != len(data) {
				t.Fatalf("short read left %d bytes", len(data)-consumed)
			}
		default:
			t.Fatalf("unexpected error: %v", err)
		}
	})
}

// FuzzDecode feeds a type byte and a body to the decoder. Decoding never
// panics; anything accepted re-encodes, and its encoding is a fixed point:
// decoding it again gives an equal value that encodes to the same bytes.
func FuzzDecode(f *testing.F) {
	for _, seed := range decodeSeeds() {
		f.Add(seed.t, seed.body)
	}
	types := Types()
	f.Fuzz(func(t *testing.T, typ uint8, body []byte) {
		mt := Type(typ)
		if !mt.Known() {
			mt = types[int(typ)%len(types)]
		}
		v := New(mt)
		if err := Unmarshal(body, v); err != nil {
			return
		}
		b1, err := Marshal(v)
		if err != nil {
			t.Fatalf("%v: re-encoding accepted value %#v: %v", mt, v, err)
		}
		if len(b1)+1 > MaxFrame && len(body)+1 <= MaxFrame {
			t.Fatalf("%v: re-encoding grew past the frame cap", mt)
		}
		v2 := New(mt)
		if err := Unmarshal(b1, v2); err != nil {
			t.Fatalf("%v: own encoding %x rejected: %v", mt, b1, err)
		}
		b2, err := Marshal(v2)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b1, b2) {
			t.Fatalf("%v: encoding not stable:\n%x\n%x", mt, b1, b2)
		}
		v3 := New(mt)
		if err := Unmarshal(b2, v3); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(v2, v3) {
			t.Fatalf("%v: decode not stable:\n%#v\n%#v", mt, v2, v3)
		}
	})
}

type frameSeed struct {
	name  string
	data  []byte
	limit uint32
}

func frameSeeds() []frameSeed {
	seeds := []frameSeed{
		{"empty", nil, 0},
		{"zero-length", []byte{0, 0, 0, 0}, 0},
		{"too-large", header(MaxFrame + 1), 0},
		{"over-limit", []byte{0, 0, 0, 9, 1, 0xa0}, 8},
		{"half-header", []byte{0, 0}, 0},
		{"half-body", []byte{0, 0, 0, 5, 1, 0xa0}, 0},
		{"two-frames", []byte{0, 0, 0, 2, 2, 0xa0, 0, 0, 0, 2, 3, 0xa0}, 0},
	}
	s := samples()
	for _, typ := range Types() {
		body, err := Marshal(s[typ])
		if err != nil {
			panic(err)
		}
		var buf bytes.Buffer
		if err := WriteFrame(&buf, typ, body); err != nil {
			panic(err)
		}
		seeds = append(seeds, frameSeed{typ.String(), buf.Bytes(), 0})
	}
	return seeds
}

type decodeSeed struct {
	name string
	t    uint8
	body []byte
}

func decodeSeeds() []decodeSeed {
	var seeds []decodeSeed
	s := samples()
	for _, typ := range Types() {
		body, err := Marshal(s[typ])
		if err != nil {
			panic(err)
		}
		seeds = append(seeds, decodeSeed{typ.String(), uint8(typ), body})
	}
	return append(seeds,
		decodeSeed{"duplicate-key", uint8(TypeCloseSession), []byte{0xa2, 0x01, 0x07, 0x01, 0x08}},
		decodeSeed{"indefinite", uint8(TypeCloseSession), []byte{0xbf, 0x01, 0x07, 0xff}},
		decodeSeed{"unknown-field", uint8(TypeCloseSession), []byte{0xa2, 0x01, 0x07, 0x18, 0x63, 0x00}},
		decodeSeed{"empty-array", uint8(TypeObjects), []byte{0xa1, 0x01, 0x80}},
	)
}

var updateCorpus = flag.Bool("update-corpus", false, "rewrite testdata/fuzz seed corpora")

// TestWriteSeedCorpus regenerates testdata/fuzz/* from the seeds above
// when run with -update-corpus; otherwise it checks the files are there.
func TestWriteSeedCorpus(t *testing.T) {
	write := func(target, name string, args ...any) {
		path := filepath.Join("testdata", "fuzz", target, name)
		if !*updateCorpus {
			if _, err := os.Stat(path); err != nil {
				t.Errorf("seed corpus file missing (run go test -run TestWriteSeedCorpus -update-corpus): %v", err)
			}
			return
		}
		var buf bytes.Buffer
		buf.WriteString("go test fuzz v1\n")
		for _, a := range args {
			switch v := a.(type) {
			case []byte:
				fmt.Fprintf(&buf, "[]byte(%s)\n", strconv.Quote(string(v)))
			case uint32:
				fmt.Fprintf(&buf, "uint32(%d)\n", v)
			case uint8:
				fmt.Fprintf(&buf, "byte('\\x%02x')\n", v)
			}
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range frameSeeds() {
		write("FuzzReadFrame", "seed-"+s.name, s.data, s.limit)
	}
	for _, s := range decodeSeeds() {
		write("FuzzDecode", "seed-"+s.name, s.t, s.body)
	}
}
