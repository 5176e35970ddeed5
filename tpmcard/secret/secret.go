// Package secret holds PINs, PUKs and other short secrets as bytes that
// refuse to be printed, can be wiped, and compare in constant time.
//
// A Secret is never a string: strings cannot be wiped and end up in logs.
// Every way the standard library formats a value (fmt verbs, JSON, text
// marshalling) yields "[REDACTED]" instead of the bytes.
package secret

import (
	"crypto/subtle"
	"encoding/json"
	"fmt"
)

const redacted = "[REDACTED]"

// Secret is a PIN, PUK or similar secret.
type Secret []byte

// New copies b into a new Secret.
func New(b []byte) Secret { return append(Secret(nil), b...) }

// FromString copies s into a new Secret. Use it only for constants such as
// the default PIN, or for input that already arrived as a string.
func FromString(s string) Secret { return Secret(s) }

// Wipe overwrites the secret's bytes with zeros.
func (s Secret) Wipe() {
	for i := range s {
		s[i] = 0
	}
}

// Equal reports whether s and t hold the same bytes, in time that depends
// only on their lengths.
func (s Secret) Equal(t Secret) bool { return subtle.ConstantTimeCompare(s, t) == 1 }

// Clone returns an independent copy that can be wiped separately.
func (s Secret) Clone() Secret {
	if s == nil {
		return nil
	}
	return New(s)
}

// Bytes returns the underlying bytes, for handing to the TPM.
func (s Secret) Bytes() []byte { return s }

// String implements fmt.Stringer and never reveals the secret.
func (s Secret) String() string { return redacted }

// GoString implements fmt.GoStringer and never reveals the secret.
func (s Secret) GoString() string { return redacted }

// Format implements fmt.Formatter so that every verb, %x and %q included,
// prints the redaction marker.
func (s Secret) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(redacted)) }

// MarshalJSON implements json.Marshaler and never reveals the secret.
func (s Secret) MarshalJSON() ([]byte, error) { return json.Marshal(redacted) }

// MarshalText implements encoding.TextMarshaler and never reveals the secret.
func (s Secret) MarshalText() ([]byte, error) { return []byte(redacted), nil }
