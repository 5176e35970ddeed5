package tpmcard

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/google/go-tpm/tpm2"
)

// KeyInfo describes a card key.
type KeyInfo struct {
	ID        []byte // PKCS#11 CKA_ID; by default SHA-1 of the EC point or RSA modulus (keyID)
	Label     string
	Algorithm Algorithm
	Public    crypto.PublicKey // *ecdsa.PublicKey or *rsa.PublicKey
	Created   time.Time
	PINUse    PINUse // how often the key needs the PIN
	// PrivateDestroyed: the private key was destroyed (DeletePrivateKey),
	// its TPM blobs are gone; the card keeps the public key until
	// DeletePublicKey. PublicDestroyed: the PKCS#11 public key object was
	// destroyed (DeletePublicKey); the private key still signs.
	PrivateDestroyed bool
	PublicDestroyed  bool
}

// KeyOptions describe a new key. ID and Label are optional; PINUse is
// PINOnce unless set.
type KeyOptions struct {
	Algorithm Algorithm
	Label     string
	ID        []byte
	PINUse    PINUse
}

// Progress is reported while a key is being generated, which can take
// tens of seconds for RSA on some TPMs.
type Progress struct {
	Algorithm Algorithm
	Elapsed   time.Duration
}

func (k *keyRecord) public() (*tpm2.TPMTPublic, error) {
	p := tpm2.BytesAs2B[tpm2.TPMTPublic](k.Public)
	return p.Contents()
}

func (k *keyRecord) info() (KeyInfo, error) {
	tp, err := k.public()
	if err != nil {
		return KeyInfo{}, fmt.Errorf("key %x: %w", k.ID, err)
	}
	pub, err := tpm2.Pub(*tp)
	if err != nil {
		return KeyInfo{}, fmt.Errorf("key %x: %w", k.ID, err)
	}
	return KeyInfo{ID: k.ID, Label: k.Label, Algorithm: k.Algorithm, Public: pub, Created: k.Created, PINUse: k.PINUse,
		PrivateDestroyed: k.PrivateDestroyed, PublicDestroyed: k.PublicDestroyed}, nil
}

// keyID is a new key's default CKA_ID: SHA-1 of the EC point (04 || X ||
// Y) or of the RSA modulus, big-endian without leading zeros. NSS
// (PK11_MakeIDFromPubKey) and OpenSC compute the same from a certificate's
// public key, and so find the key of a certificate by it.
func keyID(pub crypto.PublicKey) ([]byte, error) {
	var bits []byte
	switch p := pub.(type) {
	case *ecdsa.PublicKey:
		e, err := p.ECDH()
		if err != nil {
			return nil, err
		}
		bits = e.Bytes()
	case *rsa.PublicKey:
		bits = p.N.Bytes()
	default:
		return nil, fmt.Errorf("unexpected public key %T", pub)
	}
	sum := sha1.Sum(bits)
	return sum[:], nil
}

// GenerateKey creates a key inside the TPM, bound to the card's PIN. It
// needs no PIN: the key is unusable until one is proved. It is idempotent
// for a caller-chosen ID: when the card has a key with opts.ID,
// opts.Algorithm and opts.PINUse, that key is returned; with another
// algorithm or PIN use, an ErrInvalidOptions. progress, when not nil, is
// called about twice a second while the TPM works.
func (m *Manager) GenerateKey(ctx context.Context, serial string, opts KeyOptions, progress func(Progress)) (KeyInfo, error) {
	r, err := m.lockCard(serial)
	if err != nil {
		return KeyInfo{}, err
	}
	defer m.unlock()
	if err := opts.validate(); err != nil {
		return KeyInfo{}, err
	}
	if opts.ID != nil {
		if k := r.key(opts.ID); k != nil {
			// A client that chose the ID and retries after losing the
			// answer (it died, the connection broke) gets the key made
			// for it, not a second one.
			switch {
			case k.PrivateDestroyed:
				return KeyInfo{}, fmt.Errorf("%w: card %s keeps the public key of a destroyed key with ID %x: destroy that public key too, or choose another ID", ErrInvalidOptions, serial, opts.ID)
			case k.Algorithm != opts.Algorithm:
				return KeyInfo{}, fmt.Errorf("%w: card %s already has a %s key with ID %x: choose another ID, or delete that key first", ErrInvalidOptions, serial, k.Algorithm, opts.ID)
			case k.PINUse != opts.PINUse:
				return KeyInfo{}, fmt.Errorf("%w: card %s already has a key with ID %x whose PIN use is %s: choose another ID, or delete that key first", ErrInvalidOptions, serial, opts.ID, k.PINUse)
			}
			ki, _, err := r.keyInfo(opts.ID)
			return ki, err
		}
	}
	kr, info, err := m.createKey(ctx, r, opts, progress)
	if err != nil {
		return KeyInfo{}, err
	}
	if opts.ID == nil && r.key(kr.ID) != nil {
		return KeyInfo{}, fmt.Errorf("%w: card %s already has a key with ID %x", ErrInvalidOptions, serial, kr.ID)
	}
	c := r.clone()
	c.Keys = append(c.Keys, kr)
	if err := m.saveRecord(c); err != nil {
		return KeyInfo{}, err
	}
	return info, nil
}

func (o KeyOptions) validate() error {
	if len(o.ID) > 64 || len(o.Label) > 64 {
		return fmt.Errorf("%w: key ID is limited to 64 bytes and label to 64 characters", ErrInvalidOptions)
	}
	if o.PINUse > PINAlways {
		return fmt.Errorf("%w: unknown PIN use %d", ErrInvalidOptions, o.PINUse)
	}
	return nil
}

// createKey has the TPM create a key of the card under the SRK, with the
// authPolicy of its PIN use, and returns its record (default ID and label
// filled in) and info. The caller holds the lock.
func (m *Manager) createKey(ctx context.Context, r *record, opts KeyOptions, progress func(Progress)) (keyRecord, KeyInfo, error) {
	tmpl, err := opts.Algorithm.template(keyPolicyFor(r.PINName, opts.PINUse))
	if err != nil {
		return keyRecord{}, KeyInfo{}, err
	}
	if err := ctx.Err(); err != nil {
		return keyRecord{}, KeyInfo{}, err
	}
	stop := reportProgress(opts.Algorithm, progress, m.progressEvery)
	var rsp *tpm2.CreateResponse
	err = m.withRoom(func() (err error) {
		rsp, err = tpm2.Create{
			ParentHandle: tpm2.AuthHandle{Handle: m.srk.handle, Name: m.srk.name, Auth: tpm2.PasswordAuth(nil)},
			InPublic:     tpm2.New2B(tmpl),
		}.Execute(m.tpm)
		return err
	})
	stop()
	if err != nil {
		if isTPM(err, tpm2.TPMRCKeySize) || isTPM(err, tpm2.TPMRCCurve) || isTPM(err, tpm2.TPMRCValue) || isTPM(err, tpm2.TPMRCAsymmetric) {
			return keyRecord{}, KeyInfo{}, fmt.Errorf("generating %s key: %w", opts.Algorithm, ErrUnsupported)
		}
		return keyRecord{}, KeyInfo{}, fmt.Errorf("generating %s key: %w", opts.Algorithm, busy(err))
	}
	kr := keyRecord{
		ID:        bytes.Clone(opts.ID),
		Label:     opts.Label,
		Algorithm: opts.Algorithm,
		Public:    tpm2.Marshal(rsp.OutPublic),
		Private:   tpm2.Marshal(rsp.OutPrivate),
		Created:   time.Now().UTC().Truncate(time.Second),
		Creation:  newKeyCreation(rsp),
		PINUse:    opts.PINUse,
	}
	// TPM2B marshalling keeps the size prefix; store the contents alone.
	kr.Public, kr.Private = kr.Public[2:], kr.Private[2:]
	info, err := kr.info()
	if err != nil {
		return keyRecord{}, KeyInfo{}, err
	}
	if kr.ID == nil {
		if kr.ID, err = keyID(info.Public); err != nil {
			return keyRecord{}, KeyInfo{}, err
		}
		info.ID = kr.ID
	}
	if kr.Label == "" {
		kr.Label = fmt.Sprintf("%s %x", opts.Algorithm, kr.ID[:min(4, len(kr.ID))]) // a chosen ID may be short
		info.Label = kr.Label
	}
	return kr, info, nil
}

func reportProgress(a Algorithm, progress func(Progress), every time.Duration) (stop func()) {
	if progress == nil {
		return func() {}
	}
	start := time.Now()
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				progress(Progress{Algorithm: a, Elapsed: time.Since(start)})
			}
		}
	}()
	return func() { close(done); <-finished }
}

// signingKey finds the card's key with this ID that can sign: one whose
// private key was not destroyed.
func (r *record) signingKey(id []byte) *keyRecord {
	if k := r.key(id); k != nil && !k.PrivateDestroyed {
		return k
	}
	return nil
}

// key finds the card's key with this ID, whichever of its halves are
// left.
func (r *record) key(id []byte) *keyRecord {
	for i := range r.Keys {
		if bytes.Equal(r.Keys[i].ID, id) {
			return &r.Keys[i]
		}
	}
	return nil
}

// Keys lists the card's keys.
func (m *Manager) Keys(serial string) ([]KeyInfo, error) {
	ci, err := m.Card(serial)
	if err != nil {
		return nil, err
	}
	return ci.Keys, nil
}

// Key returns one key of the card.
func (m *Manager) Key(serial string, id []byte) (KeyInfo, error) {
	if err := m.usable(); err != nil {
		return KeyInfo{}, err
	}
	r, err := m.record(serial)
	if err != nil {
		return KeyInfo{}, err
	}
	ki, ok, err := r.keyInfo(id)
	if !ok {
		return KeyInfo{}, fmt.Errorf("%w: card %s has no key %x", ErrKeyNotFound, serial, id)
	}
	return ki, err
}

// DeleteKey removes a key from the card: its blobs, its public key and
// its certificate. The TPM keeps nothing of a key that is not loaded, so
// the key is gone for good.
func (m *Manager) DeleteKey(serial string, id []byte) error {
	r, err := m.lockCard(serial)
	if err != nil {
		return err
	}
	defer m.unlock()
	if r.key(id) == nil {
		return fmt.Errorf("%w: card %s has no key %x", ErrKeyNotFound, serial, id)
	}
	c := r.clone()
	c.Keys = withoutKey(c.Keys, id)
	c.Certs = withoutCert(c.Certs, id) // a certificate of a gone key is useless
	m.dropKey(keyCacheID(serial, id))
	return m.saveRecord(c)
}

// DeletePrivateKey destroys a key's private half, as PKCS#11's
// C_DestroyObject of its private key object (v2.40 §5.7): its TPM blobs
// leave the card, so that nothing can sign with it again, and the card
// keeps the public key, as its own object, until DeletePublicKey. The
// key's certificate stays too, as an object of its own: SoftHSM2 keeps a
// certificate whose key is destroyed, and so does a PIV slot whose key is
// deleted. When the public key object was destroyed already, the key
// leaves the card.
func (m *Manager) DeletePrivateKey(serial string, id []byte) error {
	return m.deleteHalf(serial, id, true)
}

// DeletePublicKey destroys a key's public key object: the key no longer
// lists its public half (KeyInfo.PublicDestroyed) and signs on. When its
// private key was destroyed already, the key leaves the card; its
// certificate stays.
func (m *Manager) DeletePublicKey(serial string, id []byte) error {
	return m.deleteHalf(serial, id, false)
}

func (m *Manager) deleteHalf(serial string, id []byte, private bool) error {
	r, err := m.lockCard(serial)
	if err != nil {
		return err
	}
	defer m.unlock()
	k := r.key(id)
	if k == nil || (private && k.PrivateDestroyed) || (!private && k.PublicDestroyed) {
		half := "public"
		if private {
			half = "private"
		}
		return fmt.Errorf("%w: card %s has no %s key %x", ErrKeyNotFound, serial, half, id)
	}
	c := r.clone()
	if (private && k.PublicDestroyed) || (!private && k.PrivateDestroyed) {
		c.Keys = withoutKey(c.Keys, id)
	} else {
		nk := c.key(id)
		if private {
			nk.Private, nk.PrivateDestroyed = nil, true
		} else {
			nk.PublicDestroyed = true
		}
	}
	if private {
		m.dropKey(keyCacheID(serial, id))
	}
	return m.saveRecord(c)
}

func withoutKey(keys []keyRecord, id []byte) []keyRecord {
	out := keys[:0:0]
	for _, k := range keys {
		if !bytes.Equal(k.ID, id) {
			out = append(out, k)
		}
	}
	return out
}

// dropKey flushes a loaded key and forgets its handle.
func (m *Manager) dropKey(cacheID string) {
	if k, ok := m.keys[cacheID]; ok {
		flush(m.tpm, k.handle)
		delete(m.keys, cacheID)
	}
}

func keyCacheID(serial string, id []byte) string { return serial + "/" + hex.EncodeToString(id) }

func (m *Manager) dropKeys(serial string) {
	prefix := serial + "/"
	for id, k := range m.keys {
		if len(id) > len(prefix) && id[:len(prefix)] == prefix {
			flush(m.tpm, k.handle)
			delete(m.keys, id)
		}
	}
}

// loadKey returns the key's transient handle, loading its blobs under the
// SRK the first time and after an eviction.
func (m *Manager) loadKey(r *record, k *keyRecord) (*loadedKey, error) {
	return m.loadKeyAs(keyCacheID(r.Serial, k.ID), k)
}

// loadKeyAs is loadKey for a key that id names in the cache (keyCacheID,
// or a session key's own).
func (m *Manager) loadKeyAs(id string, k *keyRecord) (*loadedKey, error) {
	if lk, ok := m.keys[id]; ok {
		lk.used = m.tick()
		return lk, nil
	}
	var rsp *tpm2.LoadResponse
	err := m.withRoom(func() (err error) {
		rsp, err = tpm2.Load{
			ParentHandle: tpm2.AuthHandle{Handle: m.srk.handle, Name: m.srk.name, Auth: tpm2.PasswordAuth(nil)},
			InPrivate:    tpm2.TPM2BPrivate{Buffer: k.Private},
			InPublic:     tpm2.BytesAs2B[tpm2.TPMTPublic](k.Public),
		}.Execute(m.tpm)
		return err
	})
	if err != nil {
		if isGone(err) || isTPM(err, tpm2.TPMRCBinding) {
			return nil, fmt.Errorf("%w (key %x does not load on this TPM: %v)", ErrCardLost, k.ID, err)
		}
		return nil, fmt.Errorf("loading key %x: %w", k.ID, busy(err))
	}
	lk := &loadedKey{handle: rsp.ObjectHandle, name: rsp.Name, used: m.tick()}
	m.keys[id] = lk
	return lk, nil
}
