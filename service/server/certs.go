package server

import (
	"bytes"
	"crypto"
	"crypto/sha1"
	"encoding/asn1"
	"errors"
	"time"

	"github.com/tpmcard/tpmcard/service/p11"
	"github.com/tpmcard/tpmcard/service/wire"
	"github.com/tpmcard/tpmcard/tpmcard"
)

// Certificate objects (PKCS#11 v2.40 §4.6): one per certificate on the
// card, public (visible without login), with the CKA_ID of its key.

// objCert is a certificate object; its objRef.id is the key's ID.
const objCert objKind = 3

func (o *objects) dropCert(serial, id string) {
	r := objRef{serial: serial, id: id, kind: objCert}
	if h, ok := o.byRef[r]; ok {
		delete(o.byRef, r)
		delete(o.byHandle, h)
	}
}

// certOf resolves a certificate object.
func (c *conn) certOf(r objRef) (tpmcard.CertInfo, error) {
	ci, err := c.s.m.Certificate(r.serial, []byte(r.id))
	if errors.Is(err, tpmcard.ErrCertNotFound) {
		c.objects.dropCert(r.serial, r.id) // deleted by another connection
		return tpmcard.CertInfo{}, wire.NewError(wire.ObjectNotFound, "no such object")
	}
	return ci, err
}

// findCerts appends the handles of the card's certificates that match the
// template.
func (c *conn) findCerts(serial string, template []wire.Attribute, hs []uint64) ([]uint64, error) {
	certs, err := c.s.m.Certificates(serial)
	if err != nil {
		return nil, err
	}
	rs := c.renames(serial) // setattr.go
	for _, ci := range certs {
		if certMatchesRenamed(rs, ci, template) {
			hs = append(hs, c.objects.handle(objRef{serial: serial, id: string(ci.KeyID), kind: objCert}))
		}
	}
	return hs, nil
}

// certAttribute returns one attribute of an X.509 certificate object.
func certAttribute(ci tpmcard.CertInfo, t uint64) ([]byte, wire.Status) {
	cert := ci.Certificate
	switch t {
	case p11.CKAClass:
		return wire.ULong(p11.CKOCertificate), wire.OK
	case p11.CKAToken, p11.CKADestroyable:
		return wire.Bool(true), wire.OK
	case p11.CKAPrivate, p11.CKAModifiable, p11.CKACopyable, p11.CKATrusted:
		return wire.Bool(false), wire.OK
	case p11.CKALabel:
		return []byte(ci.Label), wire.OK
	case p11.CKACertificateType:
		return wire.ULong(p11.CKCX509), wire.OK
	case p11.CKACertificateCategory:
		return wire.ULong(p11.CKCertificateCategoryTokenUser), wire.OK
	case p11.CKACheckValue: // first 3 bytes of SHA-1 of the value (§4.6.1)
		sum := sha1.Sum(ci.DER)
		return sum[:3], wire.OK
	case p11.CKAStartDate:
		return ckDate(cert.NotBefore), wire.OK
	case p11.CKAEndDate:
		return ckDate(cert.NotAfter), wire.OK
	case p11.CKAPublicKeyInfo:
		return cert.RawSubjectPublicKeyInfo, wire.OK
	case p11.CKASubject:
		return cert.RawSubject, wire.OK
	case p11.CKAID:
		return ci.KeyID, wire.OK
	case p11.CKAIssuer:
		return cert.RawIssuer, wire.OK
	case p11.CKASerialNumber: // DER INTEGER (§4.6.3)
		der, err := asn1.Marshal(cert.SerialNumber)
		if err != nil {
			return nil, wire.AttributeInvalid
		}
		return der, wire.OK
	case p11.CKAValue:
		return ci.DER, wire.OK
	case p11.CKAURL, p11.CKAHashOfSubjectPublicKey, p11.CKAHashOfIssuerPublicKey:
		return nil, wire.OK
	case p11.CKAJavaMIDPSecurityDomain:
		return wire.ULong(0), wire.OK
	}
	return nil, wire.AttributeInvalid
}

// ckDate is a CK_DATE: "YYYYMMDD" in ASCII.
func ckDate(t time.Time) []byte { return []byte(t.UTC().Format("20060102")) }

// createObject stores a certificate from a template (C_CreateObject):
// CKA_CLASS CKO_CERTIFICATE, CKA_CERTIFICATE_TYPE CKC_X_509 (optional),
// CKA_VALUE the DER; CKA_LABEL optional; CKA_ID, CKA_SUBJECT, CKA_ISSUER and
// CKA_SERIAL_NUMBER, when given, must agree with the certificate and its
// key (CKA_ID is always the key's). Other classes are refused.
func (c *conn) createObject(m *wire.CreateObject) (any, error) {
	if err := c.needAdmin(wire.TypeCreateObject); err != nil {
		return nil, err
	}
	s, err := c.session(m.Session)
	if err != nil {
		return nil, err
	}
	if !s.rw {
		return nil, wire.NewError(wire.SessionReadOnly, "storing a certificate needs a read-write session")
	}
	if err := certificateClass(m.Template); err != nil {
		return nil, err
	}
	var ctype []byte
	var value, label, id []byte
	var haveLabel bool
	check := map[uint64][]byte{}
	for _, a := range m.Template {
		switch a.Type {
		case p11.CKAClass: // certificateClass
		case p11.CKACertificateType:
			ctype = a.Value
		case p11.CKAValue:
			value = a.Value
		case p11.CKALabel:
			label, haveLabel = a.Value, true
		case p11.CKAID:
			id = a.Value
		case p11.CKASubject, p11.CKAIssuer, p11.CKASerialNumber:
			check[a.Type] = a.Value
		case p11.CKAToken:
			if v, ok := wire.ParseBool(a.Value); !ok || !v {
				return nil, wire.NewError(wire.TemplateInconsistent, "certificates are token objects (CKA_TOKEN true)")
			}
		case p11.CKAPrivate, p11.CKATrusted:
			if v, ok := wire.ParseBool(a.Value); !ok || v {
				return nil, wire.Errorf(wire.TemplateInconsistent, "attribute %#x must be false on a card certificate", a.Type)
			}
		case p11.CKAModifiable: // its label and ID (setattr.go)
			if v, ok := wire.ParseBool(a.Value); !ok || !v {
				return nil, wire.NewError(wire.TemplateInconsistent, "CKA_MODIFIABLE must be true on a card certificate")
			}
		case p11.CKACertificateCategory, p11.CKAStartDate, p11.CKAEndDate, p11.CKACheckValue:
			// Derived from the certificate; accepted and ignored.
		default:
			return nil, wire.Errorf(wire.AttributeInvalid, "attribute %#x cannot be set on a certificate", a.Type)
		}
	}
	if ctype != nil && !bytes.Equal(ctype, wire.ULong(p11.CKCX509)) {
		return nil, wire.NewError(wire.TemplateInconsistent, "only X.509 certificates (CKC_X_509) are supported")
	}
	if value == nil {
		return nil, wire.NewError(wire.TemplateIncomplete, "the template has no CKA_VALUE")
	}
	cert, err := tpmcard.ParseCertificate(value)
	if err != nil {
		return nil, wire.NewError(wire.CertificateInvalid, err.Error())
	}
	for t, v := range map[uint64][]byte{p11.CKASubject: cert.RawSubject, p11.CKAIssuer: cert.RawIssuer} {
		if w, ok := check[t]; ok && !bytes.Equal(w, v) {
			return nil, wire.Errorf(wire.TemplateInconsistent, "attribute %#x does not match the certificate", t)
		}
	}
	if w, ok := check[p11.CKASerialNumber]; ok {
		if sn, _ := asn1.Marshal(cert.SerialNumber); !bytes.Equal(w, sn) {
			return nil, wire.NewError(wire.TemplateInconsistent, "CKA_SERIAL_NUMBER does not match the certificate")
		}
	}
	if !haveLabel {
		label = nil
	}
	if id != nil {
		// The card files a certificate under its key's CKA_ID: a
		// template naming another ID is a mistake, refused before anything
		// is stored.
		keys, err := c.s.m.Keys(s.serial)
		if err != nil {
			return nil, err
		}
		for _, k := range keys {
			if eq, ok := k.Public.(interface{ Equal(crypto.PublicKey) bool }); ok && eq.Equal(cert.PublicKey) && !bytes.Equal(k.ID, id) {
				return nil, wire.Errorf(wire.TemplateInconsistent, "CKA_ID %x is not the ID of the certificate's key (%x)", id, k.ID)
			}
		}
	}
	ci, err := c.s.m.ImportCertificate(s.serial, value, string(label))
	switch {
	case errors.Is(err, tpmcard.ErrKeyNotFound):
		c.log.Warn().Str("card", s.serial).Str("subject", cert.Subject.String()).Msg("certificate refused: its key is not on the card")
		return nil, wire.NewError(wire.KeyNotFound, "the certificate's public key is not the public key of any key on the card")
	case errors.Is(err, tpmcard.ErrBadCertificate):
		return nil, wire.NewError(wire.CertificateInvalid, err.Error())
	case err != nil:
		return nil, err
	}
	c.log.Info().Str("card", s.serial).Hex("key_id", ci.KeyID).Str("subject", cert.Subject.String()).
		Str("serial_number", cert.SerialNumber.String()).Msg("certificate stored")
	return &wire.ObjectCreated{Object: c.objects.handle(objRef{serial: s.serial, id: string(ci.KeyID), kind: objCert})}, nil
}

// certificateClass checks a C_CreateObject template's class before
// anything else: CKA_CLASS must be there (CKR_TEMPLATE_INCOMPLETE), a
// CK_ULONG (CKR_ATTRIBUTE_VALUE_INVALID) and CKO_CERTIFICATE, the only
// objects a card stores (CKR_TEMPLATE_INCONSISTENT).
func certificateClass(template []wire.Attribute) error {
	for _, a := range template {
		if a.Type != p11.CKAClass {
			continue
		}
		switch c, ok := wire.ParseULong(a.Value); {
		case !ok:
			return wire.Errorf(wire.AttributeValueInvalid, "CKA_CLASS is %d bytes long, not a CK_ULONG", len(a.Value))
		case c != p11.CKOCertificate:
			return wire.Errorf(wire.TemplateInconsistent, "only certificate objects can be created on a card, not class %#x", c)
		}
		return nil
	}
	return wire.NewError(wire.TemplateIncomplete, "the template has no CKA_CLASS")
}

// destroyCert deletes a certificate object (the key stays).
func (c *conn) destroyCert(s *session, r objRef) (any, error) {
	if err := c.s.m.DeleteCertificate(s.serial, []byte(r.id)); err != nil {
		if errors.Is(err, tpmcard.ErrCertNotFound) {
			c.objects.dropCert(r.serial, r.id)
			return nil, wire.NewError(wire.ObjectNotFound, "no such object")
		}
		return nil, err
	}
	c.objects.dropCert(r.serial, r.id)
	c.log.Info().Str("card", s.serial).Hex("key_id", []byte(r.id)).Msg("certificate deleted")
	return &wire.Ack{}, nil
}
