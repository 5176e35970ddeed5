package tpmcard

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
)

// SessionKey is a key pair made in the TPM for one PKCS#11 session (a
// session object, CKA_TOKEN false, PKCS#11 v2.40 §4.4): a child of the SRK
// with the card's key template and the authPolicy of its PIN use, so that
// it signs only after the card's PIN, exactly as the card's own keys. It
// is never written to the state directory: its blobs live in this value
// and its handle, while loaded, in the Manager's key cache (evicted and
// reloaded as any key). DropSessionKey flushes it from the TPM; a
// SessionKey that is dropped, or whose card is destroyed, signs no more.
type SessionKey struct {
	serial  string
	cacheID string
	rec     keyRecord
	info    KeyInfo
	dropped bool // under the Manager's lock
}

// Info describes the key (KeyInfo.ID is its CKA_ID, which may equal a
// token key's).
func (k *SessionKey) Info() KeyInfo { return k.info }

// Serial is the card the key belongs to.
func (k *SessionKey) Serial() string { return k.serial }

// GenerateSessionKey creates a session key on the card, as GenerateKey a
// key, but keeps nothing of it on disk and needs no ID unique on the card.
func (m *Manager) GenerateSessionKey(ctx context.Context, serial string, opts KeyOptions, progress func(Progress)) (*SessionKey, error) {
	var nonce [16]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		return nil, err
	}
	r, err := m.lockCard(serial)
	if err != nil {
		return nil, err
	}
	defer m.unlock()
	if err := opts.validate(); err != nil {
		return nil, err
	}
	kr, info, err := m.createKey(ctx, r, opts, progress)
	if err != nil {
		return nil, err
	}
	kr.Creation = nil // for attestation, which session keys do not have
	// The cache ID shares the card's prefix (dropKeys), never a token
	// key's: those are hex after the slash.
	return &SessionKey{serial: serial, cacheID: serial + "/s" + hex.EncodeToString(nonce[:]), rec: kr, info: info}, nil
}

// SignSessionKey signs with a session key, as Sign with a key of the card:
// after Login, with opts.PIN for a PINAlways key.
func (m *Manager) SignSessionKey(k *SessionKey, digest []byte, opts SignOptions) ([]byte, error) {
	defer opts.PIN.Wipe()
	r, err := m.lockCard(k.serial)
	if err != nil {
		return nil, err
	}
	defer m.unlock()
	if k.dropped {
		return nil, fmt.Errorf("%w: session key %x was destroyed", ErrKeyNotFound, k.info.ID)
	}
	return m.signLocked(r, k.cacheID, &k.rec, digest, opts)
}

// DropSessionKey ends a session key: it flushes the key from the TPM if it
// is loaded there and forgets its blobs. Dropping it again does nothing.
func (m *Manager) DropSessionKey(k *SessionKey) {
	if m.lock() != nil {
		// A closed Manager flushed every key it held.
		k.dropped = true
		return
	}
	defer m.unlock()
	k.dropped = true
	m.dropKey(k.cacheID)
	k.rec.Private, k.rec.Public = nil, nil
}

// StateDir is the directory the Manager keeps card records in.
func (m *Manager) StateDir() string { return m.st.dir }
