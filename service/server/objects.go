package server

import (
	"bytes"
	"errors"

	"github.com/tpmcard/tpmcard/service/wire"
	"github.com/tpmcard/tpmcard/tpmcard"
)

// objKind is the PKCS#11 object class of one half of a card key.
type objKind uint8

const (
	objPublic objKind = iota + 1
	objPrivate
)

// objRef names an object independently of its handle: each card key shows
// as a private key object and a public key object with the same CKA_ID.
type objRef struct {
	serial string
	id     string // the key's ID bytes
	kind   objKind
}

// objects assigns handles. A handle stays the same for the life of the
// connection (PKCS#11 v2.40 §2.4: handles are per application) and is
// never reused, even after the object is deleted.
type objects struct {
	byHandle map[uint64]objRef
	byRef    map[objRef]uint64
	next     uint64
}

func (o *objects) init() {
	o.byHandle = map[uint64]objRef{}
	o.byRef = map[objRef]uint64{}
}

func (o *objects) handle(r objRef) uint64 {
	if h, ok := o.byRef[r]; ok {
		return h
	}
	o.next++ // starts at 1: 0 is CK_INVALID_HANDLE
	o.byHandle[o.next] = r
	o.byRef[r] = o.next
	return o.next
}

// drop forgets both objects of a deleted key.
func (o *objects) drop(serial, id string) {
	for _, k := range []objKind{objPublic, objPrivate} {
		r := objRef{serial: serial, id: id, kind: k}
		if h, ok := o.byRef[r]; ok {
			delete(o.byRef, r)
			delete(o.byHandle, h)
		}
	}
}

func (o *objects) dropCard(serial string) {
	for h, r := range o.byHandle {
		if r.serial == serial {
			delete(o.byHandle, h)
			delete(o.byRef, r)
		}
	}
}

// object resolves a handle in a session: the object must be on the
// session's card, still exist, and, if private, the application must be
// logged in (private objects are invisible otherwise, §4.4).
func (c *conn) object(s *session, h uint64) (objRef, tpmcard.KeyInfo, error) {
	r, ok := c.objects.byHandle[h]
	if !ok || r.serial != s.serial {
		return objRef{}, tpmcard.KeyInfo{}, wire.Errorf(wire.ObjectNotFound, "no object %d", h)
	}
	if r.kind == objPrivate {
		if user, _ := c.s.logins.state(c, s.serial); !user {
			return objRef{}, tpmcard.KeyInfo{}, wire.Errorf(wire.ObjectNotFound, "no object %d", h)
		}
	}
	if r.kind == objCert { // certs.go
		_, err := c.certOf(r)
		return r, tpmcard.KeyInfo{}, err
	}
	k, err := c.s.m.Key(s.serial, []byte(r.id))
	if errors.Is(err, tpmcard.ErrKeyNotFound) {
		c.objects.drop(r.serial, r.id) // deleted by another connection
		return objRef{}, tpmcard.KeyInfo{}, wire.Errorf(wire.ObjectNotFound, "no object %d", h)
	}
	if err != nil {
		return objRef{}, tpmcard.KeyInfo{}, err
	}
	return r, k, nil
}

func (c *conn) findObjects(m *wire.FindObjects) (any, error) {
	if err := c.needUser(wire.TypeFindObjects); err != nil {
		return nil, err
	}
	s, err := c.session(m.Session)
	if err != nil {
		return nil, err
	}
	keys, err := c.s.m.Keys(s.serial)
	if err != nil {
		return nil, err
	}
	user, _ := c.s.logins.state(c, s.serial)
	out := &wire.Objects{}
	for _, k := range keys {
		for _, kind := range []objKind{objPrivate, objPublic} {
			if kind == objPrivate && !user {
				continue
			}
			if matches(kind, k, m.Template) {
				out.Handles = append(out.Handles, c.objects.handle(objRef{serial: s.serial, id: string(k.ID), kind: kind}))
			}
		}
	}
	if err := c.findCerts(s.serial, m.Template, out); err != nil {
		return nil, err
	}
	return out, nil
}

func (c *conn) getAttributes(m *wire.GetAttributes) (any, error) {
	if err := c.needUser(wire.TypeGetAttributes); err != nil {
		return nil, err
	}
	s, err := c.session(m.Session)
	if err != nil {
		return nil, err
	}
	r, k, err := c.object(s, m.Object)
	if err != nil {
		return nil, err
	}
	if r.kind == objCert {
		return c.certAttributes(r, m.Types)
	}
	out := &wire.AttributeValues{Values: make([]wire.AttributeResult, 0, len(m.Types))}
	for _, t := range m.Types {
		v, st := attribute(r.kind, k, t)
		out.Values = append(out.Values, wire.AttributeResult{Type: t, Value: v, Status: st})
	}
	return out, nil
}

// matches reports whether every attribute of the template has the object's
// value (PKCS#11 v2.40 §5.8, C_FindObjectsInit). CK_BBOOL values compare by
// truth, so a template's 0xff matches CK_TRUE.
func matches(kind objKind, k tpmcard.KeyInfo, template []wire.Attribute) bool {
	return templateMatches(template, isBool, func(t uint32) ([]byte, wire.Status) { return attribute(kind, k, t) })
}

// templateMatches says whether an object, whose attribute values get
// returns, has every attribute of the template: booleans (per boolean)
// compared as values, the rest byte for byte.
func templateMatches(template []wire.Attribute, boolean func(uint32) bool, get func(uint32) ([]byte, wire.Status)) bool {
	for _, a := range template {
		v, st := get(a.Type)
		if st != wire.OK {
			return false
		}
		if boolean(a.Type) {
			want, ok1 := wire.ParseBool(a.Value)
			have, ok2 := wire.ParseBool(v)
			if !ok1 || !ok2 || want != have {
				return false
			}
			continue
		}
		if !bytes.Equal(v, a.Value) {
			return false
		}
	}
	return true
}
