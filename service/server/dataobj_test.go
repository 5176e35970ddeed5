//go:build linux

package server

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/tpmcard/tpmcard/service/p11"
	"github.com/tpmcard/tpmcard/service/wire"
	"github.com/tpmcard/tpmcard/tpmcard"
)

func dataTmpl(token, private bool, label, value string, extra ...wire.Attribute) []wire.Attribute {
	return append([]wire.Attribute{
		{Type: p11.CKAClass, Value: wire.ULong(ckoData)},
		{Type: p11.CKAToken, Value: wire.Bool(token)},
		{Type: p11.CKAPrivate, Value: wire.Bool(private)},
		{Type: p11.CKALabel, Value: []byte(label)},
		{Type: ckaApplication, Value: []byte("tpmcard test")},
		{Type: p11.CKAValue, Value: []byte(value)},
	}, extra...)
}

func (p *p11conn) create(template []wire.Attribute) (uint64, error) {
	var oc wire.ObjectCreated
	err := p.w.Call(&wire.CreateObject{Session: p.s, Template: template}, &oc)
	return oc.Object, err
}

func (p *p11conn) value(h uint64, t uint64) ([]byte, error) {
	var v wire.AttributeValue
	if err := p.w.Call(&wire.GetAttributeValue{Session: p.s, Object: h, Attributes: []wire.AttributeQuery{{Type: t, Len: 1 << 20}}}, &v); err != nil {
		return nil, err
	}
	if v.RV != 0 {
		return nil, &wire.StatusError{Status: wire.AttributeInvalid, RV: v.RV}
	}
	return v.Values[0].Value, nil
}

func (p *p11conn) find(template ...wire.Attribute) []uint64 {
	p.t.Helper()
	var objs wire.Objects
	if err := p.w.Call(&wire.FindObjects{Session: p.s, Template: template}, &objs); err != nil {
		p.t.Fatalf("FindObjects: %v", err)
	}
	return objs.Handles
}

var dataClass = wire.Attribute{Type: p11.CKAClass, Value: wire.ULong(ckoData)}

// TestDataObjects: C_CreateObject of CKO_DATA with its template checked
// whole, token objects on the card (private ones readable only when
// logged in; tpmcard's tests read the state directory), session objects
// gone with their session, C_DestroyObject of one.
func TestDataObjects(t *testing.T) {
	e, serial, p, _, _ := signKeys(t)
	oid, _ := asn1.Marshal(asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 99999, 1})
	const secretValue = "a private value nobody reads without the PIN"

	var rw wire.SessionOpened
	wantOK(t, "OpenSession", p.w.Call(&wire.OpenSession{Serial: serial, ReadWrite: true}, &rw))
	ro := p.s
	p.s = rw.Session

	pub, err := p.create(dataTmpl(true, false, "public one", "public value", wire.Attribute{Type: ckaObjectID, Value: oid}))
	wantOK(t, "creating a public token data object", err)
	priv, err := p.create(dataTmpl(true, true, "private one", secretValue))
	wantOK(t, "creating a private token data object", err)
	sess, err := p.create(dataTmpl(false, false, "session one", "session value"))
	wantOK(t, "creating a session data object", err)

	for _, c := range []struct {
		name string
		h    uint64
		t    uint64
		want []byte
	}{
		{"ok/public-value", pub, p11.CKAValue, []byte("public value")},
		{"ok/public-oid", pub, ckaObjectID, oid},
		{"ok/public-token", pub, p11.CKAToken, wire.Bool(true)},
		{"ok/private-value", priv, p11.CKAValue, []byte(secretValue)},
		{"ok/private-label", priv, p11.CKALabel, []byte("private one")},
		{"ok/private-private", priv, p11.CKAPrivate, wire.Bool(true)},
		{"ok/session-token", sess, p11.CKAToken, wire.Bool(false)},
		{"ok/application", sess, ckaApplication, []byte("tpmcard test")},
		{"ok/class", sess, p11.CKAClass, wire.ULong(ckoData)},
		{"ok/modifiable-default", sess, p11.CKAModifiable, wire.Bool(true)},
	} {
		t.Run(c.name, func(t *testing.T) {
			v, err := p.value(c.h, c.t)
			if err != nil || !bytes.Equal(v, c.want) {
				t.Fatalf("attribute %#x = %q, %v; want %q", c.t, v, err, c.want)
			}
		})
	}
	if hs := p.find(dataClass); len(hs) != 3 {
		t.Errorf("logged in, %d data objects found, want 3", len(hs))
	}
	if hs := p.find(dataClass, wire.Attribute{Type: p11.CKAPrivate, Value: wire.Bool(true)}); len(hs) != 1 || hs[0] != priv {
		t.Errorf("finding the private one: %v", hs)
	}

	// Logged out: the private object is gone from view.
	wantOK(t, "Logout", p.w.Call(&wire.Logout{Session: p.s}, nil))
	if hs := p.find(dataClass); len(hs) != 2 {
		t.Errorf("logged out, %d data objects found, want 2 (the public ones)", len(hs))
	}
	_, err = p.value(priv, p11.CKAValue)
	wantRV(t, "reading the private value logged out", err, p11.CKRObjectHandleInvalid)
	_, err = p.create(dataTmpl(true, true, "x", "y"))
	wantRV(t, "creating a private object logged out", err, p11.CKRUserNotLoggedIn)
	p.login()

	// A new connection (another application) sees the token objects, not
	// the session one.
	other := e.p11Session(serial)
	if hs := other.find(dataClass); len(hs) != 2 {
		t.Errorf("another application sees %d data objects, want the 2 token ones", len(hs))
	}

	for _, c := range []struct {
		name     string
		session  uint32
		template []wire.Attribute
		rv       uint64
	}{
		{"fail/token-in-read-only-session", ro, dataTmpl(true, false, "x", "y"), p11.CKRSessionReadOnly},
		{"ok/session-object-in-read-only-session", ro, dataTmpl(false, false, "x", "y"), p11.CKROK},
		{"fail/value-too-large", rw.Session, dataTmpl(false, false, "x", strings.Repeat("v", tpmcard.MaxDataValue+1)), p11.CKRAttributeValueInvalid},
		{"fail/key-attribute", rw.Session, dataTmpl(false, false, "x", "y", wire.Attribute{Type: p11.CKAKeyType, Value: wire.ULong(0)}), p11.CKRAttributeTypeInvalid},
		{"fail/bool-of-two-bytes", rw.Session, dataTmpl(false, false, "x", "y", wire.Attribute{Type: p11.CKAModifiable, Value: []byte{1, 0}}), p11.CKRAttributeValueInvalid},
		{"fail/object-id-not-an-oid", rw.Session, dataTmpl(false, false, "x", "y", wire.Attribute{Type: ckaObjectID, Value: []byte{0x2b, 0x86}}), p11.CKRAttributeValueInvalid},
		// OpenSC's pkcs11-tool --application-id sends the OID's contents
		// octets without tag and length.
		{"ok/object-id-contents-octets", rw.Session, dataTmpl(false, false, "x", "y", wire.Attribute{Type: ckaObjectID, Value: oid[2:]}), p11.CKROK},
		{"fail/label-twice-differently", rw.Session, dataTmpl(false, false, "x", "y", wire.Attribute{Type: p11.CKALabel, Value: []byte("z")}), p11.CKRTemplateInconsistent},
		{"ok/label-twice-the-same", rw.Session, dataTmpl(false, false, "x", "y", wire.Attribute{Type: p11.CKALabel, Value: []byte("x")}), p11.CKROK},
		{"fail/label-not-utf8", rw.Session, dataTmpl(false, false, "\xff", "y"), p11.CKRAttributeValueInvalid},
	} {
		t.Run(c.name, func(t *testing.T) {
			var oc wire.ObjectCreated
			err := p.w.Call(&wire.CreateObject{Session: c.session, Template: c.template}, &oc)
			if c.rv == p11.CKROK {
				wantOK(t, "CreateObject", err)
				return
			}
			wantRV(t, "CreateObject", err, c.rv)
		})
	}

	t.Run("ok/default-private", func(t *testing.T) {
		h, err := p.create([]wire.Attribute{dataClass, {Type: p11.CKAValue, Value: []byte("v")}})
		wantOK(t, "CreateObject", err)
		if v, _ := p.value(h, p11.CKAPrivate); !bytes.Equal(v, wire.Bool(true)) {
			t.Errorf("CKA_PRIVATE defaults to %x, want true", v)
		}
		if v, _ := p.value(h, p11.CKAToken); !bytes.Equal(v, wire.Bool(false)) {
			t.Errorf("CKA_TOKEN defaults to %x, want false", v)
		}
	})

	t.Run("ok/session-object-gone-with-its-session", func(t *testing.T) {
		var so wire.SessionOpened
		wantOK(t, "OpenSession", p.w.Call(&wire.OpenSession{Serial: serial}, &so))
		s := p.s
		p.s = so.Session
		h, err := p.create(dataTmpl(false, false, "short-lived", "v"))
		p.s = s
		wantOK(t, "CreateObject", err)
		if _, err := p.value(h, p11.CKAValue); err != nil {
			t.Fatalf("another session of the application reads it: %v", err)
		}
		wantOK(t, "CloseSession", p.w.Call(&wire.CloseSession{Session: so.Session}, nil))
		_, err = p.value(h, p11.CKAValue)
		wantRV(t, "reading it after its session closed", err, p11.CKRObjectHandleInvalid)
	})

	t.Run("ok/destroy-one", func(t *testing.T) {
		h, err := p.create(dataTmpl(true, true, "to destroy", "v"))
		wantOK(t, "CreateObject", err)
		before := len(p.find(dataClass))
		wantOK(t, "DestroyObject", p.w.Call(&wire.DestroyObject{Session: p.s, Object: h}, nil))
		if after := len(p.find(dataClass)); after != before-1 {
			t.Errorf("%d data objects after destroying one of %d", after, before)
		}
		wantRV(t, "destroying it again", p.w.Call(&wire.DestroyObject{Session: p.s, Object: h}, nil), p11.CKRObjectHandleInvalid)
		if _, err := p.value(priv, p11.CKAValue); err != nil {
			t.Errorf("the other private object: %v", err)
		}
	})
	t.Run("fail/destroy-not-destroyable", func(t *testing.T) {
		h, err := p.create(dataTmpl(true, false, "stays", "v", wire.Attribute{Type: p11.CKADestroyable, Value: wire.Bool(false)}))
		wantOK(t, "CreateObject", err)
		wantRV(t, "DestroyObject", p.w.Call(&wire.DestroyObject{Session: p.s, Object: h}, nil), p11.CKRActionProhibited)
	})
	t.Run("fail/destroy-token-in-read-only-session", func(t *testing.T) {
		wantRV(t, "DestroyObject", p.w.Call(&wire.DestroyObject{Session: ro, Object: pub}, nil), p11.CKRSessionReadOnly)
	})

	// The card keeps them: a new Manager on the same state directory
	// reads the private one after a login.
	t.Run("ok/persisted", func(t *testing.T) {
		objs, err := e.m.DataObjects(serial, false)
		if err != nil || len(objs) < 2 {
			t.Fatalf("DataObjects: %d, %v", len(objs), err)
		}
	})
}

// TestSetAttributeValue and TestCopyObject: the attributes the standard
// lets an application change, and no others.
func TestSetAttributeValue(t *testing.T) {
	_, serial, p, ecID, _ := signKeys(t)
	var rw wire.SessionOpened
	wantOK(t, "OpenSession", p.w.Call(&wire.OpenSession{Serial: serial, ReadWrite: true}, &rw))
	ro := p.s
	p.s = rw.Session
	privKey, pubKey := p.object(p11.CKOPrivateKey, ecID), p.object(p11.CKOPublicKey, ecID)
	// A certificate of the key, issued by a throwaway CA.
	ca, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "holder"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, p.public(ecID), ca)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := p.create([]wire.Attribute{{Type: p11.CKAClass, Value: wire.ULong(p11.CKOCertificate)},
		{Type: p11.CKAValue, Value: der}, {Type: p11.CKAModifiable, Value: wire.Bool(true)}})
	wantOK(t, "importing the certificate", err)
	data, err := p.create(dataTmpl(true, true, "data", "value"))
	wantOK(t, "CreateObject", err)
	fixed, err := p.create(dataTmpl(false, false, "fixed", "value", wire.Attribute{Type: p11.CKAModifiable, Value: wire.Bool(false)}))
	wantOK(t, "CreateObject", err)

	set := func(session uint32, h uint64, attrs ...wire.Attribute) error {
		return p.w.Call(&wire.SetAttributeValue{Session: session, Object: h, Template: attrs}, nil)
	}
	label := func(v string) wire.Attribute { return wire.Attribute{Type: p11.CKALabel, Value: []byte(v)} }
	for _, c := range []struct {
		name    string
		session uint32
		h       uint64
		attrs   []wire.Attribute
		rv      uint64
	}{
		{"ok/cert-label", rw.Session, cert, []wire.Attribute{label("renamed cert")}, 0},
		{"ok/cert-id", rw.Session, cert, []wire.Attribute{{Type: p11.CKAID, Value: []byte("cert id")}}, 0},
		{"ok/cert-same-issuer", rw.Session, cert, []wire.Attribute{{Type: p11.CKAIssuer, Value: parsedIssuer(t, der)}}, 0},
		{"fail/cert-value", rw.Session, cert, []wire.Attribute{{Type: p11.CKAValue, Value: der}}, p11.CKRAttributeReadOnly},
		{"fail/cert-class", rw.Session, cert, []wire.Attribute{{Type: p11.CKAClass, Value: wire.ULong(p11.CKOCertificate)}}, p11.CKRAttributeReadOnly},
		{"fail/unknown-attribute", rw.Session, cert, []wire.Attribute{{Type: 0x7fff_0000, Value: []byte{1}}}, p11.CKRAttributeTypeInvalid},
		// A token key's objects say CKA_MODIFIABLE true: their label and
		// ID change, each on its own object; nothing else does.
		{"ok/private-key-label", rw.Session, privKey, []wire.Attribute{label("renamed private")}, 0},
		{"ok/public-key-id", rw.Session, pubKey, []wire.Attribute{{Type: p11.CKAID, Value: []byte("new id")}}, 0},
		{"fail/private-key-sign", rw.Session, privKey, []wire.Attribute{{Type: p11.CKASign, Value: wire.Bool(false)}}, p11.CKRAttributeReadOnly},
		{"fail/public-key-ec-point", rw.Session, pubKey, []wire.Attribute{{Type: p11.CKAECPoint, Value: []byte{4}}}, p11.CKRAttributeReadOnly},
		{"fail/token-key-in-read-only-session", ro, privKey, []wire.Attribute{label("x")}, p11.CKRSessionReadOnly},
		{"fail/token-cert-in-read-only-session", ro, cert, []wire.Attribute{label("x")}, p11.CKRSessionReadOnly},
		{"fail/label-too-long", rw.Session, cert, []wire.Attribute{label(strings.Repeat("l", 65))}, p11.CKRAttributeValueInvalid},
		{"ok/data-label-and-application", rw.Session, data, []wire.Attribute{label("data renamed"), {Type: ckaApplication, Value: []byte("app 2")}}, 0},
		{"fail/data-value", rw.Session, data, []wire.Attribute{{Type: p11.CKAValue, Value: []byte("changed")}}, p11.CKRAttributeReadOnly},
		{"fail/data-private", rw.Session, data, []wire.Attribute{{Type: p11.CKAPrivate, Value: wire.Bool(false)}}, p11.CKRAttributeReadOnly},
		{"fail/not-modifiable", rw.Session, fixed, []wire.Attribute{label("x")}, p11.CKRAttributeReadOnly},
		{"fail/all-or-nothing", rw.Session, data, []wire.Attribute{label("never"), {Type: p11.CKAValue, Value: []byte("x")}}, p11.CKRAttributeReadOnly},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := set(c.session, c.h, c.attrs...)
			if c.rv == 0 {
				wantOK(t, "SetAttributeValue", err)
				return
			}
			wantRV(t, "SetAttributeValue", err, c.rv)
		})
	}
	// Each object shows its own change; the key still signs by its
	// private object.
	for _, c := range []struct {
		h    uint64
		t    uint64
		want string
	}{
		{cert, p11.CKALabel, "renamed cert"},
		{cert, p11.CKAID, "cert id"},
		{privKey, p11.CKAID, string(ecID)},
		{privKey, p11.CKALabel, "renamed private"},
		{pubKey, p11.CKAID, "new id"},
		{data, p11.CKALabel, "data renamed"},
		{data, ckaApplication, "app 2"},
		{data, p11.CKAValue, "value"},
	} {
		if v, err := p.value(c.h, c.t); err != nil || string(v) != c.want {
			t.Errorf("object %d attribute %#x = %q, %v; want %q", c.h, c.t, v, err, c.want)
		}
	}
	if hs := p.find(wire.Attribute{Type: p11.CKAID, Value: []byte("cert id")}); len(hs) != 1 || hs[0] != cert {
		t.Errorf("finding the certificate by its new ID: %v", hs)
	}
	if hs := p.find(wire.Attribute{Type: p11.CKALabel, Value: []byte("renamed cert")}, wire.Attribute{Type: p11.CKAClass, Value: wire.ULong(p11.CKOCertificate)}); len(hs) != 1 {
		t.Errorf("finding the certificate by its new label: %v", hs)
	}
	wantOK(t, "SignInit", p.init(p11.CKMECDSA, nil, privKey))
	p.signed(p.sign(make([]byte, 32), bigBuffer, false, true))

	// C_CopyObject.
	copyOf := func(h uint64, attrs ...wire.Attribute) (uint64, error) {
		var oc wire.ObjectCreated
		err := p.w.Call(&wire.CopyObject{Session: p.s, Object: h, Template: attrs}, &oc)
		return oc.Object, err
	}
	_, err = copyOf(privKey)
	wantRV(t, "copying a key", err, p11.CKRActionProhibited)
	_, err = copyOf(cert)
	wantRV(t, "copying a certificate", err, p11.CKRActionProhibited)
	cp, err := copyOf(data, label("copy"), wire.Attribute{Type: p11.CKAToken, Value: wire.Bool(false)},
		wire.Attribute{Type: p11.CKACopyable, Value: wire.Bool(false)})
	wantOK(t, "copying a data object to a session object", err)
	for _, c := range []struct {
		t    uint64
		want []byte
	}{
		{p11.CKALabel, []byte("copy")}, {p11.CKAValue, []byte("value")}, {p11.CKAToken, wire.Bool(false)},
		{p11.CKAPrivate, wire.Bool(true)}, {p11.CKACopyable, wire.Bool(false)}, {ckaApplication, []byte("app 2")},
	} {
		if v, err := p.value(cp, c.t); err != nil || !bytes.Equal(v, c.want) {
			t.Errorf("the copy's attribute %#x = %q, %v; want %q", c.t, v, err, c.want)
		}
	}
	_, err = copyOf(cp)
	wantRV(t, "copying a copy that is not copyable", err, p11.CKRActionProhibited)
	_, err = copyOf(data, wire.Attribute{Type: p11.CKAValue, Value: []byte("x")})
	wantRV(t, "a copy with another value", err, p11.CKRAttributeReadOnly)
	_, err = copyOf(data, wire.Attribute{Type: p11.CKAClass, Value: wire.ULong(ckoPublicKey)})
	wantRV(t, "a copy of another class", err, p11.CKRTemplateInconsistent)
	pubCopy, err := copyOf(data, wire.Attribute{Type: p11.CKAPrivate, Value: wire.Bool(false)}, wire.Attribute{Type: p11.CKAToken, Value: wire.Bool(true)})
	wantOK(t, "a public token copy of a private object", err)
	if v, _ := p.value(pubCopy, p11.CKAPrivate); !bytes.Equal(v, wire.Bool(false)) {
		t.Errorf("the public copy's CKA_PRIVATE is %x", v)
	}
}

func parsedIssuer(t *testing.T, der []byte) []byte {
	t.Helper()
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c.RawIssuer
}
