// Package adminkey is the offline half of an administrator's unblock: the
// challenge a user reads from a locked card's machine, the response the
// administrator's key signs, and the digests both sides agree on.
//
// An unblock is two TPM commands on the card's PIN index, NV_ChangeAuth
// (the new PIN) and NV_Write (the counter reset), and the TPM checks one
// signature of the administrator for each, with TPM2_PolicySigned (TPM 2.0
// Part 3 §23.3):
//
//		aHash = SHA-256(nonceTPM || expiration || cpHashA || policyRef)
//
//	  - nonceTPM is the nonce of one of the two policy sessions the card's
//	    machine keeps open for the challenge: a signature works in that
//	    session once, and nowhere else;
//	  - expiration is the challenge's validity in seconds, positive: the TPM
//	    refuses the signature after that long counted from the session's
//	    start, and returns no ticket (a negative one would make it return a
//	    ticket in clear, usable again by whoever sees it);
//	  - cpHashA is empty for the new PIN (the administrator does not know
//	    it) and, for the reset, the command parameter hash of exactly one
//	    NV_Write of {pinCount 0, the card's pinLimit} to the card's PIN index,
//	    so that the signature cannot authorize any other write;
//	  - policyRef names the operation and the card ("tpmcard unblock-pin
//	    0123456789abcdef", "tpmcard unblock-reset …"), which the card's PIN
//	    policy fixes at provisioning: a response for another card, another
//	    operation, another challenge or from another key does not verify.
//
// Challenges and responses travel as text a person can copy or read out:
// RFC 4648 base32 in groups of five, ending in a CRC-32 of the bytes, so a
// typing mistake is caught before the TPM sees anything.
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

	"github.com/google/go-tpm/tpm2"
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

// The two commands of an unblock, each signed on its own.
const (
	refSetPIN   = "unblock-pin"
	refResetPIN = "unblock-reset"
)

// SetPINRef is the policyRef of the new-PIN half of a card's unblock: part
// of the card's PIN policy, and of the digest its administrator signs.
func SetPINRef(serial string) []byte { return []byte("tpmcard " + refSetPIN + " " + serial) }

// ResetRef is the policyRef of the counter-reset half.
func ResetRef(serial string) []byte { return []byte("tpmcard " + refResetPIN + " " + serial) }

const (
	version   = 2
	nonceLen  = 16
	serialLen = 8
	maxPublic = 255 // a TPMS_NV_PUBLIC with a SHA-256 policy has 46 bytes
	sigLen    = 64  // ECDSA P-256 r||s
	// version, op, serial, validity, two nonces, PIN limit, then the PIN
	// index's public area with a 1-byte length
	challengeFixed = 1 + 1 + serialLen + 2 + 2*nonceLen + 1 + 1
	responseLen    = 1 + 2*sigLen
)

// Challenge is what the card's machine issues.
type Challenge struct {
	Op       Operation
	Serial   string        // the card, 16 hex digits
	Validity time.Duration // whole seconds, at most 18 hours
	// SetNonce and ResetNonce are the nonceTPM of the policy sessions
	// that will run NV_ChangeAuth and NV_Write, 16 bytes each.
	SetNonce, ResetNonce []byte
	// PINLimit is the card's limit, which the reset writes back.
	PINLimit uint8
	// PINPublic is the public area of the card's PIN index, as written
	// (a TPMS_NV_PUBLIC with TPMA_NV_WRITTEN set). The reset signature
	// names the index through it: an index not yet written (a look-alike
	// someone defined in its place) has another Name, and the TPM refuses
	// the signature's write to it.
	PINPublic []byte
}

// PINName is the TPM Name of the PIN index, nil if PINPublic does not
// parse.
func (c *Challenge) PINName() []byte {
	pub, err := c.pinPublic()
	if err != nil {
		return nil
	}
	n, err := tpm2.NVName(pub)
	if err != nil {
		return nil
	}
	return n.Buffer
}

func (c *Challenge) pinPublic() (*tpm2.TPMSNVPublic, error) {
	pub, err := tpm2.Unmarshal[tpm2.TPMSNVPublic](c.PINPublic)
	switch {
	case err != nil:
		return nil, err
	case len(tpm2.Marshal(*pub)) != len(c.PINPublic):
		return nil, errors.New("trailing bytes")
	case pub.NameAlg != tpm2.TPMAlgSHA256:
		return nil, errors.New("name algorithm is not SHA-256")
	case pub.Attributes.NT != tpm2.TPMNTPinFail || pub.DataSize != 8:
		return nil, errors.New("not a PIN index")
	case !pub.Attributes.Written:
		return nil, errors.New("the index was never written: not a card's PIN index")
	}
	return pub, nil
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
// positive, so that the TPM enforces it and returns no ticket.
func (c *Challenge) Expiration() int32 { return int32(c.Validity / time.Second) }

// ResetCpHash is the command parameter hash (Part 1 §18.7) of the one
// NV_Write the reset signature allows: {0, PINLimit} at offset 0 of the PIN
// index, authorized by the index itself (Part 3 §31.8).
func (c *Challenge) ResetCpHash() []byte {
	h := sha256.New()
	_ = binary.Write(h, binary.BigEndian, uint32(0x00000137)) // TPM_CC_NV_Write
	name := c.PINName()
	h.Write(name)                                         // authHandle
	h.Write(name)                                         // nvIndex
	data := []byte{0, 8, 0, 0, 0, 0, 0, 0, 0, c.PINLimit} // TPM2B_MAX_NV_BUFFER {0, limit}
	h.Write(data)
	h.Write([]byte{0, 0}) // offset
	return h.Sum(nil)
}

// SetDigest is the aHash the new-PIN signature covers.
func (c *Challenge) SetDigest() []byte {
	return PolicySignedDigest(c.SetNonce, c.Expiration(), nil, SetPINRef(c.Serial))
}

// ResetDigest is the aHash the counter-reset signature covers.
func (c *Challenge) ResetDigest() []byte {
	return PolicySignedDigest(c.ResetNonce, c.Expiration(), c.ResetCpHash(), ResetRef(c.Serial))
}

// PolicySignedDigest is aHash = SHA-256(nonceTPM || expiration ||
// cpHashA || policyRef), what a TPM2_PolicySigned signature covers (TPM 2.0
// Part 3 §23.3).
func PolicySignedDigest(nonce []byte, expiration int32, cpHash, ref []byte) []byte {
	h := sha256.New()
	h.Write(nonce)
	_ = binary.Write(h, binary.BigEndian, expiration)
	h.Write(cpHash)
	h.Write(ref)
	return h.Sum(nil)
}

func (c *Challenge) check() error {
	s, err := hex.DecodeString(c.Serial)
	switch {
	case err != nil || len(s) != serialLen:
		return fmt.Errorf("%w: card serial %q", ErrFormat, c.Serial)
	case len(c.SetNonce) != nonceLen || len(c.ResetNonce) != nonceLen:
		return fmt.Errorf("%w: nonces of %d and %d bytes", ErrFormat, len(c.SetNonce), len(c.ResetNonce))
	case bytes.Equal(c.SetNonce, c.ResetNonce):
		return fmt.Errorf("%w: the two nonces are the same", ErrFormat)
	case len(c.PINPublic) > maxPublic:
		return fmt.Errorf("%w: PIN index public area of %d bytes", ErrFormat, len(c.PINPublic))
	case c.PINLimit == 0:
		return fmt.Errorf("%w: PIN limit 0", ErrFormat)
	case c.Validity < time.Second || c.Validity > MaxValidity || c.Validity%time.Second != 0:
		return fmt.Errorf("%w: validity %v", ErrFormat, c.Validity)
	case c.Op != Unblock:
		return fmt.Errorf("%w: %v", ErrFormat, c.Op)
	}
	if _, err := c.pinPublic(); err != nil {
		return fmt.Errorf("%w: PIN index: %v", ErrFormat, err)
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
	b = append(b, c.SetNonce...)
	b = append(b, c.ResetNonce...)
	b = append(b, c.PINLimit, byte(len(c.PINPublic)))
	b = append(b, c.PINPublic...)
	return encode(b)
}

// ParseChallenge decodes a challenge, forgiving case, spaces and dashes.
func ParseChallenge(text string) (*Challenge, error) {
	b, err := decode(text)
	if err != nil {
		return nil, err
	}
	if len(b) < challengeFixed || len(b) != challengeFixed+int(b[challengeFixed-1]) || b[0] != version {
		return nil, fmt.Errorf("%w (a challenge has about %d characters)", ErrFormat, len(encode(make([]byte, challengeFixed+46))))
	}
	p := 2
	next := func(n int) []byte { p += n; return bytes.Clone(b[p-n : p]) }
	c := &Challenge{Op: Operation(b[1])}
	c.Serial = hex.EncodeToString(next(serialLen))
	c.Validity = time.Duration(binary.BigEndian.Uint16(next(2))) * time.Second
	c.SetNonce = next(nonceLen)
	c.ResetNonce = next(nonceLen)
	c.PINLimit = next(1)[0]
	c.PINPublic = next(int(next(1)[0]))
	if err := c.check(); err != nil {
		return nil, err
	}
	return c, nil
}

// Response is the administrator's answer: one signature per command.
type Response struct {
	SetSig, ResetSig []byte // r||s each
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
	set, err := SignDigest(key, c.SetDigest())
	if err != nil {
		return "", err
	}
	reset, err := SignDigest(key, c.ResetDigest())
	if err != nil {
		return "", err
	}
	return EncodeResponse(Response{SetSig: set, ResetSig: reset}), nil
}

// SignDigest signs a digest as Respond does and returns r||s. Respond is
// the way to answer a challenge; this is for tests that need a response
// over some other digest.
func SignDigest(key crypto.Signer, digest []byte) ([]byte, error) {
	der, err := key.Sign(rand.Reader, digest, crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("signing the challenge: %w", err)
	}
	var sig struct{ R, S *big.Int }
	if rest, err := asn1.Unmarshal(der, &sig); err != nil || len(rest) != 0 {
		return nil, errors.New("the key returned a malformed signature")
	}
	raw := make([]byte, sigLen)
	sig.R.FillBytes(raw[:32])
	sig.S.FillBytes(raw[32:])
	return raw, nil
}

// EncodeResponse encodes a response as text.
func EncodeResponse(r Response) string {
	b := append([]byte{version}, r.SetSig...)
	return encode(append(b, r.ResetSig...))
}

// ParseResponse decodes a response.
func ParseResponse(text string) (*Response, error) {
	b, err := decode(text)
	if err != nil {
		return nil, err
	}
	if len(b) != responseLen || b[0] != version {
		return nil, fmt.Errorf("%w (a response has %d characters)", ErrFormat, len(encode(make([]byte, responseLen))))
	}
	return &Response{SetSig: bytes.Clone(b[1 : 1+sigLen]), ResetSig: bytes.Clone(b[1+sigLen:])}, nil
}

// Verify checks a response against the administrator's public key, as the
// TPM will; the service uses it to say why a response was refused.
func Verify(pub *ecdsa.PublicKey, c *Challenge, r *Response) bool {
	ok := func(digest, sig []byte) bool {
		return len(sig) == sigLen &&
			ecdsa.Verify(pub, digest, new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:]))
	}
	return ok(c.SetDigest(), r.SetSig) && ok(c.ResetDigest(), r.ResetSig)
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
