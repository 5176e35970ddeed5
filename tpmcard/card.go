package tpmcard

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/google/go-tpm/tpm2"
	"github.com/tpmcard/tpmcard/tpmcard/secret"
)

// Defaults for a new card.
const (
	DefaultPIN      = "12345678"
	DefaultPINTries = 5
	DefaultPUKTries = 3
	maxTries        = 255
	pukAlphabet     = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789" // no 0/O, 1/I
	pukLength       = 16                                 // 80 bits
)

// CreateOptions describe a new card. The zero value is a card with the
// default PIN (which must be changed on first use), a generated PUK, the
// default PIN policy, 5 PIN tries and 3 PUK tries.
type CreateOptions struct {
	Label     string
	PIN       secret.Secret // nil: DefaultPIN, marked "must change"
	PUK       secret.Secret // nil: generated and returned once
	PINPolicy *PINPolicy    // nil: DefaultPINPolicy
	PINTries  int           // 0: DefaultPINTries
	PUKTries  int           // 0: DefaultPUKTries
	// AdminKey, an ECDSA P-256 public key, lets its holder unblock the card
	// offline: the TPM checks the holder's signature over a challenge.
	AdminKey *ecdsa.PublicKey
	// NoPUK leaves the PUK out: only the admin key can unblock the card.
	NoPUK bool
	// Owner is the user (and optionally group) the card belongs to. The
	// service lets only them and administrators see and use the card; nil
	// leaves the card to administrators alone.
	Owner *Owner
}

// Owner is who a card belongs to: a uid and, optionally, a gid whose
// members share it.
type Owner struct {
	UID uint32  `json:"uid"`
	GID *uint32 `json:"gid,omitempty"`
}

// Allows reports whether a process with uid and supplementary groups
// (primary group included) is the card's owner or in its group.
func (o *Owner) Allows(uid uint32, groups []uint32) bool {
	if o == nil {
		return false
	}
	if o.UID == uid {
		return true
	}
	if o.GID != nil {
		for _, g := range groups {
			if g == *o.GID {
				return true
			}
		}
	}
	return false
}

func (o *Owner) clone() *Owner {
	if o == nil {
		return nil
	}
	c := &Owner{UID: o.UID}
	if o.GID != nil {
		g := *o.GID
		c.GID = &g
	}
	return c
}

// Created is the result of Create. PUK is set only when it was generated;
// it is shown once and kept nowhere.
type Created struct {
	Card CardInfo
	PUK  secret.Secret
}

// CardInfo is what the record says about a card, without asking the TPM.
type CardInfo struct {
	Serial     string
	Label      string
	Created    time.Time
	Policy     PINPolicy
	PINTries   int
	PUKTries   int // 0 without a PUK
	MustChange bool
	HasPUK     bool
	AdminKey   *ecdsa.PublicKey // nil without an admin key
	Owner      *Owner           // nil: administrators only
	// Outdated: made by an earlier tpmcard whose PIN policy an
	// owner-authorization holder can forge; it can only be destroyed.
	Outdated bool
	// DestroyIncomplete: a destroy began and did not finish; the card can
	// only be destroyed again.
	DestroyIncomplete bool
	Keys              []KeyInfo
}

// CardStatus adds what only the TPM knows: the counters.
type CardStatus struct {
	CardInfo
	PINTriesLeft int
	PUKTriesLeft int
	PINLocked    bool
	PUKLocked    bool
	Blocked      bool // PIN and PUK both locked: destroy is all that is left
	LoggedIn     bool
}

// Create provisions a new card: a PUK index, a PIN index whose policy
// trusts the PUK, and the approvals for PIN and PUK changes.
func (m *Manager) Create(opts CreateOptions) (*Created, error) {
	if err := m.lock(); err != nil {
		return nil, err
	}
	defer m.unlock()

	policy := DefaultPINPolicy()
	if opts.PINPolicy != nil {
		policy = *opts.PINPolicy
	}
	if err := policy.validate(); err != nil {
		return nil, err
	}
	pinTries, pukTries := orDefault(opts.PINTries, DefaultPINTries), orDefault(opts.PUKTries, DefaultPUKTries)
	if pinTries < 1 || pinTries > maxTries || pukTries < 1 || pukTries > maxTries {
		return nil, fmt.Errorf("%w: tries must be 1 to %d", ErrInvalidOptions, maxTries)
	}
	if len(opts.Label) > 32 {
		return nil, fmt.Errorf("%w: label longer than 32 bytes", ErrInvalidOptions)
	}
	pin, mustChange := opts.PIN, false
	if pin == nil {
		pin, mustChange = secret.FromString(DefaultPIN), true
	}
	if err := policy.Check(pin); err != nil {
		return nil, err
	}
	if opts.NoPUK && (opts.AdminKey == nil || opts.PUK != nil) {
		return nil, fmt.Errorf("%w: a card without a PUK needs an admin key, and no PUK", ErrInvalidOptions)
	}
	var adminPub []byte
	if opts.AdminKey != nil {
		if opts.AdminKey.Curve != elliptic.P256() {
			return nil, fmt.Errorf("%w: the admin key must be ECDSA P-256", ErrInvalidOptions)
		}
		pt, err := opts.AdminKey.Bytes()
		if err != nil {
			return nil, fmt.Errorf("%w: admin key: %v", ErrInvalidOptions, err)
		}
		adminPub = tpm2.Marshal(p256Public(pt[1:33], pt[33:]))
	}
	puk, generated := opts.PUK, false
	if opts.NoPUK {
		pukTries = 0
	} else if puk == nil {
		var err error
		if puk, err = generatePUK(); err != nil {
			return nil, err
		}
		generated = true
	} else if err := (PINPolicy{MinLength: 8, MaxLength: MaxPINLength}).Check(puk); err != nil {
		return nil, fmt.Errorf("PUK: %w", err)
	}

	serialBytes := make([]byte, 8)
	if _, err := rand.Read(serialBytes); err != nil {
		return nil, err
	}
	rec := &record{
		Version:    recordVersion,
		Serial:     hex.EncodeToString(serialBytes),
		Label:      opts.Label,
		Created:    time.Now().UTC().Truncate(time.Second),
		PINLimit:   uint32(pinTries),
		PUKLimit:   uint32(pukTries),
		Policy:     policy,
		MustChange: mustChange,
		NoPUK:      opts.NoPUK,
		AdminKey:   adminPub,
		Owner:      opts.Owner.clone(),
	}
	var err error
	if rec.KDF, err = newKDFParams(); err != nil {
		return nil, err
	}
	if rec.Label == "" {
		rec.Label = "tpmcard " + rec.Serial[:8]
	}
	if err := m.provision(rec, rec.authValue("pin", pin), rec.authValue("puk", puk)); err != nil {
		return nil, err
	}
	rec.Pending = false
	if err := m.st.save(rec); err != nil {
		if m.undefine(rec) == nil {
			_ = m.st.removeRecord(rec.Serial)
		}
		return nil, err
	}
	rec.prepare()
	m.recMu.Lock()
	m.records[rec.Serial] = rec
	m.recMu.Unlock()
	out := &Created{Card: rec.info()}
	if generated {
		out.PUK = puk
	}
	return out, nil
}

func orDefault(v, d int) int {
	if v == 0 {
		return d
	}
	return v
}

func generatePUK() (secret.Secret, error) {
	b := make([]byte, pukLength)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	for i := range b {
		b[i] = pukAlphabet[int(b[i])%len(pukAlphabet)] // 256 is a multiple of 32: no bias
	}
	return secret.Secret(b), nil
}

// provision creates the card's TPM objects and fills in rec. Every name is
// computed before the first TPM command and journalled in a pending record,
// so a crash halfway leaves a record that the next Open uses to undefine
// what was defined. On failure it undefines whatever it defined.
func (m *Manager) provision(rec *record, pinAuth, pukAuth []byte) (err error) {
	defer wipe(pinAuth)
	defer wipe(pukAuth)
	hs, err := freeNVHandles(m.tpm, 2)
	if err != nil {
		return err
	}
	ap, err := m.newApprover()
	if err != nil {
		return err
	}
	defer ap.discard()
	rec.Approval.Public = tpm2.Marshal(ap.pub)

	// The PIN index's policy names the PUK index as written.
	var pukUnwritten tpm2.TPMSNVPublic
	if !rec.NoPUK {
		pukUnwritten = pinIndexPublic(hs[0], orDigest(pukBranches(ap.name)), false)
		pukWritten := pukUnwritten
		pukWritten.Attributes.Written = true
		rec.PUKIndex, rec.PUKName = uint32(hs[0]), nvName(pukWritten)
	}
	pinUnwritten := pinIndexPublic(hs[1], orDigest(m.pinBranches(rec)), false)
	pinWritten := pinUnwritten
	pinWritten.Attributes.Written = true
	rec.PINIndex, rec.PINName = uint32(hs[1]), nvName(pinWritten)

	rec.Pending = true
	if err := m.st.save(rec); err != nil {
		return err
	}
	defer func() {
		if err != nil && m.undefine(rec) == nil {
			_ = m.st.removeRecord(rec.Serial)
		}
	}()

	// The first writes go through the provisioning branch: the approval
	// key signs each session's nonce.
	provision := func(s tpm2.Session) error {
		_, err := tpm2.PolicyCommandCode{PolicySession: s.Handle(), Code: tpm2.TPMCCNVWrite}.Execute(m.tpm)
		if err == nil {
			err = ap.provisionStep(s)
		}
		return err
	}
	if !rec.NoPUK {
		// PUK index: define, then its one first write.
		if err := m.defineIndex(pukUnwritten, pukAuth); err != nil {
			return err
		}
		err = m.policyWrite(hs[0], nvName(pukUnwritten), pinData{0, rec.PUKLimit}, pukBranches(ap.name), provision)
		if err != nil {
			return fmt.Errorf("initializing PUK: %w", busy(err))
		}
	}

	// PIN index: define, then its first write, through the PUK branch when
	// there is a PUK.
	if err := m.defineIndex(pinUnwritten, pinAuth); err != nil {
		return err
	}
	if rec.NoPUK {
		err = m.policyWrite(hs[1], nvName(pinUnwritten), pinData{0, rec.PINLimit}, m.pinBranches(rec), provision)
		if err != nil {
			err = fmt.Errorf("initializing PIN: %w", busy(err))
		}
	} else {
		err = m.resetPIN(rec, pukAuth, nvName(pinUnwritten))
		if err != nil {
			err = fmt.Errorf("initializing PIN: %w", err)
		}
	}
	if err != nil {
		return err
	}

	// Both names are final: approve the two change policies; the deferred
	// discard then has the TPM forget the approval key.
	if rec.Approval.PINSig, err = ap.approve(approvedChange(rec.PINName), refPINChange); err != nil {
		return err
	}
	if !rec.NoPUK {
		if rec.Approval.PUKSig, err = ap.approve(approvedChange(rec.PUKName), refPUKChange); err != nil {
			return err
		}
	}
	return m.checkNames(rec)
}

// recoverPending finishes what a crash during Create left: it undefines
// the pending card's indices (only those whose Names are the card's) and
// drops the record. A TPM that refuses now is tried again at the next Open.
func (m *Manager) recoverPending() error {
	serials, err := m.st.list()
	if err != nil {
		return err
	}
	for _, s := range serials {
		r, err := m.st.load(s)
		if err != nil || !r.Pending {
			continue
		}
		if err := m.undefine(r); err != nil {
			continue
		}
		if err := m.st.removeRecord(s); err != nil {
			return err
		}
	}
	return nil
}

// policyWrite writes data to an index through the branch that steps runs,
// closing with the index's PolicyOR.
func (m *Manager) policyWrite(h tpm2.TPMHandle, name []byte, data pinData, branches [][]byte, steps func(tpm2.Session) error) error {
	s, closer, err := m.policySession()
	if err != nil {
		return err
	}
	defer closer()
	return m.policyWriteIn(s, h, name, data, branches, steps)
}

// policyWriteIn is policyWrite in a policy session the caller owns.
func (m *Manager) policyWriteIn(s tpm2.Session, h tpm2.TPMHandle, name []byte, data pinData, branches [][]byte, steps func(tpm2.Session) error) error {
	if err := steps(s); err != nil {
		return err
	}
	if _, err := (tpm2.PolicyOr{PolicySession: s.Handle(), PHashList: digestList(branches)}).Execute(m.tpm); err != nil {
		return err
	}
	_, err := tpm2.NVWrite{
		AuthHandle: tpm2.AuthHandle{Handle: h, Name: tpm2.TPM2BName{Buffer: name}, Auth: s},
		NVIndex:    tpm2.NamedHandle{Handle: h, Name: tpm2.TPM2BName{Buffer: name}},
		Data:       tpm2.TPM2BMaxNVBuffer{Buffer: data.bytes()},
	}.Execute(m.tpm)
	return err
}

// secretStep proves an index's authValue into a policy session with
// PolicySecret through a one-time salted HMAC session. The TPM counts the
// attempt on that index.
func (m *Manager) secretStep(policy tpm2.TPMHandle, index tpm2.TPMHandle, name []byte, auth []byte) error {
	hs, closer, err := m.saltedHMAC(auth)
	if err != nil {
		return err
	}
	defer closer()
	_, err = tpm2.PolicySecret{
		AuthHandle:    tpm2.AuthHandle{Handle: index, Name: tpm2.TPM2BName{Buffer: name}, Auth: hs},
		PolicySession: policy,
	}.Execute(m.tpm)
	return err
}

// resetPIN writes {0, limit} to the PIN index through the PUK branch: the
// first write at provisioning, and the counter reset of an unblock.
func (m *Manager) resetPIN(rec *record, pukAuth, pinName []byte) error {
	err := m.policyWrite(tpm2.TPMHandle(rec.PINIndex), pinName, pinData{0, rec.PINLimit}, m.pinBranches(rec),
		func(s tpm2.Session) error {
			if _, err := (tpm2.PolicyCommandCode{PolicySession: s.Handle(), Code: tpm2.TPMCCNVWrite}).Execute(m.tpm); err != nil {
				return err
			}
			return m.secretStep(s.Handle(), tpm2.TPMHandle(rec.PUKIndex), rec.PUKName, pukAuth)
		})
	return m.secretError(rec, pukProof, err)
}

func (m *Manager) pinBranches(rec *record) [][]byte {
	var adminName []byte
	if rec.AdminKey != nil {
		adminName = publicName(rec.AdminKey)
	}
	return pinBranches(approvalName(rec), rec.PUKName, adminName, rec.Serial)
}

// publicName is the TPM Name of a marshalled TPMT_PUBLIC, nil if it does
// not parse (the policies then do not match, and the TPM says so).
func publicName(b []byte) []byte {
	pub, err := tpm2.Unmarshal[tpm2.TPMTPublic](b)
	if err != nil {
		return nil
	}
	n, err := tpm2.ObjectName(pub)
	if err != nil {
		return nil
	}
	return n.Buffer
}

func approvalName(rec *record) []byte { return publicName(rec.Approval.Public) }

// checkNames compares the TPM's view of both indices with the record.
func (m *Manager) checkNames(rec *record) error {
	for _, ix := range []struct {
		h    uint32
		name []byte
	}{{rec.PINIndex, rec.PINName}, {rec.PUKIndex, rec.PUKName}} {
		if ix.h == 0 {
			continue // no PUK
		}
		rsp, err := tpm2.NVReadPublic{NVIndex: tpm2.TPMHandle(ix.h)}.Execute(m.tpm)
		if err != nil {
			if isGone(err) {
				return fmt.Errorf("%w (NV index %#x is not defined)", ErrCardLost, ix.h)
			}
			return busy(err)
		}
		if string(rsp.NVName.Buffer) != string(ix.name) {
			return fmt.Errorf("%w (NV index %#x was replaced)", ErrCardAltered, ix.h)
		}
	}
	return nil
}

// Which secret a proof was of, for secretError.
const (
	pinProof = false
	pukProof = true
)

// secretError turns the TPM's answer to a PIN or PUK proof into the card's
// error: a wrong secret is a PINError with the tries left (its last try
// ErrPINLocked or ErrPUKLocked), a locked PIN is ErrCardBlocked once
// nothing can unblock it any more.
func (m *Manager) secretError(rec *record, puk bool, err error) error {
	if err == nil {
		return nil
	}
	delete(m.namesOK, rec.Serial) // a replaced index fails like a wrong secret
	counter, locked := m.pinCounter, ErrPINLocked
	if puk {
		counter, locked = m.pukCounter, ErrPUKLocked
	}
	switch {
	case isAuthFailure(err):
		left := -1
		if c, cerr := counter(rec); cerr == nil {
			left = c.left()
		}
		if left == 0 {
			return locked
		}
		return &PINError{PUK: puk, TriesLeft: left}
	case isTPM(err, tpm2.TPMRCAuthUnavailable):
		if !puk && !rec.NoPUK && rec.AdminKey == nil {
			if c, cerr := m.pukCounter(rec); cerr == nil && c.left() == 0 {
				return ErrCardBlocked
			}
		}
		return locked
	case isGone(err):
		return fmt.Errorf("%w: %v", ErrCardLost, err)
	}
	return busy(err)
}

// record returns the cached record of a card, reading it on first use.
func (m *Manager) record(serial string) (*record, error) {
	m.recMu.RLock()
	r, ok := m.records[serial]
	m.recMu.RUnlock()
	if ok {
		return r, nil
	}
	r, err := m.st.load(serial)
	if err != nil {
		return nil, err
	}
	if r.Pending {
		return nil, fmt.Errorf("%w: %s (its creation did not finish)", ErrCardNotFound, serial)
	}
	r.prepare()
	m.recMu.Lock()
	defer m.recMu.Unlock()
	if cached, ok := m.records[serial]; ok {
		return cached, nil // loaded meanwhile, or saved: the cache wins
	}
	m.records[serial] = r
	return r, nil
}

// saveRecord writes a changed copy; the cache changes only once the disk
// has it.
func (m *Manager) saveRecord(r *record) error {
	if err := m.st.save(r); err != nil {
		return err
	}
	m.cacheRecord(r)
	return nil
}

// cacheRecord makes r the card's record for this Manager.
func (m *Manager) cacheRecord(r *record) {
	r.prepare()
	m.recMu.Lock()
	m.records[r.Serial] = r
	m.recMu.Unlock()
}

func (r *record) clone() *record {
	c := *r
	c.Keys = append([]keyRecord(nil), r.Keys...)
	c.Certs = append([]certRecord(nil), r.Certs...)
	return &c
}

func (r *record) info() CardInfo {
	ci := CardInfo{
		Serial: r.Serial, Label: r.Label, Created: r.Created, Policy: r.Policy,
		PINTries: int(r.PINLimit), PUKTries: int(r.PUKLimit), MustChange: r.MustChange,
		HasPUK: !r.NoPUK, AdminKey: r.adminPublicKey(), Owner: r.Owner.clone(),
		Outdated: r.Version < recordVersion, DestroyIncomplete: r.Destroying,
	}
	for i := range r.Keys {
		ki, _, err := r.keyInfo(r.Keys[i].ID)
		if err == nil {
			ci.Keys = append(ci.Keys, ki)
		}
	}
	return ci
}

// Cards lists every card the state directory records.
func (m *Manager) Cards() ([]CardInfo, error) {
	if err := m.usable(); err != nil {
		return nil, err
	}
	serials, err := m.st.list()
	if err != nil {
		return nil, err
	}
	var out []CardInfo
	for _, s := range serials {
		r, err := m.record(s)
		if errors.Is(err, ErrCardNotFound) {
			continue // a creation that did not finish
		}
		if err != nil {
			return nil, err
		}
		out = append(out, r.info())
	}
	return out, nil
}

// Card returns one card's record.
func (m *Manager) Card(serial string) (CardInfo, error) {
	if err := m.usable(); err != nil {
		return CardInfo{}, err
	}
	r, err := m.record(serial)
	if err != nil {
		return CardInfo{}, err
	}
	return r.info(), nil
}

// Status reads the card's counters from the TPM. A card whose indices are
// gone gives ErrCardLost; one whose indices were replaced or whose limits
// are not the card's gives ErrCardAltered.
func (m *Manager) Status(serial string) (*CardStatus, error) {
	r, err := m.lockAnyCard(serial)
	if err != nil {
		return nil, err
	}
	defer m.unlock()
	if r.Destroying {
		return nil, fmt.Errorf("card %s: %w", serial, ErrDestroyIncomplete)
	}
	// The names are checked once: a listing of cards (every PKCS#11
	// C_GetTokenInfo) then costs two TPM commands a card, not four. Any
	// failed PIN or PUK use checks them again.
	if !m.namesOK[serial] {
		if err := m.checkNames(r); err != nil {
			return nil, fmt.Errorf("card %s: %w", serial, err)
		}
		m.namesOK[serial] = true
	}
	pin, err := m.pinCounter(r)
	if err != nil {
		return nil, fmt.Errorf("card %s: reading PIN counter: %w", serial, err)
	}
	puk, err := m.pukCounter(r)
	if err != nil {
		return nil, fmt.Errorf("card %s: reading PUK counter: %w", serial, err)
	}
	// The limits are the card's: only the PUK holder could write another
	// (and tpmcard never does), so a difference means tampering.
	if pin.Limit != r.PINLimit || (!r.NoPUK && puk.Limit != r.PUKLimit) {
		delete(m.namesOK, serial)
		return nil, fmt.Errorf("card %s: %w (the TPM holds a PIN limit of %d and a PUK limit of %d, the card was made with %d and %d)",
			serial, ErrCardAltered, pin.Limit, puk.Limit, r.PINLimit, r.PUKLimit)
	}
	st := &CardStatus{
		CardInfo:     r.info(),
		PINTriesLeft: pin.left(),
		PUKTriesLeft: puk.left(),
		PINLocked:    pin.left() == 0,
		PUKLocked:    puk.left() == 0,
		LoggedIn:     m.logins[serial] != nil,
	}
	st.PUKLocked = !r.NoPUK && puk.left() == 0
	// Blocked: nothing can unblock it any more.
	st.Blocked = st.PINLocked && (r.NoPUK || st.PUKLocked) && r.AdminKey == nil
	return st, nil
}

// SetOwner gives a card to another owner (nil: administrators only).
func (m *Manager) SetOwner(serial string, o *Owner) error {
	r, err := m.lockCard(serial)
	if err != nil {
		return err
	}
	defer m.unlock()
	c := r.clone()
	c.Owner = o.clone()
	return m.saveRecord(c)
}

// Destroy undefines the card's NV indices and removes its record and key
// blobs. A card whose TPM objects are already gone is removed all the same.
//
// The record first says the destroy began: a destroy cut short between the
// TPM and the disk leaves a card that lists as "destroy incomplete", that
// nothing but Destroy accepts, and that the next Destroy finishes. A
// record that cannot be marked stops the destroy before the TPM is touched.
func (m *Manager) Destroy(serial string) error {
	r, err := m.lockAnyCard(serial)
	if err != nil {
		return err
	}
	defer m.unlock()
	m.logoutLocked(serial)
	m.dropKeys(serial)
	delete(m.namesOK, serial)
	prev := r
	if !r.Destroying {
		c := r.clone()
		c.Destroying = true
		if err := m.saveRecord(c); err != nil {
			return fmt.Errorf("destroying card %s (nothing was destroyed): %w", serial, err)
		}
		r = c
	}
	if err := m.undefine(r); err != nil {
		if !prev.Destroying && m.checkNames(prev) == nil {
			// The TPM refused before it undefined anything: the card is
			// whole, and says so again.
			_ = m.saveRecord(prev)
			return fmt.Errorf("destroying card %s (nothing was destroyed): %w", serial, err)
		}
		return fmt.Errorf("destroying card %s (not finished: destroy it again): %w", serial, err)
	}
	if err := m.st.removeRecord(serial); err != nil {
		return fmt.Errorf("destroying card %s: %w (its TPM objects are gone, its record is not): %w", serial, ErrDestroyIncomplete, err)
	}
	m.recMu.Lock()
	delete(m.records, serial)
	m.recMu.Unlock()
	return nil
}

// adminPublicKey is the admin key the record names, nil if none.
func (r *record) adminPublicKey() *ecdsa.PublicKey {
	if r.AdminKey == nil {
		return nil
	}
	pub, err := tpm2.Unmarshal[tpm2.TPMTPublic](r.AdminKey)
	if err != nil {
		return nil
	}
	k, err := tpm2.Pub(*pub)
	if err != nil {
		return nil
	}
	ek, _ := k.(*ecdsa.PublicKey)
	return ek
}
