package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"reflect"
	"sync"
)

var (
	// ErrUnknownType reports a frame whose type is not in the catalog. The
	// frame has been consumed; the connection is still usable.
	ErrUnknownType = errors.New("wire: unknown message type")
	// ErrDecode reports a frame whose body does not decode. The frame has
	// been consumed; the connection is still usable.
	ErrDecode = errors.New("wire: undecodable message")
	// ErrUnexpectedReply reports a reply of the wrong type to a Call.
	ErrUnexpectedReply = errors.New("wire: unexpected reply")
)

// Conn sends and receives messages over a stream, one frame per message.
//
// Send may be called from several goroutines, and so may Call: calls
// are pipelined, each writing its request as soon as no other write is
// under way and reading its reply once the calls sent before it have read
// theirs, since a connection's requests are answered one at a time, in
// order. A goroutine's request thus reaches the service while an earlier
// one is being handled. (A blocking WaitEvent delays every call behind
// it: give it a connection of its own.) Recv and RecvMsg must not run
// concurrently with each other or with Call.
type Conn struct {
	// Trace, when set, sees every message sent ("send") and received
	// ("recv"). It must not retain msg. Secret fields print as
	// "[REDACTED]" under every fmt verb, so formatting msg is safe.
	Trace func(dir string, t Type, msg any)

	// OnProgress, when set, receives the Progress frames that precede a
	// reply in Call. Without it they are skipped. It runs inside Call and
	// must not call Call on the same Conn.
	OnProgress func(Progress)

	rw      io.ReadWriter
	writeMu sync.Mutex

	// readers holds the calls whose requests are written and whose replies
	// are not yet read, in the order they were written. The first reads;
	// each of the others waits for its channel to close.
	readersMu sync.Mutex
	readers   []chan struct{}
}

// NewConn returns a Conn over rw (typically a net.Conn). Deadlines are the
// caller's business, on rw.
func NewConn(rw io.ReadWriter) *Conn { return &Conn{rw: rw} }

// Close closes the underlying stream if it is an io.Closer.
func (c *Conn) Close() error {
	if cl, ok := c.rw.(io.Closer); ok {
		return cl.Close()
	}
	return nil
}

// Send encodes msg and writes it as one frame of type t. The encoded bytes
// are cleared after the write.
func (c *Conn) Send(t Type, msg any) error {
	b, err := c.frame(t, msg)
	defer clear(b)
	if err != nil {
		return err
	}
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	return c.write(t, b)
}

// frame encodes msg as a frame of type t. The caller clears it.
func (c *Conn) frame(t Type, msg any) ([]byte, error) {
	if c.Trace != nil {
		c.Trace("send", t, msg)
	}
	var buf bytes.Buffer
	buf.Write(make([]byte, headerLen+1))
	err := marshalTo(&buf, msg)
	b := buf.Bytes()
	if err != nil {
		return b, err
	}
	n := len(b) - headerLen
	if n > MaxFrame {
		return b, fmt.Errorf("writing %v frame of %d bytes: %w", t, n, ErrFrameTooLarge)
	}
	binary.BigEndian.PutUint32(b, uint32(n))
	b[headerLen] = byte(t)
	return b, nil
}

// write writes an encoded frame; the caller holds writeMu.
func (c *Conn) write(t Type, b []byte) error {
	if _, err := c.rw.Write(b); err != nil {
		return fmt.Errorf("writing %v frame: %w", t, err)
	}
	return nil
}

// SendMsg is Send with the type taken from msg (see TypeOf).
func (c *Conn) SendMsg(msg any) error {
	t, ok := TypeOf(msg)
	if !ok {
		return fmt.Errorf("wire: sending %T: not a catalog message", msg)
	}
	return c.Send(t, msg)
}

// Recv reads one frame and returns its type and raw body. Errors are those
// of ReadFrame and leave the stream unusable. The body is the caller's; if
// it may hold a secret (a Login, say), clear it after decoding.
func (c *Conn) Recv() (Type, []byte, error) {
	t, body, err := ReadFrame(c.rw, MaxFrame)
	if err != nil {
		return 0, nil, err
	}
	if c.Trace != nil {
		c.trace(t, body)
	}
	return t, body, nil
}

// trace decodes a received body for the trace hook only.
func (c *Conn) trace(t Type, body []byte) {
	msg := New(t)
	if msg == nil || Unmarshal(body, msg) != nil {
		c.Trace("recv", t, fmt.Sprintf("<%d bytes undecoded>", len(body)))
		return
	}
	c.Trace("recv", t, msg)
}

// RecvMsg reads one frame and decodes it into a new catalog message (a
// pointer, as returned by New). The frame body is cleared after decoding.
//
// For a frame of unknown type it returns the type and an error wrapping
// ErrUnknownType; for a body that does not decode, the type and an error
// wrapping ErrDecode. In both cases the frame was consumed and the
// connection stays usable: a server replies UnsupportedReply or BadRequest
// and reads on. Any other error comes from ReadFrame and ends the stream.
func (c *Conn) RecvMsg() (Type, any, error) {
	t, body, err := ReadFrame(c.rw, MaxFrame)
	if err != nil {
		return 0, nil, err
	}
	defer clear(body)
	msg := New(t)
	if msg == nil {
		if c.Trace != nil {
			c.Trace("recv", t, fmt.Sprintf("<%d bytes, unknown type>", len(body)))
		}
		return t, nil, fmt.Errorf("frame type 0x%02x: %w", uint8(t), ErrUnknownType)
	}
	if err := Unmarshal(body, msg); err != nil {
		if c.Trace != nil {
			c.Trace("recv", t, fmt.Sprintf("<%d bytes undecodable>", len(body)))
		}
		return t, nil, fmt.Errorf("%w: %w", ErrDecode, err)
	}
	if c.Trace != nil {
		c.Trace("recv", t, msg)
	}
	return t, msg, nil
}

// Call sends req, waits for the final reply and decodes it into resp, a
// pointer to the reply struct ReplyType names (nil is allowed when the reply
// is Ack). Progress frames are passed to OnProgress. An Error reply is
// returned as a *StatusError, an Unsupported reply as a *StatusError with
// status Unsupported. Reply bodies are cleared after decoding.
func (c *Conn) Call(req, resp any) error {
	rt, ok := TypeOf(req)
	if !ok || !IsRequest(rt) {
		return fmt.Errorf("wire: calling with %T: not a request", req)
	}
	want := ReplyType(rt)
	if resp != nil {
		if v := reflect.ValueOf(resp); v.Kind() != reflect.Pointer || v.IsNil() {
			return fmt.Errorf("wire: calling %v: reply %T is not a non-nil pointer", rt, resp)
		}
		if got, ok := TypeOf(resp); !ok || got != want {
			return fmt.Errorf("wire: calling %v: reply %T is not %v", rt, resp, want)
		}
	}

	b, err := c.frame(rt, req)
	defer clear(b)
	if err != nil {
		return err
	}
	turn := make(chan struct{})
	c.writeMu.Lock()
	if err := c.write(rt, b); err != nil {
		c.writeMu.Unlock()
		return err
	}
	c.readersMu.Lock()
	first := len(c.readers) == 0
	c.readers = append(c.readers, turn)
	c.readersMu.Unlock()
	c.writeMu.Unlock()

	if !first {
		<-turn
	}
	defer c.nextReader()
	for {
		t, body, err := c.Recv()
		if err != nil {
			return fmt.Errorf("reading reply to %v: %w", rt, err)
		}
		err = c.handleReply(rt, want, t, body, resp)
		clear(body)
		if err != errProgress {
			return err
		}
	}
}

// nextReader ends the current reader's turn and starts the next one's.
func (c *Conn) nextReader() {
	c.readersMu.Lock()
	defer c.readersMu.Unlock()
	c.readers[0] = nil
	c.readers = c.readers[1:]
	if len(c.readers) > 0 {
		close(c.readers[0])
	}
}

// errProgress tells Call to keep reading.
var errProgress = errors.New("progress")

func (c *Conn) handleReply(rt, want, t Type, body []byte, resp any) error {
	switch t {
	case want:
		if resp == nil {
			resp = New(want)
		} else {
			// Fields absent on the wire must not keep stale values.
			reflect.ValueOf(resp).Elem().SetZero()
		}
		if err := Unmarshal(body, resp); err != nil {
			return fmt.Errorf("reply to %v: %w", rt, err)
		}
		return nil
	case TypeProgress:
		var p Progress
		if err := Unmarshal(body, &p); err != nil {
			return fmt.Errorf("progress of %v: %w", rt, err)
		}
		if c.OnProgress != nil {
			c.OnProgress(p)
		}
		return errProgress
	case TypeError:
		// Decode into a zero value: 0 tries left is omitted on the wire.
		se := &StatusError{}
		if err := Unmarshal(body, se); err != nil {
			return fmt.Errorf("error reply to %v: %w", rt, err)
		}
		return se
	case TypeUnsupported:
		return Errorf(Unsupported, "server does not support %v", rt)
	}
	return fmt.Errorf("%w: %v to %v", ErrUnexpectedReply, t, rt)
}

// Hello performs the client side of the handshake: it sends Hello with
// Version and the client name and checks the server's version.
func (c *Conn) Hello(client string) (*HelloReply, error) {
	var r HelloReply
	if err := c.Call(&Hello{Version: Version, Client: client}, &r); err != nil {
		return nil, err
	}
	if r.Version != Version {
		return &r, Errorf(VersionMismatch, "server speaks version %d, client %d", r.Version, Version)
	}
	return &r, nil
}
