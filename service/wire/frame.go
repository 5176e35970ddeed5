package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// MaxFrame is the largest frame length (type byte plus body) either side
// sends or accepts.
const MaxFrame = 1 << 20

// headerLen is the size of the length prefix.
const headerLen = 4

// readChunk bounds how much ReadFrame allocates ahead of the bytes that
// actually arrive, so a peer that announces a large frame and then stalls
// does not pin MaxFrame bytes per connection.
const readChunk = 64 << 10

var (
	// ErrEmptyFrame reports a frame whose length field is 0.
	ErrEmptyFrame = errors.New("wire: empty frame")
	// ErrFrameTooLarge reports a frame longer than the cap.
	ErrFrameTooLarge = errors.New("wire: frame too large")
)

// WriteFrame writes one frame holding type t and body in a single Write.
// It refuses a frame longer than MaxFrame. The temporary buffer is cleared
// before returning, since the body may hold a PIN.
func WriteFrame(w io.Writer, t Type, body []byte) error {
	if len(body) > MaxFrame-1 {
		return fmt.Errorf("writing %v frame of %d bytes: %w", t, len(body)+1, ErrFrameTooLarge)
	}
	buf := make([]byte, headerLen+1+len(body))
	binary.BigEndian.PutUint32(buf, uint32(1+len(body)))
	buf[headerLen] = byte(t)
	copy(buf[headerLen+1:], body)
	_, err := w.Write(buf)
	clear(buf)
	if err != nil {
		return fmt.Errorf("writing %v frame: %w", t, err)
	}
	return nil
}

// ReadFrame reads one frame from r and returns its type and body. limit caps
// the frame length; 0 or anything above MaxFrame means MaxFrame (the cap can
// be lowered, never raised).
//
// A clean end of stream before the first header byte returns io.EOF itself.
// A stream that ends inside a frame returns an error wrapping
// io.ErrUnexpectedEOF. A length of 0 returns ErrEmptyFrame and a length above
// the cap ErrFrameTooLarge; in both cases only the 4 length bytes have been
// consumed and nothing was allocated for the body.
func ReadFrame(r io.Reader, limit uint32) (Type, []byte, error) {
	if limit == 0 || limit > MaxFrame {
		limit = MaxFrame
	}
	var hdr [headerLen]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		if err == io.EOF {
			return 0, nil, io.EOF
		}
		return 0, nil, fmt.Errorf("reading frame header: %w", err)
	}
	n := binary.BigEndian.Uint32(hdr[:])
	switch {
	case n == 0:
		return 0, nil, ErrEmptyFrame
	case n > limit:
		return 0, nil, fmt.Errorf("frame of %d bytes, cap %d: %w", n, limit, ErrFrameTooLarge)
	}
	buf := make([]byte, 0, min(int(n), readChunk))
	for len(buf) < int(n) {
		k := min(int(n)-len(buf), readChunk)
		if cap(buf)-len(buf) < k {
			// Grow geometrically, but never past n.
			grown := make([]byte, len(buf), min(int(n), max(2*cap(buf), len(buf)+k)))
			copy(grown, buf)
			clear(buf)
			buf = grown
		}
		if _, err := io.ReadFull(r, buf[len(buf):len(buf)+k]); err != nil {
			clear(buf)
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return 0, nil, fmt.Errorf("reading frame of %d bytes: %w", n, err)
		}
		buf = buf[:len(buf)+k]
	}
	return Type(buf[0]), buf[1:], nil
}
