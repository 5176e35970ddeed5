package client

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"fmt"
	"io"

	"github.com/tpmcard/tpmcard/service/p11"
	"github.com/tpmcard/tpmcard/service/wire"
	"github.com/tpmcard/tpmcard/tpmcard/secret"
)

// DeleteKey removes a key from the card, both its halves and its
// certificate (administrators only). DestroyObject destroys one PKCS#11
// object, one half of a key.
func (c *Client) DeleteKey(serial string, keyID []byte) error {
	return c.call(&wire.DeleteKey{Serial: serial, ID: keyID}, nil)
}

// GenerateKeyPairPolicy is GenerateKeyPair with a PIN policy: "once" (the
// PIN once per login) or "always" (for every signature).
func (c *Client) GenerateKeyPairPolicy(session uint32, algorithm, label string, id []byte, pinPolicy string, progress func(wire.Progress)) (public, private uint64, err error) {
	c.progMu.Lock()
	defer c.progMu.Unlock()
	c.progress = progress
	defer func() { c.progress = nil }()
	var r wire.KeyPairGenerated
	if err := c.call(&wire.GenerateKeyPair{Session: session, Algorithm: algorithm, Label: label, ID: id, PINPolicy: pinPolicy}, &r); err != nil {
		return 0, 0, err
	}
	return r.Public, r.Private, nil
}

// SignWithPIN is Sign for a key that may need the PIN for every
// signature (CKA_ALWAYS_AUTHENTICATE, a key made with --pin-policy
// always): for such a key it signs as PKCS#11 does, C_SignInit, then
// C_Login(CKU_CONTEXT_SPECIFIC) with pin, then C_Sign; any other key signs
// as Sign does and pin is not used. The Client must be logged in, as for
// Sign.
func (s *Signer) SignWithPIN(rand io.Reader, digest []byte, opts crypto.SignerOpts, pin secret.Secret) ([]byte, error) {
	priv, err := s.privateHandle()
	if err != nil {
		return nil, err
	}
	v, err := s.c.GetAttributes(s.session, priv, p11.CKAAlwaysAuthenticate)
	if err != nil {
		return nil, err
	}
	if len(v) != 1 || v[0].Status != wire.OK || !bytes.Equal(v[0].Value, wire.Bool(true)) {
		return s.Sign(rand, digest, opts)
	}
	h := opts.HashFunc()
	if h != 0 && len(digest) != h.Size() {
		return nil, fmt.Errorf("tpmcard: %d-byte digest for %v", len(digest), h)
	}
	var mech uint32
	var param, data []byte
	switch s.pub.(type) {
	case *ecdsa.PublicKey:
		mech, data = p11.CKMECDSA, digest
	case *rsa.PublicKey:
		if pss, ok := opts.(*rsa.PSSOptions); ok {
			if pss.SaltLength != rsa.PSSSaltLengthEqualsHash && pss.SaltLength != rsa.PSSSaltLengthAuto && pss.SaltLength != h.Size() {
				return nil, fmt.Errorf("tpmcard: PSS salt length %d: the TPM uses the hash length", pss.SaltLength)
			}
			if param, err = pssParams(h); err != nil {
				return nil, err
			}
			mech, data = p11.CKMRSAPKCSPSS, digest
		} else {
			if data, err = digestInfo(h, digest); err != nil {
				return nil, err
			}
			mech = p11.CKMRSAPKCS
		}
	default:
		return nil, fmt.Errorf("tpmcard: unexpected public key %T", s.pub)
	}
	if err := s.c.call(&wire.SignInit{Session: s.session, Mechanism: uint64(mech), Param: param, Key: priv}, nil); err != nil {
		return nil, err
	}
	if err := s.c.Login(s.session, wire.UserContextSpecific, pin); err != nil {
		// The operation stays in the session until its next step: end it.
		var r wire.Signed
		_ = s.c.call(&wire.SignData{Session: s.session, Data: data, Len: maxSignature}, &r)
		return nil, err
	}
	var r wire.Signed
	if err := s.c.call(&wire.SignData{Session: s.session, Data: data, Len: maxSignature}, &r); err != nil {
		return nil, err
	}
	if r.RV != 0 {
		return nil, fmt.Errorf("tpmcard: signing: CK_RV %#x", r.RV)
	}
	if _, ok := s.pub.(*ecdsa.PublicKey); ok {
		return rawToASN1(r.Signature)
	}
	return r.Signature, nil
}

// maxSignature is a buffer larger than any signature of a card key.
const maxSignature = 4096
