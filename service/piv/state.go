package piv

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// DefaultPort is where vpcd waits for its first card (vsmartcard's
// reader.conf.d entry "DEVICENAME /dev/null:35963"); each entry gives two
// readers, on the port and the next one.
const DefaultPort = 35963

// State is which cards the service presents in PIV readers and which card
// keys sit in their slots. It lives in a file of the service's state
// directory, beside the card records: only the service and the
// administrator write it, never the card's user (a data object on the card
// would be theirs to forge).
type State struct {
	Cards []CardState `json:"cards"`
}

// CardState is one card in a reader: the vpcd port it connects to, and
// its slots as key references in hex ("9a") to card key IDs in hex.
type CardState struct {
	Serial string            `json:"serial"`
	Port   int               `json:"port"`
	Slots  map[string]string `json:"slots,omitempty"`
}

// Card returns the state of the card serial, or nil.
func (s *State) Card(serial string) *CardState {
	for i := range s.Cards {
		if s.Cards[i].Serial == serial {
			return &s.Cards[i]
		}
	}
	return nil
}

// FreePort is DefaultPort or the first port after it no card uses.
func (s *State) FreePort() int {
	p := DefaultPort
	for slices.ContainsFunc(s.Cards, func(c CardState) bool { return c.Port == p }) {
		p++
	}
	return p
}

// SlotKeys returns the card's slots as key reference to key ID.
func (c *CardState) SlotKeys() (map[byte][]byte, error) {
	out := make(map[byte][]byte, len(c.Slots))
	for s, k := range c.Slots {
		slot, err := ParseSlot(s)
		if err != nil {
			return nil, err
		}
		id, err := hex.DecodeString(k)
		if err != nil || len(id) == 0 {
			return nil, fmt.Errorf("piv: card %s slot %s: key ID %q is not hex", c.Serial, s, k)
		}
		out[slot] = id
	}
	return out, nil
}

// ParseSlot reads a key reference written as 9a, 9c, 9d or 9e.
func ParseSlot(s string) (byte, error) {
	b, err := hex.DecodeString(strings.TrimPrefix(strings.ToLower(s), "0x"))
	if err != nil || len(b) != 1 || !isSlot(b[0]) {
		return 0, fmt.Errorf("piv: %q is no PIV key slot: use 9a, 9c, 9d or 9e", s)
	}
	return b[0], nil
}

// SlotName is the key reference in the form ParseSlot reads.
func SlotName(slot byte) string { return fmt.Sprintf("%02x", slot) }

// LoadState reads the state file; a missing one is an empty state.
func LoadState(path string) (*State, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return &State{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("piv: reading state: %w", err)
	}
	var s State
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("piv: state file %s is damaged: %w", path, err)
	}
	for i := range s.Cards {
		if _, err := s.Cards[i].SlotKeys(); err != nil {
			return nil, fmt.Errorf("piv: state file %s: %w", path, err)
		}
	}
	return &s, nil
}

// Save writes the state file atomically: a temporary file in the same
// directory, synced, renamed over the old one, and the directory synced,
// so that a crash leaves the old state or the new one.
func (s *State) Save(path string) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, ".piv-*.tmp")
	if err != nil {
		return fmt.Errorf("piv: saving state: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return fmt.Errorf("piv: saving state: %w", err)
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return fmt.Errorf("piv: saving state: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("piv: saving state: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("piv: saving state: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("piv: saving state: %w", err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync() // not possible on every system (Windows); the rename stands
		d.Close()
	}
	return nil
}
