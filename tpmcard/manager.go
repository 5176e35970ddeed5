package tpmcard

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"
)

// DefaultStateDir is where card records live unless WithStateDir says
// otherwise.
const DefaultStateDir = "/var/lib/tpmcard"

// Option configures a Manager.
type Option func(*config)

type config struct {
	stateDir  string
	ownerAuth []byte
	retryWait time.Duration
	onLost    func()
	// flushLeftovers: Open first flushes what the TPM holds (leftovers.go).
	flushLeftovers bool
}

// WithStateDir sets the directory that keeps card records (created 0700).
func WithStateDir(dir string) Option { return func(c *config) { c.stateDir = dir } }

// WithOwnerAuth sets the owner hierarchy's authorization, needed to create
// the storage root key and to define and undefine NV indices. Empty by
// default, as TPMs ship.
func WithOwnerAuth(auth []byte) Option {
	return func(c *config) { c.ownerAuth = append([]byte(nil), auth...) }
}

// WithRetryWait bounds how long a command the TPM asks to retry (NV_RATE,
// RETRY, YIELDED, TESTING) is retried before ErrTPMBusy. Default 30s.
func WithRetryWait(d time.Duration) Option { return func(c *config) { c.retryWait = d } }

// WithTPMLost sets a function the Manager calls when it finds the TPM
// unreachable (its transport failed to send a command): it has then
// forgotten every login and every handle it held, and rebuilds what it
// needs (the storage root key, sessions, loaded keys) once the TPM answers
// again. fn runs with the Manager locked: it must not call the Manager.
func WithTPMLost(fn func()) Option { return func(c *config) { c.onLost = fn } }

func (c *config) validate() error {
	if c.stateDir == "" {
		return fmt.Errorf("%w: empty state directory", ErrInvalidOptions)
	}
	if c.retryWait < 0 {
		return fmt.Errorf("%w: negative retry wait", ErrInvalidOptions)
	}
	return nil
}

// Manager owns one TPM connection and the cards recorded in one state
// directory. Its methods are safe for concurrent use; TPM commands are
// serialized.
type Manager struct {
	mu      fifoLock
	tpm     transport.TPM
	st      *store
	owner   []byte
	srk     srk
	records map[string]*record
	keys    map[string]*loadedKey // by keyCacheID
	logins  map[string]*login     // by serial
	sig     signSession
	// ownerSess carries the owner's authorization, salted so that it never
	// crosses the bus in clear, reused by every owner-authorized command
	// and reopened after an eviction (ownerAuth).
	ownerSess *hmacSession
	ownerUsed uint64
	// challenges are the pending administrator's unblocks, by serial.
	challenges map[string]*challenge
	// namesOK lists the cards whose NV indices Status found in place.
	namesOK map[string]bool
	clock   uint64 // LRU counter
	// opStart is the clock when the current operation took the lock:
	// what was used since then is in use, and withRoom keeps it.
	opStart uint64
	closed  atomic.Bool
	// tpmLost is set by the transport when a command could not reach the
	// TPM; srkLoaded is false until the storage root key is (re)created.
	tpmLost   atomic.Bool
	srkLoaded bool
	// flushOnRebuild: the TPM has no resource manager (WithFlushLeftovers),
	// so rebuilding after a lost connection flushes what the old one left.
	flushOnRebuild bool
	onLost         func()

	// recMu guards records, so that reading a card's record never waits
	// behind TPM commands. Records are replaced, never changed in place.
	recMu sync.RWMutex

	progressEvery time.Duration // how often GenerateKey reports progress
	leftovers     Leftovers     // what Open flushed
}

type srk struct {
	handle tpm2.TPMHandle
	name   tpm2.TPM2BName
	pub    tpm2.TPMTPublic
}

type loadedKey struct {
	handle tpm2.TPMHandle
	name   tpm2.TPM2BName
	used   uint64
}

// login is the PIN proof of a card that some caller logged in to: the
// derived authValue and a salted HMAC session that carries it. The session
// holds its own copy of auth and wipes it when closed (hmacsess.go);
// logoutLocked wipes auth. Nothing else keeps the authValue.
type login struct {
	auth  []byte
	sess  tpm2.Session
	close func() error
	used  uint64
}

// signSession is one policy session shared by every card: PolicySecret of
// a card's PIN index arms it for that card's keys, TPM2_Sign consumes it.
type signSession struct {
	sess     tpm2.Session
	close    func() error
	armedFor string // serial whose PIN the digest holds; "" when reset
	dirty    bool   // state unknown after a failure: PolicyRestart first
	used     uint64
}

// Open prepares a Manager on an open TPM. It creates the storage root key
// (TCG ECC P-256 SRK template, owner hierarchy) and keeps it loaded; with
// WithFlushLeftovers it first flushes what an earlier user left.
func Open(t transport.TPM, opts ...Option) (*Manager, error) {
	cfg := config{stateDir: DefaultStateDir, retryWait: 30 * time.Second}
	for _, o := range opts {
		o(&cfg)
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	st, err := newStore(cfg.stateDir)
	if err != nil {
		return nil, err
	}
	m := &Manager{
		mu:      make(fifoLock, 1),
		onLost:  cfg.onLost,
		st:      st,
		owner:   cfg.ownerAuth,
		records: map[string]*record{},
		keys:    map[string]*loadedKey{},
		logins:  map[string]*login{},
		namesOK: map[string]bool{},

		progressEvery: 500 * time.Millisecond,
	}
	m.tpm = &retryTPM{tpm: t, maxWait: cfg.retryWait, sleep: time.Sleep, lost: &m.tpmLost}
	m.flushOnRebuild = cfg.flushLeftovers
	if cfg.flushLeftovers {
		if m.leftovers, err = flushLeftovers(m.tpm); err != nil {
			return nil, fmt.Errorf("flushing what an earlier run left in the TPM: %w", err)
		}
	}
	if err := m.loadSRK(); err != nil {
		return nil, err
	}
	if err := m.recoverPending(); err != nil {
		m.Close()
		return nil, err
	}
	return m, nil
}

// loadSRK creates the storage root key under the owner's authorization.
// The authorization travels in an HMAC session salted with a primary key
// of the null hierarchy made for that one purpose (it needs no
// authorization, and is flushed at once): before the SRK exists there is
// no owner key to salt with. The session stays, as the owner session.
func (m *Manager) loadSRK() error {
	tmp, err := tpm2.CreatePrimary{
		PrimaryHandle: tpm2.AuthHandle{Handle: tpm2.TPMRHNull, Auth: tpm2.PasswordAuth(nil)},
		InPublic:      tpm2.New2B(tpm2.ECCSRKTemplate),
	}.Execute(m.tpm)
	if err != nil {
		return fmt.Errorf("creating a salting key: %w", busy(err))
	}
	tmpPub, err := tmp.OutPublic.Contents()
	if err == nil {
		m.ownerSess, err = startHMACSession(m.tpm, tmp.ObjectHandle, tmpPub, m.owner, sessionDir{})
	}
	flush(m.tpm, tmp.ObjectHandle)
	if err != nil {
		return fmt.Errorf("opening the owner session: %w", busy(err))
	}
	m.ownerUsed = m.tick()
	rsp, err := tpm2.CreatePrimary{
		PrimaryHandle: tpm2.AuthHandle{Handle: tpm2.TPMRHOwner, Auth: m.ownerSess},
		InPublic:      tpm2.New2B(tpm2.ECCSRKTemplate),
	}.Execute(m.tpm)
	if err != nil {
		m.dropOwnerSession()
		if isAuthFailure(err) {
			return fmt.Errorf("creating storage root key: owner authorization refused (set it with the owner-auth option): %w", err)
		}
		return fmt.Errorf("creating storage root key: %w", busy(err))
	}
	pub, err := rsp.OutPublic.Contents()
	if err != nil {
		m.dropOwnerSession()
		flush(m.tpm, rsp.ObjectHandle)
		return fmt.Errorf("reading storage root key: %w", err)
	}
	m.srk, m.srkLoaded = srk{handle: rsp.ObjectHandle, name: rsp.Name, pub: *pub}, true
	return nil
}

// ownerAuth is the session that authorizes TPM_RH_OWNER: one salted HMAC
// session carrying the owner's authorization, kept open (continueSession)
// and reopened, salted with the SRK, after an eviction. Get it after every
// other session a command needs: opening those may evict it. A command it
// authorized that fails with an authorization error should drop it
// (dropOwnerSession), so the next one starts clean.
func (m *Manager) ownerAuth() (tpm2.Session, error) {
	if m.ownerSess == nil {
		err := m.withRoom(func() (err error) {
			m.ownerSess, err = startHMACSession(m.tpm, m.srk.handle, &m.srk.pub, m.owner, sessionDir{})
			return err
		})
		if err != nil {
			m.ownerSess = nil
			return nil, fmt.Errorf("opening the owner session: %w", busy(err))
		}
	}
	m.ownerUsed = m.tick()
	return m.ownerSess, nil
}

// dropOwnerSession flushes the owner session; the next ownerAuth opens a
// new one.
func (m *Manager) dropOwnerSession() {
	if m.ownerSess != nil {
		_ = m.ownerSess.Close()
		m.ownerSess = nil
	}
}

// Close logs out of every card and flushes every TPM handle the Manager
// holds. The TPM connection itself belongs to the caller.
func (m *Manager) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed.Load() {
		return nil
	}
	m.closed.Store(true)
	for serial := range m.logins {
		m.logoutLocked(serial)
	}
	for serial := range m.challenges {
		m.dropChallenge(serial)
	}
	m.resetSignSession()
	m.dropOwnerSession()
	for id, k := range m.keys {
		flush(m.tpm, k.handle)
		delete(m.keys, id)
	}
	flush(m.tpm, m.srk.handle)
	return nil
}

var errClosed = errors.New("tpmcard: manager is closed")

// fifoLock is a mutex that serves waiters in arrival order: goroutines
// blocked on a channel send are woken first come, first served. With one
// TPM shared by many clients, that keeps a signature's wait near the queue
// length times the TPM's time instead of letting a waiter starve.
type fifoLock chan struct{}

func (l fifoLock) Lock()   { l <- struct{}{} }
func (l fifoLock) Unlock() { <-l }

// lock takes the Manager's lock for TPM commands. After the TPM was lost
// it first rebuilds the storage root key; while the TPM cannot be reached
// that fails, with ErrTPMUnreachable.
func (m *Manager) lock() error {
	m.mu.Lock()
	if m.closed.Load() {
		m.mu.Unlock()
		return errClosed
	}
	if !m.srkLoaded {
		// A connection that broke while the TPM stayed up (no resource
		// manager) leaves what forgetTPM could not flush: flush it now.
		if m.flushOnRebuild {
			if _, err := flushLeftovers(m.tpm); err != nil {
				m.unlock()
				return fmt.Errorf("flushing what the lost connection left in the TPM: %w", err)
			}
		}
		if err := m.loadSRK(); err != nil {
			m.unlock()
			return err
		}
	}
	m.opStart = m.clock
	return nil
}

// unlock releases the lock; when a command on the way failed to reach the
// TPM, it first forgets every TPM handle and login (see forgetTPM).
func (m *Manager) unlock() {
	if m.tpmLost.Swap(false) && m.srkLoaded {
		m.forgetTPM()
	}
	m.opStart = m.clock // the operation holds nothing any more
	m.mu.Unlock()
}

// forgetTPM drops everything the Manager holds in the TPM after the TPM
// could not be reached: a TPM that restarted has forgotten it, and one that
// did not may have run or not run the command that failed. Logins end (the
// card's holder logs in again), pending admin challenges die, keys and
// sessions are flushed where the TPM still has them (best effort: nothing
// was loaded since), and the next lock recreates the storage root key.
func (m *Manager) forgetTPM() {
	for serial := range m.logins {
		m.logoutLocked(serial)
	}
	for serial := range m.challenges {
		m.dropChallenge(serial)
	}
	m.resetSignSession()
	for id, k := range m.keys {
		flush(m.tpm, k.handle)
		delete(m.keys, id)
	}
	m.dropOwnerSession()
	flush(m.tpm, m.srk.handle)
	m.srk, m.srkLoaded = srk{}, false
	clear(m.namesOK)
	m.tpmLost.Store(false) // the flushes above may fail the same way
	if m.onLost != nil {
		m.onLost()
	}
}

// lockCard locks the Manager and returns the card's record; the caller
// unlocks. On error nothing stays locked. A card made by an earlier
// tpmcard gives ErrCardOutdated.
func (m *Manager) lockCard(serial string) (*record, error) {
	r, err := m.lockAnyCard(serial)
	if err == nil && r.Version < recordVersion {
		m.mu.Unlock()
		return nil, fmt.Errorf("card %s: %w", serial, ErrCardOutdated)
	}
	if err == nil && r.Destroying {
		m.mu.Unlock()
		return nil, fmt.Errorf("card %s: %w", serial, ErrDestroyIncomplete)
	}
	return r, err
}

// lockAnyCard is lockCard for what an outdated card still allows: status
// and destroy.
func (m *Manager) lockAnyCard(serial string) (*record, error) {
	if err := m.lock(); err != nil {
		return nil, err
	}
	r, err := m.record(serial)
	if err != nil {
		m.mu.Unlock()
		return nil, err
	}
	return r, nil
}

// usable is lock for methods that only read records: they never wait
// behind TPM commands.
func (m *Manager) usable() error {
	if m.closed.Load() {
		return errClosed
	}
	return nil
}

func (m *Manager) tick() uint64 { m.clock++; return m.clock }

// withRoom runs fn, and when the TPM reports it has no room for another
// object or session, flushes the least recently used key (for an object)
// or session (for a session) and tries again. Keys reload from their blobs
// and logins re-open their session from the kept authValue, so eviction
// costs one command later. What the current operation has used (its key,
// its login's session, the sign session) is never evicted: when nothing
// else is left, the TPM's slots hold what is not the Manager's, and fn's
// error is returned.
func (m *Manager) withRoom(fn func() error) error {
	for {
		err := fn()
		if err == nil || !isMemory(err) {
			return err
		}
		if !m.evictOne(isTPM(err, tpm2.TPMRCObjectMemory) || isTPM(err, tpm2.TPMRCObjectHandles),
			isTPM(err, tpm2.TPMRCSessionMemory) || isTPM(err, tpm2.TPMRCSessionHandles)) {
			return fmt.Errorf("%w: %w (nothing of tpmcard's own is left to flush)", ErrTPMFull, err)
		}
	}
}

// evictOne flushes the least recently used key (an object) or session
// that the current operation has not used; with neither objects nor
// sessions named (TPM_RC_MEMORY), whichever is older. The sign session,
// which every card's signatures share, goes only when no other session is
// left. The owner session goes even when used: every command gets it anew
// (ownerAuth).
func (m *Manager) evictOne(objects, sessions bool) bool {
	if !objects && !sessions {
		objects, sessions = true, true
	}
	free := func(used uint64) bool { return used <= m.opStart }
	var oldest uint64 = ^uint64(0)
	var key, serial string
	var owner, sig bool
	if objects {
		for id, k := range m.keys {
			if free(k.used) && k.used < oldest {
				oldest, key = k.used, id
			}
		}
	}
	if sessions {
		for s, l := range m.logins {
			if l.sess != nil && free(l.used) && l.used < oldest {
				oldest, key, serial = l.used, "", s
			}
		}
		if m.ownerSess != nil && m.ownerUsed < oldest {
			key, serial, owner = "", "", true
		}
		// The sign session serves every card: it goes last.
		sig = m.sig.sess != nil && free(m.sig.used)
	}
	switch {
	case owner:
		m.dropOwnerSession()
	case key != "":
		flush(m.tpm, m.keys[key].handle)
		delete(m.keys, key)
	case serial != "":
		l := m.logins[serial]
		_ = l.close()
		l.sess, l.close = nil, nil
	case sig:
		m.resetSignSession()
	default:
		return false
	}
	return true
}

// saltedHMAC opens a reusable HMAC session salted with the SRK, so that the
// session key, and with it anything the session proves or encrypts, is
// unknown to anyone watching the bus (Part 1 §19.6.10). The session is
// tpmcard's own (hmacsess.go): it copies auth, and the closer flushes it and
// wipes the copy. Of opts, only the direction of tpm2.AESEncryption counts
// (the key size is always 128 bits); others are ignored.
func (m *Manager) saltedHMAC(auth []byte, opts ...tpm2.AuthOption) (tpm2.Session, func() error, error) {
	// go-tpm's options are opaque functions: read what they set from a
	// session go-tpm makes with them and never starts.
	probe := tpm2.HMAC(tpm2.TPMAlgSHA256, nonceLen, opts...)
	s, err := m.saltedSession(auth, sessionDir{in: probe.IsDecryption(), out: probe.IsEncryption()})
	if err != nil {
		return nil, nil, err
	}
	return s, s.Close, nil
}

// saltedSession is saltedHMAC for callers that need tpmcard's own session
// type; the caller closes it.
func (m *Manager) saltedSession(auth []byte, dir sessionDir) (*hmacSession, error) {
	var s *hmacSession
	err := m.withRoom(func() (err error) {
		s, err = startHMACSession(m.tpm, m.srk.handle, &m.srk.pub, auth, dir)
		return err
	})
	return s, err
}

// policySession opens a reusable policy session.
func (m *Manager) policySession() (tpm2.Session, func() error, error) {
	var s tpm2.Session
	var closer func() error
	err := m.withRoom(func() (err error) {
		s, closer, err = tpm2.PolicySession(m.tpm, tpm2.TPMAlgSHA256, 16)
		return err
	})
	return s, closer, err
}

// authValue is the authValue of a PIN or PUK of this card, derived with
// the card's own salt and cost (kdf.go). A record without derivation
// parameters is a bug (load refuses such records, Create sets them): it
// panics rather than derive something the TPM would count as a wrong PIN.
func (r *record) authValue(kind string, s []byte) []byte {
	a, err := r.KDF.derive(kind, s)
	if err != nil {
		panic(fmt.Sprintf("tpmcard: card %s: %v", r.Serial, err))
	}
	return a
}

func wipe(b []byte) {
	for i := range b {
		b[i] = 0
	}
}
