package x509req

import (
	"encoding/asn1"
	"errors"
	"fmt"
	"strings"
)

// Kerberos PKINIT (RFC 4556 §3.2.2 and §3.2.4).
var (
	// OIDPKINITSAN is id-pkinit-san, the otherName whose value is a
	// KRB5PrincipalName.
	OIDPKINITSAN = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 2, 2}
	// OIDPKINITClientAuth is id-pkinit-KPClientAuth, the client
	// certificate's extended key usage; MIT KDCs want it by default
	// (pkinit_eku_checking = kpClientAuth).
	OIDPKINITClientAuth = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 2, 3, 4}
	// OIDPKINITKDC is id-pkinit-KPKdc, the KDC certificate's.
	OIDPKINITKDC = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 2, 3, 5}
)

// Kerberos name types (RFC 4120 §6.2).
const (
	NTPrincipal = 1 // NT-PRINCIPAL: users, and what "user@REALM" parses to
	NTSrvInst   = 2 // NT-SRV-INST: service and instance, krbtgt/REALM@REALM
)

// Principal is a Kerberos principal name: its components, its name type
// and its realm. "alice@EXAMPLE.ORG" is {Components: [alice], Realm:
// EXAMPLE.ORG}.
type Principal struct {
	Components []string
	NameType   int
	Realm      string
}

// ParsePrincipal reads "name[/instance…]@REALM" as krb5_parse_name does
// (a backslash escapes "/", "@" or itself), with name type NT-PRINCIPAL.
// The realm is required: a certificate names it. Components and realm
// are printable ASCII, as KerberosString (an IA5 GeneralString) wants.
func ParsePrincipal(s string) (Principal, error) {
	p := Principal{NameType: NTPrincipal}
	var cur strings.Builder
	inRealm := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\' && i+1 < len(s):
			i++
			cur.WriteByte(s[i])
		case c == '\\':
			return Principal{}, fmt.Errorf("principal %q ends in a lone backslash", s)
		case c == '/' && !inRealm:
			p.Components = append(p.Components, cur.String())
			cur.Reset()
		case c == '@' && !inRealm:
			p.Components = append(p.Components, cur.String())
			cur.Reset()
			inRealm = true
		case c == '@':
			return Principal{}, fmt.Errorf("principal %q has a second unescaped @", s)
		default:
			cur.WriteByte(c)
		}
	}
	if !inRealm {
		return Principal{}, fmt.Errorf("principal %q names no realm: write it as name@REALM", s)
	}
	p.Realm = cur.String()
	if err := p.check(); err != nil {
		return Principal{}, fmt.Errorf("principal %q: %w", s, err)
	}
	return p, nil
}

func (p Principal) check() error {
	if len(p.Components) == 0 {
		return errors.New("no name")
	}
	for _, c := range p.Components {
		if c == "" {
			return errors.New("an empty name component")
		}
		if !isKerberosString(c) {
			return fmt.Errorf("name component %q is not printable ASCII", c)
		}
	}
	if p.Realm == "" {
		return errors.New("an empty realm")
	}
	if !isKerberosString(p.Realm) {
		return fmt.Errorf("realm %q is not printable ASCII", p.Realm)
	}
	return nil
}

// String writes the principal as ParsePrincipal reads it.
func (p Principal) String() string {
	esc := strings.NewReplacer(`\`, `\\`, `/`, `\/`, `@`, `\@`)
	parts := make([]string, len(p.Components))
	for i, c := range p.Components {
		parts[i] = esc.Replace(c)
	}
	return strings.Join(parts, "/") + "@" + strings.NewReplacer(`\`, `\\`, `@`, `\@`).Replace(p.Realm)
}

// Equal compares components and realm; like MIT's krb5_principal_compare
// it ignores the name type.
func (p Principal) Equal(q Principal) bool {
	if p.Realm != q.Realm || len(p.Components) != len(q.Components) {
		return false
	}
	for i := range p.Components {
		if p.Components[i] != q.Components[i] {
			return false
		}
	}
	return true
}

// Marshal encodes the principal as a KRB5PrincipalName (RFC 4556
// §3.2.2), with explicit tags as the Kerberos modules have them:
//
//	KRB5PrincipalName ::= SEQUENCE {
//	    realm         [0] Realm,          -- GeneralString
//	    principalName [1] PrincipalName }
//	PrincipalName ::= SEQUENCE {
//	    name-type     [0] Int32,
//	    name-string   [1] SEQUENCE OF KerberosString }
func (p Principal) Marshal() ([]byte, error) {
	if err := p.check(); err != nil {
		return nil, err
	}
	strs := make([]asn1.RawValue, len(p.Components))
	for i, c := range p.Components {
		strs[i] = generalString(c)
	}
	nameStrings, err := asn1.Marshal(strs)
	if err != nil {
		return nil, err
	}
	nameType, err := asn1.Marshal(p.NameType)
	if err != nil {
		return nil, err
	}
	principalName, err := sequence(explicit(0, nameType), explicit(1, nameStrings))
	if err != nil {
		return nil, err
	}
	realm, err := asn1.Marshal(generalString(p.Realm))
	if err != nil {
		return nil, err
	}
	return sequence(explicit(0, realm), explicit(1, principalName))
}

// krb5PrincipalName is KRB5PrincipalName for decoding.
type krb5PrincipalName struct {
	// encoding/asn1 leaves an explicitly tagged RawValue wrapped: this is
	// the [0], its contents the Realm.
	Realm asn1.RawValue `asn1:"explicit,tag:0"`
	Name  struct {
		NameType   int             `asn1:"explicit,tag:0"`
		NameString []asn1.RawValue `asn1:"explicit,tag:1"`
	} `asn1:"explicit,tag:1"`
}

// ParseKRB5PrincipalName decodes a KRB5PrincipalName; the realm and
// every component must be GeneralStrings.
func ParseKRB5PrincipalName(der []byte) (Principal, error) {
	var k krb5PrincipalName
	rest, err := asn1.Unmarshal(der, &k)
	if err != nil {
		return Principal{}, fmt.Errorf("KRB5PrincipalName: %w", err)
	}
	if len(rest) > 0 {
		return Principal{}, errors.New("KRB5PrincipalName: trailing data")
	}
	p := Principal{NameType: k.Name.NameType}
	str := func(v asn1.RawValue) (string, error) {
		if v.Class != asn1.ClassUniversal || v.Tag != asn1.TagGeneralString || v.IsCompound {
			return "", fmt.Errorf("KRB5PrincipalName: a class %d tag %d where a GeneralString belongs", v.Class, v.Tag)
		}
		return string(v.Bytes), nil
	}
	var realm asn1.RawValue
	if rest, err := asn1.Unmarshal(k.Realm.Bytes, &realm); err != nil || len(rest) > 0 {
		return Principal{}, fmt.Errorf("KRB5PrincipalName: the realm: %v", err)
	}
	if p.Realm, err = str(realm); err != nil {
		return Principal{}, err
	}
	for _, v := range k.Name.NameString {
		c, err := str(v)
		if err != nil {
			return Principal{}, err
		}
		p.Components = append(p.Components, c)
	}
	if err := p.check(); err != nil {
		return Principal{}, fmt.Errorf("KRB5PrincipalName: %w", err)
	}
	return p, nil
}

// otherName is GeneralName's otherName (RFC 5280 §4.2.1.6) for decoding.
type otherName struct {
	TypeID asn1.ObjectIdentifier
	Value  asn1.RawValue `asn1:"explicit,tag:0"`
}

// marshalPrincipal is the GeneralName otherName { id-pkinit-san, [0]
// EXPLICIT KRB5PrincipalName } of one principal.
func marshalPrincipal(p Principal) (asn1.RawValue, error) {
	v, err := p.Marshal()
	if err != nil {
		return asn1.RawValue{}, &NameError{"principal", p.String(), "name[/instance]@REALM in printable ASCII"}
	}
	oid, _ := asn1.Marshal(OIDPKINITSAN)
	inner, err := asn1.Marshal(explicit(0, v))
	if err != nil {
		return asn1.RawValue{}, err
	}
	return asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: append(oid, inner...)}, nil
}

// SANPrincipals returns the Kerberos principals (id-pkinit-san) of a
// subjectAltName extension's value.
func SANPrincipals(san []byte) ([]Principal, error) {
	var names []asn1.RawValue
	rest, err := asn1.Unmarshal(san, &names)
	if err != nil {
		return nil, fmt.Errorf("subjectAltName: %w", err)
	}
	if len(rest) > 0 {
		return nil, errors.New("subjectAltName: trailing data")
	}
	var out []Principal
	for _, n := range names {
		if n.Class != asn1.ClassContextSpecific || n.Tag != 0 {
			continue
		}
		var on otherName
		// otherName is [0] IMPLICIT: read its contents as a SEQUENCE.
		seq, _ := sequence(n.Bytes)
		if _, err := asn1.Unmarshal(seq, &on); err != nil {
			return nil, fmt.Errorf("subjectAltName otherName: %w", err)
		}
		if !on.TypeID.Equal(OIDPKINITSAN) {
			continue
		}
		p, err := ParseKRB5PrincipalName(on.Value.Bytes)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// PKINITWarnings says what an MIT KDC, as configured by default, would
// hold against a certificate made from r: a principal without the EKU
// id-pkinit-KPClientAuth, or that EKU without a principal to map the
// certificate to (which then needs the KDC's pkinit_cert_match string
// attribute or, for a UPN, pkinit_allow_upn).
func (r Request) PKINITWarnings() []string {
	hasEKU := false
	for _, o := range append(append([]asn1.ObjectIdentifier(nil), r.Template.EKUs...), r.ExtraEKUs...) {
		hasEKU = hasEKU || o.Equal(OIDPKINITClientAuth)
	}
	switch {
	case len(r.Names.Principals) > 0 && !hasEKU && !r.Template.none:
		return []string{fmt.Sprintf("the %s template lacks the extended key usage id-pkinit-KPClientAuth (%s), which MIT KDCs require unless pkinit_eku_checking says otherwise: use the pkinit template, or --eku %s",
			r.Template.Name, OIDPKINITClientAuth, OIDPKINITClientAuth)}
	case len(r.Names.Principals) == 0 && r.Template.Name == "pkinit":
		return []string{"the pkinit template without a Kerberos principal (--principal): the KDC can map the certificate to a principal only by its own rules (pkinit_cert_match)"}
	}
	return nil
}

func generalString(s string) asn1.RawValue {
	return asn1.RawValue{Class: asn1.ClassUniversal, Tag: asn1.TagGeneralString, Bytes: []byte(s)}
}

func explicit(tag int, der []byte) asn1.RawValue {
	return asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: tag, IsCompound: true, Bytes: der}
}

// sequence is a SEQUENCE of the encoded elements.
func sequence(elems ...any) ([]byte, error) {
	var body []byte
	for _, e := range elems {
		switch e := e.(type) {
		case []byte:
			body = append(body, e...)
		default:
			der, err := asn1.Marshal(e)
			if err != nil {
				return nil, err
			}
			body = append(body, der...)
		}
	}
	return asn1.Marshal(asn1.RawValue{Class: asn1.ClassUniversal, Tag: asn1.TagSequence, IsCompound: true, Bytes: body})
}

// isKerberosString: printable ASCII, spaces allowed.
func isKerberosString(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}
