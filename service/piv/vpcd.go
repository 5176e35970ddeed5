package piv

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
)

// vpcd's control messages: a 1-byte payload from the reader side
// (vsmartcard's vpcd.h).
const (
	vpcdPowerOff = 0
	vpcdPowerOn  = 1
	vpcdReset    = 2
	vpcdATR      = 4
)

// maxVPCDMessage is the longest message vpcd's 2-byte length can carry.
const maxVPCDMessage = 0xFFFF

// ATR is the card's answer to reset: T=1 offered through TD1/TD2 and no
// historical data beyond the category indicator 80 (ISO/IEC 7816-3 §8.2,
// 7816-4 §12.1.1). PIV clients find the card by SELECT, not by its ATR.
var ATR = func() []byte {
	atr := []byte{0x3B, 0x81, 0x80, 0x01, 0x80}
	var tck byte
	for _, b := range atr[1:] {
		tck ^= b
	}
	return append(atr, tck)
}()

// Link carries APDUs between vpcd and an Applet: it connects to vpcd on
// Addr, answers its control messages and commands, and when vpcd is not
// there or goes away it tries again with backoff until its context ends.
// It never blocks its caller: Run is meant for a goroutine of its own.
type Link struct {
	Addr   string // host:port of vpcd's card side
	Applet *Applet
	Log    zerolog.Logger
	// Check, when set, runs before each connection and may refuse it
	// (CheckListener: the process listening on the port must be root's).
	Check func(port int) error
	// MinBackoff and MaxBackoff bound the wait between tries (defaults
	// 250 ms and 2 s: a try is a read of /proc/net/tcp and a refused
	// loopback connection, and a client that started pcscd waits that long).
	MinBackoff, MaxBackoff time.Duration

	connected atomic.Bool
}

// Connected reports whether vpcd is connected now.
func (l *Link) Connected() bool { return l.connected.Load() }

// Run connects, serves and reconnects until ctx ends.
func (l *Link) Run(ctx context.Context) {
	lo, hi := l.MinBackoff, l.MaxBackoff
	if lo <= 0 {
		lo = 250 * time.Millisecond
	}
	if hi < lo {
		hi = max(2*time.Second, lo)
	}
	wait := lo
	warned := false
	for ctx.Err() == nil {
		err := l.once(ctx)
		if ctx.Err() != nil {
			return
		}
		if err == errServed {
			wait = lo
			warned = false
		} else if !warned {
			l.Log.Warn().Str("vpcd", l.Addr).Err(err).Msg("the virtual reader is not reachable; trying again in the background (is pcscd with vsmartcard-vpcd running?)")
			warned = true
		} else {
			l.Log.Debug().Str("vpcd", l.Addr).Err(err).Dur("retry_in", wait).Msg("vpcd not reachable")
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		if err != errServed {
			wait = min(2*wait, hi)
		}
	}
}

// errServed says a connection was made and later ended.
var errServed = fmt.Errorf("piv: vpcd connection ended")

func (l *Link) once(ctx context.Context) error {
	_, ps, err := net.SplitHostPort(l.Addr)
	if err != nil {
		return err
	}
	port, err := strconv.Atoi(ps)
	if err != nil {
		return err
	}
	if l.Check != nil {
		if err := l.Check(port); err != nil {
			return err
		}
	}
	d := net.Dialer{Timeout: 3 * time.Second}
	nc, err := d.DialContext(ctx, "tcp", l.Addr)
	if err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() { nc.Close() })
	defer stop()
	defer nc.Close()
	l.connected.Store(true)
	defer l.connected.Store(false)
	l.Log.Info().Str("vpcd", l.Addr).Msg("card inserted in the virtual reader")
	err = l.serve(nc)
	l.Applet.Reset()
	if ctx.Err() == nil {
		l.Log.Info().Str("vpcd", l.Addr).Err(err).Msg("the virtual reader went away")
	}
	return errServed
}

// serve answers vpcd's messages until the connection fails.
func (l *Link) serve(rw io.ReadWriter) error {
	var hdr [2]byte
	buf := make([]byte, maxVPCDMessage)
	for {
		if _, err := io.ReadFull(rw, hdr[:]); err != nil {
			return err
		}
		n := int(binary.BigEndian.Uint16(hdr[:]))
		if n == 0 {
			return fmt.Errorf("piv: vpcd sent an empty message")
		}
		msg := buf[:n]
		if _, err := io.ReadFull(rw, msg); err != nil {
			return err
		}
		var out []byte
		if n == 1 {
			switch msg[0] {
			case vpcdPowerOff, vpcdPowerOn, vpcdReset:
				l.Applet.Reset()
				continue
			case vpcdATR:
				out = ATR
			default:
				continue // unknown control message: no answer expected
			}
		} else {
			out = l.Applet.Process(msg)
		}
		if err := writeMessage(rw, out); err != nil {
			return err
		}
		quickACK(rw)
	}
}

func writeMessage(w io.Writer, p []byte) error {
	if len(p) > maxVPCDMessage {
		return fmt.Errorf("piv: response of %d bytes is too long for vpcd", len(p))
	}
	b := make([]byte, 2+len(p))
	binary.BigEndian.PutUint16(b, uint16(len(p)))
	copy(b[2:], p)
	_, err := w.Write(b)
	return err
}
