package main

import (
	"testing"

	"github.com/tpmcard/tpmcard/service/p11"
	"github.com/tpmcard/tpmcard/service/wire"
)

// TestObjectsThroughService: the search rules and C_GetAttributeValue's
// CK_RV come from the service; the module only copies.
func TestObjectsThroughService(t *testing.T) {
	s := startService(t)
	m := newTestModule(t)
	h := openSession(t, m, false)

	n, r := m.FindObjects(h, make([]uint64, 4))
	want(t, "C_FindObjects without a search", r, ckrOperationNotInitialized)
	if n != 0 {
		t.Errorf("%d handles without a search", n)
	}
	want(t, "C_FindObjectsFinal without a search", m.FindObjectsFinal(h), ckrOperationNotInitialized)
	want(t, "C_FindObjectsInit", m.FindObjectsInit(h, []Attribute{ulongAttr(p11.CKAClass, p11.CKOPublicKey)}), ckrOK)
	want(t, "C_FindObjectsInit again", m.FindObjectsInit(h, nil), ckrOperationActive)
	_, r = m.FindObjects(h, nil)
	want(t, "C_FindObjects(max 0)", r, ckrOK)
	pubs := make([]uint64, 8)
	n, r = m.FindObjects(h, pubs)
	want(t, "C_FindObjects", r, ckrOK)
	if n != 1 {
		t.Fatalf("%d public keys", n)
	}
	want(t, "C_FindObjectsFinal", m.FindObjectsFinal(h), ckrOK)

	// An attribute type above 32 bits is not the one in its low half.
	if hs := findAll(t, m, h, ulongAttr(1<<40|p11.CKAClass, p11.CKOPublicKey)); len(hs) != 0 {
		t.Errorf("64-bit type matched %v", hs)
	}
	attrs := []Attribute{
		{Type: 1<<40 | p11.CKAID, Value: make([]byte, 64)},
		{Type: p11.CKAID, Value: make([]byte, len(s.keyID))},
		{Type: p11.CKALabel, Value: make([]byte, 1)},
	}
	want(t, "C_GetAttributeValue", m.GetAttributeValue(h, pubs[0], attrs), ckrAttributeTypeInvalid)
	if attrs[0].Len != ckUnavailableInformation || attrs[1].Len != uint64(len(s.keyID)) || string(attrs[1].Value) != string(s.keyID) ||
		attrs[2].Len != ckUnavailableInformation {
		t.Errorf("attributes %+v", attrs)
	}
	attrs = attrs[1:]
	want(t, "C_GetAttributeValue(short)", m.GetAttributeValue(h, pubs[0], attrs), ckrBufferTooSmall)
}

// lyingService, once lie is set, answers FindObjectsNext and
// GetAttributeValue against the protocol: the module refuses, and writes
// nothing.
type lyingService struct {
	Backend
	lie bool
}

func (l *lyingService) FindObjectsNext(session uint32, max int) ([]uint64, error) {
	hs, err := l.Backend.FindObjectsNext(session, max)
	if l.lie {
		hs = append(hs, 1, 2, 3)
	}
	return hs, err
}

func (l *lyingService) GetAttributeValue(session uint32, object uint64, qs []wire.AttributeQuery) (wire.AttributeValue, error) {
	av, err := l.Backend.GetAttributeValue(session, object, qs)
	for i := range av.Values {
		if l.lie {
			av.Values[i].Value = append(av.Values[i].Value, 0xee)
			av.Values[i].Len++
		}
	}
	return av, err
}

func TestObjectsServiceLies(t *testing.T) {
	s := startService(t)
	ls := &lyingService{}
	m := newModule(func(socket string) (Backend, error) {
		b, err := dialService(socket)
		if err != nil {
			return nil, err
		}
		ls.Backend = b
		return ls, nil
	})
	want(t, "C_Initialize", m.Initialize(nil), ckrOK)
	t.Cleanup(func() { m.Finalize(false) })
	h := openSession(t, m, false)
	pubs := findAll(t, m, h, ulongAttr(p11.CKAClass, p11.CKOPublicKey), Attribute{Type: p11.CKAID, Value: s.keyID})
	if len(pubs) != 1 {
		t.Fatalf("%d public keys", len(pubs))
	}
	ls.lie = true

	want(t, "C_FindObjectsInit", m.FindObjectsInit(h, []Attribute{ulongAttr(p11.CKAClass, p11.CKOPublicKey)}), ckrOK)
	out := make([]uint64, 2)
	n, r := m.FindObjects(h, out)
	want(t, "C_FindObjects (too many handles)", r, ckrDeviceError)
	if n != 0 || out[0] != 0 || out[1] != 0 {
		t.Errorf("wrote %d handles %v", n, out)
	}
	want(t, "C_FindObjectsFinal", m.FindObjectsFinal(h), ckrOK)

	buf := make([]byte, len(s.keyID))
	attrs := []Attribute{{Type: p11.CKAID, Value: buf, Len: 42}}
	want(t, "C_GetAttributeValue (value too long)", m.GetAttributeValue(h, pubs[0], attrs), ckrDeviceError)
	if attrs[0].Len != 42 || string(buf) != string(make([]byte, len(buf))) {
		t.Errorf("wrote %d, %x", attrs[0].Len, buf)
	}
}
