package server

import (
	"bytes"
	"errors"

	"github.com/tpmcard/tpmcard/service/p11"
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
	finds    map[*session]*findOp // searches in progress
	p11      p11State             // digests, verifications, session data objects (p11state.go)
	keys     sessionKeys          // session key pairs (sessionkeys.go)
}

func (o *objects) init() {
	o.byHandle = map[uint64]objRef{}
	o.byRef = map[objRef]uint64{}
	o.finds = map[*session]*findOp{}
	o.keys.init()
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
	if isData(r.kind) { // dataobj.go
		return r, tpmcard.KeyInfo{}, c.dataVisible(s, r)
	}
	if isSessionKey(r.kind) { // sessionkeys.go
		sk, err := c.sessionKeyOf(s, h, r)
		if err != nil {
			return objRef{}, tpmcard.KeyInfo{}, err
		}
		return r, sk.info, nil
	}
	k, err := c.s.m.Key(s.serial, []byte(r.id))
	if errors.Is(err, tpmcard.ErrKeyNotFound) || (err == nil && destroyedHalf(r.kind, k)) {
		c.objects.forget(h) // destroyed, here or by another connection
		return objRef{}, tpmcard.KeyInfo{}, wire.Errorf(wire.ObjectNotFound, "no object %d", h)
	}
	if err != nil {
		return objRef{}, tpmcard.KeyInfo{}, err
	}
	return r, k, nil
}

// destroyedHalf reports whether the object of kind is a half of k that
// was destroyed (C_DestroyObject destroys one object, PKCS#11 v2.40 §5.7).
func destroyedHalf(kind objKind, k tpmcard.KeyInfo) bool {
	return (kind == objPrivate && k.PrivateDestroyed) || (kind == objPublic && k.PublicDestroyed)
}

// keyAttribute is attribute (attrs.go) for one half of a key: token says
// whether it is a token object or a session object, the key's PIN use
// gives the private half's CKA_ALWAYS_AUTHENTICATE.
func keyAttribute(kind objKind, k tpmcard.KeyInfo, token bool, t uint64) ([]byte, wire.Status) {
	switch t {
	case p11.CKAToken, p11.CKAModifiable: // a token key's label and ID can change (setattr.go)
		return wire.Bool(token), wire.OK
	case p11.CKAAlwaysAuthenticate:
		if kind == objPrivate {
			return wire.Bool(k.PINUse == tpmcard.PINAlways), wire.OK
		}
	}
	return attribute(kind, k, t)
}

// destroyKeyHalf destroys one half of a card key (C_DestroyObject,
// PKCS#11 v2.40 §5.7): the private key leaves the TPM's records and the
// public key stays, or the other way round; the key leaves the card with
// its second half. Its certificate stays (tpmcard.Manager.DeletePrivateKey).
func (c *conn) destroyKeyHalf(s *session, h uint64, r objRef) (any, error) {
	del, half := c.s.m.DeletePublicKey, "public"
	if r.kind == objPrivate {
		del, half = c.s.m.DeletePrivateKey, "private"
	}
	if err := del(s.serial, []byte(r.id)); err != nil {
		if errors.Is(err, tpmcard.ErrKeyNotFound) {
			c.objects.forget(h)
			return nil, wire.Errorf(wire.ObjectNotFound, "no object %d", h)
		}
		return nil, err
	}
	c.objects.forget(h)
	c.log.Info().Str("card", s.serial).Hex("key_id", []byte(r.id)).Str("object", half).Msg("key deleted")
	return &wire.Ack{}, nil
}

func (c *conn) findObjects(m *wire.FindObjects) (any, error) {
	if err := c.needUser(wire.TypeFindObjects); err != nil {
		return nil, err
	}
	s, err := c.session(m.Session)
	if err != nil {
		return nil, err
	}
	hs, err := c.matching(s, m.Template)
	if err != nil {
		return nil, err
	}
	return &wire.Objects{Handles: hs}, nil
}

// matching returns the handles of the objects of the session's card that
// match the template: keys (private ones only when logged in), then
// certificates.
func (c *conn) matching(s *session, template []wire.Attribute) ([]uint64, error) {
	keys, err := c.s.m.Keys(s.serial)
	if err != nil {
		return nil, err
	}
	user, _ := c.s.logins.state(c, s.serial)
	rs := c.renames(s.serial) // setattr.go
	var hs []uint64
	for _, k := range keys {
		for _, kind := range []objKind{objPrivate, objPublic} {
			if kind == objPrivate && !user || destroyedHalf(kind, k) {
				continue
			}
			if matches(kind, renamedKey(rs, kind, k), template) {
				hs = append(hs, c.objects.handle(objRef{serial: s.serial, id: string(k.ID), kind: kind}))
			}
		}
	}
	if hs, err = c.findCerts(s.serial, template, hs); err != nil {
		return nil, err
	}
	if hs, err = c.findData(s, template, hs); err != nil { // dataobj.go
		return nil, err
	}
	return c.findSessionKeys(s, template, hs), nil // sessionkeys.go
}

// A search (C_FindObjectsInit … C_FindObjectsFinal, PKCS#11 v2.40 §5.8)
// is kept per session: the handles found at the start, not yet returned.
// It ends with FindObjectsFinal or with its session.
type findOp struct{ handles []uint64 }

// findOf returns the session's search, forgetting those of sessions that
// were closed since.
func (c *conn) findOf(s *session) *findOp {
	for fs := range c.objects.finds {
		if !c.hasSession(fs) {
			delete(c.objects.finds, fs)
		}
	}
	return c.objects.finds[s]
}

func (c *conn) hasSession(s *session) bool {
	for _, o := range c.sessions {
		if o == s {
			return true
		}
	}
	return false
}

func (c *conn) findObjectsInit(m *wire.FindObjectsInit) (any, error) {
	if err := c.needUser(wire.TypeFindObjectsInit); err != nil {
		return nil, err
	}
	s, err := c.session(m.Session)
	if err != nil {
		return nil, err
	}
	if c.findOf(s) != nil {
		return nil, wire.NewError(wire.OperationActive, "a search is active in this session")
	}
	hs, err := c.matching(s, m.Template)
	if err != nil {
		return nil, err
	}
	c.objects.finds[s] = &findOp{handles: hs}
	return &wire.Ack{}, nil
}

func (c *conn) findObjectsNext(m *wire.FindObjectsNext) (any, error) {
	s, err := c.session(m.Session)
	if err != nil {
		return nil, err
	}
	f := c.findOf(s)
	if f == nil {
		return nil, wire.NewError(wire.OperationNotInitialized, "no search in this session")
	}
	n := int(min(m.Max, wire.MaxFindObjects, uint64(len(f.handles))))
	out := &wire.FoundObjects{Handles: f.handles[:n:n]}
	f.handles = f.handles[n:]
	return out, nil
}

func (c *conn) findObjectsFinal(m *wire.FindObjectsFinal) (any, error) {
	s, err := c.session(m.Session)
	if err != nil {
		return nil, err
	}
	if c.findOf(s) == nil {
		return nil, wire.NewError(wire.OperationNotInitialized, "no search in this session")
	}
	delete(c.objects.finds, s)
	return &wire.Ack{}, nil
}

func (c *conn) getAttributes(m *wire.GetAttributes) (any, error) {
	if err := c.needUser(wire.TypeGetAttributes); err != nil {
		return nil, err
	}
	s, err := c.session(m.Session)
	if err != nil {
		return nil, err
	}
	get, err := c.attributesOf(s, m.Object)
	if err != nil {
		return nil, err
	}
	out := &wire.AttributeValues{Values: make([]wire.AttributeResult, 0, len(m.Types))}
	for _, t := range m.Types {
		v, st := get(uint64(t))
		out.Values = append(out.Values, wire.AttributeResult{Type: t, Value: v, Status: st})
	}
	return out, nil
}

// attributesOf resolves an object and returns its attribute reader.
func (c *conn) attributesOf(s *session, h uint64) (func(uint64) ([]byte, wire.Status), error) {
	r, k, err := c.object(s, h)
	if err != nil {
		return nil, err
	}
	if r.kind == objCert {
		ci, err := c.certOf(r)
		if err != nil {
			return nil, err
		}
		rs := c.renames(s.serial) // setattr.go
		return func(t uint64) ([]byte, wire.Status) { return certAttributeOf(rs, ci, t) }, nil
	}
	if isData(r.kind) { // dataobj.go
		return c.dataAttributes(s, r)
	}
	if isSessionKey(r.kind) { // sessionkeys.go
		half := sessionKeyHalf(r.kind)
		return func(t uint64) ([]byte, wire.Status) { return keyAttribute(half, k, false, t) }, nil
	}
	k = renamedKey(c.renames(s.serial), r.kind, k) // setattr.go
	return func(t uint64) ([]byte, wire.Status) { return keyAttribute(r.kind, k, true, t) }, nil
}

// getAttributeValue answers C_GetAttributeValue as PKCS#11 v2.40 §5.7
// says, attribute by attribute: a sensitive attribute (case 1) or one the
// object does not have (case 2) is unavailable; a length query (case 3)
// gets the length; a buffer large enough (case 4) the value; a shorter one
// (case 5) is unavailable. The call returns CKR_ATTRIBUTE_SENSITIVE if case
// 1 applied to any attribute, else CKR_ATTRIBUTE_TYPE_INVALID if case 2
// did, else CKR_BUFFER_TOO_SMALL if case 5 did (the spec allows any of
// those that apply; the service always picks the same one), else CKR_OK.
// getObjectSize is C_GetObjectSize (§5.7): after the checks of
// GetAttributeValue (the session, an object this session sees), the size,
// which on this card is CK_UNAVAILABLE_INFORMATION.
func (c *conn) getObjectSize(m *wire.GetObjectSize) (any, error) {
	if err := c.needUser(wire.TypeGetObjectSize); err != nil {
		return nil, err
	}
	s, err := c.session(m.Session)
	if err != nil {
		return nil, err
	}
	if _, err := c.attributesOf(s, m.Object); err != nil {
		return nil, err
	}
	return &wire.ObjectSize{Size: p11.CKUnavailableInformation}, nil
}

func (c *conn) getAttributeValue(m *wire.GetAttributeValue) (any, error) {
	if err := c.needUser(wire.TypeGetAttributeValue); err != nil {
		return nil, err
	}
	s, err := c.session(m.Session)
	if err != nil {
		return nil, err
	}
	if len(m.Attributes) > wire.MaxAttributeQueries {
		return nil, wire.Errorf(wire.BadRequest, "at most %d attributes per call", wire.MaxAttributeQueries)
	}
	get, err := c.attributesOf(s, m.Object)
	if err != nil {
		return nil, err
	}
	out := &wire.AttributeValue{Values: make([]wire.AttributeAnswer, len(m.Attributes))}
	var seen [3]bool // sensitive, type invalid, buffer too small
	for i, q := range m.Attributes {
		a := &out.Values[i]
		v, st := get(q.Type)
		switch {
		case st == wire.AttributeSensitive:
			a.RV, seen[0] = p11.CKRAttributeSensitive, true
		case st != wire.OK:
			a.RV, seen[1] = p11.CKRAttributeTypeInvalid, true
		case q.Length:
			a.Len = uint64(len(v))
		case uint64(len(v)) > q.Len:
			a.RV, seen[2] = p11.CKRBufferTooSmall, true
		default:
			a.Len, a.Value = uint64(len(v)), v
		}
	}
	for i, rv := range []uint64{p11.CKRAttributeSensitive, p11.CKRAttributeTypeInvalid, p11.CKRBufferTooSmall} {
		if seen[i] {
			out.RV = rv
			break
		}
	}
	return out, nil
}

// matches reports whether every attribute of the template has the object's
// value (PKCS#11 v2.40 §5.8, C_FindObjectsInit). CK_BBOOL values compare by
// truth, so a template's 0xff matches CK_TRUE.
func matches(kind objKind, k tpmcard.KeyInfo, template []wire.Attribute) bool {
	return keyMatches(kind, k, true, template)
}

// keyMatches is matches for a token object (token) or a session object.
func keyMatches(kind objKind, k tpmcard.KeyInfo, token bool, template []wire.Attribute) bool {
	return templateMatches(template, isBool, func(t uint64) ([]byte, wire.Status) { return keyAttribute(kind, k, token, t) })
}

// templateMatches says whether an object, whose attribute values get
// returns, has every attribute of the template: booleans (per boolean)
// compared as values, the rest byte for byte.
func templateMatches(template []wire.Attribute, boolean func(uint64) bool, get func(uint64) ([]byte, wire.Status)) bool {
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
