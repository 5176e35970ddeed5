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
		out[i] = wire.Attribute{Type: uint32(a.Type), Value: bytes.Clone(a.Value)}
	}
	return out
}

// FindObjectsInit is C_FindObjectsInit.
func (m *module) FindObjectsInit(h uint64, template []Attribute) rv {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, b, r := m.session(h)
	if r != ckrOK {
		return r
	}
	if s.find != nil {
		return ckrOperationActive
	}
	handles, err := b.FindObjects(s.wireID, toWire(template)...)
	if err != nil {
		return m.result(err, ckrDeviceRemoved)
	}
	s.find = &findOp{handles: handles}
	return ckrOK
}

// FindObjects is C_FindObjects: it fills out with up to len(out) handles.
func (m *module) FindObjects(h uint64, out []uint64) (int, rv) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, _, r := m.session(h)
	if r != ckrOK {
		return 0, r
	}
	if s.find == nil {
		return 0, ckrOperationNotInitialized
	}
	n := copy(out, s.find.handles)
	s.find.handles = s.find.handles[n:]
	return n, ckrOK
}

// FindObjectsFinal is C_FindObjectsFinal.
func (m *module) FindObjectsFinal(h uint64) rv {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, _, r := m.session(h)
	if r != ckrOK {
		return r
	}
	if s.find == nil {
		return ckrOperationNotInitialized
	}
	s.find = nil
	return ckrOK
}

// GetAttributeValue is C_GetAttributeValue (§5.7): every attribute is
// answered; the return value is the last of CKR_ATTRIBUTE_SENSITIVE,
// CKR_ATTRIBUTE_TYPE_INVALID and CKR_BUFFER_TOO_SMALL that applied, and
// the attributes it applied to get CK_UNAVAILABLE_INFORMATION.
func (m *module) GetAttributeValue(h, obj uint64, attrs []Attribute) rv {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, b, r := m.session(h)
	if r != ckrOK {
		return r
	}
	types := make([]uint32, len(attrs))
	for i, a := range attrs {
		if a.Type > 0xffffffff {
			types[i] = 0xffffffff // vendor space the service will not know
		} else {
			types[i] = uint32(a.Type)
		}
	}
	res, err := b.GetAttributes(s.wireID, obj, types...)
	if err != nil {
		return m.result(err, ckrDeviceRemoved)
	}
	r = ckrOK
	for i := range attrs {
		a := &attrs[i]
		switch res[i].Status {
		case wire.OK:
			v := res[i].Value
			switch {
			case a.Value == nil:
				a.Len = uint64(len(v))
			case len(a.Value) < len(v):
				a.Len = ckUnavailableInformation
				r = ckrBufferTooSmall
			default:
				copy(a.Value, v)
				a.Len = uint64(len(v))
			}
		case wire.AttributeSensitive:
			a.Len = ckUnavailableInformation
			r = ckrAttributeSensitive
		default:
			a.Len = ckUnavailableInformation
			r = ckrAttributeTypeInvalid
		}
	}
	return r
}

// attr finds an attribute in a template.
func attr(t []Attribute, typ uint64) ([]byte, bool) {
	for _, a := range t {
		if a.Type == typ {
			return a.Value, true
		}
	}
	return nil, false
}

// ulong reads a CK_ULONG attribute value.
func ulong(v []byte) (uint64, bool) { return wire.ParseULong(v) }

// CreateObject is C_CreateObject: X.509 certificates only.
func (m *module) CreateObject(h uint64, template []Attribute) (uint64, rv) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, b, r := m.session(h)
	if r != ckrOK {
		return 0, r
	}
	cv, ok := attr(template, p11.CKAClass)
	if !ok {
		return 0, ckrTemplateIncomplete
	}
	if c, ok := ulong(cv); !ok {
		return 0, ckrAttributeValueInvalid
	} else if c != p11.CKOCertificate {
		return 0, ckrTemplateInconsistent
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
