// Package x509req builds what a card key signs to get a certificate: a
// PKCS#10 certificate request (RFC 2986) or a self-signed certificate (RFC
// 5280), with a named template of key usage and extended key usages, a
// subject written as "CN=Alice,O=Example" (RFC 4514 order) and subject
// alternative names that include Microsoft's user principal name for smart
// card logon. It also judges an issued certificate: does it carry the
// template's usages, does it chain to the CA certificates given.
//
// It never talks to a card: the signer is any crypto.Signer, and SHA-1
// signatures, which crypto/x509 no longer makes, are assembled here for the
// CAs that still demand them.
package x509req
