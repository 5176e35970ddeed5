package server

import (
	"bytes"
	"encoding/asn1"
	"errors"
	"strconv"
	"unicode/utf8"

	"github.com/tpmcard/tpmcard/service/p11"
	"github.com/tpmcard/tpmcard/service/wire"
	"github.com/tpmcard/tpmcard/tpmcard"
)

// Data objects (PKCS#11 v2.40 §4.5, CKO_DATA): token objects are kept on
// the card by tpmcard (a private one sealed under a key the TPM releases
// only after the PIN), session objects (CKA_TOKEN false) in the
// connection, gone with the session that made them. Any card user may
// create, change and destroy them in a session of the card: a token object
// needs a read-write session, a private object the user's login.
const (
	objData        objKind = 4 // a token data object; objRef.id is its tpmcard ID
	objSessionData objKind = 5 // a session data object; objRef.id is its number
)

// maxSessionData bounds a connection's session data objects.
const maxSessionData = 256

func isData(k objKind) bool { return k == objData || k == objSessionData }

// sessionData is a session data object and the session that made it.
type sessionData struct {
	owner *session
	obj   tpmcard.DataObject
}

// dataVisible checks that a data object this session names still exists
// and, if private, that the application is logged in (§4.4: private
// objects are invisible otherwise). It reads no private value.
func (c *conn) dataVisible(s *session, r objRef) error {
	private, ok := false, false
	if r.kind == objData {
		var d tpmcard.DataObject
		d, ok = c.s.m.DataObjectInfo(s.serial, []byte(r.id))
		private = d.Private
	} else if d := c.p11().data[r.id]; d != nil {
		private, ok = d.obj.Private, true
	}
	if !ok {
		if h, known := c.objects.byRef[r]; known {
			c.objects.forget(h) // destroyed by another connection, or its session closed
		}
		return wire.NewError(wire.ObjectNotFound, "no such object")
	}
	if user, _ := c.s.logins.state(c, s.serial); private && !user {
		return wire.NewError(wire.ObjectNotFound, "no such object")
	}
	return nil
}

// dataObject reads a data object whole, the private value included (one
// unseal in the TPM for a private token object).
func (c *conn) dataObject(s *session, r objRef) (tpmcard.DataObject, error) {
	if r.kind == objSessionData {
		return c.p11().data[r.id].obj, nil
	}
	if info, _ := c.s.m.DataObjectInfo(s.serial, []byte(r.id)); !info.Private {
		return c.s.m.DataObject(s.serial, []byte(r.id))
	}
	var d tpmcard.DataObject
	err := c.s.logins.withUser(c, s.serial, func() (err error) {
		d, err = c.s.m.DataObject(s.serial, []byte(r.id))
		return err
	})
	return d, err
}

// dataAttributes is attributesOf for a data object.
func (c *conn) dataAttributes(s *session, r objRef) (func(uint64) ([]byte, wire.Status), error) {
	d, err := c.dataObject(s, r)
	if err != nil {
		return nil, err
	}
	token := r.kind == objData
	return func(t uint64) ([]byte, wire.Status) { return dataAttribute(d, token, t) }, nil
}

// dataAttribute is one attribute of a data object (§4.4, §4.5).
func dataAttribute(d tpmcard.DataObject, token bool, t uint64) ([]byte, wire.Status) {
	switch t {
	case p11.CKAClass:
		return wire.ULong(ckoData), wire.OK
	case p11.CKAToken:
		return wire.Bool(token), wire.OK
	case p11.CKAPrivate:
		return wire.Bool(d.Private), wire.OK
	case p11.CKAModifiable:
		return wire.Bool(d.Modifiable), wire.OK
	case p11.CKACopyable:
		return wire.Bool(d.Copyable), wire.OK
	case p11.CKADestroyable:
		return wire.Bool(d.Destroyable), wire.OK
	case p11.CKALabel:
		return d.Label, wire.OK
	case ckaApplication:
		return d.Application, wire.OK
	case ckaObjectID:
		return d.ObjectID, wire.OK
	case p11.CKAValue:
		return d.Value, wire.OK
	}
	return nil, wire.AttributeInvalid
}

func isDataBool(t uint64) bool {
	switch t {
	case p11.CKAToken, p11.CKAPrivate, p11.CKAModifiable, p11.CKACopyable, p11.CKADestroyable:
		return true
	}
	return false
}

// findData appends the handles of the data objects the session sees that
// match the template: the card's (the private ones only when logged in,
// which costs one unseal when the card has any), then the connection's
// session objects.
func (c *conn) findData(s *session, template []wire.Attribute, hs []uint64) ([]uint64, error) {
	if !templateCouldBeData(template) {
		return hs, nil
	}
	user, _ := c.s.logins.state(c, s.serial)
	var objs []tpmcard.DataObject
	var err error
	if user {
		err = c.s.logins.withUser(c, s.serial, func() (err error) {
			objs, err = c.s.m.DataObjects(s.serial, true)
			return err
		})
	} else {
		objs, err = c.s.m.DataObjects(s.serial, false)
	}
	if err != nil {
		return nil, err
	}
	for _, d := range objs {
		if templateMatches(template, isDataBool, func(t uint64) ([]byte, wire.Status) { return dataAttribute(d, true, t) }) {
			hs = append(hs, c.objects.handle(objRef{serial: s.serial, id: string(d.ID), kind: objData}))
		}
	}
	p := c.p11()
	for id, d := range p.data {
		if d.owner.serial != s.serial || d.obj.Private && !user {
			continue
		}
		if templateMatches(template, isDataBool, func(t uint64) ([]byte, wire.Status) { return dataAttribute(d.obj, false, t) }) {
			hs = append(hs, c.objects.handle(objRef{serial: s.serial, id: id, kind: objSessionData}))
		}
	}
	return hs, nil
}

// templateCouldBeData says whether a search template can match a data
// object at all: a search for keys or certificates (CKA_CLASS of another
// class) need not unseal anything.
func templateCouldBeData(template []wire.Attribute) bool {
	for _, a := range template {
		if a.Type == p11.CKAClass {
			if v, ok := wire.ParseULong(a.Value); !ok || v != ckoData {
				return false
			}
		}
	}
	return true
}

// dataTemplate is a data object's attributes as a template sets them.
type dataTemplate struct {
	obj   tpmcard.DataObject
	token bool
}

// parseDataTemplate checks a C_CreateObject template of class CKO_DATA
// fully (§4.4, §4.5, §5.7): every attribute must be one of a data object,
// booleans one byte, a CKA_OBJECT_ID the DER of an OBJECT IDENTIFIER, the
// sizes within the card's limits, and an attribute given twice the same
// both times. The defaults: a session object, private, modifiable,
// copyable, destroyable, the rest empty.
func parseDataTemplate(template []wire.Attribute) (dataTemplate, error) {
	dt := dataTemplate{obj: tpmcard.DataObject{Private: true, Modifiable: true, Copyable: true, Destroyable: true}}
	seen := map[uint64][]byte{}
	for _, a := range template {
		if prev, dup := seen[a.Type]; dup {
			if !bytes.Equal(prev, a.Value) {
				return dataTemplate{}, wire.Errorf(wire.TemplateInconsistent, "attribute %#x given twice with different values", a.Type)
			}
			continue
		}
		seen[a.Type] = a.Value
		if err := dt.set(a, true); err != nil {
			return dataTemplate{}, err
		}
	}
	return dt, nil
}

// set applies one attribute of a creation (create) or of a copy's template.
func (dt *dataTemplate) set(a wire.Attribute, create bool) error {
	if isDataBool(a.Type) {
		v, ok := wire.ParseBool(a.Value)
		if !ok || len(a.Value) != 1 {
			return wire.Errorf(wire.AttributeValueInvalid, "attribute %#x must be a one-byte CK_BBOOL", a.Type)
		}
		switch a.Type {
		case p11.CKAToken:
			dt.token = v
		case p11.CKAPrivate:
			dt.obj.Private = v
		case p11.CKAModifiable:
			dt.obj.Modifiable = v
		case p11.CKACopyable:
			dt.obj.Copyable = v
		case p11.CKADestroyable:
			dt.obj.Destroyable = v
		}
		return nil
	}
	switch a.Type {
	case p11.CKAClass:
		if c, ok := wire.ParseULong(a.Value); !ok || c != ckoData {
			return wire.NewError(wire.TemplateInconsistent, "CKA_CLASS is not CKO_DATA")
		}
	case p11.CKALabel, ckaApplication:
		if len(a.Value) > tpmcard.MaxDataAttribute || !utf8.Valid(a.Value) {
			return wire.Errorf(wire.AttributeValueInvalid, "attribute %#x must be UTF-8 of at most %d bytes", a.Type, tpmcard.MaxDataAttribute)
		}
		if a.Type == p11.CKALabel {
			dt.obj.Label = bytes.Clone(a.Value)
		} else {
			dt.obj.Application = bytes.Clone(a.Value)
		}
	case ckaObjectID:
		if err := checkOID(a.Value); err != nil {
			return err
		}
		dt.obj.ObjectID = bytes.Clone(a.Value)
	case p11.CKAValue:
		if !create {
			return readOnly(a.Type)
		}
		if len(a.Value) > tpmcard.MaxDataValue {
			return wire.Errorf(wire.AttributeValueInvalid, "a data object's CKA_VALUE is limited to %d bytes, this one has %d", tpmcard.MaxDataValue, len(a.Value))
		}
		dt.obj.Value = bytes.Clone(a.Value)
	default:
		return wire.Errorf(wire.AttributeInvalid, "attribute %#x is not an attribute of a data object", a.Type)
	}
	return nil
}

// checkOID accepts an empty CKA_OBJECT_ID, the DER of one OBJECT
// IDENTIFIER (what §4.5 asks for), or the contents octets of one, which
// OpenSC's pkcs11-tool --application-id sends; it is stored as given.
func checkOID(b []byte) error {
	if len(b) == 0 {
		return nil
	}
	if len(b) > tpmcard.MaxDataAttribute {
		return wire.Errorf(wire.AttributeValueInvalid, "CKA_OBJECT_ID is limited to %d bytes", tpmcard.MaxDataAttribute)
	}
	var oid asn1.ObjectIdentifier
	if rest, err := asn1.Unmarshal(b, &oid); err == nil && len(rest) == 0 {
		return nil
	}
	der := append([]byte{0x06, byte(len(b))}, b...)
	if rest, err := asn1.Unmarshal(der, &oid); len(b) < 128 && err == nil && len(rest) == 0 {
		return nil
	}
	return wire.NewError(wire.AttributeValueInvalid, "CKA_OBJECT_ID must be the DER of an OBJECT IDENTIFIER")
}

func readOnly(t uint64) *wire.StatusError {
	return &wire.StatusError{Status: wire.TemplateInconsistent, TriesLeft: -1,
		Message: "attribute " + hexType(t) + " cannot be changed", RV: p11.CKRAttributeReadOnly}
}

func hexType(t uint64) string { return "0x" + strconv.FormatUint(t, 16) }

// createAny is C_CreateObject: data objects here, certificates in
// certs.go.
func (c *conn) createAny(m *wire.CreateObject) (any, error) {
	for _, a := range m.Template {
		if a.Type == p11.CKAClass {
			if v, ok := wire.ParseULong(a.Value); ok && v == ckoData {
				return c.createData(m)
			}
			break
		}
	}
	return c.createObject(m)
}

func (c *conn) createData(m *wire.CreateObject) (any, error) {
	if err := c.needUser(wire.TypeCreateObject); err != nil {
		return nil, err
	}
	s, err := c.session(m.Session)
	if err != nil {
		return nil, err
	}
	dt, err := parseDataTemplate(m.Template)
	if err != nil {
		return nil, err
	}
	h, err := c.storeData(s, dt)
	if err != nil {
		return nil, err
	}
	return &wire.ObjectCreated{Object: h}, nil
}

// storeData makes a data object in the session: a token one on the card
// (a read-write session), a session one in the connection; a private one
// needs the user's login.
func (c *conn) storeData(s *session, dt dataTemplate) (uint64, error) {
	if err := c.mayWriteData(s, dt.token, dt.obj.Private); err != nil {
		return 0, err
	}
	if !dt.token {
		p := c.p11()
		if len(p.data) >= maxSessionData {
			return 0, &wire.StatusError{Status: wire.BadRequest, TriesLeft: -1,
				Message: "at most " + strconv.Itoa(maxSessionData) + " session data objects per application", RV: p11.CKRDeviceMemory}
		}
		c.objects.next++ // a number no other session object had
		id := "s" + strconv.FormatUint(c.objects.next, 10)
		dt.obj.ID = []byte(id)
		p.data[id] = &sessionData{owner: s, obj: dt.obj}
		return c.objects.handle(objRef{serial: s.serial, id: id, kind: objSessionData}), nil
	}
	if n, err := c.s.m.DataObjectCount(s.serial); err == nil && n >= tpmcard.MaxDataObjects {
		return 0, &wire.StatusError{Status: wire.BadRequest, TriesLeft: -1,
			Message: "the card holds " + strconv.Itoa(tpmcard.MaxDataObjects) + " data objects, the most it takes: destroy one first", RV: p11.CKRDeviceMemory}
	}
	var d tpmcard.DataObject
	create := func() (err error) {
		d, err = c.s.m.CreateDataObject(s.serial, dt.obj)
		return err
	}
	var err error
	if dt.obj.Private {
		err = c.s.logins.withUser(c, s.serial, create)
	} else {
		err = create()
	}
	if err != nil {
		return 0, err
	}
	c.log.Info().Str("card", s.serial).Hex("data_object", d.ID).Bool("private", d.Private).Int("bytes", len(d.Value)).Msg("data object stored")
	return c.objects.handle(objRef{serial: s.serial, id: string(d.ID), kind: objData}), nil
}

// mayWriteData checks the session state for creating or changing a data
// object (§5.6's table): a token object needs a read-write session, a
// private one the user logged in.
func (c *conn) mayWriteData(s *session, token, private bool) error {
	if token && !s.rw {
		return wire.NewError(wire.SessionReadOnly, "a token object needs a read-write session")
	}
	if user, _ := c.s.logins.state(c, s.serial); private && !user {
		return wire.NewError(wire.NotLoggedIn, "a private object needs the user logged in")
	}
	return nil
}

// destroyAny is C_DestroyObject: data objects here, keys and
// certificates in handlers.go.
func (c *conn) destroyAny(m *wire.DestroyObject) (any, error) {
	if r, ok := c.objects.byHandle[m.Object]; !ok || !isData(r.kind) {
		return c.destroyObject(m)
	}
	if err := c.needUser(wire.TypeDestroyObject); err != nil {
		return nil, err
	}
	s, err := c.session(m.Session)
	if err != nil {
		return nil, err
	}
	r, _, err := c.object(s, m.Object)
	if err != nil {
		return nil, err
	}
	if r.kind == objSessionData {
		d := c.p11().data[r.id]
		if !d.obj.Destroyable {
			return nil, actionProhibited("the object's CKA_DESTROYABLE is false")
		}
		delete(c.p11().data, r.id)
		c.objects.forget(m.Object)
		return &wire.Ack{}, nil
	}
	if !s.rw {
		return nil, wire.NewError(wire.SessionReadOnly, "destroying a token object needs a read-write session")
	}
	// The flags are not sealed: a private object's are read without the
	// TPM.
	if d, _ := c.s.m.DataObjectInfo(s.serial, []byte(r.id)); !d.Destroyable {
		return nil, actionProhibited("the object's CKA_DESTROYABLE is false")
	}
	if err := c.s.m.DeleteDataObject(s.serial, []byte(r.id)); err != nil {
		if errors.Is(err, tpmcard.ErrDataObjectNotFound) {
			c.objects.forget(m.Object)
			return nil, wire.NewError(wire.ObjectNotFound, "no such object")
		}
		return nil, err
	}
	c.objects.forget(m.Object)
	c.log.Info().Str("card", s.serial).Hex("data_object", []byte(r.id)).Msg("data object deleted")
	return &wire.Ack{}, nil
}

func actionProhibited(msg string) *wire.StatusError {
	return &wire.StatusError{Status: wire.PermissionDenied, TriesLeft: -1, Message: msg, RV: p11.CKRActionProhibited}
}
