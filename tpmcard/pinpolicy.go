package tpmcard

import (
	"fmt"

	"github.com/tpmcard/tpmcard/tpmcard/secret"
)

// CharRule says whether a class of characters may, must or must not appear
// in a PIN: the knobs Windows' TPM virtual smart cards offer.
type CharRule uint8

const (
	Allowed CharRule = iota
	Required
	Disallowed
)

func (r CharRule) String() string {
	switch r {
	case Allowed:
		return "allowed"
	case Required:
		return "required"
	case Disallowed:
		return "disallowed"
	}
	return fmt.Sprintf("CharRule(%d)", uint8(r))
}

// PIN length bounds every policy stays within.
const (
	MinPINLength = 4
	MaxPINLength = 127
)

// PINPolicy constrains the PINs a card accepts. PINs are printable ASCII
// (0x20–0x7e); a space counts as a special character.
type PINPolicy struct {
	MinLength int      `json:"min_length"`
	MaxLength int      `json:"max_length"`
	Upper     CharRule `json:"upper"`
	Lower     CharRule `json:"lower"`
	Digit     CharRule `json:"digit"`
	Special   CharRule `json:"special"`
}

// DefaultPINPolicy accepts 8 to 127 printable characters of any class.
func DefaultPINPolicy() PINPolicy { return PINPolicy{MinLength: 8, MaxLength: MaxPINLength} }

func (p PINPolicy) validate() error {
	switch {
	case p.MinLength < MinPINLength:
		return fmt.Errorf("%w: minimum PIN length %d is below %d", ErrInvalidOptions, p.MinLength, MinPINLength)
	case p.MaxLength > MaxPINLength:
		return fmt.Errorf("%w: maximum PIN length %d is above %d", ErrInvalidOptions, p.MaxLength, MaxPINLength)
	case p.MinLength > p.MaxLength:
		return fmt.Errorf("%w: minimum PIN length %d is above the maximum %d", ErrInvalidOptions, p.MinLength, p.MaxLength)
	}
	for _, r := range []CharRule{p.Upper, p.Lower, p.Digit, p.Special} {
		if r > Disallowed {
			return fmt.Errorf("%w: unknown character rule %d", ErrInvalidOptions, r)
		}
	}
	if p.Upper == Disallowed && p.Lower == Disallowed && p.Digit == Disallowed && p.Special == Disallowed {
		return fmt.Errorf("%w: the PIN policy disallows every character", ErrInvalidOptions)
	}
	return nil
}

// Check reports whether pin satisfies the policy, as a *PolicyError.
func (p PINPolicy) Check(pin secret.Secret) error {
	if len(pin) < p.MinLength || len(pin) > p.MaxLength {
		return &PolicyError{Length: true, Reason: fmt.Sprintf("length must be %d to %d characters", p.MinLength, p.MaxLength)}
	}
	var upper, lower, digit, special bool
	for _, c := range pin {
		switch {
		case c < 0x20 || c > 0x7e:
			return &PolicyError{Reason: "only printable ASCII characters are allowed"}
		case c >= 'A' && c <= 'Z':
			upper = true
		case c >= 'a' && c <= 'z':
			lower = true
		case c >= '0' && c <= '9':
			digit = true
		default:
			special = true
		}
	}
	for _, cls := range []struct {
		name string
		rule CharRule
		has  bool
	}{{"uppercase letters", p.Upper, upper}, {"lowercase letters", p.Lower, lower}, {"digits", p.Digit, digit}, {"special characters", p.Special, special}} {
		if cls.rule == Required && !cls.has {
			return &PolicyError{Reason: cls.name + " are required"}
		}
		if cls.rule == Disallowed && cls.has {
			return &PolicyError{Reason: cls.name + " are not allowed"}
		}
	}
	return nil
}

// PINUse says how often a key needs the PIN: once per login, or for every
// signature (the PIN policy of a YubiKey's PIV slot, PKCS#11's
// CKA_ALWAYS_AUTHENTICATE). The TPM enforces either: a key's authPolicy
// names the proof it takes (policy.go).
type PINUse uint8

const (
	// PINOnce: a login proves the PIN; the key signs until logout.
	PINOnce PINUse = iota
	// PINAlways: every signature needs a PIN proof of its own, made for
	// that one signature (ProvePIN, SignOptions.PIN).
	PINAlways
)

func (u PINUse) String() string {
	switch u {
	case PINOnce:
		return "once"
	case PINAlways:
		return "always"
	}
	return fmt.Sprintf("PINUse(%d)", uint8(u))
}

// ParsePINUse reads "once" or "always".
func ParsePINUse(s string) (PINUse, error) {
	switch s {
	case "once":
		return PINOnce, nil
	case "always":
		return PINAlways, nil
	}
	return 0, fmt.Errorf("%w: PIN use %q: want once or always", ErrInvalidOptions, s)
}

// MarshalText writes the name ParsePINUse reads.
func (u PINUse) MarshalText() ([]byte, error) {
	if u > PINAlways {
		return nil, fmt.Errorf("unknown PIN use %d", uint8(u))
	}
	return []byte(u.String()), nil
}

// UnmarshalText reads what MarshalText writes.
func (u *PINUse) UnmarshalText(b []byte) error {
	v, err := ParsePINUse(string(b))
	if err != nil {
		return err
	}
	*u = v
	return nil
}
