package tpmcard

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"unicode/utf8"
)

// A card key shows as two PKCS#11 objects, its private and its public
// half, and its certificate as a third; each has a CKA_LABEL and a CKA_ID
// that an application may change (C_SetAttributeValue), one object at a
// time. The key's own label and ID stay as they are (the ID names the key
// in the TPM's records and pairs it with its certificate); what an object
// shows instead is kept beside them, tied to the one key or certificate it
// was set on: a key deleted and made again with the same ID does not
// inherit it.

// ObjectClass names one of the objects of a card key.
type ObjectClass uint8

const (
	PrivateKeyObject ObjectClass = iota + 1
	PublicKeyObject
	CertificateObject
)

// Renamed is what an object shows in place of its key's label and ID.
type Renamed struct {
	Label    string
	ID       []byte
	HasLabel bool
	HasID    bool
}

// objectOverride is a Renamed on disk.
type objectOverride struct {
	Class    ObjectClass `json:"class"`
	KeyID    []byte      `json:"key_id"`
	Of       []byte      `json:"of"` // SHA-256 of the key's public area or of the certificate
	Label    string      `json:"label,omitempty"`
	ID       []byte      `json:"id,omitempty"`
	HasLabel bool        `json:"has_label,omitempty"`
	HasID    bool        `json:"has_id,omitempty"`
}

// Renames are a card's renamed objects.
type Renames struct{ m map[string]Renamed }

func renameKey(class ObjectClass, keyID []byte) string {
	return string(rune('0'+class)) + string(keyID)
}

// Of returns what an object shows in place of its key's label and ID.
func (rs Renames) Of(class ObjectClass, keyID []byte) Renamed { return rs.m[renameKey(class, keyID)] }

// fingerprint is what an override is tied to: the key's public area, or
// the certificate.
func (r *record) fingerprint(class ObjectClass, keyID []byte) []byte {
	if class == CertificateObject {
		if c := r.cert(keyID); c != nil {
			s := sha256.Sum256(c.DER)
			return s[:]
		}
		return nil
	}
	if k := r.key(keyID); k != nil {
		s := sha256.Sum256(k.Public)
		return s[:]
	}
	return nil
}

// Renames returns the card's renamed objects. It reads the record only.
func (m *Manager) Renames(serial string) (Renames, error) {
	if err := m.usable(); err != nil {
		return Renames{}, err
	}
	r, err := m.record(serial)
	if err != nil {
		return Renames{}, err
	}
	rs := Renames{m: map[string]Renamed{}}
	for _, o := range r.Overrides {
		if f := r.fingerprint(o.Class, o.KeyID); f != nil && bytes.Equal(f, o.Of) {
			rs.m[renameKey(o.Class, o.KeyID)] = Renamed{Label: o.Label, ID: o.ID, HasLabel: o.HasLabel, HasID: o.HasID}
		}
	}
	return rs, nil
}

// Rename sets the label, the ID or both (as n has them) that one object of
// key keyID shows. Overrides of keys and certificates gone since are
// dropped on the way.
func (m *Manager) Rename(serial string, class ObjectClass, keyID []byte, n Renamed) error {
	if class < PrivateKeyObject || class > CertificateObject {
		return fmt.Errorf("%w: object class %d", ErrInvalidOptions, class)
	}
	if n.HasLabel && (len(n.Label) > 64 || !utf8.ValidString(n.Label)) {
		return fmt.Errorf("%w: a label is limited to 64 bytes of UTF-8", ErrInvalidOptions)
	}
	if n.HasID && len(n.ID) > 64 {
		return fmt.Errorf("%w: an ID is limited to 64 bytes", ErrInvalidOptions)
	}
	r, err := m.lockCard(serial)
	if err != nil {
		return err
	}
	defer m.unlock()
	f := r.fingerprint(class, keyID)
	if f == nil {
		if class == CertificateObject {
			return fmt.Errorf("%w: card %s has no certificate for key %x", ErrCertNotFound, serial, keyID)
		}
		return fmt.Errorf("%w: card %s has no key %x", ErrKeyNotFound, serial, keyID)
	}
	c := r.clone()
	c.Overrides = nil
	o := objectOverride{Class: class, KeyID: bytes.Clone(keyID), Of: f}
	for _, old := range r.Overrides {
		if of := r.fingerprint(old.Class, old.KeyID); of == nil || !bytes.Equal(of, old.Of) {
			continue // its object is gone
		}
		if old.Class == class && bytes.Equal(old.KeyID, keyID) {
			o = old
			continue
		}
		c.Overrides = append(c.Overrides, old)
	}
	if n.HasLabel {
		o.Label, o.HasLabel = n.Label, true
	}
	if n.HasID {
		o.ID, o.HasID = bytes.Clone(n.ID), true
	}
	c.Overrides = append(c.Overrides, o)
	return m.saveRecord(c)
}
