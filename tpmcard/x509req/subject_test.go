package x509req

import (
	"crypto/x509/pkix"
	"encoding/asn1"
	"testing"
)

func TestParseSubject(t *testing.T) {
	for _, tc := range []struct {
		in, want string // want: pkix.Name's String(), "" for an error
	}{
		{"CN=Alice,O=Example,C=DE", "CN=Alice,O=Example,C=DE"},
		{" cn = Bob , ou = IT ", "CN=Bob,OU=IT"},
		{`CN=Smith\, John,O=X`, `CN=Smith\, John,O=X`},
		// DC is an IA5String (tag 0x16), which pkix prints in hex.
		{"DC=corp,DC=example,CN=u", "CN=u,0.9.2342.19200300.100.1.25=#16076578616d706c65,0.9.2342.19200300.100.1.25=#1604636f7270"},
		{"", ""},
		{"XX=1", ""},
		{"CN", ""},
		{"CN=", ""},
		{"C=DEU", ""},
	} {
		rdn, err := ParseSubject(tc.in)
		if tc.want == "" {
			if err == nil && tc.in != "" {
				t.Errorf("ParseSubject(%q) accepted", tc.in)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseSubject(%q): %v", tc.in, err)
			continue
		}
		var n pkix.Name
		n.FillFromRDNSequence(&rdn)
		if got := n.String(); got != tc.want && rdn.String() != tc.want {
			t.Errorf("ParseSubject(%q) = %q, want %q", tc.in, rdn.String(), tc.want)
		}
		if _, err := asn1.Marshal(rdn); err != nil {
			t.Errorf("ParseSubject(%q) does not encode: %v", tc.in, err)
		}
	}
}

func TestParseOID(t *testing.T) {
	for in, ok := range map[string]bool{
		"1.3.6.1.4.1.311.20.2.2": true, "2.999.1": true,
		"1.3.x": false, "": false, "1": false, "3.1": false, "1.40": false, "1..2": false, "1.-2": false, "1.02": false,
	} {
		if _, err := ParseOID(in); (err == nil) != ok {
			t.Errorf("ParseOID(%q): %v", in, err)
		}
	}
}
