package x509req

import (
	"encoding/asn1"
	"fmt"
	"strings"
)

// OIDs (RFC 5280 §4.2.1; Microsoft's smart card logon and UPN).
var (
	OIDExtKeyUsage    = asn1.ObjectIdentifier{2, 5, 29, 15}
	OIDExtExtKeyUsage = asn1.ObjectIdentifier{2, 5, 29, 37}
	OIDExtSAN         = asn1.ObjectIdentifier{2, 5, 29, 17}
	OIDUPN            = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 20, 2, 3}
	OIDSmartcardLogon = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 20, 2, 2}
	OIDClientAuth     = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 3, 2}
	OIDEmailProtect   = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 3, 4}
)

// Template is a named certificate profile: the key usage and extended key
// usages a request asks for and an issued certificate is checked against.
type Template struct {
	Name string
	// KeyEnciphermentRSA adds keyEncipherment to an RSA key's key usage
	// (digitalSignature alone otherwise).
	KeyEnciphermentRSA bool
	// EKUs are the extended key usages, in order.
	EKUs []asn1.ObjectIdentifier
	// none: no key usage extension at all, and nothing to check.
	none bool
}

var templates = []Template{
	{Name: "smartcard-logon", KeyEnciphermentRSA: true, EKUs: []asn1.ObjectIdentifier{OIDSmartcardLogon, OIDClientAuth}},
	{Name: "client-auth", EKUs: []asn1.ObjectIdentifier{OIDClientAuth}},
	{Name: "email", EKUs: []asn1.ObjectIdentifier{OIDEmailProtect}},
	// Kerberos PKINIT (RFC 4556 §3.2.4): the KDC's EKU check wants
	// id-pkinit-KPClientAuth; the key signs, it never decrypts.
	{Name: "pkinit", EKUs: []asn1.ObjectIdentifier{OIDPKINITClientAuth, OIDClientAuth}},
	{Name: "none", none: true},
}

// DefaultTemplate is the template of sign-in certificates.
const DefaultTemplate = "smartcard-logon"

// TemplateNames lists the templates' names in order.
func TemplateNames() []string {
	out := make([]string, len(templates))
	for i, p := range templates {
		out[i] = p.Name
	}
	return out
}

// LookupTemplate returns the template of that name.
func LookupTemplate(name string) (Template, error) {
	for _, p := range templates {
		if p.Name == name {
			p.EKUs = append([]asn1.ObjectIdentifier(nil), p.EKUs...)
			return p, nil
		}
	}
	return Template{}, fmt.Errorf("no template %q: want %s", name, orList(TemplateNames()))
}

// ParseOID reads a dotted object identifier ("1.3.6.1.5.5.7.3.2").
func ParseOID(s string) (asn1.ObjectIdentifier, error) {
	var oid asn1.ObjectIdentifier
	for _, p := range strings.Split(s, ".") {
		var n int
		if _, err := fmt.Sscanf(p, "%d", &n); err != nil || n < 0 || fmt.Sprint(n) != p {
			return nil, fmt.Errorf("%q is not a dotted OID", s)
		}
		oid = append(oid, n)
	}
	if len(oid) < 2 || oid[0] > 2 || (oid[0] < 2 && oid[1] > 39) {
		return nil, fmt.Errorf("%q is not a valid OID", s)
	}
	return oid, nil
}

// orList is "a, b or c".
func orList(s []string) string {
	if len(s) < 2 {
		return strings.Join(s, "")
	}
	return strings.Join(s[:len(s)-1], ", ") + " or " + s[len(s)-1]
}
