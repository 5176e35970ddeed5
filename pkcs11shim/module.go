package main

import (
	"errors"
	"hash"
	"os"

	"github.com/tpmcard/tpmcard/service/wire"
)

// Environment variables the module reads (CONVENTIONS 11: only to find the
// socket and to debug).
const (
	socketEnv     = "TPMCARD_SOCKET"
	debugEnv      = "TPMCARD_PKCS11_DEBUG"
	defaultSocket = "/run/tpmcard/tpmcard.sock"
)

// Module identity (CK_INFO, CK_TOKEN_INFO).
const (
	libraryManufacturer = "tpmcard"
	libraryDescription  = "tpmcard TPM 2.0 virtual card"
	libraryMajor        = 0
	libraryMinor        = 1
	slotDescription     = "tpmcard virtual reader"
)

// maxSignData bounds the data sent to be signed (the frame cap is 1 MiB):
// beyond it the module hashes for the hashing mechanisms, and the others
// get CKR_DATA_LEN_RANGE.
const maxSignData = 512 << 10

// maxRandomChunk is the most random bytes asked of the service at once.
const maxRandomChunk = 4096

// module is the state of one PKCS#11 application: everything between
// C_Initialize and C_Finalize. Every method takes mu for its whole run,
// except the blocking wait of C_WaitForSlotEvent and a signature's
// request to the service: C_Sign and C_SignFinal let go of mu while the
// TPM signs, so that other sessions' requests follow theirs down the
// connection (wire.Conn pipelines calls) instead of waiting for the lock.
type module struct {
	mu       fairMutex
	inited   bool
	instance uint64 // counts C_Initialize calls
	pid      int
	socket   string
	dial     func(socket string) (Backend, error)
	getpid   func() int
	log      *debugLog

	be  Backend // nil: not connected
	gen uint64  // bumped each time a connection is lost

	// slots are the slots the service named to this application, kept
	// across connections: while the service is away they show without a
	// token, as the readers of cards that are gone.
	slots map[uint64]*slot

	sessions map[uint64]*session
	nextSess uint64

	// lengths caches signature lengths by key handle and mechanism, for
	// the connection they were learnt on: a handle is never reused within
	// a connection, and a key's length never changes.
	lengths map[lengthKey]int

	// Slot events (C_WaitForSlotEvent) come on a connection of their own,
	// kept between calls so that the service remembers which events this
	// application has seen.
	waiter  Backend
	waiting bool          // a blocking wait is in progress
	stop    chan struct{} // closed by C_Finalize: a blocking wait ends
}

// slot is a card's reader, with its CK_SLOT_INFO as the service last gave
// it (nil until asked).
type slot struct {
	id   uint64
	info *wire.SlotDescription
}

// session is a PKCS#11 session: the service's session number on the
// connection of generation gen.
type session struct {
	handle uint64
	slot   uint64
	wireID uint32
	gen    uint64
	sign   *signOp
}

type lengthKey struct {
	key  uint64
	mech uint32
}

type signOp struct {
	key    uint64
	mech   uint32
	param  []byte
	length int       // the signature length, known without the TPM
	multi  bool      // C_SignUpdate was called
	h      hash.Hash // multi-part, hashing mechanisms: the running hash
	data   []byte    // multi-part, other mechanisms: the data so far
}

// newModule returns an uninitialised module that dials the service with dial.
func newModule(dial func(string) (Backend, error)) *module {
	return &module{dial: dial, getpid: os.Getpid}
}

// initArgs is CK_C_INITIALIZE_ARGS as the C layer read it.
type initArgs struct {
	createMutex, destroyMutex, lockMutex, unlockMutex bool // callbacks given
	flags                                             uint64
	reserved                                          bool // pReserved != NULL
}

// ---------------------------------------------------------------------------
// General-purpose functions (PKCS#11 v2.40 §5.4).

// Initialize is C_Initialize; args is nil for a NULL pInitArgs.
func (m *module) Initialize(args *initArgs) rv {
	if args != nil {
		if args.reserved {
			return ckrArgumentsBad
		}
		n := 0
		for _, b := range []bool{args.createMutex, args.destroyMutex, args.lockMutex, args.unlockMutex} {
			if b {
				n++
			}
		}
		switch {
		case n != 0 && n != 4:
			return ckrArgumentsBad
		case n == 4 && args.flags&ckfOSLockingOK == 0:
			// The application insists on its own mutexes; the module
			// locks with the OS's only.
			return ckrCantLock
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	pid := m.getpid()
	if m.inited {
		if m.pid == pid {
			return ckrCryptokiAlreadyInitialized
		}
		// A child of fork(2): the parent's state is not ours. Let go of
		// the parent's connections without shutting them down.
		m.abandon()
	}
	m.reset()
	m.inited = true
	m.instance++
	m.pid = pid
	m.socket = os.Getenv(socketEnv)
	if m.socket == "" {
		m.socket = defaultSocket
	}
	m.log = openDebugLog(os.Getenv(debugEnv))
	m.log.printf("C_Initialize pid=%d socket=%s", pid, m.socket)
	return ckrOK
}

func (m *module) reset() {
	m.be, m.waiter = nil, nil
	m.waiting = false
	m.stop = make(chan struct{})
	m.gen++
	m.slots = map[uint64]*slot{}
	m.sessions = map[uint64]*session{}
	m.nextSess = 0
	m.lengths = map[lengthKey]int{}
}

func (m *module) abandon() {
	for _, b := range []Backend{m.be, m.waiter} {
		if a, ok := b.(abandoner); ok {
			a.Abandon()
		}
	}
	m.log.close()
	m.log = nil
	m.reset()
	m.inited = false
}

// Finalize is C_Finalize.
func (m *module) Finalize(reserved bool) rv {
	if reserved {
		return ckrArgumentsBad
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if r := m.ready(); r != ckrOK {
		return r
	}
	m.log.printf("C_Finalize")
	if m.be != nil {
		m.be.Close()
	}
	if m.waiter != nil {
		m.waiter.Close() // wakes a blocked C_WaitForSlotEvent
	}
	close(m.stop)
	m.log.close()
	m.log = nil
	m.reset()
	m.inited = false
	return ckrOK
}

// ready checks C_Initialize was called, in this process.
func (m *module) ready() rv {
	if !m.inited || m.pid != m.getpid() {
		return ckrCryptokiNotInitialized
	}
	return ckrOK
}

// isReady is ready under the lock, for the C layer's argument checks.
func (m *module) isReady() rv {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.ready()
}

// Info is CK_INFO.
type Info struct {
	Manufacturer, Description string
	Major, Minor              byte
}

// GetInfo is C_GetInfo.
func (m *module) GetInfo() (Info, rv) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if r := m.ready(); r != ckrOK {
		return Info{}, r
	}
	return Info{Manufacturer: libraryManufacturer, Description: libraryDescription, Major: libraryMajor, Minor: libraryMinor}, ckrOK
}

// ---------------------------------------------------------------------------
// The connection.

// conn returns the connection, dialing it if there is none.
func (m *module) conn() (Backend, bool) {
	if m.be != nil {
		return m.be, true
	}
	b, err := m.dial(m.socket)
	if err != nil {
		m.log.printf("service unreachable: %v", err)
		return nil, false
	}
	m.log.printf("connected to %s", m.socket)
	m.be = b
	return b, true
}

// lost forgets a broken connection: every open session dies with it, and
// every token shows absent until the next connection lists it.
func (m *module) lost(why error) {
	m.log.printf("connection lost: %v", why)
	if m.be != nil {
		m.be.Close()
	}
	m.be = nil
	m.gen++
	clear(m.lengths)
}

// connID names a connection of one C_Initialize; see unlocked.
type connID struct{ instance, gen uint64 }

// unlocked runs call, a request on the current connection, without mu,
// which the caller holds, and returns with mu held again. It maps the
// error as result does, except that a connection dropped or replaced
// meanwhile (by another thread's failure, C_Finalize, a reconnection)
// is not dropped again: the call gets gone.
func (m *module) unlocked(gone rv, call func() error) rv {
	c := connID{m.instance, m.gen}
	m.mu.Unlock()
	err := call()
	m.mu.Lock()
	if err != nil && (connID{m.instance, m.gen}) != c {
		if !isStatusError(err) || wire.StatusOf(err) == wire.ServiceStopping {
			return gone
		}
	}
	return m.result(err, gone)
}

// result maps a Backend error to a CK_RV, dropping the connection when it
// is the connection that failed. gone is the CK_RV for that case.
func (m *module) result(err error, gone rv) rv {
	if err == nil {
		return ckrOK
	}
	if errors.Is(err, wire.ErrFrameTooLarge) {
		return ckrDataLenRange // refused before sending: the connection is fine
	}
	if !isStatusError(err) || wire.StatusOf(err) == wire.ServiceStopping {
		m.lost(err)
		return gone
	}
	return rvOf(err)
}

// withConn runs fn on the connection, dialing it if there is none. A
// connection that turns out dead (the service restarted since the last
// call) is dropped and fn tried once more on a new one. up is false when
// the service cannot be reached; err is then nil.
func (m *module) withConn(fn func(Backend) error) (err error, up bool) {
	for range 2 {
		had := m.be != nil
		b, ok := m.conn()
		if !ok {
			return nil, false
		}
		err = fn(b)
		if err == nil || (isStatusError(err) && wire.StatusOf(err) != wire.ServiceStopping) {
			return err, true
		}
		m.lost(err)
		if !had {
			break
		}
	}
	return nil, false
}
