package client

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"io"
	"math/big"
	"sync"

	"github.com/tpmcard/tpmcard/service/p11"
	"github.com/tpmcard/tpmcard/service/wire"
)

// PKCS#11 constants the Signer uses.
const (
	ckoPublicKey  = 2
	ckoPrivateKey = 3
	cksROPublic   = 0
	cksRWPublic   = 2
)

// Signer is a crypto.Signer backed by a card key through the service. It
// signs while this Client is logged in to the card (Login with the PIN on
// any session of the card); otherwise Sign returns a NotLoggedIn
// *wire.StatusError. ECDSA signatures are ASN.1 DER (crypto.Signer's
// convention); RSA keys sign PKCS #1 v1.5, or PSS with *rsa.PSSOptions
// whose salt is as long as the hash (rsa.PSSSaltLengthEqualsHash, or
// PSSSaltLengthAuto, which then means the same; the TPM makes no other).
type Signer struct {
	c       *Client
	serial  string
	session uint32
	id      []byte
	pub     crypto.PublicKey

	mu   sync.Mutex
	priv uint64 // private object handle, found at the first Sign
}

var _ crypto.Signer = (*Signer)(nil)

// Signer returns a crypto.Signer for the card key with CKA_ID keyID. It
// opens a session of its own on the card and reads the public key, which
// needs no login.
func (c *Client) Signer(serial string, keyID []byte) (*Signer, error) {
	sess, err := c.OpenSession(serial, false)
	if err != nil {
		return nil, err
	}
	hs, err := c.FindObjects(sess,
		wire.Attribute{Type: p11.CKAClass, Value: wire.ULong(ckoPublicKey)},
		wire.Attribute{Type: p11.CKAID, Value: keyID})
	if err != nil {
		return nil, err
	}
	if len(hs) != 1 {
		c.CloseSession(sess)
		return nil, fmt.Errorf("%w: card %s, key %x", errNoKey, serial, keyID)
	}
	vals, err := c.GetAttributes(sess, hs[0], p11.CKAPublicKeyInfo)
	if err != nil {
		return nil, err
	}
	if vals[0].Status != wire.OK {
		return nil, fmt.Errorf("tpmcard: reading public key: %v", vals[0].Status)
	}
	pub, err := x509.ParsePKIXPublicKey(vals[0].Value)
	if err != nil {
		return nil, fmt.Errorf("tpmcard: parsing public key: %w", err)
	}
	return &Signer{c: c, serial: serial, session: sess, id: append([]byte(nil), keyID...), pub: pub}, nil
}

// Public returns the key's public half.
func (s *Signer) Public() crypto.PublicKey { return s.pub }

// Close closes the Signer's session. If it is the connection's last
// session on the card, that logs the connection out of the card.
func (s *Signer) Close() error { return s.c.CloseSession(s.session) }

// Sign signs digest, which must be the hash of the message under
// opts.HashFunc().
func (s *Signer) Sign(_ io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	h := opts.HashFunc()
	if h != 0 && len(digest) != h.Size() {
		return nil, fmt.Errorf("tpmcard: %d-byte digest for %v", len(digest), h)
	}
	priv, err := s.privateHandle()
	if err != nil {
		return nil, err
	}
	switch s.pub.(type) {
	case *ecdsa.PublicKey:
		raw, err := s.c.Sign(s.session, priv, p11.CKMECDSA, nil, digest)
		if err != nil {
			return nil, err
		}
		return rawToASN1(raw)
	case *rsa.PublicKey:
		if pss, ok := opts.(*rsa.PSSOptions); ok {
			if pss.SaltLength != rsa.PSSSaltLengthEqualsHash && pss.SaltLength != rsa.PSSSaltLengthAuto && pss.SaltLength != h.Size() {
				return nil, fmt.Errorf("tpmcard: PSS salt length %d: the TPM uses the hash length", pss.SaltLength)
			}
			param, err := pssParams(h)
			if err != nil {
				return nil, err
			}
			return s.c.Sign(s.session, priv, p11.CKMRSAPKCSPSS, param, digest)
		}
		di, err := digestInfo(h, digest)
		if err != nil {
			return nil, err
		}
		return s.c.Sign(s.session, priv, p11.CKMRSAPKCS, nil, di)
	}
	return nil, fmt.Errorf("tpmcard: unexpected public key %T", s.pub)
}

// privateHandle finds the private key object, which shows only after login.
func (s *Signer) privateHandle() (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.priv != 0 {
		return s.priv, nil
	}
	hs, err := s.c.FindObjects(s.session,
		wire.Attribute{Type: p11.CKAClass, Value: wire.ULong(ckoPrivateKey)},
		wire.Attribute{Type: p11.CKAID, Value: s.id})
	if err != nil {
		return 0, err
	}
	if len(hs) != 1 {
		// The private object shows only after login: say which it is.
		if st, err := s.c.SessionInfo(s.session); err == nil && (st.State == cksROPublic || st.State == cksRWPublic) {
			return 0, wire.NewError(wire.NotLoggedIn, "not logged in to the card")
		}
		return 0, fmt.Errorf("%w: card %s, key %x", errNoKey, s.serial, s.id)
	}
	s.priv = hs[0]
	return s.priv, nil
}

// rawToASN1 converts r||s to an ASN.1 DER ECDSA-Sig-Value (RFC 3279
// §2.2.3).
func rawToASN1(raw []byte) ([]byte, error) {
	if len(raw) == 0 || len(raw)%2 != 0 {
		return nil, errors.New("tpmcard: malformed r||s signature")
	}
	n := len(raw) / 2
	return asn1.Marshal(struct{ R, S *big.Int }{new(big.Int).SetBytes(raw[:n]), new(big.Int).SetBytes(raw[n:])})
}

// digestInfo builds the DER DigestInfo CKM_RSA_PKCS signs (RFC 8017 §9.2).
func digestInfo(h crypto.Hash, digest []byte) ([]byte, error) {
	prefix, ok := map[crypto.Hash][]byte{
		crypto.SHA1:   {0x30, 0x21, 0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a, 0x05, 0x00, 0x04, 0x14},
		crypto.SHA256: {0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20},
		crypto.SHA384: {0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02, 0x05, 0x00, 0x04, 0x30},
		crypto.SHA512: {0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03, 0x05, 0x00, 0x04, 0x40},
	}[h]
	if !ok {
		return nil, fmt.Errorf("tpmcard: RSA signing with hash %v is not supported", h)
	}
	return append(append([]byte(nil), prefix...), digest...), nil
}

// pssParams encodes CK_RSA_PKCS_PSS_PARAMS for hash h: MGF1 with h and a
// salt as long as h.
func pssParams(h crypto.Hash) ([]byte, error) {
	var alg, mgf uint64
	switch h {
	case crypto.SHA1:
		alg, mgf = 0x220, 1
	case crypto.SHA256:
		alg, mgf = 0x250, 2
	case crypto.SHA384:
		alg, mgf = 0x260, 3
	case crypto.SHA512:
		alg, mgf = 0x270, 4
	default:
		return nil, fmt.Errorf("tpmcard: PSS with hash %v is not supported", h)
	}
	p := wire.ULong(alg)
	p = append(p, wire.ULong(mgf)...)
	return append(p, wire.ULong(uint64(h.Size()))...), nil
}
