package main

import (
	"bytes"

	"github.com/tpmcard/tpmcard/service/p11"
	"github.com/tpmcard/tpmcard/service/wire"
)

// ---------------------------------------------------------------------------
// Objects (§5.7).

// Attribute is one CK_ATTRIBUTE: for reading, Value is the caller's buffer
// (nil for a length query) and Len receives the length or
// CK_UNAVAILABLE_INFORMATION; for templates, Value is the value.
type Attribute struct {
	Type  uint64
	Value []byte
	Len   uint64
}

func toWire(t []Attribute) []wire.Attribute {
	out := make([]wire.Attribute, len(t))
	for i, a := range t {
		out[i] = wire.Attribute{Type: a.Type, Value: bytes.Clone(a.Value)}
	}
	return out
}

// FindObjectsInit is C_FindObjectsInit. The search is the service's: it
// answers CKR_OPERATION_ACTIVE for a second one in the session.
func (m *module) FindObjectsInit(h uint64, template []Attribute) rv {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, b, r := m.session(h)
	if r != ckrOK {
		return r
	}
	return m.result(b.FindObjectsInit(s.wireID, toWire(template)...), ckrDeviceRemoved)
}

// FindObjects is C_FindObjects: it fills out with the service's next
// handles, at most len(out).
func (m *module) FindObjects(h uint64, out []uint64) (int, rv) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, b, r := m.session(h)
	if r != ckrOK {
		return 0, r
	}
	hs, err := b.FindObjectsNext(s.wireID, len(out))
	if err != nil {
		return 0, m.result(err, ckrDeviceRemoved)
	}
	if len(hs) > len(out) {
		return 0, ckrDeviceError // more than asked: not a service this module knows
	}
	return copy(out, hs), ckrOK
}

// FindObjectsFinal is C_FindObjectsFinal.
func (m *module) FindObjectsFinal(h uint64) rv {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, b, r := m.session(h)
	if r != ckrOK {
		return r
	}
	return m.result(b.FindObjectsFinal(s.wireID), ckrDeviceRemoved)
}

// GetAttributeValue is C_GetAttributeValue (§5.7): the service decides,
// per attribute and for the call, what PKCS#11 says; the module copies the
// values and lengths and returns the service's CK_RV.
func (m *module) GetAttributeValue(h, obj uint64, attrs []Attribute) rv {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, b, r := m.session(h)
	if r != ckrOK {
		return r
	}
	qs := make([]wire.AttributeQuery, len(attrs))
	for i, a := range attrs {
		qs[i] = wire.AttributeQuery{Type: a.Type, Len: uint64(len(a.Value)), Length: a.Value == nil}
	}
	res, err := b.GetAttributeValue(s.wireID, obj, qs)
	if err != nil {
		return m.result(err, ckrDeviceRemoved)
	}
	if len(res.Values) != len(attrs) {
		return ckrDeviceError
	}
	for i, v := range res.Values {
		if v.RV == p11.CKROK && attrs[i].Value != nil && (uint64(len(v.Value)) != v.Len || len(v.Value) > len(attrs[i].Value)) {
			return ckrDeviceError // a value that does not fit: the service broke the protocol
		}
	}
	for i := range attrs {
		a, v := &attrs[i], res.Values[i]
		switch {
		case v.RV != p11.CKROK:
			a.Len = ckUnavailableInformation
		default:
			copy(a.Value, v.Value)
			a.Len = v.Len
		}
	}
	return rv(res.RV)
}

// CreateObject is C_CreateObject: the service checks the template (X.509
// certificates only).
func (m *module) CreateObject(h uint64, template []Attribute) (uint64, rv) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, b, r := m.session(h)
	if r != ckrOK {
		return 0, r
	}
	oc, ok := b.(objectCreator)
	if !ok {
		return 0, ckrFunctionNotSupported
	}
	obj, err := oc.CreateObject(s.wireID, toWire(template)...)
	if err != nil {
		return 0, m.result(err, ckrDeviceRemoved)
	}
	return obj, ckrOK
}

// DestroyObject is C_DestroyObject.
func (m *module) DestroyObject(h, obj uint64) rv {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, b, r := m.session(h)
	if r != ckrOK {
		return r
	}
	clear(m.lengths) // either handle of a pair deletes the key
	return m.result(b.DestroyObject(s.wireID, obj), ckrDeviceRemoved)
}
