package tpmcard

import (
	"crypto/aes"
	"crypto/ecdh"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"
)

// hmacSession is a salted, unbound HMAC session (TPM 2.0 Part 1 §19.6)
// that keeps its secrets to itself. go-tpm's own session keeps the
// authValue it was given and builds a new sessionKey‖authValue buffer for
// every HMAC it computes, none of them ever wiped: a logged-out PIN's
// authValue stayed in memory hundreds of times. This one copies the
// authValue once into a buffer it owns, computes every HMAC and KDF by hand
// over SHA-256 with pads in buffers it wipes, and Close flushes the TPM
// session and wipes everything it held.
//
// It implements go-tpm's tpm2.Session, so go-tpm's command structs run
// with it. Only what tpmcard uses is there: SHA-256, salting by ECDH to a
// P-256 key (Part 1 Annex C.6, KDFe), AES-128-CFB parameter encryption (Part 1
// §21), continueSession always set.
type hmacSession struct {
	tpm    transport.TPM
	handle tpm2.TPMHandle // TPM_RH_NULL once flushed
	attrs  tpm2.TPMASession
	// key is sessionKey‖authValue, the authValue with its trailing zeros
	// removed (Part 1 §19.6.5 note). key[:sessionKeyLen] alone keys a
	// session that authorizes no handle of the command.
	key         []byte
	nonceCaller []byte
	nonceTPM    []byte
	closed      bool
}

var _ tpm2.Session = (*hmacSession)(nil)

const (
	sessionKeyLen = sha256.Size
	nonceLen      = 16
	cfbKeyLen     = 16 // AES-128
)

// sessionDir says which parameter a session encrypts: the command's first
// (attrs.Decrypt: the TPM decrypts it), the response's first
// (attrs.Encrypt), or none.
type sessionDir struct{ in, out bool }

// startHMACSession starts a session salted with the P-256 key at saltKey
// (a decrypt key: an SRK, or a null-hierarchy primary made for the
// purpose), carrying auth. The caller closes it.
func startHMACSession(t transport.TPM, saltKey tpm2.TPMHandle, saltPub *tpm2.TPMTPublic, auth []byte, dir sessionDir) (*hmacSession, error) {
	encSalt, salt, err := eccSalt(saltPub)
	if err != nil {
		return nil, err
	}
	defer wipe(salt)
	s := &hmacSession{
		tpm:         t,
		handle:      tpm2.TPMRHNull,
		attrs:       tpm2.TPMASession{ContinueSession: true, Decrypt: dir.in, Encrypt: dir.out},
		nonceCaller: make([]byte, nonceLen),
	}
	if _, err := rand.Read(s.nonceCaller); err != nil {
		return nil, err
	}
	sym := tpm2.TPMTSymDef{Algorithm: tpm2.TPMAlgNull}
	if dir.in || dir.out {
		sym = tpm2.TPMTSymDef{
			Algorithm: tpm2.TPMAlgAES,
			KeyBits:   tpm2.NewTPMUSymKeyBits(tpm2.TPMAlgAES, tpm2.TPMKeyBits(cfbKeyLen*8)),
			Mode:      tpm2.NewTPMUSymMode(tpm2.TPMAlgAES, tpm2.TPMAlgCFB),
		}
	}
	rsp, err := tpm2.StartAuthSession{
		TPMKey:        saltKey,
		Bind:          tpm2.TPMRHNull,
		NonceCaller:   tpm2.TPM2BNonce{Buffer: s.nonceCaller},
		EncryptedSalt: tpm2.TPM2BEncryptedSecret{Buffer: encSalt},
		SessionType:   tpm2.TPMSEHMAC,
		Symmetric:     sym,
		AuthHash:      tpm2.TPMAlgSHA256,
	}.Execute(t)
	if err != nil {
		return nil, err
	}
	s.handle = rsp.SessionHandle
	s.nonceTPM = append([]byte(nil), rsp.NonceTPM.Buffer...)

	a := trimZeros(auth)
	s.key = make([]byte, sessionKeyLen+len(a))
	// sessionKey = KDFa(SHA-256, salt, "ATH", nonceTPM, nonceCaller, 256),
	// the bind authValue being empty (Part 1 §19.6).
	kdfa(s.key[:sessionKeyLen], salt, "ATH", s.nonceTPM, s.nonceCaller)
	copy(s.key[sessionKeyLen:], a)
	return s, nil
}

// Close flushes the session from the TPM and wipes every secret it held.
// It can be called more than once.
func (s *hmacSession) Close() error {
	if s.closed {
		return nil
	}
	s.closed = true
	var err error
	if s.handle != tpm2.TPMRHNull {
		_, err = tpm2.FlushContext{FlushHandle: s.handle}.Execute(s.tpm)
		s.handle = tpm2.TPMRHNull
	}
	wipe(s.key)
	wipe(s.nonceCaller)
	wipe(s.nonceTPM)
	s.key = nil
	return err
}

// Init reports whether the session can still be used: it is started when
// made, never just in time.
func (s *hmacSession) Init(transport.TPM) error {
	switch {
	case s.closed:
		return errors.New("tpmcard: HMAC session closed")
	case s.handle == tpm2.TPMRHNull:
		return errors.New("tpmcard: HMAC session ended by the TPM")
	}
	return nil
}

// CleanupFailure does nothing: a failed command leaves the session as it
// was in the TPM (the session continues), and its owner closes it.
func (s *hmacSession) CleanupFailure(transport.TPM) error { return nil }

func (s *hmacSession) NonceTPM() tpm2.TPM2BNonce { return tpm2.TPM2BNonce{Buffer: s.nonceTPM} }

func (s *hmacSession) NewNonceCaller() error {
	_, err := rand.Read(s.nonceCaller)
	return err
}

func (s *hmacSession) IsEncryption() bool { return s.attrs.Encrypt }
func (s *hmacSession) IsDecryption() bool { return s.attrs.Decrypt }
func (s *hmacSession) Handle() tpm2.TPMHandle {
	if s.closed {
		return tpm2.TPMRHNull
	}
	return s.handle
}

// hmacKey is the key of the session's HMAC for the handle at authIndex:
// sessionKey‖authValue, or sessionKey alone when the session authorizes no
// handle (it is there to encrypt) (Part 1 §19.6.5).
func (s *hmacSession) hmacKey(names []tpm2.TPM2BName, authIndex int) []byte {
	if authIndex >= len(names) {
		return s.key[:sessionKeyLen]
	}
	return s.key
}

// Authorize computes the command HMAC: HMAC(sessionKey‖authValue,
// cpHash‖nonceCaller‖nonceTPM‖addNonces‖sessionAttributes), cpHash =
// SHA-256(commandCode‖names‖parameters) (Part 1 §19.6.5).
func (s *hmacSession) Authorize(cc tpm2.TPMCC, parms, addNonces []byte, names []tpm2.TPM2BName, authIndex int) (*tpm2.TPMSAuthCommand, error) {
	if err := s.Init(nil); err != nil {
		return nil, err
	}
	h := sha256.New()
	_ = binary.Write(h, binary.BigEndian, uint32(cc))
	for _, n := range names {
		h.Write(n.Buffer)
	}
	h.Write(parms)
	cpHash := h.Sum(nil)
	mac := make([]byte, sha256.Size)
	hmacSHA256(mac, s.hmacKey(names, authIndex), cpHash, s.nonceCaller, s.nonceTPM, addNonces, tpm2.Marshal(s.attrs))
	return &tpm2.TPMSAuthCommand{
		Handle:        s.handle,
		Nonce:         tpm2.TPM2BNonce{Buffer: append([]byte(nil), s.nonceCaller...)},
		Attributes:    s.attrs,
		Authorization: tpm2.TPM2BData{Buffer: mac},
	}, nil
}

// Validate checks the response HMAC: HMAC(sessionKey‖authValue,
// rpHash‖nonceTPM‖nonceCaller‖sessionAttributes), rpHash =
// SHA-256(responseCode‖commandCode‖parameters) (Part 1 §19.6.5),
// and keeps the TPM's new nonce.
func (s *hmacSession) Validate(rc tpm2.TPMRC, cc tpm2.TPMCC, parms []byte, names []tpm2.TPM2BName, authIndex int, auth *tpm2.TPMSAuthResponse) error {
	if s.closed {
		return errors.New("tpmcard: HMAC session closed")
	}
	wipe(s.nonceTPM)
	s.nonceTPM = append(s.nonceTPM[:0], auth.Nonce.Buffer...)
	if !auth.Attributes.ContinueSession {
		s.handle = tpm2.TPMRHNull // the TPM flushed it
	}
	h := sha256.New()
	_ = binary.Write(h, binary.BigEndian, uint32(rc))
	_ = binary.Write(h, binary.BigEndian, uint32(cc))
	h.Write(parms)
	rpHash := h.Sum(nil)
	var mac [sha256.Size]byte
	hmacSHA256(mac[:], s.hmacKey(names, authIndex), rpHash, s.nonceTPM, s.nonceCaller, tpm2.Marshal(auth.Attributes))
	if subtle.ConstantTimeCompare(mac[:], auth.Authorization.Buffer) != 1 {
		return errors.New("tpmcard: the TPM's response HMAC does not match")
	}
	return nil
}

// Encrypt encrypts, in place, a command parameter the TPM will decrypt
// (attrs.Decrypt), in AES-128-CFB keyed by KDFa(sessionKey‖authValue,
// "CFB", nonceCaller, nonceTPM) (Part 1 §21.3). A session that encrypts
// and carries an authValue must authorize the entity that authValue
// belongs to.
func (s *hmacSession) Encrypt(p []byte) error {
	if !s.attrs.Decrypt {
		return nil
	}
	return s.cfb(p, s.nonceCaller, s.nonceTPM, false)
}

// Decrypt decrypts, in place, a response parameter the TPM encrypted
// (attrs.Encrypt), the nonces the other way round.
func (s *hmacSession) Decrypt(p []byte) error {
	if !s.attrs.Encrypt {
		return nil
	}
	return s.cfb(p, s.nonceTPM, s.nonceCaller, true)
}

// sealParam encrypts a command's first parameter (the contents of its
// TPM2B) for this decrypt session ahead of the command, and returns the
// ciphertext and the session to run the command with: go-tpm then
// marshals only ciphertext (its marshalling buffers are never wiped), and
// the session neither draws a new nonceCaller nor encrypts again. Use the
// returned session for that one command.
func (s *hmacSession) sealParam(p []byte) ([]byte, tpm2.Session, error) {
	if !s.attrs.Decrypt {
		return nil, nil, errors.New("tpmcard: sealParam needs a decrypt session")
	}
	if err := s.NewNonceCaller(); err != nil {
		return nil, nil, err
	}
	ct := append([]byte(nil), p...)
	if err := s.Encrypt(ct); err != nil {
		wipe(ct)
		return nil, nil, err
	}
	return ct, sealedParam{s}, nil
}

// sealedParam is a decrypt session whose parameter sealParam encrypted.
type sealedParam struct{ *hmacSession }

func (sealedParam) NewNonceCaller() error { return nil }
func (sealedParam) Encrypt([]byte) error  { return nil }

// cfb runs AES-128 in CFB mode, full-block feedback and the IV from the
// KDF (Part 1 §21.3), over p in place.
func (s *hmacSession) cfb(p, u, v []byte, decrypt bool) error {
	if s.closed {
		return errors.New("tpmcard: HMAC session closed")
	}
	keyIV := make([]byte, cfbKeyLen+aes.BlockSize)
	defer wipe(keyIV)
	kdfa(keyIV, s.key, "CFB", u, v)
	c, err := aes.NewCipher(keyIV[:cfbKeyLen])
	if err != nil {
		return err
	}
	iv := keyIV[cfbKeyLen:]
	var ks [aes.BlockSize]byte
	defer wipe(ks[:])
	for len(p) > 0 {
		c.Encrypt(ks[:], iv)
		n := min(len(p), aes.BlockSize)
		if decrypt {
			copy(iv, p[:n]) // the ciphertext is the next IV
		}
		subtle.XORBytes(p[:n], p[:n], ks[:n])
		if !decrypt {
			copy(iv, p[:n])
		}
		p = p[n:]
	}
	return nil
}

// eccSalt makes a session salt for the P-256 key pub: an ephemeral ECDH
// key pair, Z the x-coordinate of the shared point, salt =
// KDFe(SHA-256, Z, "SECRET", ephemeral x, key's x, 256) (Part 1 Annex
// C.6, §11.4.9.3). The encrypted salt is the ephemeral public point.
func eccSalt(pub *tpm2.TPMTPublic) (encSalt, salt []byte, err error) {
	if pub.Type != tpm2.TPMAlgECC {
		return nil, nil, fmt.Errorf("salting a session: key type %v, want ECC", pub.Type)
	}
	params, err := pub.Parameters.ECCDetail()
	if err != nil {
		return nil, nil, fmt.Errorf("salting a session: %w", err)
	}
	pt, err := pub.Unique.ECC()
	if err != nil {
		return nil, nil, fmt.Errorf("salting a session: %w", err)
	}
	if params.CurveID != tpm2.TPMECCNistP256 || len(pt.X.Buffer) > 32 || len(pt.Y.Buffer) > 32 {
		return nil, nil, fmt.Errorf("salting a session: want a P-256 key")
	}
	raw := make([]byte, 65)
	raw[0] = 4
	copy(raw[33-len(pt.X.Buffer):33], pt.X.Buffer)
	copy(raw[65-len(pt.Y.Buffer):], pt.Y.Buffer)
	theirs, err := ecdh.P256().NewPublicKey(raw)
	if err != nil {
		return nil, nil, fmt.Errorf("salting a session: %w", err)
	}
	mine, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	z, err := mine.ECDH(theirs)
	if err != nil {
		return nil, nil, fmt.Errorf("salting a session: %w", err)
	}
	defer wipe(z)
	ephem := mine.PublicKey().Bytes()
	ex, ey := ephem[1:33], ephem[33:]

	// KDFe: one SHA-256 block for 256 bits, counter 1 (Part 1 §11.4.9.3).
	salt = make([]byte, sha256.Size)
	h := sha256.New()
	h.Write([]byte{0, 0, 0, 1})
	h.Write(z)
	h.Write([]byte("SECRET\x00"))
	h.Write(ex)
	h.Write(pt.X.Buffer)
	h.Sum(salt[:0])
	h.Reset()
	return tpm2.Marshal(tpm2.TPMSECCPoint{X: tpm2.TPM2BECCParameter{Buffer: ex}, Y: tpm2.TPM2BECCParameter{Buffer: ey}}), salt, nil
}

// kdfa fills out with KDFa(SHA-256, key, label, u, v, 8·len(out)) (Part 1
// §11.4.9.2): HMAC(key, counter‖label‖0‖u‖v‖bits) per block.
func kdfa(out, key []byte, label string, u, v []byte) {
	var ctr, bits [4]byte
	binary.BigEndian.PutUint32(bits[:], uint32(8*len(out)))
	lab := append([]byte(label), 0)
	var block [sha256.Size]byte
	defer wipe(block[:])
	for i := uint32(1); len(out) > 0; i++ {
		binary.BigEndian.PutUint32(ctr[:], i)
		hmacSHA256(block[:], key, ctr[:], lab, u, v, bits[:])
		out = out[copy(out, block[:]):]
	}
}

// hmacSHA256 writes HMAC-SHA256(key, parts...) (RFC 2104) into out (32
// bytes) and leaves no copy of the key behind: the key XOR pad lives in a
// buffer wiped before return, and the hash states that followed it are
// reset. crypto/hmac keeps its pads for as long as the MAC lives.
func hmacSHA256(out, key []byte, parts ...[]byte) {
	var pad [sha256.BlockSize]byte
	defer wipe(pad[:])
	var inner [sha256.Size]byte
	defer wipe(inner[:])
	h := sha256.New()
	defer h.Reset()
	if len(key) > sha256.BlockSize {
		h.Write(key)
		h.Sum(pad[:0])
		h.Reset()
	} else {
		copy(pad[:], key)
	}
	xorPad(pad[:], 0x36)
	writeAll(h, pad[:], parts)
	h.Sum(inner[:0])
	h.Reset()
	xorPad(pad[:], 0x36^0x5c)
	h.Write(pad[:])
	h.Write(inner[:])
	h.Sum(out[:0])
}

func xorPad(p []byte, b byte) {
	for i := range p {
		p[i] ^= b
	}
}

func writeAll(h hash.Hash, first []byte, parts [][]byte) {
	h.Write(first)
	for _, p := range parts {
		h.Write(p)
	}
}

// trimZeros drops the trailing zero bytes of an authValue, as the TPM does
// before using it in an HMAC (Part 1 §19.6.5 note 2).
func trimZeros(a []byte) []byte {
	for len(a) > 0 && a[len(a)-1] == 0 {
		a = a[:len(a)-1]
	}
	return a
}
