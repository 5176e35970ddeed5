// Package adminkey is the offline half of an administrator's unblock: the
// challenge a user reads from a locked card's machine, the response the
// administrator's key signs, and the digest both sides agree on.
//
// The TPM checks the response itself, with TPM2_PolicySigned (TPM 2.0
// Part 3 §23.3): the administrator signs
//
//	aHash = SHA-256(nonceTPM || expiration || cpHashA || policyRef)
//
// where nonceTPM is the nonce of a policy session the card's machine keeps
// open for the challenge (so a response works once), expiration is the
// challenge's validity in seconds as a negative int32 (the TPM refuses the
// signature after that long, and returns a ticket for the second command
// of the unblock), cpHashA is empty, and policyRef names the operation and
// the card ("tpmcard unblock 0123456789abcdef"), which the card's PIN
// policy fixes at provisioning. A response for another card, another
// operation, another challenge or from another key does not verify.
//
// Challenges and responses travel as text a person can read out: RFC 4648
// base32 in groups of five, ending in a CRC-32 of the bytes, so a typing
// mistake is caught before the TPM sees anything.
package adminkey

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"encoding/asn1"
	"encoding/base32"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"math/big"
	"strings"
	"time"
)

// Operation is what a response authorizes.
type Operation uint8

const (
	// Unblock resets the PIN counter and lets the user set a new PIN.
	Unblock Operation = 1
)

func (o Operation) String() string {
	if o == Unblock {
		return "unblock"
	}
	return fmt.Sprintf("operation(%d)", uint8(o))
}

// PolicyRef is the policyRef of an operation on a card: part of the card's
// PIN policy, and of every digest its administrator signs.
func PolicyRef(op Operation, serial string) []byte {
	return []byte("tpmcard " + op.String() + " " + serial)
}

const (
	version    = 1
	nonceLen   = 16
	serialLen  = 8
	sigLen     = 64 // ECDSA P-256 r||s
	challenge1 = 1 + 1 + serialLen + 2 + nonceLen
)

// Challenge is what the card's machine issues.
type Challenge struct {
	Op       Operation
	Serial   string        // the card, 16 hex digits
	Nonce    []byte        // the TPM policy session's nonceTPM, 16 bytes
	Validity time.Duration // whole seconds, at most 18 hours
}

// Errors a mistyped or foreign text gives.
var (
	ErrChecksum = errors.New("the text has a typing mistake (checksum mismatch): read it again")
	ErrFormat   = errors.New("not a tpmcard challenge or response")
)

// MaxValidity bounds a challenge's life; the expiration travels as seconds
// in 16 bits.
const MaxValidity = 18 * time.Hour

// Expiration is the value PolicySigned gets: the validity in seconds,
// negative so that the TPM returns a ticket.
func (c *Challenge) Expiration() int32 { return -int32(c.Validity / time.Second) }

// Digest is aHash, what the administrator signs.
func (c *Challenge) Digest() []byte {
	h := sha256.New()
	h.Write(c.Nonce)
	_ = binary.Write(h, binary.BigEndian, c.Expiration())
	h.Write(PolicyRef(c.Op, c.Serial))
	return h.Sum(nil)
}

func (c *Challenge) check() error {
	s, err := hex.DecodeString(c.Serial)
	switch {
	case err != nil || len(s) != serialLen:
		return fmt.Errorf("%w: card serial %q", ErrFormat, c.Serial)
	case len(c.Nonce) != nonceLen:
		return fmt.Errorf("%w: nonce of %d bytes", ErrFormat, len(c.Nonce))
	case c.Validity < time.Second || c.Validity > MaxValidity || c.Validity%time.Second != 0:
		return fmt.Errorf("%w: validity %v", ErrFormat, c.Validity)
	case c.Op != Unblock:
		return fmt.Errorf("%w: %v", ErrFormat, c.Op)
	}
	return nil
}

// String encodes the challenge for reading out.
func (c *Challenge) String() string {
	if err := c.check(); err != nil {
		return "invalid challenge: " + err.Error()
	}
	b := []byte{version, byte(c.Op)}
	s, _ := hex.DecodeString(c.Serial)
	b = append(b, s...)
	b = binary.BigEndian.AppendUint16(b, uint16(c.Validity/time.Second))
	b = append(b, c.Nonce...)
	return encode(b)
}

// ParseChallenge decodes a challenge, forgiving case, spaces and dashes.
func ParseChallenge(text string) (*Challenge, error) {
	b, err := decode(text)
	if err != nil {
		return nil, err
	}
	if len(b) != challenge1 || b[0] != version {
		return nil, fmt.Errorf("%w (a challenge has %d characters)", ErrFormat, len(encode(make([]byte, challenge1))))
	}
	c := &Challenge{
		Op:       Operation(b[1]),
		Serial:   hex.EncodeToString(b[2 : 2+serialLen]),
		Validity: time.Duration(binary.BigEndian.Uint16(b[2+serialLen:])) * time.Second,
		Nonce:    bytes.Clone(b[4+serialLen:]),
	}
	if err := c.check(); err != nil {
		return nil, err
	}
	return c, nil
}

// Respond signs the challenge with the administrator's ECDSA P-256 key
// (a key in a file, or one behind a crypto.Signer such as a PKCS#11 token)
// and returns the response text.
func Respond(key crypto.Signer, c *Challenge) (string, error) {
	if err := c.check(); err != nil {
		return "", err
	}
	if pub, ok := key.Public().(*ecdsa.PublicKey); !ok || pub.Curve.Params().BitSize != 256 {
		return "", errors.New("the administrator's key must be ECDSA P-256")
	}
	return SignDigest(key, c.Digest())
}

// SignDigest signs a digest as Respond does and encodes the response.
// Respond is the way to answer a challenge; this is for tests that need a
// response over some other digest.
func SignDigest(key crypto.Signer, digest []byte) (string, error) {
	der, err := key.Sign(rand.Reader, digest, crypto.SHA256)
	if err != nil {
		return "", fmt.Errorf("signing the challenge: %w", err)
	}
	var sig struct{ R, S *big.Int }
	if rest, err := asn1.Unmarshal(der, &sig); err != nil || len(rest) != 0 {
		return "", errors.New("the key returned a malformed signature")
	}
	raw := make([]byte, sigLen)
	sig.R.FillBytes(raw[:32])
	sig.S.FillBytes(raw[32:])
	return encode(append([]byte{version}, raw...)), nil
}

// ParseResponse decodes a response into the r||s signature it carries.
func ParseResponse(text string) ([]byte, error) {
	b, err := decode(text)
	if err != nil {
		return nil, err
	}
	if len(b) != 1+sigLen || b[0] != version {
		return nil, fmt.Errorf("%w (a response has %d characters)", ErrFormat, len(encode(make([]byte, 1+sigLen))))
	}
	return bytes.Clone(b[1:]), nil
}

// Verify checks a response against the administrator's public key, as the
// TPM will; the service uses it to say why a response was refused.
func Verify(pub *ecdsa.PublicKey, c *Challenge, sig []byte) bool {
	if len(sig) != sigLen {
		return false
	}
	return ecdsa.Verify(pub, c.Digest(), new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:]))
}

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

func encode(b []byte) string {
	b = binary.BigEndian.AppendUint32(bytes.Clone(b), crc32.ChecksumIEEE(b))
	s := b32.EncodeToString(b)
	var out strings.Builder
	for i := 0; i < len(s); i += 5 {
		if i > 0 {
			out.WriteByte('-')
		}
		out.WriteString(s[i:min(i+5, len(s))])
	}
	return out.String()
}

func decode(text string) ([]byte, error) {
	s := strings.Map(func(r rune) rune {
		switch {
		case r == '-' || r == ' ' || r == '\t' || r == '\n' || r == '\r':
			return -1
		case r >= 'a' && r <= 'z':
			return r - 'a' + 'A'
		}
		return r
	}, text)
	b, err := b32.DecodeString(s)
	if err != nil || len(b) < 5 {
		return nil, ErrFormat
	}
	if b32.EncodeToString(b) != s {
		// The last character carried bits beyond the data: a typing
		// mistake the checksum would not see.
		return nil, ErrChecksum
	}
	body, sum := b[:len(b)-4], binary.BigEndian.Uint32(b[len(b)-4:])
	if crc32.ChecksumIEEE(body) != sum {
		return nil, ErrChecksum
	}
	return body, nil
}
