package tpmcard

import (
	"crypto"
	"crypto/rsa"
	"encoding/asn1"
	"errors"
	"fmt"
	"io"
	"math/big"

	"github.com/google/go-tpm/tpm2"
)

// SignOptions choose the signature scheme for Sign.
type SignOptions struct {
	// Hash is the hash that made the digest. For ECDSA it may be zero: the
	// digest is then signed as given, whatever its length (PKCS#11
	// CKM_ECDSA). RSA needs it to build the DigestInfo.
	Hash crypto.Hash
	// PSS selects RSASSA-PSS with a salt as long as the hash (what TPMs
	// produce); otherwise RSA keys sign PKCS#1 v1.5.
	PSS bool
	// PIN is the PIN proof a PINAlways key needs for this one signature
	// (ProvePIN). Sign uses it up, whether it signs or fails; keys that
	// need the PIN once per login refuse one.
	PIN *PINProof
}

// Sign signs digest with a card key, after Login. It costs two TPM
// commands, PolicySecret(PIN) and TPM2_Sign (Part 3 §20.2), or one when
// the PIN proof is still fresh from Login. A PINAlways key also needs
// opts.PIN. ECDSA signatures come as r||s, each as long as the curve's
// order (the PKCS#11 encoding); RSA signatures as the modulus-sized
// integer.
func (m *Manager) Sign(serial string, keyID []byte, digest []byte, opts SignOptions) ([]byte, error) {
	defer opts.PIN.Wipe()
	r, err := m.lockCard(serial)
	if err != nil {
		return nil, err
	}
	defer m.unlock()
	k := r.signingKey(keyID)
	if k == nil {
		return nil, fmt.Errorf("%w: card %s has no private key %x", ErrKeyNotFound, serial, keyID)
	}
	return m.signLocked(r, keyCacheID(serial, k.ID), k, digest, opts)
}

// signLocked signs with a key of the card r, token or session key, which
// id names in the key cache. The caller holds the lock.
func (m *Manager) signLocked(r *record, id string, k *keyRecord, digest []byte, opts SignOptions) ([]byte, error) {
	l := m.logins[r.Serial]
	if l == nil {
		return nil, ErrNotLoggedIn
	}
	if r.MustChange {
		return nil, ErrPINExpired
	}
	switch {
	case k.PINUse == PINAlways && opts.PIN == nil:
		return nil, fmt.Errorf("%w: key %x needs the PIN for every signature", ErrNotLoggedIn, k.ID)
	case k.PINUse != PINAlways && opts.PIN != nil:
		return nil, fmt.Errorf("%w: key %x needs the PIN once per login, not a PIN proof per signature", ErrInvalidOptions, k.ID)
	case opts.PIN != nil && opts.PIN.serial != r.Serial:
		return nil, fmt.Errorf("%w: a PIN proof of card %s for a key of card %s", ErrInvalidOptions, opts.PIN.serial, r.Serial)
	case opts.PIN != nil && opts.PIN.auth == nil:
		return nil, fmt.Errorf("%w: the PIN proof was used already: key %x needs the PIN for every signature", ErrNotLoggedIn, k.ID)
	}
	scheme, digest, err := sigScheme(k.Algorithm, digest, opts)
	if err != nil {
		return nil, err
	}
	lk, err := m.loadKeyAs(id, k)
	if err != nil {
		return nil, err
	}
	cmd := tpm2.Sign{
		KeyHandle:  tpm2.AuthHandle{Handle: lk.handle, Name: lk.name, Auth: m.sig.sess},
		Digest:     tpm2.TPM2BDigest{Buffer: digest},
		InScheme:   scheme,
		Validation: tpm2.TPMTTKHashCheck{Tag: tpm2.TPMSTHashCheck, Hierarchy: tpm2.TPMRHNull},
	}
	var rsp *tpm2.SignResponse
	for retry := opts.PIN == nil; ; retry = false {
		if opts.PIN != nil {
			err = m.armFor(r, opts.PIN, cmd)
		} else {
			err = m.arm(r, l)
		}
		if err != nil {
			return nil, err
		}
		cmd.KeyHandle = tpm2.AuthHandle{Handle: lk.handle, Name: lk.name, Auth: m.sig.sess}
		rsp, err = cmd.Execute(m.tpm)
		// Success consumes the policy digest; a failure leaves it unknown.
		m.sig.armedFor = ""
		if err != nil && (isTPM(err, tpm2.TPMRCPolicyFail) || isAuthFailure(err)) {
			// Someone else used the sign session (a TPM without a
			// resource manager lets any client use any session): its
			// proof is gone and its nonce moved on. A new session, and
			// once a new proof from the login.
			m.resetSignSession()
			if retry {
				continue
			}
		}
		break
	}
	if err != nil {
		m.sig.dirty = true
		if isTPM(err, tpm2.TPMRCScheme) || isTPM(err, tpm2.TPMRCHash) {
			return nil, fmt.Errorf("signing: %w (%v)", ErrUnsupported, err)
		}
		return nil, fmt.Errorf("signing with key %x: %w", k.ID, busy(err))
	}
	m.sig.dirty = false
	return encodeSignature(k.Algorithm, &rsp.Signature)
}

// sigScheme picks the TPM signing scheme and shapes the digest to a size
// the TPM accepts (TPM2_Sign wants exactly the scheme hash's size).
func sigScheme(a Algorithm, digest []byte, opts SignOptions) (tpm2.TPMTSigScheme, []byte, error) {
	if a.IsRSA() {
		if opts.Hash == 0 {
			return tpm2.TPMTSigScheme{}, nil, fmt.Errorf("%w: RSA signing needs the digest's hash", ErrInvalidOptions)
		}
		if len(digest) != opts.Hash.Size() {
			return tpm2.TPMTSigScheme{}, nil, fmt.Errorf("%w: %d-byte digest for %v", ErrInvalidOptions, len(digest), opts.Hash)
		}
		h, err := tpmHash(opts.Hash)
		if err != nil {
			return tpm2.TPMTSigScheme{}, nil, err
		}
		alg := tpm2.TPMAlgRSASSA
		if opts.PSS {
			alg = tpm2.TPMAlgRSAPSS
		}
		return tpm2.TPMTSigScheme{Scheme: alg, Details: tpm2.NewTPMUSigScheme(alg, &tpm2.TPMSSchemeHash{HashAlg: h})}, digest, nil
	}
	if opts.PSS {
		return tpm2.TPMTSigScheme{}, nil, fmt.Errorf("%w: PSS with an ECDSA key", ErrInvalidOptions)
	}
	if opts.Hash != 0 && len(digest) != opts.Hash.Size() {
		return tpm2.TPMTSigScheme{}, nil, fmt.Errorf("%w: %d-byte digest for %v", ErrInvalidOptions, len(digest), opts.Hash)
	}
	if len(digest) == 0 || len(digest) > 1024 {
		return tpm2.TPMTSigScheme{}, nil, fmt.Errorf("%w: ECDSA digest of %d bytes", ErrInvalidOptions, len(digest))
	}
	// ECDSA uses the leftmost bits of the digest up to the order's length
	// (FIPS 186-5 §6.4.1): left-padding with zeros or cutting to the
	// order's length leaves that number unchanged, so any digest maps onto
	// a hash size the TPM takes without changing the signature's meaning.
	orderLen := a.Bits() / 8
	if len(digest) > orderLen {
		digest = digest[:orderLen]
	}
	var h tpm2.TPMIAlgHash
	var size int
	switch {
	case len(digest) <= 20 && opts.Hash == crypto.SHA1:
		h, size = tpm2.TPMAlgSHA1, 20
	case len(digest) <= 32:
		h, size = tpm2.TPMAlgSHA256, 32
	default:
		h, size = tpm2.TPMAlgSHA384, 48
	}
	if len(digest) < size {
		digest = append(make([]byte, size-len(digest)), digest...)
	}
	return tpm2.TPMTSigScheme{Scheme: tpm2.TPMAlgECDSA, Details: tpm2.NewTPMUSigScheme(tpm2.TPMAlgECDSA, &tpm2.TPMSSchemeHash{HashAlg: h})}, digest, nil
}

func encodeSignature(a Algorithm, sig *tpm2.TPMTSignature) ([]byte, error) {
	if a.IsRSA() {
		var s *tpm2.TPMSSignatureRSA
		var err error
		if sig.SigAlg == tpm2.TPMAlgRSAPSS {
			s, err = sig.Signature.RSAPSS()
		} else {
			s, err = sig.Signature.RSASSA()
		}
		if err != nil {
			return nil, fmt.Errorf("reading RSA signature: %w", err)
		}
		return s.Sig.Buffer, nil
	}
	s, err := sig.Signature.ECDSA()
	if err != nil {
		return nil, fmt.Errorf("reading ECDSA signature: %w", err)
	}
	n := a.Bits() / 8
	out := make([]byte, 2*n)
	new(big.Int).SetBytes(s.SignatureR.Buffer).FillBytes(out[:n])
	new(big.Int).SetBytes(s.SignatureS.Buffer).FillBytes(out[n:])
	return out, nil
}

// Signer returns a crypto.Signer for a card key. It signs only while the
// card is logged in, and returns ASN.1 DER for ECDSA as crypto.Signer
// requires.
func (m *Manager) Signer(serial string, keyID []byte) (crypto.Signer, error) {
	k, err := m.Key(serial, keyID)
	if err != nil {
		return nil, err
	}
	return &signer{m: m, serial: serial, key: k}, nil
}

type signer struct {
	m      *Manager
	serial string
	key    KeyInfo
}

var _ crypto.Signer = (*signer)(nil)

func (s *signer) Public() crypto.PublicKey { return s.key.Public }

func (s *signer) Sign(_ io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	so := SignOptions{Hash: opts.HashFunc()}
	if pss, ok := opts.(*rsa.PSSOptions); ok {
		if pss.SaltLength != rsa.PSSSaltLengthEqualsHash && pss.SaltLength != rsa.PSSSaltLengthAuto && pss.SaltLength != so.Hash.Size() {
			return nil, fmt.Errorf("%w: PSS salt length %d (the TPM uses the hash length)", ErrUnsupported, pss.SaltLength)
		}
		so.PSS = true
	}
	sig, err := s.m.Sign(s.serial, s.key.ID, digest, so)
	if err != nil || s.key.Algorithm.IsRSA() {
		return sig, err
	}
	return RawToASN1(sig)
}

// RawToASN1 converts an r||s ECDSA signature to the ASN.1 DER
// ECDSA-Sig-Value of RFC 3279 §2.2.3.
func RawToASN1(raw []byte) ([]byte, error) {
	if len(raw) == 0 || len(raw)%2 != 0 {
		return nil, errors.New("malformed r||s signature")
	}
	n := len(raw) / 2
	return asn1.Marshal(struct{ R, S *big.Int }{new(big.Int).SetBytes(raw[:n]), new(big.Int).SetBytes(raw[n:])})
}
