package x509req

import (
	"bytes"
	"crypto/x509"
	"encoding/asn1"
	"fmt"
	"strings"
	"time"
)

// UsageWarnings compares an issued certificate with the template it was
// requested with and says what a sign-in client may hold against it; none
// for the template "none".
func UsageWarnings(c *x509.Certificate, p Template) []string {
	var w []string
	if p.none {
		return nil
	}
	if c.KeyUsage != 0 && c.KeyUsage&x509.KeyUsageDigitalSignature == 0 {
		w = append(w, "the certificate's key usage lacks digitalSignature: clients may refuse it for sign-in")
	}
	if c.KeyUsage == 0 {
		w = append(w, "the certificate has no key usage extension")
	}
	have := map[string]bool{}
	for _, u := range c.UnknownExtKeyUsage {
		have[u.String()] = true
	}
	for _, u := range c.ExtKeyUsage {
		switch u {
		case x509.ExtKeyUsageClientAuth:
			have[OIDClientAuth.String()] = true
		case x509.ExtKeyUsageEmailProtection:
			have[OIDEmailProtect.String()] = true
		case x509.ExtKeyUsageAny:
			return w
		}
	}
	if len(have) == 0 && len(c.ExtKeyUsage) == 0 {
		if len(p.EKUs) > 0 {
			w = append(w, fmt.Sprintf("the certificate has no extended key usage; the %s template expects %s", p.Name, oidList(p.EKUs)))
		}
		return w
	}
	for _, want := range p.EKUs {
		if !have[want.String()] {
			w = append(w, fmt.Sprintf("the certificate lacks the extended key usage %s of the %s template", want, p.Name))
		}
	}
	return w
}

func oidList(oids []asn1.ObjectIdentifier) string {
	s := make([]string, len(oids))
	for i, o := range oids {
		s[i] = o.String()
	}
	return strings.Join(s, " and ")
}

// VerifyChain checks the leaf's signature path through the given
// certificates: self-signed ones are roots, the rest intermediates (the
// system roots when none is self-signed). Usage is not checked here, nor
// the leaf's dates, which the caller judges: a leaf outside its validity
// is checked as of the middle of it.
func VerifyChain(leaf *x509.Certificate, chain []*x509.Certificate) error {
	roots, inter := x509.NewCertPool(), x509.NewCertPool()
	haveRoot := false
	for _, c := range chain {
		if bytes.Equal(c.RawIssuer, c.RawSubject) && c.CheckSignatureFrom(c) == nil {
			roots.AddCert(c)
			haveRoot = true
		} else {
			inter.AddCert(c)
		}
	}
	opts := x509.VerifyOptions{Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}
	if haveRoot {
		opts.Roots = roots
	}
	if now := time.Now(); now.After(leaf.NotAfter) || now.Before(leaf.NotBefore) {
		opts.CurrentTime = leaf.NotBefore.Add(leaf.NotAfter.Sub(leaf.NotBefore) / 2)
	}
	_, err := leaf.Verify(opts)
	return err
}
