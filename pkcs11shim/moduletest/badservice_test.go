//go:build linux

package moduletest

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tpmcard/tpmcard/service/p11"
	"github.com/tpmcard/tpmcard/service/wire"
)

// A fault is what a misbehaving service does instead of answering one
// request.
type fault struct {
	name string
	// expect is the kind of value the faulted call may return
	// (testdata/badservice.c): "gone" or "failed".
	expect string
	// inSync says whether the connection is still frame-aligned after the
	// fault: the proxy then goes on relaying; otherwise it reads and drops
	// whatever the module sends until the module hangs up.
	inSync bool
	// do answers the request (t, body) on c; up is the real service. An
	// error (errHangUp) closes the module's connection.
	do func(p *faultProxy, c, up net.Conn, t wire.Type, body []byte) error
}

// stallFor is how long the stalling service waits before it hangs up. The
// module gives a reply 60 s and reads no setting for it, so the test does
// not wait for its timeout: it checks that the call waits and then ends
// once the connection does.
const stallFor = 500 * time.Millisecond

// errHangUp makes the proxy close the module's connection.
var errHangUp = errors.New("hanging up")

// frame returns one raw frame.
func frame(t wire.Type, body []byte) []byte {
	b := make([]byte, 5+len(body))
	binary.BigEndian.PutUint32(b, uint32(1+len(body)))
	b[4] = byte(t)
	copy(b[5:], body)
	return b
}

// header returns a bare length prefix.
func header(n uint32) []byte { return binary.BigEndian.AppendUint32(nil, n) }

// realReply forwards the request and returns the service's final reply.
func realReply(up net.Conn, t wire.Type, body []byte) (wire.Type, []byte, error) {
	if err := wire.WriteFrame(up, t, body); err != nil {
		return 0, nil, err
	}
	for {
		rt, rb, err := wire.ReadFrame(up, 0)
		if err != nil || rt != wire.TypeProgress {
			return rt, rb, err
		}
	}
}

func marshalFrame(t wire.Type, v any) []byte {
	b, err := wire.Marshal(v)
	if err != nil {
		panic(err)
	}
	return frame(t, b)
}

var faults = []fault{
	{name: "hangup-mid-frame", expect: "gone", do: func(_ *faultProxy, c, up net.Conn, t wire.Type, body []byte) error {
		rt, rb, err := realReply(up, t, body)
		if err != nil {
			return err
		}
		raw := frame(rt, rb)
		if _, err := c.Write(raw[:4+(len(raw)-4)/2]); err != nil {
			return err
		}
		return errHangUp
	}},
	{name: "garbage", expect: "gone", inSync: true, do: func(_ *faultProxy, c, _ net.Conn, _ wire.Type, _ []byte) error {
		// A frame of an unknown type whose body is not CBOR.
		_, err := c.Write(frame(0xa5, bytes.Repeat([]byte{0x5a, 0xff, 0x00, 0xc3}, 7)))
		return err
	}},
	{name: "garbage-body", expect: "gone", inSync: true, do: func(_ *faultProxy, c, up net.Conn, t wire.Type, body []byte) error {
		// The reply's own type, and a body that is not CBOR.
		rt, _, err := realReply(up, t, body)
		if err != nil {
			return err
		}
		_, err = c.Write(frame(rt, []byte{0xff, 0xff, 0x1f, 0x5f, 0x7f}))
		return err
	}},
	{name: "huge-length", expect: "gone", do: func(_ *faultProxy, c, _ net.Conn, _ wire.Type, _ []byte) error {
		_, err := c.Write(append(header(0xffffffff), 0x81, 0xa0, 0, 0, 0, 0, 0, 0))
		return err
	}},
	{name: "over-cap", expect: "gone", do: func(_ *faultProxy, c, _ net.Conn, _ wire.Type, _ []byte) error {
		// One byte over the 1 MiB cap, and the first 64 KiB of it.
		_, err := c.Write(append(append(header(wire.MaxFrame+1), 0x81), make([]byte, 64<<10)...))
		return err
	}},
	{name: "empty-frame", expect: "gone", do: func(_ *faultProxy, c, _ net.Conn, _ wire.Type, _ []byte) error {
		_, err := c.Write(header(0))
		return err
	}},
	{name: "stall", expect: "gone", do: func(p *faultProxy, _, _ net.Conn, _ wire.Type, _ []byte) error {
		time.Sleep(stallFor)
		return errHangUp
	}},
	{name: "wrong-type", expect: "gone", inSync: true, do: func(_ *faultProxy, c, up net.Conn, t wire.Type, body []byte) error {
		// A well-formed frame, but not the reply to this request.
		if _, _, err := realReply(up, t, body); err != nil {
			return err
		}
		msg := marshalFrame(wire.TypeHelloReply, &wire.HelloReply{Version: wire.Version, Server: "wrong"})
		if t == wire.TypeHello {
			msg = marshalFrame(wire.TypeSlotList, &wire.SlotList{Slots: []uint64{1}})
		}
		_, err := c.Write(msg)
		return err
	}},
	{name: "error-without-rv", expect: "failed", inSync: true, do: func(_ *faultProxy, c, _ net.Conn, _ wire.Type, _ []byte) error {
		// An Error frame without key 4: CKR_FUNCTION_FAILED (docs/wire.md).
		_, err := c.Write(marshalFrame(wire.TypeError, &wire.StatusError{Status: wire.Internal, TriesLeft: -1, Message: "no rv"}))
		return err
	}},
	{name: "service-stopping", expect: "gone", inSync: true, do: func(_ *faultProxy, c, _ net.Conn, _ wire.Type, _ []byte) error {
		// Status 5 is a connection gone, whatever the frame's CK_RV says.
		_, err := c.Write(marshalFrame(wire.TypeError, &wire.StatusError{Status: wire.ServiceStopping, TriesLeft: -1, RV: p11.CKRGeneralError}))
		return err
	}},
}

// faultProxy relays the module's connections to the real service, except
// that it answers request number at (counted from 1 over all connections,
// Hello included) with the fault.
type faultProxy struct {
	ln       net.Listener
	sock     string
	upstream string
	fault    *fault
	at       int

	mu    sync.Mutex
	types []wire.Type // every request, in order
	conns map[net.Conn]bool
	wg    sync.WaitGroup
}

func startProxy(t *testing.T, upstream string, f *fault, at int) *faultProxy {
	t.Helper()
	dir, err := os.MkdirTemp("", "tpmcard-proxy-")
	if err != nil {
		t.Fatal(err)
	}
	p := &faultProxy{sock: filepath.Join(dir, "p.sock"), upstream: upstream, fault: f, at: at, conns: map[net.Conn]bool{}}
	if p.ln, err = net.Listen("unix", p.sock); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.ln.Close()
		p.mu.Lock()
		for c := range p.conns {
			c.Close()
		}
		p.mu.Unlock()
		p.wg.Wait()
		os.RemoveAll(dir)
	})
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := p.ln.Accept()
			if err != nil {
				return
			}
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				p.serve(c)
			}()
		}
	}()
	return p
}

func (p *faultProxy) track(c net.Conn, on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if on {
		p.conns[c] = true
	} else {
		delete(p.conns, c)
		c.Close()
	}
}

func (p *faultProxy) serve(c net.Conn) {
	p.track(c, true)
	defer p.track(c, false)
	up, err := net.Dial("unix", p.upstream)
	if err != nil {
		return
	}
	p.track(up, true)
	defer p.track(up, false)
	for {
		t, body, err := wire.ReadFrame(c, 0)
		if err != nil {
			return
		}
		p.mu.Lock()
		p.types = append(p.types, t)
		fire := p.fault != nil && len(p.types) == p.at
		p.mu.Unlock()
		if !fire {
			rt, rb, err := realReply(up, t, body)
			if err != nil || wire.WriteFrame(c, rt, rb) != nil {
				return
			}
			continue
		}
		if err := p.fault.do(p, c, up, t, body); err != nil || !p.fault.inSync {
			// Whatever the module sends now goes nowhere; it has to hang
			// up (or the test's deadline ends it).
			if err == nil {
				_, _ = io.Copy(io.Discard, c)
			}
			return
		}
	}
}

func (p *faultProxy) requests() []wire.Type {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]wire.Type(nil), p.types...)
}

// badServiceDeadline ends a run of testdata/badservice.c that hangs.
const badServiceDeadline = 10 * time.Second

// runBadService runs testdata/badservice.c against the proxy and returns
// its output and whether it succeeded, was killed at the deadline or
// crashed.
func runBadService(t *testing.T, proxy *faultProxy, mode string) (string, error) {
	t.Helper()
	cmd := exec.Command(cProgram(t, "badservice"), module(t), testPIN, mode)
	cmd.Env = append(os.Environ(), socketEnv+"="+proxy.sock)
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				return out.String(), fmt.Errorf("crashed: %v", ws.Signal())
			}
		}
		return out.String(), err
	case <-time.After(badServiceDeadline):
		_ = cmd.Process.Kill()
		<-done
		return out.String(), fmt.Errorf("hung: killed after %v in %q", badServiceDeadline, lastCall(out.String()))
	}
}

// lastCall is the call a badservice run printed last.
func lastCall(out string) string {
	last := ""
	for _, line := range strings.Split(out, "\n") {
		if c, ok := strings.CutPrefix(line, "call "); ok {
			last = c
		}
	}
	return last
}

// cleanSequence runs testdata/badservice.c's sequence through a proxy that
// faults nothing and returns the requests it sent.
func cleanSequence(t *testing.T, p *faultProxy) ([]wire.Type, string, error) {
	t.Helper()
	cmd := exec.Command(cProgram(t, "badservice"), module(t), testPIN, "clean")
	cmd.Env = append(os.Environ(), socketEnv+"="+p.sock)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	timer := time.AfterFunc(badServiceDeadline, func() { _ = cmd.Process.Kill() })
	defer timer.Stop()
	var seq []wire.Type
	var log strings.Builder
	lines := bufio.NewScanner(stdout)
	for lines.Scan() {
		log.WriteString(lines.Text() + "\n")
		if lines.Text() == "phase 1 done" {
			seq = p.requests()
			fmt.Fprintln(stdin)
		}
	}
	err = cmd.Wait()
	if err == nil && seq == nil {
		err = errors.New("no \"phase 1 done\"")
	}
	return seq, log.String(), err
}

// TestMisbehavingService puts a proxy between the module and the real
// service that answers one request with a fault: hangs up in the middle
// of the reply, answers garbage, a frame of 4 GiB, a frame one byte over
// the 1 MiB cap, an empty frame, nothing for a while and then hangs up, a
// frame of the wrong type, an Error frame without a CK_RV, or "service
// stopping" (docs/wire.md, "Connection gone"). Each fault hits each
// request of testdata/badservice.c's sequence in turn (Hello, slot list,
// token info, session, login, search, signature, close). The call that
// meets it must return CKR_OK or a value of a connection gone
// (CKR_DEVICE_ERROR, CKR_DEVICE_REMOVED, CKR_TOKEN_NOT_PRESENT,
// CKR_FUNCTION_FAILED; exactly CKR_FUNCTION_FAILED for the Error frame
// without a CK_RV), never crash, hang or give another value, and the
// module must then work again with the service behaving.
func TestMisbehavingService(t *testing.T) {
	s := startService(t)

	// The requests of one clean sequence.
	seq, out, err := cleanSequence(t, startProxy(t, s.sock, nil, 0))
	if err != nil {
		t.Fatalf("badservice through a proxy that does nothing wrong: %v\n%s", err, out)
	}
	if len(seq) < 8 {
		t.Fatalf("the sequence sent %d requests (%v), want at least 8", len(seq), seq)
	}
	t.Logf("the sequence sends %d requests: %v", len(seq), seq)

	for i := range faults {
		f := &faults[i]
		t.Run(f.name, func(t *testing.T) {
			hung := 0
			for at := 1; at <= len(seq) && hung < 2; at++ {
				p := startProxy(t, s.sock, f, at)
				t0 := time.Now()
				out, err := runBadService(t, p, f.expect)
				took := time.Since(t0)
				fired := p.requests()
				switch {
				case len(fired) < at:
					t.Errorf("request %d (%v): the module sent only %d requests: %v\n%s", at, seq[at-1], len(fired), fired, out)
				case fired[at-1] != seq[at-1]:
					t.Errorf("request %d is %v, in the clean run %v: the sequence is not the same", at, fired[at-1], seq[at-1])
				case err != nil:
					t.Errorf("request %d (%v): %v\n%s", at, seq[at-1], err, out)
					if strings.HasPrefix(err.Error(), "hung") {
						if hung++; hung == 2 && at < len(seq) {
							t.Errorf("%s: giving up after two hung runs; requests %d to %d not tried", f.name, at+1, len(seq))
						}
					}
				}
				if f.name == "stall" && err == nil && took < stallFor {
					t.Errorf("request %d (%v): the run took %v, less than the %v the service stalled", at, seq[at-1], took, stallFor)
				}
			}
		})
	}
}
