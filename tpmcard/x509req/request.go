package x509req

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
	"time"
)

// ErrNoName: a request names neither a subject nor an alternative name.
var ErrNoName = errors.New("a request needs a subject or at least one subject alternative name")

// Request is what a certificate request or a self-signed certificate
// says besides its key.
type Request struct {
	Subject  pkix.RDNSequence // from ParseSubject; may be empty when Names is not
	Names    Names
	Template Template
	// ExtraEKUs are added after the template's.
	ExtraEKUs []asn1.ObjectIdentifier
	// Hash is SHA256 (zero means it), SHA384, SHA512, or SHA1 for a
	// request to a CA that accepts nothing else.
	Hash crypto.Hash
}

// Contents are a Request encoded for one public key.
type Contents struct {
	RawSubject []byte
	Subject    pkix.Name
	Extensions []pkix.Extension
	Hash       crypto.Hash
}

// Build encodes the request's subject and extensions for the key pub.
func (r Request) Build(pub crypto.PublicKey) (*Contents, error) {
	if len(r.Subject) == 0 && r.Names.Empty() {
		return nil, ErrNoName
	}
	c := &Contents{Hash: r.Hash}
	switch r.Hash {
	case 0:
		c.Hash = crypto.SHA256
	case crypto.SHA1, crypto.SHA256, crypto.SHA384, crypto.SHA512:
	default:
		return nil, fmt.Errorf("hash %v: want SHA-256, SHA-384, SHA-512 or SHA-1", r.Hash)
	}
	var err error
	if c.RawSubject, err = asn1.Marshal(r.Subject); err != nil {
		return nil, err
	}
	c.Subject.FillFromRDNSequence(&r.Subject)
	san, err := r.Names.Marshal()
	if err != nil {
		return nil, err
	}
	if san != nil {
		// Critical when the subject is empty (RFC 5280 §4.2.1.6).
		c.Extensions = append(c.Extensions, pkix.Extension{Id: OIDExtSAN, Critical: len(r.Subject) == 0, Value: san})
	}
	if !r.Template.none {
		_, isRSA := pub.(*rsa.PublicKey)
		ku := asn1.BitString{Bytes: []byte{0x80}, BitLength: 1} // digitalSignature
		if isRSA && r.Template.KeyEnciphermentRSA {
			ku = asn1.BitString{Bytes: []byte{0xa0}, BitLength: 3} // + keyEncipherment
		}
		der, err := asn1.Marshal(ku)
		if err != nil {
			return nil, err
		}
		c.Extensions = append(c.Extensions, pkix.Extension{Id: OIDExtKeyUsage, Critical: true, Value: der})
	}
	ekus := append(append([]asn1.ObjectIdentifier(nil), r.Template.EKUs...), r.ExtraEKUs...)
	if len(ekus) > 0 {
		der, err := asn1.Marshal(ekus)
		if err != nil {
			return nil, err
		}
		c.Extensions = append(c.Extensions, pkix.Extension{Id: OIDExtExtKeyUsage, Value: der})
	}
	return c, nil
}

// CreateRequest makes a PKCS#10 request signed by s.
func CreateRequest(s crypto.Signer, c *Contents) ([]byte, error) {
	h := c.Hash
	if h == crypto.SHA1 {
		h = crypto.SHA256 // signed again below
	}
	tmpl := &x509.CertificateRequest{
		RawSubject:         c.RawSubject,
		ExtraExtensions:    c.Extensions,
		SignatureAlgorithm: sigAlg(s.Public(), h),
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, s)
	if err != nil {
		return nil, fmt.Errorf("signing the request: %w", err)
	}
	if c.Hash == crypto.SHA1 {
		csr, err := x509.ParseCertificateRequest(der)
		if err != nil {
			return nil, err
		}
		return resignSHA1(s, csr.RawTBSCertificateRequest)
	}
	return der, nil
}

// CreateSelfSigned makes a certificate for s's key signed by that key,
// valid from notBefore to notAfter, with a random 127-bit serial number
// and keyID as its subject key identifier. SHA-1 is refused.
func CreateSelfSigned(s crypto.Signer, c *Contents, keyID []byte, notBefore, notAfter time.Time) ([]byte, error) {
	if c.Hash == crypto.SHA1 {
		return nil, errors.New("SHA-1 is for requests to CAs that demand it, not for new certificates")
	}
	sn, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          sn.Add(sn, big.NewInt(1)),
		RawSubject:            c.RawSubject,
		Subject:               c.Subject,
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		ExtraExtensions:       c.Extensions,
		BasicConstraintsValid: true,
		SignatureAlgorithm:    sigAlg(s.Public(), c.Hash),
		SubjectKeyId:          keyID,
	}
	// A self-signed certificate's issuer is its subject.
	parent := *tmpl
	der, err := x509.CreateCertificate(rand.Reader, tmpl, &parent, s.Public(), s)
	if err != nil {
		return nil, fmt.Errorf("signing the certificate: %w", err)
	}
	return der, nil
}

// sigAlg picks the X.509 signature algorithm for a key and hash.
func sigAlg(pub crypto.PublicKey, h crypto.Hash) x509.SignatureAlgorithm {
	_, isEC := pub.(*ecdsa.PublicKey)
	switch h {
	case crypto.SHA384:
		if isEC {
			return x509.ECDSAWithSHA384
		}
		return x509.SHA384WithRSA
	case crypto.SHA512:
		if isEC {
			return x509.ECDSAWithSHA512
		}
		return x509.SHA512WithRSA
	}
	if isEC {
		return x509.ECDSAWithSHA256
	}
	return x509.SHA256WithRSA
}

// sha1AlgID is the AlgorithmIdentifier of SHA-1 signatures (RFC 3279).
func sha1AlgID(pub crypto.PublicKey) pkix.AlgorithmIdentifier {
	if _, ok := pub.(*ecdsa.PublicKey); ok {
		return pkix.AlgorithmIdentifier{Algorithm: asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 1}}
	}
	return pkix.AlgorithmIdentifier{Algorithm: asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 5}, Parameters: asn1.NullRawValue}
}

// resignSHA1 signs a to-be-signed structure again with SHA-1 and assembles
// the signed SEQUENCE { tbs, algorithm, signature } of RFC 2986 / RFC 5280.
func resignSHA1(s crypto.Signer, tbs []byte) ([]byte, error) {
	sum := crypto.SHA1.New()
	sum.Write(tbs)
	sig, err := s.Sign(rand.Reader, sum.Sum(nil), crypto.SHA1)
	if err != nil {
		return nil, err
	}
	return asn1.Marshal(struct {
		TBS asn1.RawValue
		Alg pkix.AlgorithmIdentifier
		Sig asn1.BitString
	}{asn1.RawValue{FullBytes: tbs}, sha1AlgID(s.Public()), asn1.BitString{Bytes: sig, BitLength: 8 * len(sig)}})
}
