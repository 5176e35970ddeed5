package tpmcard

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"

	"golang.org/x/crypto/argon2"
)

// A PIN or PUK becomes an NV index's authValue through argon2id (RFC 9106)
// with a random salt of the card's own. Whoever reads a TPM's secrets (a
// software TPM's state file, a memory image) holds the authValues, and from
// them could guess short PINs offline; the derivation makes each guess cost
// as much CPU as the parameters say, and the salt makes each card's guesses
// its own.
//
// The cost: one pass over 16 MiB, one lane, about 10-13 ms of one core
// (BenchmarkAuthValue), a login about 17 ms in all (BenchmarkLogin).
// TestAuthValueCost holds new cards to at least kdfMinWorkKiB of passes;
// it checks the work, not the time, which depends on the machine. RFC 9106 §4
// recommends more memory for interactive logins; the ceiling here is that
// a C_Login stays under 30 ms. Cards keep the cost they were made with:
// raising it applies to new cards.
const (
	kdfArgon2id = "argon2id"
	kdfTime     = 1
	kdfMemory   = 16 * 1024 // KiB
	kdfThreads  = 1
	kdfSaltLen  = 16
	authRawLen  = 24 // bytes of argon2id output, 32 characters of base64

	// kdfMinWorkKiB is the least memory-hard work (passes × KiB) a new
	// card's derivation may ask of each guess.
	kdfMinWorkKiB = 16 * 1024
)

// kdfParams are a card's PIN derivation: the algorithm, its cost and the
// card's salt. They are kept in the card record; they are not secret.
type kdfParams struct {
	Alg     string `json:"alg"`
	Time    uint32 `json:"time"`
	Memory  uint32 `json:"memory_kib"`
	Threads uint8  `json:"threads"`
	Salt    []byte `json:"salt"`
}

// newKDFParams gives a new card its derivation: today's cost and a fresh
// salt.
func newKDFParams() (kdfParams, error) {
	salt := make([]byte, kdfSaltLen)
	if _, err := rand.Read(salt); err != nil {
		return kdfParams{}, fmt.Errorf("making the PIN salt: %w", err)
	}
	return kdfParams{Alg: kdfArgon2id, Time: kdfTime, Memory: kdfMemory, Threads: kdfThreads, Salt: salt}, nil
}

// check refuses parameters this build cannot use, or that would make a
// guess cheap. A record without them (made before the derivation was
// salted) never falls back to another one.
func (p kdfParams) check() error {
	switch {
	case p.Alg == "":
		return fmt.Errorf("no PIN derivation parameters")
	case p.Alg != kdfArgon2id:
		return fmt.Errorf("PIN derivation %q, this build knows %s", p.Alg, kdfArgon2id)
	case len(p.Salt) < kdfSaltLen:
		return fmt.Errorf("PIN derivation salt of %d bytes, want at least %d", len(p.Salt), kdfSaltLen)
	case p.Time < 1 || p.Threads < 1 || p.Memory < 8*uint32(p.Threads):
		return fmt.Errorf("PIN derivation cost %d/%d KiB/%d out of range", p.Time, p.Memory, p.Threads)
	case p.Time > 16 || p.Memory > 1<<20:
		// A record that asks for gigabytes would stall every login.
		return fmt.Errorf("PIN derivation cost %d/%d KiB too high", p.Time, p.Memory)
	}
	return nil
}

// derive turns a PIN or PUK into an authValue: argon2id of the secret,
// salted with the card's salt and the kind ("pin", "puk"), so that a PIN
// and a PUK of the same text differ. NV authValues are at most one digest
// long (Part 3 §31.3); the 24 bytes are base64-encoded into 32 characters
// because go-tpm v0.9.8 cuts an authValue at its first zero byte when it
// computes an HMAC key (its trailing-zero trim does not stop at the first
// non-zero byte), and raw bytes hold a zero about one time in ten.
func (p kdfParams) derive(kind string, s []byte) ([]byte, error) {
	if err := p.check(); err != nil {
		return nil, err
	}
	salt := make([]byte, 0, len("tpmcard ")+len(kind)+1+len(p.Salt))
	salt = append(salt, "tpmcard "+kind+"\x00"...)
	salt = append(salt, p.Salt...)
	raw := argon2.IDKey(s, salt, p.Time, p.Memory, p.Threads, authRawLen)
	// argon2's last step (BLAKE2b of the final block) leaves copies of the
	// output in its dead stack frames: overwrite them.
	scrubStack()
	out := make([]byte, base64.RawStdEncoding.EncodedLen(authRawLen))
	base64.RawStdEncoding.Encode(out, raw)
	wipe(raw)
	return out, nil
}

// scrubStack zeroes the stack below its caller's frame, where the calls
// its caller just made kept their locals. It is as deep as argon2's final
// step (a 1 KiB block, then BLAKE2b's state), so it fits the stack those
// calls already had: a stack that had to grow would leave the old one
// behind, unwiped.
//
//go:noinline
func scrubStack() byte {
	var b [6 << 10]byte
	var acc byte
	for i := range b {
		b[i] = 0
		acc |= b[i]
	}
	return acc
}
