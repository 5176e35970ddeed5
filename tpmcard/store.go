package tpmcard

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"
)

// recordVersion is the on-disk format of a card record. A record of a
// newer version is refused rather than misread. Version 1 cards had a PIN
// policy that the owner-authorization holder could forge and derived the
// PIN's authValue without a salt or a slow KDF: they load, list as
// outdated, and can only be destroyed.
const (
	recordVersion       = 2
	oldestRecordVersion = 1
)

// record is what the disk keeps of a card: handles, names and public data.
// It never holds a PIN, a PUK or anything derived from one.
type record struct {
	Version    int          `json:"version"`
	Serial     string       `json:"serial"`
	Label      string       `json:"label"`
	Created    time.Time    `json:"created"`
	PINIndex   uint32       `json:"pin_index"`
	PUKIndex   uint32       `json:"puk_index"`
	PINName    []byte       `json:"pin_name"` // TPM Name after the first write
	PUKName    []byte       `json:"puk_name"`
	PINLimit   uint32       `json:"pin_limit"`
	PUKLimit   uint32       `json:"puk_limit"`
	Policy     PINPolicy    `json:"pin_policy"`
	MustChange bool         `json:"pin_must_change"`
	Pending    bool         `json:"pending,omitempty"`    // Create has not finished
	Destroying bool         `json:"destroying,omitempty"` // Destroy began: the next one finishes it
	NoPUK      bool         `json:"no_puk,omitempty"`     // unblocked by the admin key alone
	AdminKey   []byte       `json:"admin_key,omitempty"`  // TPMT_PUBLIC of the administrator's P-256 key
	Owner      *Owner       `json:"owner,omitempty"`      // who may use the card besides administrators
	Approval   approval     `json:"approval"`
	KDF        kdfParams    `json:"kdf"` // how PINs and PUKs become authValues (kdf.go)
	Keys       []keyRecord  `json:"keys"`
	Certs      []certRecord `json:"certs,omitempty"`
	// Data objects, the key that seals the private ones (dataobj.go), and
	// objects whose label or ID was changed (objattrs.go).
	Data      []dataRecord     `json:"data,omitempty"`
	DataKey   *sealedKey       `json:"data_key,omitempty"`
	Overrides []objectOverride `json:"object_attrs,omitempty"`

	// infos are the keys' KeyInfo, parsed once when the record enters the
	// cache (parsing a TPMT_PUBLIC costs more than a socket request).
	infos []parsedKey
}

// keyRecord is one key's TPM blobs. Private is the TPM2B_PRIVATE sealed by
// this TPM's storage root key: useless anywhere else.
type keyRecord struct {
	ID        []byte    `json:"id"`
	Label     string    `json:"label"`
	Algorithm Algorithm `json:"algorithm"`
	Public    []byte    `json:"public"`  // TPM2B_PUBLIC
	Private   []byte    `json:"private"` // TPM2B_PRIVATE
	Created   time.Time `json:"created"`
	// Creation is what TPM2_Create returned about the key's creation, for
	// TPM2_CertifyCreation (attest.go). Keys made before it was kept have
	// none and cannot be attested.
	Creation *keyCreation `json:"creation,omitempty"`
	// PINUse is how often the key needs the PIN; its authPolicy says the
	// same to the TPM (policy.go). Absent: once per login.
	PINUse PINUse `json:"pin_use,omitempty"`
	// PrivateDestroyed: the private key was destroyed and Private is
	// empty; the public key stays until PublicDestroyed is set too, when
	// the record goes.
	PrivateDestroyed bool `json:"private_destroyed,omitempty"`
	PublicDestroyed  bool `json:"public_destroyed,omitempty"`
}

type parsedKey struct {
	info KeyInfo
	err  error
}

// prepare parses the keys' public areas into infos. Call it on a record
// no one else sees yet.
func (r *record) prepare() {
	r.infos = make([]parsedKey, len(r.Keys))
	for i := range r.Keys {
		r.infos[i].info, r.infos[i].err = r.Keys[i].info()
	}
}

// keyInfo is the parsed KeyInfo of the key with this ID.
func (r *record) keyInfo(id []byte) (KeyInfo, bool, error) {
	for i := range r.Keys {
		if string(r.Keys[i].ID) == string(id) {
			if i < len(r.infos) {
				return r.infos[i].info, true, r.infos[i].err
			}
			ki, err := r.Keys[i].info()
			return ki, true, err
		}
	}
	return KeyInfo{}, false, nil
}

// StateError is a failed read or write in the state directory. The
// operating system's error stays reachable: errors.Is(err, syscall.ENOSPC),
// syscall.EROFS, fs.ErrPermission … tell a full disk, a read-only mount and
// a permission problem apart.
type StateError struct {
	Dir string // the state directory
	Op  string // what was being done: "saving card 0123…"
	Err error
}

func (e *StateError) Error() string { return e.Op + ": " + e.Err.Error() }
func (e *StateError) Unwrap() error { return e.Err }

// NotRecordedError reports an operation that the TPM carried out, so it is
// done, but whose record could not be written afterwards. It is a success:
// the caller tells the user what Done and Undone say and does not retry.
type NotRecordedError struct {
	Done   string // what happened: "the PIN was changed: use the new PIN"
	Undone string // what the record lacks, and what follows from it
	Err    error  // the failed write, a *StateError
}

func (e *NotRecordedError) Error() string {
	return e.Done + "; but " + e.Undone + " (" + e.Err.Error() + ")"
}
func (e *NotRecordedError) Unwrap() error { return e.Err }

// store keeps one JSON record per card in dir/cards, written atomically
// (temporary file, fsync, rename, fsync of the directory), files 0600 in
// directories 0700. One service uses a state directory at a time.
type store struct {
	dir    string
	rename func(oldpath, newpath string) error // os.Rename; tests inject faults
	remove func(name string) error             // os.Remove; tests inject faults
	// stale is how many temporary files of killed writes newStore removed.
	stale int
}

// tmpPrefix starts the name of a record being written.
const tmpPrefix = ".tmp-"

func newStore(dir string) (*store, error) {
	s := &store{dir: dir, rename: os.Rename, remove: os.Remove}
	if err := os.MkdirAll(s.cardsDir(), 0o700); err != nil {
		return nil, s.fail("creating state directory", err)
	}
	// MkdirAll leaves existing directories as they are: tighten them.
	for _, d := range []string{dir, s.cardsDir()} {
		if err := os.Chmod(d, 0o700); err != nil {
			return nil, s.fail("securing state directory", err)
		}
	}
	n, err := s.removeStale()
	if err != nil {
		return nil, err
	}
	s.stale = n
	return s, nil
}

// fail wraps an error of the state directory as a *StateError.
func (s *store) fail(op string, err error) error {
	return &StateError{Dir: s.dir, Op: op, Err: err}
}

// removeStale deletes the temporary files that writes killed before their
// rename left behind, and says how many there were.
func (s *store) removeStale() (int, error) {
	ents, err := os.ReadDir(s.cardsDir())
	if err != nil {
		return 0, s.fail("listing cards", err)
	}
	n := 0
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), tmpPrefix) || !e.Type().IsRegular() {
			continue
		}
		if err := s.remove(filepath.Join(s.cardsDir(), e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return n, s.fail("removing a stale temporary file", err)
		}
		n++
	}
	if n > 0 {
		if err := syncDir(s.cardsDir()); err != nil {
			return n, s.fail("removing stale temporary files", err)
		}
	}
	return n, nil
}

// StaleFilesRemoved is how many temporary files of writes that a killed
// process left in the state directory Open removed.
func (m *Manager) StaleFilesRemoved() int { return m.st.stale }

func (s *store) cardsDir() string { return filepath.Join(s.dir, "cards") }

func (s *store) path(serial string) string { return filepath.Join(s.cardsDir(), serial+".json") }

func validSerial(serial string) bool {
	if len(serial) == 0 || len(serial) > 32 {
		return false
	}
	for _, c := range serial {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

func (s *store) load(serial string) (*record, error) {
	if !validSerial(serial) {
		return nil, fmt.Errorf("%w: %q", ErrCardNotFound, serial)
	}
	b, err := os.ReadFile(s.path(serial))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", ErrCardNotFound, serial)
	}
	if err != nil {
		return nil, s.fail("reading card "+serial, err)
	}
	var r record
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("reading card %s: corrupt record: %w", serial, err)
	}
	if r.Version < oldestRecordVersion || r.Version > recordVersion {
		return nil, fmt.Errorf("reading card %s: record version %d, this build reads versions %d to %d", serial, r.Version, oldestRecordVersion, recordVersion)
	}
	if r.Serial != serial {
		return nil, fmt.Errorf("reading card %s: record names card %q", serial, r.Serial)
	}
	if r.Version >= 2 {
		if err := r.KDF.check(); err != nil {
			return nil, fmt.Errorf("reading card %s: corrupt record: %w", serial, err)
		}
	}
	return &r, nil
}

func (s *store) list() ([]string, error) {
	ents, err := os.ReadDir(s.cardsDir())
	if err != nil {
		return nil, s.fail("listing cards", err)
	}
	var serials []string
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), ".json")
		if ok && e.Type().IsRegular() && validSerial(name) {
			serials = append(serials, name)
		}
	}
	sort.Strings(serials)
	return serials, nil
}

// save replaces the card's record atomically: a crash or a failed rename
// leaves the previous record intact.
func (s *store) save(r *record) error {
	if r.Version == 0 {
		r.Version = recordVersion // a new card
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding card %s: %w", r.Serial, err)
	}
	op := "saving card " + r.Serial
	f, err := os.CreateTemp(s.cardsDir(), tmpPrefix+r.Serial+"-*")
	if err != nil {
		return s.fail(op, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after a successful rename
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return s.fail(op, err)
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return s.fail(op, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return s.fail(op, err)
	}
	if err := f.Close(); err != nil {
		return s.fail(op, err)
	}
	if err := s.rename(tmp, s.path(r.Serial)); err != nil {
		return s.fail(op, err)
	}
	if err := syncDir(s.cardsDir()); err != nil {
		return s.fail(op, err)
	}
	return nil
}

func (s *store) removeRecord(serial string) error {
	if err := s.remove(s.path(serial)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return s.fail("removing card "+serial, err)
	}
	if err := syncDir(s.cardsDir()); err != nil {
		return s.fail("removing card "+serial, err)
	}
	return nil
}

// syncDir makes a rename durable. Windows cannot sync a directory handle;
// its rename is durable once MoveFileEx returns.
func syncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, os.ErrInvalid) {
		return fmt.Errorf("syncing %s: %w", dir, err)
	}
	return nil
}
