package client

import (
	"crypto/x509"
	"fmt"

	"github.com/tpmcard/tpmcard/service/p11"
	"github.com/tpmcard/tpmcard/service/wire"
)

// CreateObject stores an object from a PKCS#11 template (administrators
// only; the service accepts X.509 certificates whose key is on the card).
func (c *Client) CreateObject(session uint32, template ...wire.Attribute) (uint64, error) {
	var r wire.ObjectCreated
	if err := c.call(&wire.CreateObject{Session: session, Template: template}, &r); err != nil {
		return 0, err
	}
	return r.Object, nil
}

// Certificate is a certificate object on a card.
type Certificate struct {
	Handle      uint64
	KeyID       []byte // CKA_ID: the key the certificate belongs to
	Label       string
	DER         []byte
	Certificate *x509.Certificate
}

// ImportCertificate stores a DER certificate on the card, beside the key
// whose public key it certifies (administrators only). An empty label lets
// the service choose one.
func (c *Client) ImportCertificate(serial string, der []byte, label string) (Certificate, error) {
	s, err := c.OpenSession(serial, true)
	if err != nil {
		return Certificate{}, err
	}
	defer c.CloseSession(s)
	tmpl := []wire.Attribute{
		{Type: p11.CKAClass, Value: wire.ULong(p11.CKOCertificate)},
		{Type: p11.CKACertificateType, Value: wire.ULong(p11.CKCX509)},
		{Type: p11.CKAToken, Value: wire.Bool(true)},
		{Type: p11.CKAValue, Value: der},
	}
	if label != "" {
		tmpl = append(tmpl, wire.Attribute{Type: p11.CKALabel, Value: []byte(label)})
	}
	h, err := c.CreateObject(s, tmpl...)
	if err != nil {
		return Certificate{}, err
	}
	return c.certificate(s, h)
}

// Certificates lists the card's certificate objects; it needs no login.
func (c *Client) Certificates(serial string) ([]Certificate, error) {
	s, err := c.OpenSession(serial, false)
	if err != nil {
		return nil, err
	}
	defer c.CloseSession(s)
	hs, err := c.FindObjects(s, wire.Attribute{Type: p11.CKAClass, Value: wire.ULong(p11.CKOCertificate)})
	if err != nil {
		return nil, err
	}
	out := make([]Certificate, 0, len(hs))
	for _, h := range hs {
		ci, err := c.certificate(s, h)
		if err != nil {
			return nil, err
		}
		out = append(out, ci)
	}
	return out, nil
}

func (c *Client) certificate(s uint32, h uint64) (Certificate, error) {
	v, err := c.GetAttributes(s, h, p11.CKAID, p11.CKALabel, p11.CKAValue)
	if err != nil {
		return Certificate{}, err
	}
	for _, a := range v {
		if a.Status != wire.OK {
			return Certificate{}, fmt.Errorf("tpmcard: reading certificate attribute %#x: %v", a.Type, a.Status)
		}
	}
	cert, err := x509.ParseCertificate(v[2].Value)
	if err != nil {
		return Certificate{}, fmt.Errorf("tpmcard: the service sent a malformed certificate: %w", err)
	}
	return Certificate{Handle: h, KeyID: v[0].Value, Label: string(v[1].Value), DER: v[2].Value, Certificate: cert}, nil
}

// DeleteCertificate removes the certificate of key keyID from the card
// (administrators only); the key stays.
func (c *Client) DeleteCertificate(serial string, keyID []byte) error {
	s, err := c.OpenSession(serial, true)
	if err != nil {
		return err
	}
	defer c.CloseSession(s)
	hs, err := c.FindObjects(s, wire.Attribute{Type: p11.CKAClass, Value: wire.ULong(p11.CKOCertificate)},
		wire.Attribute{Type: p11.CKAID, Value: keyID})
	if err != nil {
		return err
	}
	if len(hs) == 0 {
		return wire.Errorf(wire.ObjectNotFound, "key %x has no certificate on the card", keyID)
	}
	return c.DestroyObject(s, hs[0])
}

// AttestKey asks the service for a key attestation statement
// (administrators only) and returns its JSON encoding; tpmcard/attest
// parses and verifies it.
func (c *Client) AttestKey(serial string, keyID, nonce []byte) ([]byte, error) {
	var r wire.Attestation
	if err := c.call(&wire.AttestKey{Serial: serial, KeyID: keyID, Nonce: nonce}, &r); err != nil {
		return nil, err
	}
	return r.Statement, nil
}
