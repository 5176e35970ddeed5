//go:build linux

package server

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tpmcard/tpmcard/service/piv"
	"github.com/tpmcard/tpmcard/service/wire"
	"github.com/tpmcard/tpmcard/tpmcard"
	"github.com/tpmcard/tpmcard/tpmcard/secret"
	"github.com/tpmcard/tpmcard/tpmcard/tpmtest"
)

// fakeVPCD is vpcd's side of the link, as vsmartcard's driver speaks it.
type fakeVPCD struct {
	t  *testing.T
	ln net.Listener
	nc net.Conn
}

func newFakeVPCD(t *testing.T) *fakeVPCD {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return &fakeVPCD{t: t, ln: ln}
}

func (v *fakeVPCD) port() int { return v.ln.Addr().(*net.TCPAddr).Port }

// accept waits for the card to connect, powers it on and checks its
// ATR. A connection the card already closed (a link that an assignment
// replaced) is passed over.
func (v *fakeVPCD) accept(within time.Duration) {
	v.t.Helper()
	v.ln.(*net.TCPListener).SetDeadline(time.Now().Add(within))
	for {
		nc, err := v.ln.Accept()
		if err != nil {
			v.t.Fatalf("the card did not connect to vpcd: %v", err)
		}
		v.t.Cleanup(func() { nc.Close() })
		v.nc = nc
		b := []byte{0, 1, 1, 0, 1, 4} // power on, ATR
		if _, err := nc.Write(b); err != nil {
			continue
		}
		atr, err := v.recv()
		if err != nil {
			continue
		}
		if string(atr) != string(piv.ATR) {
			v.t.Fatalf("ATR %x, want %x", atr, piv.ATR)
		}
		return
	}
}

func (v *fakeVPCD) send(p []byte) {
	v.t.Helper()
	b := binary.BigEndian.AppendUint16(nil, uint16(len(p)))
	if _, err := v.nc.Write(append(b, p...)); err != nil {
		v.t.Fatal(err)
	}
}

func (v *fakeVPCD) recv() ([]byte, error) {
	v.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	var h [2]byte
	if _, err := io.ReadFull(v.nc, h[:]); err != nil {
		return nil, err
	}
	b := make([]byte, binary.BigEndian.Uint16(h[:]))
	_, err := io.ReadFull(v.nc, b)
	return b, err
}

func (v *fakeVPCD) transmit(apdu []byte) ([]byte, uint16) {
	v.t.Helper()
	v.send(apdu)
	r, err := v.recv()
	if err != nil || len(r) < 2 {
		v.t.Fatalf("R-APDU: %x %v", r, err)
	}
	return r[:len(r)-2], binary.BigEndian.Uint16(r[len(r)-2:])
}

// TestPIVReaders enables a card in a PIV reader through the socket API,
// assigns a key, and uses the card as vpcd does: the service connects,
// answers the ATR and APDUs, reconnects when vpcd goes away, keeps the
// state in its file, and takes the card out when disabled.
func TestPIVReaders(t *testing.T) {
	statePath := filepath.Join(t.TempDir(), "piv.json")
	e := newEnv(t, nil, func(c *Config) { c.PIVState = statePath })
	const pin = "246810"
	e.secrets = append(e.secrets, pin)
	created, err := e.m.Create(tpmcard.CreateOptions{PIN: secret.FromString(pin), PUK: secret.FromString("13579135"),
		PINPolicy: &tpmcard.PINPolicy{MinLength: 6, MaxLength: 8}})
	if err != nil {
		t.Fatal(err)
	}
	serial := created.Card.Serial
	k, err := e.m.GenerateKey(context.Background(), serial, tpmcard.KeyOptions{Algorithm: tpmcard.ECDSAP256}, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := e.dial()
	v := newFakeVPCD(t)

	if _, err := c.PIVEnable(serial, v.port(), false); !hasStatus(err, wire.BadRequest) || !strings.Contains(err.Error(), "--any-local-user") {
		t.Errorf("fail/enable without consent: %v", err)
	}
	wide := e.provision(c) // the default policy: PINs up to 127 characters
	if _, err := c.PIVEnable(wide, 0, true); !hasStatus(err, wire.BadRequest) || !strings.Contains(err.Error(), "--max-pin-len 8") {
		t.Errorf("fail/enable a card with long PINs: %v", err)
	}
	if _, err := c.PIVAssign(serial, 0x9a, k.ID); !hasStatus(err, wire.BadRequest) {
		t.Errorf("fail/assign before enable: %v", err)
	}
	cards, err := c.PIVEnable(serial, v.port(), true)
	if err != nil || len(cards) != 1 || cards[0].Port != v.port() {
		t.Fatalf("ok/enable: %+v %v", cards, err)
	}
	if _, err := c.PIVAssign(serial, 0x9b, k.ID); !hasStatus(err, wire.BadRequest) {
		t.Errorf("fail/assign to 9b: %v", err)
	}
	if cards, err = c.PIVAssign(serial, 0x9a, k.ID); err != nil || len(cards[0].Slots) != 1 || cards[0].Slots[0].Slot != 0x9a {
		t.Fatalf("ok/assign: %+v %v", cards, err)
	}

	st, err := piv.LoadState(statePath)
	if err != nil || st.Card(serial) == nil || st.Card(serial).Slots["9a"] == "" {
		t.Fatalf("state file: %+v %v", st, err)
	}
	if fi, err := os.Stat(statePath); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("state file mode: %v %v", fi.Mode(), err)
	}

	// The card connects (the assignment restarted its link), vpcd powers
	// it on and asks for the ATR.
	v.accept(10 * time.Second)
	if _, sw := v.transmit(apdu(0x00, 0xA4, 0x04, 0x00, []byte{0xA0, 0x00, 0x00, 0x03, 0x08})); sw != 0x9000 {
		t.Fatalf("SELECT: %04x", sw)
	}
	if _, sw := v.transmit(apdu(0x00, 0x20, 0x00, 0x80, pinField8(pin))); sw != 0x9000 {
		t.Fatalf("VERIFY: %04x", sw)
	}
	digest := sha256.Sum256([]byte("over vpcd"))
	inner := append([]byte{0x82, 0x00, 0x81, 0x20}, digest[:]...)
	data, sw := v.transmit(append(apdu(0x00, 0x87, 0x11, 0x9A, append([]byte{0x7C, byte(len(inner))}, inner...)), 0x00))
	if sw != 0x9000 {
		t.Fatalf("GENERAL AUTHENTICATE: %04x", sw)
	}
	_, rest := berTL(t, data)
	_, sig := berTL(t, rest)
	if !ecdsa.VerifyASN1(k.Public.(*ecdsa.PublicKey), digest[:], sig) {
		t.Error("the signature over vpcd does not verify")
	}
	if cards, _ := c.PIVStatus(); len(cards) != 1 || !cards[0].Connected {
		t.Errorf("status while connected: %+v", cards)
	}

	// A power off ends the security status.
	v.send([]byte{0})
	v.send([]byte{1})
	if _, sw := v.transmit(apdu(0x00, 0x20, 0x00, 0x80, nil)); sw != 0x63C5 {
		t.Errorf("VERIFY status after power off: %04x, want 63C5", sw)
	}

	// vpcd goes away and comes back: the card reconnects by itself.
	v.nc.Close()
	v.accept(10 * time.Second)

	if cards, err = c.PIVDisable(serial); err != nil || len(cards) != 0 {
		t.Fatalf("ok/disable: %+v %v", cards, err)
	}
	if _, err := v.recv(); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("the card is still in the reader after disable: %v", err)
	}
	if st, err := piv.LoadState(statePath); err != nil || len(st.Cards) != 0 {
		t.Errorf("state after disable: %+v %v", st, err)
	}
}

// TestPIVDestroyedCard: destroying a card takes it out of its reader and
// out of the PIV state.
func TestPIVDestroyedCard(t *testing.T) {
	statePath := filepath.Join(t.TempDir(), "piv.json")
	e := newEnv(t, nil, func(c *Config) { c.PIVState = statePath })
	created, err := e.m.Create(tpmcard.CreateOptions{PIN: secret.FromString("246810"), PUK: secret.FromString("13579135"),
		PINPolicy: &tpmcard.PINPolicy{MinLength: 6, MaxLength: 8}})
	if err != nil {
		t.Fatal(err)
	}
	serial := created.Card.Serial
	c := e.dial()
	v := newFakeVPCD(t)
	if _, err := c.PIVEnable(serial, v.port(), true); err != nil {
		t.Fatal(err)
	}
	v.accept(10 * time.Second)
	if err := c.DestroyCard(serial); err != nil {
		t.Fatal(err)
	}
	if cards, err := c.PIVStatus(); err != nil || len(cards) != 0 {
		t.Errorf("PIV status after the card was destroyed: %+v %v", cards, err)
	}
	if st, err := piv.LoadState(statePath); err != nil || st.Card(serial) != nil {
		t.Errorf("PIV state after the card was destroyed: %+v %v", st, err)
	}
	if _, err := v.recv(); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("the destroyed card is still in its reader: %v", err)
	}
}

func hasStatus(err error, s wire.Status) bool {
	var se *wire.StatusError
	return errors.As(err, &se) && se.Status == s
}

// TestPIVCheckListener: the service connects only to a vpcd port that
// root's process listens on. An unprivileged process that took the port
// would otherwise receive the PINs typed into the reader.
func TestPIVCheckListener(t *testing.T) {
	v := newFakeVPCD(t)
	err := piv.CheckListener(v.port())
	if os.Geteuid() == 0 {
		if err != nil {
			t.Errorf("ok/root's listener: %v", err)
		}
	} else if err == nil || !strings.Contains(err.Error(), "not root's") {
		t.Errorf("fail/our own listener, not root's: %v", err)
	}
	v.ln.Close()
	if err := piv.CheckListener(v.port()); err == nil || !strings.Contains(err.Error(), "nothing listens") {
		t.Errorf("fail/no listener: %v", err)
	}
	if os.Geteuid() != 0 {
		t.Log("not root: the attack with another user's listener needs root to start it")
		return
	}
	// The system's python3: one under root's home is not nobody's to run.
	py := "/usr/bin/python3"
	if _, err := os.Stat(py); err != nil {
		if os.Getenv("TPMCARD_REQUIRE_TOOLS") == "1" {
			t.Fatal("python3 is missing (TPMCARD_REQUIRE_TOOLS=1)")
		}
		t.Skip("python3 is missing: no listener of another user")
	}
	cmd := exec.Command(py, "-c", "import socket,sys\ns=socket.socket()\ns.bind(('127.0.0.1',0))\ns.listen()\nprint(s.getsockname()[1],flush=True)\nsys.stdin.read()")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	in, _ := cmd.StdinPipe()
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { in.Close(); cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	port, _ := strconv.Atoi(strings.TrimSpace(line))
	if err := piv.CheckListener(port); err == nil || !strings.Contains(err.Error(), "uid 65534") {
		t.Errorf("attack/nobody's listener on the port: %v", err)
	}
}

// TestPIVStartup: a service that starts with a PIV state file puts its
// cards in their readers by itself, with the slots the file names; a
// damaged file leaves PIV off and says so, and the service runs on.
func TestPIVStartup(t *testing.T) {
	v := newFakeVPCD(t)
	statePath := filepath.Join(t.TempDir(), "piv.json")
	const pin = "11223344"
	var serial string
	var k tpmcard.KeyInfo
	e := newEnv(t, nil, func(c *Config) {
		c.PIVState = statePath
		created, err := c.Manager.Create(tpmcard.CreateOptions{PIN: secret.FromString(pin), PUK: secret.FromString("55667788"),
			PINPolicy: &tpmcard.PINPolicy{MinLength: 8, MaxLength: 8}})
		if err != nil {
			t.Fatal(err)
		}
		serial = created.Card.Serial
		if k, err = c.Manager.GenerateKey(context.Background(), serial, tpmcard.KeyOptions{Algorithm: tpmcard.ECDSAP256}, nil); err != nil {
			t.Fatal(err)
		}
		st := &piv.State{Cards: []piv.CardState{{Serial: serial, Port: v.port(), Slots: map[string]string{"9e": fmt.Sprintf("%x", k.ID)}},
			{Serial: "00000000deadbeef", Port: 1}}} // a card destroyed while in a reader
		if err := st.Save(statePath); err != nil {
			t.Fatal(err)
		}
	})
	e.secrets = append(e.secrets, pin)
	v.accept(10 * time.Second)
	if _, sw := v.transmit(apdu(0x00, 0xA4, 0x04, 0x00, []byte{0xA0, 0x00, 0x00, 0x03, 0x08})); sw != 0x9000 {
		t.Fatalf("SELECT: %04x", sw)
	}
	if _, sw := v.transmit(apdu(0x00, 0x20, 0x00, 0x80, []byte(pin))); sw != 0x9000 {
		t.Fatalf("VERIFY: %04x", sw)
	}
	digest := sha256.Sum256([]byte("after a restart"))
	inner := append([]byte{0x82, 0x00, 0x81, 0x20}, digest[:]...)
	data, sw := v.transmit(append(apdu(0x00, 0x87, 0x11, 0x9E, append([]byte{0x7C, byte(len(inner))}, inner...)), 0x00))
	if sw != 0x9000 {
		t.Fatalf("GENERAL AUTHENTICATE in 9e from the state file: %04x", sw)
	}
	_, rest := berTL(t, data)
	_, sig := berTL(t, rest)
	if !ecdsa.VerifyASN1(k.Public.(*ecdsa.PublicKey), digest[:], sig) {
		t.Error("the signature does not verify")
	}

	if !strings.Contains(e.logs.String(), "the PIV state names a card that no longer exists") {
		t.Error("the log does not say the destroyed card's reader stays empty")
	}
	c := e.dial()
	if cards, err := c.PIVStatus(); err != nil || len(cards) != 2 || cards[1].Connected || !cards[0].Connected {
		t.Errorf("status with a destroyed card: %+v %v", cards, err)
	}
	if cards, err := c.PIVDisable("00000000deadbeef"); err != nil || len(cards) != 1 {
		t.Errorf("ok/disable a destroyed card: %+v %v", cards, err)
	}

	damaged := filepath.Join(t.TempDir(), "piv.json")
	os.WriteFile(damaged, []byte("{not json"), 0o600)
	e2 := newEnv(t, tpmtest.StartSWTPM(t).TPM(), func(c *Config) { c.PIVState = damaged })
	if _, err := e2.dial().PIVStatus(); err == nil || !strings.Contains(err.Error(), "PIV readers are off") {
		t.Errorf("fail/damaged state file: %v", err)
	}
	if !strings.Contains(e2.logs.String(), "PIV state file cannot be read") {
		t.Errorf("the log does not say the PIV state file is damaged")
	}
}
