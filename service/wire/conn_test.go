package wire

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/tpmcard/tpmcard/tpmcard/secret"
)

// pipe returns a client Conn and a server Conn joined in memory.
func pipe(t *testing.T) (client, server *Conn) {
	t.Helper()
	a, b := net.Pipe()
	t.Cleanup(func() { a.Close(); b.Close() })
	return NewConn(a), NewConn(b)
}

// serve answers requests with handle until the stream ends, the way the
// service will: unknown types get UnsupportedReply, undecodable bodies
// BadRequest.
func serve(t *testing.T, c *Conn, handle func(t Type, msg any) []struct {
	t   Type
	msg any
}) *sync.WaitGroup {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			typ, msg, err := c.RecvMsg()
			switch {
			case errors.Is(err, ErrUnknownType):
				if err := c.Send(TypeUnsupported, &UnsupportedReply{Type: typ}); err != nil {
					return
				}
				continue
			case errors.Is(err, ErrDecode):
				if err := c.Send(TypeError, NewError(BadRequest, "undecodable")); err != nil {
					return
				}
				continue
			case err != nil:
				return
			}
			for _, r := range handle(typ, msg) {
				if err := c.Send(r.t, r.msg); err != nil {
					return
				}
			}
		}
	}()
	return &wg
}

type reply = struct {
	t   Type
	msg any
}

func TestCall(t *testing.T) {
	client, server := pipe(t)
	var mu sync.Mutex
	var serverSaw []any
	serve(t, server, func(typ Type, msg any) []reply {
		mu.Lock()
		serverSaw = append(serverSaw, msg)
		mu.Unlock()
		switch m := msg.(type) {
		case *Hello:
			return []reply{{TypeHelloReply, &HelloReply{Version: Version, Server: "test"}}}
		case *Login:
			if string(m.PIN) == testPIN {
				return []reply{{TypeAck, &Ack{}}}
			}
			return []reply{{TypeError, &StatusError{Status: PINIncorrect, TriesLeft: 0, Message: "wrong PIN"}}}
		case *GenerateKeyPair:
			return []reply{
				{TypeProgress, &Progress{Percent: 10}},
				{TypeProgress, &Progress{Percent: 90, Message: "almost"}},
				{TypeKeyPairGenerated, &KeyPairGenerated{Public: 1, Private: 2}},
			}
		case *Sign:
			return []reply{{TypeLength, &Length{N: 1}}} // wrong reply type
		case *ListCards:
			return []reply{{TypeCards, &Cards{}}}
		}
		return []reply{{TypeError, NewError(Internal, "unexpected")}}
	})

	hr, err := client.Hello("test-client")
	if err != nil || hr.Server != "test" {
		t.Fatalf("Hello: %v %v", hr, err)
	}

	t.Run("ok/ack-with-nil-resp", func(t *testing.T) {
		if err := client.Call(&Login{Session: 1, UserType: UserNormal, PIN: secret.FromString(testPIN)}, nil); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("ok/ack-with-resp", func(t *testing.T) {
		if err := client.Call(&Login{Session: 1, UserType: UserNormal, PIN: secret.FromString(testPIN)}, &Ack{}); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("fail/status-error-zero-tries", func(t *testing.T) {
		err := client.Call(&Login{Session: 1, UserType: UserNormal, PIN: secret.FromString("000000")}, nil)
		var se *StatusError
		if !errors.As(err, &se) || se.Status != PINIncorrect || se.TriesLeft != 0 || se.Message != "wrong PIN" {
			t.Fatalf("got %#v", err)
		}
		if !errors.Is(err, StatusError{Status: PINIncorrect}) || StatusOf(err) != PINIncorrect {
			t.Fatal("errors.Is / StatusOf")
		}
	})
	t.Run("ok/progress", func(t *testing.T) {
		var got []Progress
		client.OnProgress = func(p Progress) { got = append(got, p) }
		defer func() { client.OnProgress = nil }()
		var r KeyPairGenerated
		if err := client.Call(&GenerateKeyPair{Session: 1, Algorithm: AlgRSA2048}, &r); err != nil {
			t.Fatal(err)
		}
		if r != (KeyPairGenerated{Public: 1, Private: 2}) {
			t.Fatalf("reply %+v", r)
		}
		want := []Progress{{Percent: 10}, {Percent: 90, Message: "almost"}}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("progress %+v", got)
		}
	})
	t.Run("ok/progress-skipped", func(t *testing.T) {
		var r KeyPairGenerated
		if err := client.Call(&GenerateKeyPair{Session: 1}, &r); err != nil || r.Private != 2 {
			t.Fatalf("%+v %v", r, err)
		}
	})
	t.Run("ok/resp-reset", func(t *testing.T) {
		r := Cards{Cards: []TokenInfo{{Serial: "stale"}}}
		if err := client.Call(&ListCards{}, &r); err != nil || r.Cards != nil {
			t.Fatalf("%+v %v", r, err)
		}
	})
	t.Run("fail/unexpected-reply", func(t *testing.T) {
		err := client.Call(&Sign{Session: 1}, &Signature{})
		if !errors.Is(err, ErrUnexpectedReply) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("fail/unknown-request", func(t *testing.T) {
		// A request type the server does not know: Unsupported, and the
		// connection stays usable.
		if err := client.Send(0x7e, &Ack{}); err != nil {
			t.Fatal(err)
		}
		typ, body, err := client.Recv()
		if err != nil || typ != TypeUnsupported {
			t.Fatalf("%v %v", typ, err)
		}
		var u UnsupportedReply
		if err := Unmarshal(body, &u); err != nil || u.Type != 0x7e {
			t.Fatalf("%+v %v", u, err)
		}
		if err := client.Call(&ListCards{}, &Cards{}); err != nil {
			t.Fatalf("connection unusable after Unsupported: %v", err)
		}
	})
	t.Run("fail/undecodable-request", func(t *testing.T) {
		if err := WriteFrame(client.rw, TypeLogin, []byte{0xff}); err != nil {
			t.Fatal(err)
		}
		typ, body, err := client.Recv()
		if err != nil || typ != TypeError {
			t.Fatalf("%v %v", typ, err)
		}
		var se StatusError
		if err := Unmarshal(body, &se); err != nil || se.Status != BadRequest {
			t.Fatalf("%+v %v", se, err)
		}
		if err := client.Call(&ListCards{}, &Cards{}); err != nil {
			t.Fatalf("connection unusable after BadRequest: %v", err)
		}
	})
	t.Run("fail/bad-arguments", func(t *testing.T) {
		for _, c := range []struct{ req, resp any }{
			{&Ack{}, nil},                // not a request
			{3, nil},                     // not a message
			{&ListCards{}, &Signature{}}, // wrong reply type
			{&ListCards{}, Cards{}},      // not a pointer
			{&ListCards{}, (*Cards)(nil)},
		} {
			if err := client.Call(c.req, c.resp); err == nil {
				t.Errorf("Call(%T, %T) accepted", c.req, c.resp)
			}
		}
	})

	// The server decoded the PIN as sent.
	mu.Lock()
	defer mu.Unlock()
	if l, ok := serverSaw[1].(*Login); !ok || string(l.PIN) != testPIN {
		t.Fatalf("server saw %#v", serverSaw[1])
	}
}

func TestCallUnsupported(t *testing.T) {
	client, server := pipe(t)
	go func() {
		_, _, _ = server.Recv()
		_ = server.Send(TypeUnsupported, &UnsupportedReply{Type: TypeWaitEvent})
	}()
	err := client.Call(&WaitEvent{TimeoutMillis: 1}, &Event{})
	if StatusOf(err) != Unsupported {
		t.Fatalf("got %v", err)
	}
}

func TestCallServerGone(t *testing.T) {
	client, server := pipe(t)
	go func() {
		_, _, _ = server.Recv()
		server.Close()
	}()
	err := client.Call(&ListCards{}, &Cards{})
	if err == nil || StatusOf(err) != Internal {
		t.Fatalf("got %v", err)
	}
	if !errors.Is(err, io.EOF) {
		t.Fatalf("want io.EOF in chain, got %v", err)
	}
}

func TestHelloVersionMismatch(t *testing.T) {
	client, server := pipe(t)
	go func() {
		_, _, _ = server.Recv()
		_ = server.Send(TypeHelloReply, &HelloReply{Version: Version + 1})
	}()
	if _, err := client.Hello("x"); StatusOf(err) != VersionMismatch {
		t.Fatalf("got %v", err)
	}
}

func TestSendTooLarge(t *testing.T) {
	c := NewConn(&bytes.Buffer{})
	if err := c.Send(TypeSign, &Sign{Data: make([]byte, MaxFrame)}); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("got %v", err)
	}
	if n := c.rw.(*bytes.Buffer).Len(); n != 0 {
		t.Fatalf("wrote %d bytes", n)
	}
	// Just under the cap goes out.
	b, _ := Marshal(&Signature{Sig: make([]byte, MaxFrame-16)})
	fill := MaxFrame - 1 - (len(b) - (MaxFrame - 16))
	if err := c.Send(TypeSignature, &Signature{Sig: make([]byte, fill)}); err != nil {
		t.Fatalf("frame of exactly MaxFrame refused: %v", err)
	}
	typ, body, err := ReadFrame(c.rw.(*bytes.Buffer), 0)
	if err != nil || typ != TypeSignature || len(body) != MaxFrame-1 {
		t.Fatalf("%v %d %v", typ, len(body), err)
	}
}

// TestTraceRedactsSecrets: a trace of every secret-bearing message, in
// both directions and under every usual verb, shows no secret bytes.
func TestTraceRedactsSecrets(t *testing.T) {
	var trace strings.Builder
	var mu sync.Mutex
	tracer := func(dir string, typ Type, msg any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(&trace, "%s %v %v | %+v | %#v | %s | %x | %q\n", dir, typ, msg, msg, msg, msg, msg, msg)
	}
	client, server := pipe(t)
	client.Trace = tracer
	server.Trace = tracer

	secrets := []string{testPIN, "11223344", "55667788", "12345678", "24681357", "000000", "87654321", "13572468"}
	s := samples()
	reqs := []Type{TypeLogin, TypeInitPIN, TypeSetPIN, TypeUnblock, TypeProvision, TypeAdminUnblock}

	done := make(chan error, 1)
	go func() {
		for range reqs {
			typ, _, err := server.RecvMsg()
			if err != nil {
				done <- err
				return
			}
			var r any = &Ack{}
			if typ == TypeProvision {
				r = s[TypeProvisioned]
			}
			rt, _ := TypeOf(r)
			if err := server.Send(rt, r); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	for _, typ := range reqs {
		var resp any
		if typ == TypeProvision {
			resp = &Provisioned{}
		}
		if err := client.Call(s[typ], resp); err != nil {
			t.Fatalf("%v: %v", typ, err)
		}
		if p, ok := resp.(*Provisioned); ok && string(p.PUK) != "13572468" {
			t.Fatal("generated PUK did not arrive")
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	mu.Lock()
	out := trace.String()
	mu.Unlock()
	if !strings.Contains(out, "recv Login") || !strings.Contains(out, "send Provisioned") || !strings.Contains(out, "[REDACTED]") {
		t.Fatalf("trace incomplete:\n%s", out)
	}
	for _, sec := range secrets {
		for _, form := range []string{sec, fmt.Sprintf("%x", sec), fmt.Sprint([]byte(sec))} {
			if strings.Contains(out, form) {
				t.Errorf("trace contains secret %q as %q:\n%s", sec, form, out)
			}
		}
	}
}

// TestRecvTraceUndecodable: a body that does not decode is traced by size
// only, never raw.
func TestRecvTraceUndecodable(t *testing.T) {
	var buf bytes.Buffer
	// A Login body cut short: the PIN bytes are there but it does not decode.
	if err := WriteFrame(&buf, TypeLogin, []byte{0xa1, 0x03, 0x46, '9', '1', '8', '2', '7'}); err != nil {
		t.Fatal(err)
	}
	_ = WriteFrame(&buf, TypeLogin, []byte{0xa1, 0x03, 0x46, '9', '1', '8', '2', '7'})
	var out strings.Builder
	c := NewConn(&buf)
	c.Trace = func(dir string, typ Type, msg any) { fmt.Fprintf(&out, "%s %v %v %x\n", dir, typ, msg, msg) }
	if _, _, err := c.RecvMsg(); !errors.Is(err, ErrDecode) {
		t.Fatalf("got %v", err)
	}
	if _, _, err := c.Recv(); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out.String(), "9182") || strings.Contains(out.String(), "39313832") {
		t.Fatalf("trace shows raw body: %s", out.String())
	}
}

// TestConcurrentCalls: Call serialises exchanges, so goroutines can share
// a client connection.
func TestConcurrentCalls(t *testing.T) {
	client, server := pipe(t)
	serve(t, server, func(typ Type, msg any) []reply {
		r := msg.(*GenerateRandom)
		return []reply{{TypeProgress, &Progress{}}, {TypeRandom, &Random{Bytes: []byte{byte(r.N)}}}}
	})
	var wg sync.WaitGroup
	for i := 1; i <= 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var r Random
			if err := client.Call(&GenerateRandom{N: i}, &r); err != nil || len(r.Bytes) != 1 || int(r.Bytes[0]) != i {
				t.Errorf("call %d: %v %v", i, r.Bytes, err)
			}
		}()
	}
	wg.Wait()
}

// TestCallsArePipelined: a second call's request reaches the server while
// the first is still unanswered, and each call gets its own reply though
// the server holds both before answering.
func TestCallsArePipelined(t *testing.T) {
	client, server := pipe(t)
	first := make(chan error, 1)
	go func() {
		var r Random
		err := client.Call(&GenerateRandom{N: 1}, &r)
		if err == nil && (len(r.Bytes) != 1 || r.Bytes[0] != 1) {
			err = fmt.Errorf("first call got %v", r.Bytes)
		}
		first <- err
	}()
	if _, msg, err := server.RecvMsg(); err != nil || msg.(*GenerateRandom).N != 1 {
		t.Fatalf("first request: %v %v", msg, err)
	}
	second := make(chan error, 1)
	go func() {
		var r Random
		err := client.Call(&GenerateRandom{N: 2}, &r)
		if err == nil && (len(r.Bytes) != 1 || r.Bytes[0] != 2) {
			err = fmt.Errorf("second call got %v", r.Bytes)
		}
		second <- err
	}()
	// net.Pipe is unbuffered: this read returns only if the second call
	// wrote its request while the first waits for its reply.
	if _, msg, err := server.RecvMsg(); err != nil || msg.(*GenerateRandom).N != 2 {
		t.Fatalf("second request: %v %v", msg, err)
	}
	for _, n := range []byte{1, 2} {
		if err := server.SendMsg(&Random{Bytes: []byte{n}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := <-first; err != nil {
		t.Error(err)
	}
	if err := <-second; err != nil {
		t.Error(err)
	}
}

// TestPipelinedCallsFailTogether: when the stream ends, every call
// waiting for a reply fails, none hangs.
func TestPipelinedCallsFailTogether(t *testing.T) {
	a, b := net.Pipe()
	client, server := NewConn(a), NewConn(b)
	errs := make(chan error, 3)
	for i := 1; i <= 3; i++ {
		go func() { errs <- client.Call(&GenerateRandom{N: i}, &Random{}) }()
		if _, _, err := server.RecvMsg(); err != nil {
			t.Fatal(err)
		}
	}
	b.Close()
	for range 3 {
		if err := <-errs; err == nil {
			t.Error("a call succeeded on a closed stream")
		}
	}
	a.Close()
}
