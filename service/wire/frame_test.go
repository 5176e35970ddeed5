package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"runtime"
	"testing"
)

func header(n uint32) []byte { return binary.BigEndian.AppendUint32(nil, n) }

func TestWriteFrame(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteFrame(&buf, TypeLogout, []byte{0xa1, 0x01, 0x07}); err != nil {
		t.Fatal(err)
	}
	want := []byte{0, 0, 0, 4, byte(TypeLogout), 0xa1, 0x01, 0x07}
	if !bytes.Equal(buf.Bytes(), want) {
		t.Fatalf("got %x, want %x", buf.Bytes(), want)
	}
}

func TestWriteFrameLimits(t *testing.T) {
	tests := []struct {
		name string
		body int
		err  error
	}{
		{"ok/empty-body", 0, nil},
		{"ok/exact-max", MaxFrame - 1, nil},
		{"fail/max-plus-one", MaxFrame, ErrFrameTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			err := WriteFrame(&buf, TypeSign, make([]byte, tt.body))
			if !errors.Is(err, tt.err) {
				t.Fatalf("err = %v, want %v", err, tt.err)
			}
			if tt.err != nil && buf.Len() != 0 {
				t.Fatalf("wrote %d bytes of a refused frame", buf.Len())
			}
			if tt.err == nil && buf.Len() != 5+tt.body {
				t.Fatalf("wrote %d bytes", buf.Len())
			}
		})
	}
}

func TestReadFrame(t *testing.T) {
	maxBody := bytes.Repeat([]byte{0x5a}, MaxFrame-1)
	exactMax := append(append(header(MaxFrame), byte(TypeSign)), maxBody...)
	tests := []struct {
		name  string
		in    []byte
		limit uint32
		typ   Type
		body  []byte
		err   error
	}{
		{"ok/small", []byte{0, 0, 0, 3, 0x05, 0xa1, 0x07}, 0, TypeCloseSession, []byte{0xa1, 0x07}, nil},
		{"ok/type-only", []byte{0, 0, 0, 1, 0x02}, 0, TypeListCards, []byte{}, nil},
		{"ok/exact-max", exactMax, MaxFrame, TypeSign, maxBody, nil},
		{"ok/exact-lowered-limit", []byte{0, 0, 0, 3, 0x05, 0xa1, 0x07}, 3, TypeCloseSession, []byte{0xa1, 0x07}, nil},
		{"ok/trailing-data-left", []byte{0, 0, 0, 1, 0x02, 0xff, 0xff}, 0, TypeListCards, []byte{}, nil},
		{"fail/clean-eof", nil, 0, 0, nil, io.EOF},
		{"fail/zero-length", []byte{0, 0, 0, 0, 0x02}, 0, 0, nil, ErrEmptyFrame},
		{"fail/max-plus-one", header(MaxFrame + 1), 0, 0, nil, ErrFrameTooLarge},
		{"fail/huge", header(0xffffffff), 0, 0, nil, ErrFrameTooLarge},
		{"fail/over-lowered-limit", []byte{0, 0, 0, 4, 0x05, 0xa1, 0x01, 0x07}, 3, 0, nil, ErrFrameTooLarge},
		{"fail/limit-cannot-be-raised", header(MaxFrame + 1), MaxFrame * 2, 0, nil, ErrFrameTooLarge},
		{"fail/half-header", []byte{0, 0}, 0, 0, nil, io.ErrUnexpectedEOF},
		{"fail/header-only", []byte{0, 0, 0, 3}, 0, 0, nil, io.ErrUnexpectedEOF},
		{"fail/half-body", []byte{0, 0, 0, 3, 0x05, 0xa1}, 0, 0, nil, io.ErrUnexpectedEOF},
		{"fail/half-big-body", append(header(200000), make([]byte, 100000)...), 0, 0, nil, io.ErrUnexpectedEOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			typ, body, err := ReadFrame(bytes.NewReader(tt.in), tt.limit)
			if !errors.Is(err, tt.err) {
				t.Fatalf("err = %v, want %v", err, tt.err)
			}
			if tt.err == io.EOF && err != io.EOF {
				t.Fatalf("clean EOF must be io.EOF itself, got %v", err)
			}
			if err != nil {
				return
			}
			if typ != tt.typ || !bytes.Equal(body, tt.body) {
				t.Fatalf("got %v %d bytes, want %v %d bytes", typ, len(body), tt.typ, len(tt.body))
			}
		})
	}
}

// TestReadFrameGarbageBody: the frame layer accepts any body; the codec
// rejects garbage.
func TestReadFrameGarbageBody(t *testing.T) {
	in := []byte{0, 0, 0, 4, byte(TypeLogin), 0xff, 0x00, 0x13}
	typ, body, err := ReadFrame(bytes.NewReader(in), 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := Unmarshal(body, New(typ)); err == nil {
		t.Fatal("garbage body decoded")
	}
}

// headerOnly yields the 4 header bytes and then fails the test if read
// again: an oversized or empty frame must be refused from its header alone.
type headerOnly struct {
	t   *testing.T
	hdr []byte
}

func (h *headerOnly) Read(p []byte) (int, error) {
	if len(h.hdr) == 0 {
		h.t.Error("ReadFrame read past the header of a refused frame")
		return 0, io.ErrUnexpectedEOF
	}
	n := copy(p, h.hdr)
	h.hdr = h.hdr[n:]
	return n, nil
}

func TestReadFrameRefusesFromHeader(t *testing.T) {
	for _, n := range []uint32{0, MaxFrame + 1, 1 << 31, 0xffffffff} {
		grew := minAlloc(func() {
			_, _, err := ReadFrame(&headerOnly{t: t, hdr: header(n)}, 0)
			if err == nil {
				t.Fatalf("length %d accepted", n)
			}
			if !errors.Is(err, ErrFrameTooLarge) && !errors.Is(err, ErrEmptyFrame) {
				t.Fatalf("length %d: %v", n, err)
			}
		})
		if grew > 4096 {
			t.Fatalf("length %d: allocated %d bytes before refusing", n, grew)
		}
	}
}

// minAlloc measures the bytes fn allocates, as the least of a few runs:
// the counter is process-wide, and the runtime (more so under -race)
// allocates on its own now and then.
func minAlloc(fn func()) uint64 {
	least := ^uint64(0)
	for i := 0; i < 5; i++ {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		fn()
		runtime.ReadMemStats(&after)
		least = min(least, after.TotalAlloc-before.TotalAlloc)
	}
	return least
}

// TestReadFrameStalledPeer: a peer that announces MaxFrame and sends little
// does not make ReadFrame allocate the whole frame.
func TestReadFrameStalledPeer(t *testing.T) {
	in := append(header(MaxFrame), make([]byte, 10)...)
	grew := minAlloc(func() {
		_, _, err := ReadFrame(bytes.NewReader(in), 0)
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("err = %v", err)
		}
	})
	if grew > 2*readChunk {
		t.Fatalf("allocated %d bytes for 10 received", grew)
	}
}

func TestFrameRoundTrip(t *testing.T) {
	var stream bytes.Buffer
	bodies := [][]byte{{}, {0xa0}, bytes.Repeat([]byte{1}, readChunk+1), bytes.Repeat([]byte{2}, 3*readChunk+7)}
	for i, b := range bodies {
		if err := WriteFrame(&stream, Type(i+1), b); err != nil {
			t.Fatal(err)
		}
	}
	for i, b := range bodies {
		typ, body, err := ReadFrame(&stream, 0)
		if err != nil {
			t.Fatal(err)
		}
		if typ != Type(i+1) || !bytes.Equal(body, b) {
			t.Fatalf("frame %d: got %v/%d bytes", i, typ, len(body))
		}
	}
	if _, _, err := ReadFrame(&stream, 0); err != io.EOF {
		t.Fatalf("after last frame: %v, want io.EOF", err)
	}
}
