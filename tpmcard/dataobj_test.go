package tpmcard

import (
	"bytes"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/tpmcard/tpmcard/tpmcard/tpmtest"
)

// TestDataObjectsStore: data objects persist in the state directory; a
// private one is sealed there (neither its value nor its label shows, in
// clear or as JSON writes bytes), opens only after a login, on a new
// Manager too, and a wrong PIN opens nothing.
func TestDataObjectsStore(t *testing.T) {
	tpm := tpmtest.Sim(t)
	dir := t.TempDir()
	m := openManager(t, tpm, dir)
	serial := newCard(t, m)
	secretValue := []byte("the value only the PIN opens")
	pub, err := m.CreateDataObject(serial, DataObject{Label: []byte("public"), Value: []byte("open value"), Modifiable: true, Destroyable: true})
	if err != nil {
		t.Fatalf("public data object: %v", err)
	}
	_, err = m.CreateDataObject(serial, DataObject{Private: true, Label: []byte("hidden label"), Value: secretValue})
	if !errors.Is(err, ErrNotLoggedIn) {
		t.Fatalf("a private data object without a login: %v, want ErrNotLoggedIn", err)
	}
	if err := m.Login(serial, testPIN.Clone()); err != nil {
		t.Fatal(err)
	}
	priv, err := m.CreateDataObject(serial, DataObject{Private: true, Label: []byte("hidden label"), Value: secretValue})
	if err != nil {
		t.Fatalf("private data object: %v", err)
	}
	rec, err := os.ReadFile(filepath.Join(dir, "cards", serial+".json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, leak := range [][]byte{secretValue, []byte("hidden label")} {
		if bytes.Contains(rec, leak) || bytes.Contains(rec, []byte(base64.StdEncoding.EncodeToString(leak))) {
			t.Errorf("the card record shows %q", leak)
		}
	}
	if !bytes.Contains(rec, []byte(base64.StdEncoding.EncodeToString([]byte("open value")))) || !bytes.Contains(rec, []byte(`"data_key"`)) {
		t.Errorf("the card record lacks the public object or the sealed data key:\n%s", rec)
	}

	// A second Manager on the same state directory and TPM: public ones
	// without a login, the private one after it.
	m.Close()
	m2 := openManager(t, tpm, dir)
	objs, err := m2.DataObjects(serial, false)
	if err != nil || len(objs) != 1 || !bytes.Equal(objs[0].ID, pub.ID) || !bytes.Equal(objs[0].Value, []byte("open value")) {
		t.Fatalf("public data objects: %+v, %v", objs, err)
	}
	if _, err := m2.DataObject(serial, priv.ID); !errors.Is(err, ErrNotLoggedIn) {
		t.Fatalf("the private object without a login: %v", err)
	}
	if _, err := m2.DataObjects(serial, true); !errors.Is(err, ErrNotLoggedIn) {
		t.Fatalf("every object without a login: %v", err)
	}
	var pe *PINError
	if err := m2.Login(serial, []byte("wrong PIN 123")); !errors.As(err, &pe) {
		t.Fatalf("a wrong PIN: %v", err)
	}
	if err := m2.Login(serial, testPIN.Clone()); err != nil {
		t.Fatal(err)
	}
	d, err := m2.DataObject(serial, priv.ID)
	if err != nil || !bytes.Equal(d.Value, secretValue) || !bytes.Equal(d.Label, []byte("hidden label")) || !d.Private {
		t.Fatalf("the private object after a login: %+v, %v", d, err)
	}
	all, err := m2.DataObjects(serial, true)
	if err != nil || len(all) != 2 {
		t.Fatalf("every object after a login: %d, %v", len(all), err)
	}

	// Changes keep the sealing; a tampered blob is refused.
	d.Label = []byte("still hidden")
	if err := m2.UpdateDataObject(serial, d); err != nil {
		t.Fatal(err)
	}
	if d, err = m2.DataObject(serial, priv.ID); err != nil || string(d.Label) != "still hidden" || !bytes.Equal(d.Value, secretValue) {
		t.Fatalf("after the update: %+v, %v", d, err)
	}
	if err := m2.DeleteDataObject(serial, pub.ID); err != nil {
		t.Fatal(err)
	}
	if n, _ := m2.DataObjectCount(serial); n != 1 {
		t.Errorf("%d data objects after deleting one of 2", n)
	}
	if err := m2.DeleteDataObject(serial, pub.ID); !errors.Is(err, ErrDataObjectNotFound) {
		t.Errorf("deleting it again: %v", err)
	}
}

// TestDataObjectLimits: the value, the text attributes and the number of
// objects are bounded.
func TestDataObjectLimits(t *testing.T) {
	m := openManager(t, tpmtest.Sim(t), "")
	serial := newCard(t, m)
	for _, c := range []struct {
		name string
		d    DataObject
	}{
		{"fail/value", DataObject{Value: make([]byte, MaxDataValue+1)}},
		{"fail/label", DataObject{Label: make([]byte, MaxDataAttribute+1)}},
		{"fail/application", DataObject{Application: make([]byte, MaxDataAttribute+1)}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if _, err := m.CreateDataObject(serial, c.d); !errors.Is(err, ErrInvalidOptions) {
				t.Fatalf("CreateDataObject: %v, want ErrInvalidOptions", err)
			}
		})
	}
	if _, err := m.CreateDataObject(serial, DataObject{Value: make([]byte, MaxDataValue)}); err != nil {
		t.Fatalf("a value of the largest size: %v", err)
	}
	for i := 1; i < MaxDataObjects; i++ {
		if _, err := m.CreateDataObject(serial, DataObject{Value: []byte{byte(i)}}); err != nil {
			t.Fatalf("object %d: %v", i, err)
		}
	}
	if _, err := m.CreateDataObject(serial, DataObject{}); !errors.Is(err, ErrInvalidOptions) {
		t.Fatalf("object %d: %v, want ErrInvalidOptions", MaxDataObjects+1, err)
	}
}

// TestRename: a label or ID set on one object of a key shows on that
// object only, and does not pass to a new key made with the same ID.
func TestRename(t *testing.T) {
	m := openManager(t, tpmtest.Sim(t), "")
	serial := newCard(t, m)
	k := mustGenerate(t, m, serial, ECDSAP256)
	if err := m.Rename(serial, PrivateKeyObject, k.ID, Renamed{Label: "mine", HasLabel: true}); err != nil {
		t.Fatal(err)
	}
	if err := m.Rename(serial, PublicKeyObject, k.ID, Renamed{ID: []byte{1, 2}, HasID: true}); err != nil {
		t.Fatal(err)
	}
	rs, err := m.Renames(serial)
	if err != nil {
		t.Fatal(err)
	}
	if n := rs.Of(PrivateKeyObject, k.ID); !n.HasLabel || n.Label != "mine" || n.HasID {
		t.Errorf("private key: %+v", n)
	}
	if n := rs.Of(PublicKeyObject, k.ID); n.HasLabel || !n.HasID || !bytes.Equal(n.ID, []byte{1, 2}) {
		t.Errorf("public key: %+v", n)
	}
	if err := m.Rename(serial, CertificateObject, k.ID, Renamed{Label: "x", HasLabel: true}); !errors.Is(err, ErrCertNotFound) {
		t.Errorf("renaming a certificate the key does not have: %v", err)
	}
	if err := m.DeleteKey(serial, k.ID); err != nil {
		t.Fatal(err)
	}
	k2, err := m.GenerateKey(t.Context(), serial, KeyOptions{Algorithm: ECDSAP256, ID: k.ID}, nil)
	if err != nil {
		t.Fatal(err)
	}
	rs, _ = m.Renames(serial)
	if n := rs.Of(PrivateKeyObject, k2.ID); n.HasLabel || n.HasID {
		t.Errorf("a new key with the old ID inherited %+v", n)
	}
}

// BenchmarkDataObjectRead reads a public and a private data object; the
// private one costs PolicySecret and TPM2_Unseal (and a salted session for
// the unsealed key) per read.
func BenchmarkDataObjectRead(b *testing.B) {
	tpm := tpmtest.Sim(b)
	m, err := Open(tpm, WithStateDir(b.TempDir()))
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	c, err := m.Create(CreateOptions{Label: "bench", PIN: testPIN.Clone(), PUK: testPUK.Clone()})
	if err != nil {
		b.Fatal(err)
	}
	serial := c.Card.Serial
	if err := m.Login(serial, testPIN.Clone()); err != nil {
		b.Fatal(err)
	}
	pub, err := m.CreateDataObject(serial, DataObject{Value: make([]byte, 1024)})
	if err != nil {
		b.Fatal(err)
	}
	priv, err := m.CreateDataObject(serial, DataObject{Private: true, Value: make([]byte, 1024)})
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name string
		id   []byte
	}{{"public", pub.ID}, {"private", priv.ID}} {
		b.Run(c.name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				if _, err := m.DataObject(serial, c.id); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
