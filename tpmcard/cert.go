package tpmcard

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"
)

// MaxCertificateSize bounds one certificate's DER encoding. Smart card
// certificates are one to three kilobytes; 16 KiB leaves room for long
// extension lists and refuses anything that is not a certificate.
const MaxCertificateSize = 16 << 10

// ErrBadCertificate reports input that is not one well-formed X.509
// certificate of acceptable size.
var ErrBadCertificate = errors.New("not a usable X.509 certificate")

// ErrCertNotFound reports a key without a certificate on the card.
var ErrCertNotFound = fmt.Errorf("certificate %w", ErrNotFound)

// certRecord is a certificate installed on the card, kept beside the key
// whose public key it certifies (one certificate per key).
type certRecord struct {
	KeyID []byte    `json:"key_id"`
	Label string    `json:"label"`
	DER   []byte    `json:"der"`
	Added time.Time `json:"added"`
}

// CertInfo describes a certificate on a card.
type CertInfo struct {
	KeyID       []byte // CKA_ID of the key the certificate belongs to
	Label       string
	DER         []byte
	Certificate *x509.Certificate
	Added       time.Time
}

func (c *certRecord) info() (CertInfo, error) {
	cert, err := x509.ParseCertificate(c.DER)
	if err != nil {
		return CertInfo{}, fmt.Errorf("certificate of key %x: %w", c.KeyID, err)
	}
	return CertInfo{KeyID: c.KeyID, Label: c.Label, DER: c.DER, Certificate: cert, Added: c.Added}, nil
}

// ParseCertificate checks that der is exactly one X.509 certificate of at
// most MaxCertificateSize bytes. Errors wrap ErrBadCertificate.
func ParseCertificate(der []byte) (*x509.Certificate, error) {
	if len(der) == 0 {
		return nil, fmt.Errorf("%w: empty input", ErrBadCertificate)
	}
	if len(der) > MaxCertificateSize {
		return nil, fmt.Errorf("%w: %d bytes, the limit is %d", ErrBadCertificate, len(der), MaxCertificateSize)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadCertificate, err)
	}
	return cert, nil
}

func withoutCert(certs []certRecord, keyID []byte) []certRecord {
	out := certs[:0:0]
	for _, c := range certs {
		if !bytes.Equal(c.KeyID, keyID) {
			out = append(out, c)
		}
	}
	return out
}

func (r *record) cert(keyID []byte) *certRecord {
	for i := range r.Certs {
		if bytes.Equal(r.Certs[i].KeyID, keyID) {
			return &r.Certs[i]
		}
	}
	return nil
}

// keyFor finds the card key whose public key is pub.
func (r *record) keyFor(pub crypto.PublicKey) (*keyRecord, error) {
	type equaler interface{ Equal(crypto.PublicKey) bool }
	for i := range r.Keys {
		ki, err := r.Keys[i].info()
		if err != nil {
			return nil, err
		}
		if e, ok := ki.Public.(equaler); ok && e.Equal(pub) {
			return &r.Keys[i], nil
		}
	}
	return nil, nil
}

// ImportCertificate installs a certificate on the card beside the key whose
// public key it certifies, replacing that key's previous certificate (a
// renewal). It refuses malformed or oversized DER (ErrBadCertificate) and a
// certificate whose public key is no key of the card (ErrKeyNotFound); on
// any error the card is unchanged. Dates, key usage and EKU are the
// caller's to judge: a card may hold a certificate not yet valid. label
// defaults to the key's label, else the subject's common name.
func (m *Manager) ImportCertificate(serial string, der []byte, label string) (CertInfo, error) {
	cert, err := ParseCertificate(der)
	if err != nil {
		return CertInfo{}, err
	}
	if len(label) > 64 || !utf8.ValidString(label) {
		return CertInfo{}, fmt.Errorf("%w: a certificate label is limited to 64 bytes of UTF-8", ErrInvalidOptions)
	}
	der = bytes.Clone(cert.Raw)
	r, err := m.lockCard(serial)
	if err != nil {
		return CertInfo{}, err
	}
	defer m.unlock()
	k, err := r.keyFor(cert.PublicKey)
	if err != nil {
		return CertInfo{}, err
	}
	if k == nil {
		return CertInfo{}, fmt.Errorf("%w: the certificate's public key (subject %q) is not the public key of any key on card %s",
			ErrKeyNotFound, cert.Subject.String(), serial)
	}
	if label == "" {
		// The key's label, so that PKCS#11 applications that pair a
		// certificate with its key by label (as by CKA_ID) find them
		// together; a key without one lends the subject's common name.
		label = k.Label
		if label == "" && len(cert.Subject.CommonName) <= 64 {
			label = cert.Subject.CommonName
		}
	}
	cr := certRecord{KeyID: bytes.Clone(k.ID), Label: label, DER: der, Added: time.Now().UTC().Truncate(time.Second)}
	c := r.clone()
	c.Certs = append(withoutCert(c.Certs, k.ID), cr)
	if err := m.saveRecord(c); err != nil {
		return CertInfo{}, err
	}
	return CertInfo{KeyID: cr.KeyID, Label: cr.Label, DER: cr.DER, Certificate: cert, Added: cr.Added}, nil
}

// Certificates lists the certificates installed on the card. It reads the
// record only and never waits for the TPM.
func (m *Manager) Certificates(serial string) ([]CertInfo, error) {
	if err := m.usable(); err != nil {
		return nil, err
	}
	r, err := m.record(serial)
	if err != nil {
		return nil, err
	}
	out := make([]CertInfo, 0, len(r.Certs))
	for i := range r.Certs {
		ci, err := r.Certs[i].info()
		if err != nil {
			return nil, fmt.Errorf("card %s: %w", serial, err)
		}
		out = append(out, ci)
	}
	return out, nil
}

// Certificate returns the certificate of one key.
func (m *Manager) Certificate(serial string, keyID []byte) (CertInfo, error) {
	if err := m.usable(); err != nil {
		return CertInfo{}, err
	}
	r, err := m.record(serial)
	if err != nil {
		return CertInfo{}, err
	}
	c := r.cert(keyID)
	if c == nil {
		return CertInfo{}, fmt.Errorf("%w: card %s has no certificate for key %x", ErrCertNotFound, serial, keyID)
	}
	return c.info()
}

// DeleteCertificate removes the certificate of key keyID from the card; the
// key stays.
func (m *Manager) DeleteCertificate(serial string, keyID []byte) error {
	r, err := m.lockCard(serial)
	if err != nil {
		return err
	}
	defer m.unlock()
	if r.cert(keyID) == nil {
		return fmt.Errorf("%w: card %s has no certificate for key %x", ErrCertNotFound, serial, keyID)
	}
	c := r.clone()
	c.Certs = withoutCert(c.Certs, keyID)
	return m.saveRecord(c)
}
