package tpmcard

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/go-tpm/tpm2"
)

// Data objects (PKCS#11 CKO_DATA) kept on a card: an application's bytes
// with a label, the application's name and an object identifier.
//
// A public one is stored as it is. A private one must not be readable
// without the PIN, in the state directory least of all: its attributes are
// sealed with AES-256-GCM under the card's data key, 32 random bytes that
// the TPM keeps sealed (a keyedhash object under the storage root key, with
// the card keys' policy: PolicySecret of the PIN index, userWithAuth
// clear). The TPM unseals it only in a policy session in which the PIN was
// proved, so reading a private data object costs PolicySecret and
// TPM2_Unseal, like a signature; the unsealed key crosses the bus
// encrypted (a salted session) and is wiped after use. The sealed blob
// loads only on this TPM.

// Limits of a card's data objects. The card record holds them and is
// rewritten whole on every change: 64 objects of at most 16 KiB of value
// (the size of the largest certificate a card takes, and of PIV's largest
// data object) keep it near a megabyte at worst, and one object well
// inside a socket frame.
const (
	MaxDataObjects    = 64
	MaxDataValue      = 16 << 10
	MaxDataAttribute  = 256 // CKA_LABEL, CKA_APPLICATION, CKA_OBJECT_ID
	dataKeySize       = 32
	dataKeyCacheSufix = "/data key" // not hex: no key's cache ID (keyCacheID)
)

// ErrDataObjectNotFound reports a data object the card does not have.
var ErrDataObjectNotFound = fmt.Errorf("data object %w", ErrNotFound)

// DataObject is one data object of a card.
type DataObject struct {
	// ID names the object on the card; the card chooses it (16 random
	// bytes). It is no PKCS#11 attribute.
	ID          []byte
	Private     bool
	Label       []byte
	Application []byte
	ObjectID    []byte // DER of an OBJECT IDENTIFIER, as the application gave it
	Value       []byte
	Modifiable  bool
	Copyable    bool
	Destroyable bool
	Added       time.Time
}

// dataRecord is a data object on disk. A private one has its attributes in
// Sealed only.
type dataRecord struct {
	ID            []byte    `json:"id"`
	Private       bool      `json:"private,omitempty"`
	Label         []byte    `json:"label,omitempty"`
	Application   []byte    `json:"application,omitempty"`
	ObjectID      []byte    `json:"object_id,omitempty"`
	Value         []byte    `json:"value,omitempty"`
	Sealed        []byte    `json:"sealed,omitempty"` // nonce || AES-256-GCM(dataAttrs)
	NotModifiable bool      `json:"not_modifiable,omitempty"`
	NotCopyable   bool      `json:"not_copyable,omitempty"`
	NotDestroyble bool      `json:"not_destroyable,omitempty"`
	Added         time.Time `json:"added"`
}

// dataAttrs is what a private data object's Sealed holds.
type dataAttrs struct {
	Label       []byte `json:"label,omitempty"`
	Application []byte `json:"application,omitempty"`
	ObjectID    []byte `json:"object_id,omitempty"`
	Value       []byte `json:"value,omitempty"`
}

// sealedKey is the card's data key as TPM2_Create returned it: a
// keyedhash object sealed to this TPM's storage root key.
type sealedKey struct {
	Public  []byte `json:"public"`  // TPM2B_PUBLIC contents
	Private []byte `json:"private"` // TPM2B_PRIVATE contents
}

func (d *DataObject) check() error {
	switch {
	case len(d.Value) > MaxDataValue:
		return fmt.Errorf("%w: a data object's value is limited to %d bytes", ErrInvalidOptions, MaxDataValue)
	case len(d.Label) > MaxDataAttribute || len(d.Application) > MaxDataAttribute || len(d.ObjectID) > MaxDataAttribute:
		return fmt.Errorf("%w: a data object's label, application and object ID are limited to %d bytes each", ErrInvalidOptions, MaxDataAttribute)
	}
	return nil
}

func (r *record) dataObject(id []byte) (int, *dataRecord) {
	for i := range r.Data {
		if bytes.Equal(r.Data[i].ID, id) {
			return i, &r.Data[i]
		}
	}
	return -1, nil
}

// public is a data object without its sealed attributes.
func (d *dataRecord) public() DataObject {
	return DataObject{
		ID: bytes.Clone(d.ID), Private: d.Private,
		Label: bytes.Clone(d.Label), Application: bytes.Clone(d.Application),
		ObjectID: bytes.Clone(d.ObjectID), Value: bytes.Clone(d.Value),
		Modifiable: !d.NotModifiable, Copyable: !d.NotCopyable, Destroyable: !d.NotDestroyble, Added: d.Added,
	}
}

// dataAAD binds a sealed data object to its card and ID.
func dataAAD(serial string, id []byte) []byte {
	return append([]byte("tpmcard data object\x00"+serial+"\x00"), id...)
}

// seal encrypts d's attributes into a record.
func sealData(key []byte, serial string, d DataObject) (dataRecord, error) {
	rec := dataRecord{ID: d.ID, Private: d.Private, NotModifiable: !d.Modifiable, NotCopyable: !d.Copyable,
		NotDestroyble: !d.Destroyable, Added: d.Added}
	if !d.Private {
		rec.Label, rec.Application, rec.ObjectID, rec.Value = d.Label, d.Application, d.ObjectID, d.Value
		return rec, nil
	}
	plain, err := json.Marshal(dataAttrs{Label: d.Label, Application: d.Application, ObjectID: d.ObjectID, Value: d.Value})
	if err != nil {
		return dataRecord{}, err
	}
	defer wipe(plain)
	aead, err := dataAEAD(key)
	if err != nil {
		return dataRecord{}, err
	}
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return dataRecord{}, err
	}
	rec.Sealed = aead.Seal(nonce, nonce, plain, dataAAD(serial, d.ID))
	return rec, nil
}

// open decrypts a private data record.
func (d *dataRecord) open(key []byte, serial string) (DataObject, error) {
	out := d.public()
	if !d.Private {
		return out, nil
	}
	aead, err := dataAEAD(key)
	if err != nil {
		return DataObject{}, err
	}
	n := aead.NonceSize()
	if len(d.Sealed) < n {
		return DataObject{}, fmt.Errorf("%w: data object %x of card %s is truncated", ErrCardAltered, d.ID, serial)
	}
	plain, err := aead.Open(nil, d.Sealed[:n], d.Sealed[n:], dataAAD(serial, d.ID))
	if err != nil {
		return DataObject{}, fmt.Errorf("%w: data object %x of card %s does not open with the card's data key", ErrCardAltered, d.ID, serial)
	}
	defer wipe(plain)
	var a dataAttrs
	if err := json.Unmarshal(plain, &a); err != nil {
		return DataObject{}, fmt.Errorf("%w: data object %x of card %s: %v", ErrCardAltered, d.ID, serial, err)
	}
	out.Label, out.Application, out.ObjectID, out.Value = a.Label, a.Application, a.ObjectID, a.Value
	return out, nil
}

func dataAEAD(key []byte) (cipher.AEAD, error) {
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(b)
}

// CreateDataObject stores a new data object on the card and returns it
// with its ID. A private one needs the card logged in (ErrNotLoggedIn);
// the card's first private object makes its data key.
func (m *Manager) CreateDataObject(serial string, d DataObject) (DataObject, error) {
	if err := d.check(); err != nil {
		return DataObject{}, err
	}
	r, err := m.lockCard(serial)
	if err != nil {
		return DataObject{}, err
	}
	defer m.unlock()
	if len(r.Data) >= MaxDataObjects {
		return DataObject{}, fmt.Errorf("%w: card %s holds %d data objects, the most it takes", ErrInvalidOptions, serial, len(r.Data))
	}
	d.ID = make([]byte, 16)
	if _, err := rand.Read(d.ID); err != nil {
		return DataObject{}, err
	}
	d.Added = time.Now().UTC().Truncate(time.Second)
	c := r.clone()
	var key []byte
	if d.Private {
		if key, err = m.dataKey(r, c); err != nil {
			return DataObject{}, err
		}
		defer wipe(key)
	}
	rec, err := sealData(key, serial, d)
	if err != nil {
		return DataObject{}, err
	}
	c.Data = append(append([]dataRecord(nil), r.Data...), rec)
	if err := m.saveRecord(c); err != nil {
		return DataObject{}, err
	}
	return d, nil
}

// DataObjects lists the card's data objects. Without private it lists
// the public ones and reads the record only; with it, the private ones
// too, which needs the card logged in and costs one unseal in the TPM when
// the card has any.
func (m *Manager) DataObjects(serial string, private bool) ([]DataObject, error) {
	if err := m.usable(); err != nil {
		return nil, err
	}
	r, err := m.record(serial)
	if err != nil {
		return nil, err
	}
	hasPrivate := false
	for i := range r.Data {
		hasPrivate = hasPrivate || r.Data[i].Private
	}
	if !private || !hasPrivate {
		var out []DataObject
		for i := range r.Data {
			if !r.Data[i].Private {
				out = append(out, r.Data[i].public())
			}
		}
		return out, nil
	}
	if r, err = m.lockCard(serial); err != nil {
		return nil, err
	}
	defer m.unlock()
	key, err := m.dataKey(r, nil)
	if err != nil {
		return nil, err
	}
	defer wipe(key)
	out := make([]DataObject, 0, len(r.Data))
	for i := range r.Data {
		d, err := r.Data[i].open(key, serial)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, nil
}

// DataObject returns one data object; a private one needs the card
// logged in.
func (m *Manager) DataObject(serial string, id []byte) (DataObject, error) {
	if err := m.usable(); err != nil {
		return DataObject{}, err
	}
	r, err := m.record(serial)
	if err != nil {
		return DataObject{}, err
	}
	_, d := r.dataObject(id)
	if d == nil {
		return DataObject{}, fmt.Errorf("%w: card %s has no data object %x", ErrDataObjectNotFound, serial, id)
	}
	if !d.Private {
		return d.public(), nil
	}
	if r, err = m.lockCard(serial); err != nil {
		return DataObject{}, err
	}
	defer m.unlock()
	if _, d = r.dataObject(id); d == nil {
		return DataObject{}, fmt.Errorf("%w: card %s has no data object %x", ErrDataObjectNotFound, serial, id)
	}
	key, err := m.dataKey(r, nil)
	if err != nil {
		return DataObject{}, err
	}
	defer wipe(key)
	return d.open(key, serial)
}

// DataObjectInfo returns what the record shows of a data object without
// the TPM: the whole object when it is public, only its ID and flags
// (Private, Modifiable, Copyable, Destroyable) when it is private.
func (m *Manager) DataObjectInfo(serial string, id []byte) (DataObject, bool) {
	if m.usable() != nil {
		return DataObject{}, false
	}
	r, err := m.record(serial)
	if err != nil {
		return DataObject{}, false
	}
	_, d := r.dataObject(id)
	if d == nil {
		return DataObject{}, false
	}
	return d.public(), true
}

// DataObjectCount is how many data objects the card holds, private ones
// included, from its record.
func (m *Manager) DataObjectCount(serial string) (int, error) {
	if err := m.usable(); err != nil {
		return 0, err
	}
	r, err := m.record(serial)
	if err != nil {
		return 0, err
	}
	return len(r.Data), nil
}

// UpdateDataObject replaces the attributes of the data object d.ID. A
// private object, before or after, needs the card logged in. Its ID, its
// privacy and its creation time stay.
func (m *Manager) UpdateDataObject(serial string, d DataObject) error {
	if err := d.check(); err != nil {
		return err
	}
	r, err := m.lockCard(serial)
	if err != nil {
		return err
	}
	defer m.unlock()
	i, old := r.dataObject(d.ID)
	if old == nil {
		return fmt.Errorf("%w: card %s has no data object %x", ErrDataObjectNotFound, serial, d.ID)
	}
	d.Private, d.Added = old.Private, old.Added
	c := r.clone()
	var key []byte
	if d.Private {
		if key, err = m.dataKey(r, c); err != nil {
			return err
		}
		defer wipe(key)
	}
	rec, err := sealData(key, serial, d)
	if err != nil {
		return err
	}
	c.Data = append([]dataRecord(nil), r.Data...)
	c.Data[i] = rec
	return m.saveRecord(c)
}

// DeleteDataObject removes a data object from the card.
func (m *Manager) DeleteDataObject(serial string, id []byte) error {
	r, err := m.lockCard(serial)
	if err != nil {
		return err
	}
	defer m.unlock()
	i, d := r.dataObject(id)
	if d == nil {
		return fmt.Errorf("%w: card %s has no data object %x", ErrDataObjectNotFound, serial, id)
	}
	c := r.clone()
	c.Data = append(append([]dataRecord(nil), r.Data[:i]...), r.Data[i+1:]...)
	return m.saveRecord(c)
}

// dataKey unseals the card's data key, after proving the PIN of the
// logged-in card to the TPM. With into (a copy of r about to be saved) a
// card without one gets a new key, sealed into into.DataKey; without, a
// card without one is an error. The caller wipes the key.
func (m *Manager) dataKey(r *record, into *record) ([]byte, error) {
	l := m.logins[r.Serial]
	if l == nil {
		return nil, ErrNotLoggedIn
	}
	if r.DataKey == nil {
		if into == nil {
			return nil, fmt.Errorf("%w: card %s has private data objects but no data key", ErrCardAltered, r.Serial)
		}
		return m.newDataKey(r, into)
	}
	h, name, err := m.loadDataKey(r)
	if err != nil {
		return nil, err
	}
	if err := m.arm(r, l); err != nil {
		return nil, err
	}
	enc, err := m.saltedSession(nil, sessionDir{out: true})
	if err != nil {
		m.sig.dirty = true
		return nil, fmt.Errorf("opening session: %w", busy(err))
	}
	defer enc.Close()
	rsp, err := tpm2.Unseal{ItemHandle: tpm2.AuthHandle{Handle: h, Name: name, Auth: m.sig.sess}}.Execute(m.tpm, enc)
	// Success consumes the policy digest; a failure leaves it unknown.
	m.sig.armedFor = ""
	if err != nil {
		m.sig.dirty = true
		return nil, fmt.Errorf("unsealing the data key of card %s: %w", r.Serial, busy(err))
	}
	key := bytes.Clone(rsp.OutData.Buffer)
	wipe(rsp.OutData.Buffer)
	if len(key) != dataKeySize {
		wipe(key)
		return nil, fmt.Errorf("%w: card %s's data key is %d bytes", ErrCardAltered, r.Serial, len(key))
	}
	return key, nil
}

// newDataKey seals 32 random bytes to the TPM under the card keys' policy.
// The data travels to the TPM encrypted, in a salted session.
func (m *Manager) newDataKey(r *record, into *record) ([]byte, error) {
	key := make([]byte, dataKeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	tmpl := tpm2.TPMTPublic{
		Type:    tpm2.TPMAlgKeyedHash,
		NameAlg: tpm2.TPMAlgSHA256,
		ObjectAttributes: tpm2.TPMAObject{
			FixedTPM: true, FixedParent: true, UserWithAuth: false, AdminWithPolicy: true, NoDA: true,
		},
		AuthPolicy: tpm2.TPM2BDigest{Buffer: keyPolicy(r.PINName)},
		Parameters: tpm2.NewTPMUPublicParms(tpm2.TPMAlgKeyedHash, &tpm2.TPMSKeyedHashParms{
			Scheme: tpm2.TPMTKeyedHashScheme{Scheme: tpm2.TPMAlgNull},
		}),
	}
	enc, err := m.saltedSession(nil, sessionDir{in: true})
	if err != nil {
		wipe(key)
		return nil, fmt.Errorf("opening session: %w", busy(err))
	}
	defer enc.Close()
	var rsp *tpm2.CreateResponse
	err = m.withRoom(func() (err error) {
		rsp, err = tpm2.Create{
			ParentHandle: tpm2.AuthHandle{Handle: m.srk.handle, Name: m.srk.name, Auth: tpm2.PasswordAuth(nil)},
			InSensitive:  tpm2.TPM2BSensitiveCreate{Sensitive: &tpm2.TPMSSensitiveCreate{Data: tpm2.NewTPMUSensitiveCreate(&tpm2.TPM2BSensitiveData{Buffer: key})}},
			InPublic:     tpm2.New2B(tmpl),
		}.Execute(m.tpm, enc)
		return err
	})
	if err != nil {
		wipe(key)
		return nil, fmt.Errorf("sealing a data key for card %s: %w", r.Serial, busy(err))
	}
	pub, priv := tpm2.Marshal(rsp.OutPublic), tpm2.Marshal(rsp.OutPrivate)
	into.DataKey = &sealedKey{Public: pub[2:], Private: priv[2:]}
	return key, nil
}

// loadDataKey loads the sealed data key under the SRK, once, and keeps it
// loaded as the card keys are.
func (m *Manager) loadDataKey(r *record) (tpm2.TPMHandle, tpm2.TPM2BName, error) {
	id := r.Serial + dataKeyCacheSufix
	if lk, ok := m.keys[id]; ok {
		lk.used = m.tick()
		return lk.handle, lk.name, nil
	}
	var rsp *tpm2.LoadResponse
	err := m.withRoom(func() (err error) {
		rsp, err = tpm2.Load{
			ParentHandle: tpm2.AuthHandle{Handle: m.srk.handle, Name: m.srk.name, Auth: tpm2.PasswordAuth(nil)},
			InPrivate:    tpm2.TPM2BPrivate{Buffer: r.DataKey.Private},
			InPublic:     tpm2.BytesAs2B[tpm2.TPMTPublic](r.DataKey.Public),
		}.Execute(m.tpm)
		return err
	})
	if err != nil {
		if isGone(err) || isTPM(err, tpm2.TPMRCBinding) || isTPM(err, tpm2.TPMRCIntegrity) {
			return 0, tpm2.TPM2BName{}, fmt.Errorf("%w (the data key of card %s does not load on this TPM: %v)", ErrCardLost, r.Serial, err)
		}
		return 0, tpm2.TPM2BName{}, fmt.Errorf("loading the data key of card %s: %w", r.Serial, busy(err))
	}
	m.keys[id] = &loadedKey{handle: rsp.ObjectHandle, name: rsp.Name, used: m.tick()}
	return rsp.ObjectHandle, rsp.Name, nil
}
