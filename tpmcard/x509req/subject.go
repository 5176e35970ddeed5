package x509req

import (
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"net/url"
	"strings"
)

// subjectAttrs are the attribute names ParseSubject knows (RFC 4519 and
// PKCS#9's emailAddress).
var subjectAttrs = map[string]asn1.ObjectIdentifier{
	"CN": {2, 5, 4, 3}, "SERIALNUMBER": {2, 5, 4, 5}, "C": {2, 5, 4, 6}, "L": {2, 5, 4, 7}, "ST": {2, 5, 4, 8},
	"STREET": {2, 5, 4, 9}, "O": {2, 5, 4, 10}, "OU": {2, 5, 4, 11}, "POSTALCODE": {2, 5, 4, 17},
	"DC": {0, 9, 2342, 19200300, 100, 1, 25}, "UID": {0, 9, 2342, 19200300, 100, 1, 1},
	"E": {1, 2, 840, 113549, 1, 9, 1}, "EMAILADDRESS": {1, 2, 840, 113549, 1, 9, 1},
}

// SubjectAttributes names the attributes a subject may use, for help texts.
const SubjectAttributes = "CN, O, OU, C, L, ST, STREET, POSTALCODE, SERIALNUMBER, DC, UID, E"

// ParseSubject reads "CN=a,O=b" (RFC 4514 order: as written, one attribute
// per RDN; "\," escapes a comma) into an RDN sequence. An empty string is
// an empty subject.
func ParseSubject(s string) (pkix.RDNSequence, error) {
	var rdn pkix.RDNSequence
	if strings.TrimSpace(s) == "" {
		return rdn, nil
	}
	var parts []string
	var cur strings.Builder
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '\\' && i+1 < len(s):
			i++
			cur.WriteByte(s[i])
		case s[i] == ',':
			parts = append(parts, cur.String())
			cur.Reset()
		default:
			cur.WriteByte(s[i])
		}
	}
	parts = append(parts, cur.String())
	for _, p := range parts {
		k, v, ok := strings.Cut(p, "=")
		k, v = strings.ToUpper(strings.TrimSpace(k)), strings.TrimSpace(v)
		oid, known := subjectAttrs[k]
		if !ok || !known || v == "" {
			return nil, fmt.Errorf("%q is not ATTR=value with a known ATTR (%s)", strings.TrimSpace(p), SubjectAttributes)
		}
		var val any = v
		switch k {
		case "C":
			if len(v) != 2 || !isASCII(v) {
				return nil, fmt.Errorf("the country (C) must be a two-letter code, not %q", v)
			}
		case "DC", "E", "EMAILADDRESS":
			if !isASCII(v) {
				return nil, fmt.Errorf("%s must be ASCII", k)
			}
			raw, _ := asn1.MarshalWithParams(v, "ia5")
			val = asn1.RawValue{FullBytes: raw}
		}
		rdn = append(rdn, pkix.RelativeDistinguishedNameSET{{Type: oid, Value: val}})
	}
	return rdn, nil
}

// Names are the subject alternative names of a request (RFC 5280
// §4.2.1.6).
type Names struct {
	DNS   []string // dNSName: ASCII (the A-label form of an IDN)
	Email []string // rfc822Name
	URI   []string // uniformResourceIdentifier: absolute
	UPN   string   // Microsoft's user principal name, otherName 1.3.6.1.4.1.311.20.2.3
	// Principals are Kerberos principals for PKINIT, otherName
	// id-pkinit-san (1.3.6.1.5.2.2).
	Principals []Principal
}

// Empty reports whether there is no name at all.
func (n Names) Empty() bool {
	return n.UPN == "" && len(n.DNS)+len(n.Email)+len(n.URI)+len(n.Principals) == 0
}

// NameError is a subject alternative name that is not what its kind
// requires.
type NameError struct {
	Kind  string // "DNS", "email", "URI"
	Value string
	Want  string
}

func (e *NameError) Error() string {
	return fmt.Sprintf("%s name %q is not %s", e.Kind, e.Value, e.Want)
}

// Marshal encodes the GeneralNames of the subjectAltName extension, nil
// when there is none; the UPN is otherName { type-id, [0] EXPLICIT
// UTF8String }, a Kerberos principal otherName { id-pkinit-san, [0]
// EXPLICIT KRB5PrincipalName }.
func (n Names) Marshal() ([]byte, error) {
	var names []asn1.RawValue
	tagged := func(tag int, v string) {
		names = append(names, asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: tag, Bytes: []byte(v)})
	}
	for _, d := range n.Email {
		if !strings.Contains(d, "@") || !isASCII(d) {
			return nil, &NameError{"email", d, "an ASCII email address"}
		}
		tagged(1, d)
	}
	for _, d := range n.DNS {
		if d == "" || !isASCII(d) || strings.ContainsAny(d, " /@") {
			return nil, &NameError{"DNS", d, "a DNS name (use its A-label form for IDNs)"}
		}
		tagged(2, d)
	}
	for _, u := range n.URI {
		pu, err := url.Parse(u)
		if err != nil || pu.Scheme == "" || !isASCII(u) {
			return nil, &NameError{"URI", u, "an absolute ASCII URI"}
		}
		tagged(6, u)
	}
	if n.UPN != "" {
		v, err := asn1.MarshalWithParams(n.UPN, "utf8")
		if err != nil {
			return nil, err
		}
		oid, _ := asn1.Marshal(OIDUPN)
		inner, err := asn1.Marshal(asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: v})
		if err != nil {
			return nil, err
		}
		names = append(names, asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: append(oid, inner...)})
	}
	for _, p := range n.Principals {
		v, err := marshalPrincipal(p)
		if err != nil {
			return nil, err
		}
		names = append(names, v)
	}
	if len(names) == 0 {
		return nil, nil
	}
	return asn1.Marshal(names)
}

// isASCII: printable ASCII, no space.
func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}
