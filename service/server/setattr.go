package server

import (
	"bytes"
	"unicode/utf8"

	"github.com/tpmcard/tpmcard/service/p11"
	"github.com/tpmcard/tpmcard/service/wire"
	"github.com/tpmcard/tpmcard/tpmcard"
)

// C_SetAttributeValue and C_CopyObject (PKCS#11 v2.40 §5.7) for the
// attributes the standard lets an application change:
//
//   - keys (each half on its own) and certificates whose CKA_MODIFIABLE is
//     true: CKA_LABEL and CKA_ID, by an administrator, as generating and
//     importing them is; the key's own label and ID in the TPM's records
//     stay (tpmcard.Rename). A token key says CKA_MODIFIABLE true, a
//     session key false (keyAttribute, objects.go), whose objects refuse
//     every change with CKR_ATTRIBUTE_READ_ONLY; certificates take both;
//   - data objects: CKA_LABEL, CKA_APPLICATION and CKA_OBJECT_ID, unless
//     the object's CKA_MODIFIABLE is false.
//
// Every other attribute is CKR_ATTRIBUTE_READ_ONLY, except that writing an
// attribute the standard calls modifiable with the value it has already
// (CKA_SIGN true on a private key, say) changes nothing and succeeds. An
// attribute the object does not have is CKR_ATTRIBUTE_TYPE_INVALID. The
// template is checked whole before anything changes. Keys and certificates
// are not copyable (CKA_COPYABLE false: CKR_ACTION_PROHIBITED); a data
// object is, unless its CKA_COPYABLE is false, and its copy may change
// CKA_TOKEN, CKA_PRIVATE and CKA_MODIFIABLE, and CKA_COPYABLE to false.

// keyModifiable are the key and certificate attributes the standard lets
// an application change (footnote 8 of its tables) that a card fixes:
// writing their current value is accepted.
var keyModifiable = map[uint64]bool{
	p11.CKASign: true, p11.CKAVerify: true, p11.CKADecrypt: true, p11.CKAEncrypt: true, p11.CKAWrap: true,
	p11.CKAUnwrap: true, p11.CKASignRecover: true, p11.CKAVerifyRecover: true, p11.CKADerive: true,
	p11.CKASensitive: true, p11.CKAExtractable: true, p11.CKASubject: true, p11.CKAStartDate: true,
	p11.CKAEndDate: true, p11.CKAIssuer: true, p11.CKASerialNumber: true,
}

// renames is what the card's objects show in place of their keys' labels
// and IDs (tpmcard.Rename).
func (c *conn) renames(serial string) tpmcard.Renames {
	rs, _ := c.s.m.Renames(serial)
	return rs
}

func keyClass(kind objKind) tpmcard.ObjectClass {
	switch kind {
	case objPrivate:
		return tpmcard.PrivateKeyObject
	case objCert:
		return tpmcard.CertificateObject
	}
	return tpmcard.PublicKeyObject
}

// renamedKey is k as the object of kind shows it.
func renamedKey(rs tpmcard.Renames, kind objKind, k tpmcard.KeyInfo) tpmcard.KeyInfo {
	n := rs.Of(keyClass(kind), k.ID)
	if n.HasLabel {
		k.Label = n.Label
	}
	if n.HasID {
		k.ID = n.ID
	}
	return k
}

// renamedCert is ci as its certificate object shows it.
func renamedCert(rs tpmcard.Renames, ci tpmcard.CertInfo) tpmcard.CertInfo {
	n := rs.Of(tpmcard.CertificateObject, ci.KeyID)
	if n.HasLabel {
		ci.Label = n.Label
	}
	if n.HasID {
		ci.KeyID = n.ID
	}
	return ci
}

// certAttributeOf is certAttribute for a certificate object: renamed, and
// modifiable (its label and ID).
func certAttributeOf(rs tpmcard.Renames, ci tpmcard.CertInfo, t uint64) ([]byte, wire.Status) {
	if t == p11.CKAModifiable {
		return wire.Bool(true), wire.OK
	}
	return certAttribute(renamedCert(rs, ci), t)
}

// certMatchesRenamed is certMatches as the object shows the certificate.
func certMatchesRenamed(rs tpmcard.Renames, ci tpmcard.CertInfo, template []wire.Attribute) bool {
	boolean := func(t uint64) bool { return isBool(t) || t == p11.CKATrusted }
	return templateMatches(template, boolean, func(t uint64) ([]byte, wire.Status) { return certAttributeOf(rs, ci, t) })
}

func (c *conn) setAttributeValue(m *wire.SetAttributeValue) (any, error) {
	if err := c.needUser(wire.TypeSetAttributeValue); err != nil {
		return nil, err
	}
	s, err := c.session(m.Session)
	if err != nil {
		return nil, err
	}
	if len(m.Template) > wire.MaxAttributeQueries {
		return nil, wire.Errorf(wire.BadRequest, "at most %d attributes per call", wire.MaxAttributeQueries)
	}
	r, _, err := c.object(s, m.Object)
	if err != nil {
		return nil, err
	}
	if isData(r.kind) {
		return c.setDataAttributes(s, r, m.Template)
	}
	return c.setKeyAttributes(s, r, m.Object, m.Template)
}

// setKeyAttributes renames a key's half or a certificate.
func (c *conn) setKeyAttributes(s *session, r objRef, h uint64, template []wire.Attribute) (any, error) {
	if err := c.needAdmin(wire.TypeSetAttributeValue); err != nil {
		return nil, err
	}
	if !s.rw {
		return nil, wire.NewError(wire.SessionReadOnly, "changing a token object needs a read-write session")
	}
	get, err := c.attributesOf(s, h)
	if err != nil {
		return nil, err
	}
	if v, st := get(p11.CKAModifiable); st != wire.OK || !sameValue(p11.CKAModifiable, v, wire.Bool(true)) {
		return nil, &wire.StatusError{Status: wire.TemplateInconsistent, TriesLeft: -1,
			Message: "the object's CKA_MODIFIABLE is false", RV: p11.CKRAttributeReadOnly}
	}
	var n tpmcard.Renamed
	seen := map[uint64][]byte{}
	for _, a := range template {
		if prev, dup := seen[a.Type]; dup && !bytes.Equal(prev, a.Value) {
			return nil, wire.Errorf(wire.TemplateInconsistent, "attribute %#x given twice with different values", a.Type)
		}
		seen[a.Type] = a.Value
		switch a.Type {
		case p11.CKALabel:
			if len(a.Value) > 64 || !utf8.Valid(a.Value) {
				return nil, wire.NewError(wire.AttributeValueInvalid, "a label is limited to 64 bytes of UTF-8")
			}
			n.Label, n.HasLabel = string(a.Value), true
			continue
		case p11.CKAID:
			if len(a.Value) > 64 {
				return nil, wire.NewError(wire.AttributeValueInvalid, "an ID is limited to 64 bytes")
			}
			n.ID, n.HasID = bytes.Clone(a.Value), true
			continue
		}
		v, st := get(a.Type)
		switch {
		case st == wire.AttributeInvalid:
			return nil, wire.Errorf(wire.AttributeInvalid, "the object has no attribute %#x", a.Type)
		case st == wire.OK && keyModifiable[a.Type] && sameValue(a.Type, v, a.Value):
			// Its value already: nothing to change.
		default:
			return nil, readOnly(a.Type)
		}
	}
	if !n.HasLabel && !n.HasID {
		return &wire.Ack{}, nil
	}
	if err := c.s.m.Rename(s.serial, keyClass(r.kind), []byte(r.id), n); err != nil {
		return nil, err
	}
	c.log.Info().Str("card", s.serial).Hex("key_id", []byte(r.id)).Uint8("class", uint8(keyClass(r.kind))).
		Bool("label", n.HasLabel).Bool("id", n.HasID).Msg("object renamed")
	return &wire.Ack{}, nil
}

// sameValue compares an attribute's value, booleans by truth.
func sameValue(t uint64, have, want []byte) bool {
	if isBool(t) {
		h, ok1 := wire.ParseBool(have)
		w, ok2 := wire.ParseBool(want)
		return ok1 && ok2 && len(want) == 1 && h == w
	}
	return bytes.Equal(have, want)
}

func (c *conn) setDataAttributes(s *session, r objRef, template []wire.Attribute) (any, error) {
	token := r.kind == objData
	if token && !s.rw {
		return nil, wire.NewError(wire.SessionReadOnly, "changing a token object needs a read-write session")
	}
	d, err := c.dataObject(s, r)
	if err != nil {
		return nil, err
	}
	if !d.Modifiable {
		return nil, &wire.StatusError{Status: wire.TemplateInconsistent, TriesLeft: -1,
			Message: "the object's CKA_MODIFIABLE is false", RV: p11.CKRAttributeReadOnly}
	}
	dt := dataTemplate{obj: d, token: token}
	seen := map[uint64][]byte{}
	for _, a := range template {
		if prev, dup := seen[a.Type]; dup && !bytes.Equal(prev, a.Value) {
			return nil, wire.Errorf(wire.TemplateInconsistent, "attribute %#x given twice with different values", a.Type)
		}
		seen[a.Type] = a.Value
		switch a.Type {
		case p11.CKALabel, ckaApplication, ckaObjectID:
			if err := dt.set(a, false); err != nil {
				return nil, err
			}
		default:
			if _, st := dataAttribute(d, token, a.Type); st != wire.OK {
				return nil, wire.Errorf(wire.AttributeInvalid, "a data object has no attribute %#x", a.Type)
			}
			return nil, readOnly(a.Type)
		}
	}
	if !token {
		c.p11().data[r.id].obj = dt.obj
		return &wire.Ack{}, nil
	}
	update := func() error { return c.s.m.UpdateDataObject(s.serial, dt.obj) }
	if d.Private {
		err = c.s.logins.withUser(c, s.serial, update)
	} else {
		err = update()
	}
	if err != nil {
		return nil, err
	}
	c.log.Info().Str("card", s.serial).Hex("data_object", d.ID).Msg("data object changed")
	return &wire.Ack{}, nil
}

func (c *conn) copyObject(m *wire.CopyObject) (any, error) {
	if err := c.needUser(wire.TypeCopyObject); err != nil {
		return nil, err
	}
	s, err := c.session(m.Session)
	if err != nil {
		return nil, err
	}
	if len(m.Template) > wire.MaxAttributeQueries {
		return nil, wire.Errorf(wire.BadRequest, "at most %d attributes per call", wire.MaxAttributeQueries)
	}
	r, _, err := c.object(s, m.Object)
	if err != nil {
		return nil, err
	}
	if !isData(r.kind) {
		return nil, actionProhibited("a card's keys and certificates are not copyable (CKA_COPYABLE false)")
	}
	d, err := c.dataObject(s, r)
	if err != nil {
		return nil, err
	}
	if !d.Copyable {
		return nil, actionProhibited("the object's CKA_COPYABLE is false")
	}
	d.ID = nil
	dt := dataTemplate{obj: d, token: r.kind == objData}
	seen := map[uint64][]byte{}
	for _, a := range m.Template {
		if prev, dup := seen[a.Type]; dup && !bytes.Equal(prev, a.Value) {
			return nil, wire.Errorf(wire.TemplateInconsistent, "attribute %#x given twice with different values", a.Type)
		}
		seen[a.Type] = a.Value
		switch a.Type {
		case p11.CKAClass, p11.CKALabel, ckaApplication, ckaObjectID, p11.CKAToken, p11.CKAPrivate, p11.CKAModifiable:
			if err := dt.set(a, false); err != nil {
				return nil, err
			}
		case p11.CKACopyable:
			// §4.4: only from CK_TRUE to CK_FALSE; the original is
			// copyable, so CK_TRUE changes nothing.
			if err := dt.set(a, false); err != nil {
				return nil, err
			}
		default:
			if _, st := dataAttribute(d, dt.token, a.Type); st != wire.OK {
				return nil, wire.Errorf(wire.AttributeInvalid, "a data object has no attribute %#x", a.Type)
			}
			return nil, readOnly(a.Type)
		}
	}
	h, err := c.storeData(s, dt)
	if err != nil {
		return nil, err
	}
	return &wire.ObjectCreated{Object: h}, nil
}
