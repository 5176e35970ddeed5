package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const enrollPIN = "enroll PIN 2468"

// newEnrollCard starts a service with one card whose PIN is enrollPIN.
func newEnrollCard(t *testing.T) []string {
	t.Helper()
	env := startService(t)
	if _, errs, code := cli(t, env, "", "card", "create", "--label", "enroll"); code != 0 {
		t.Fatalf("card create: %d %s", code, errs)
	}
	if _, errs, code := cli(t, env, "12345678\n"+enrollPIN+"\n", "pin", "change", "--pin-stdin", "--new-pin-stdin"); code != 0 {
		t.Fatalf("pin change: %d %s", code, errs)
	}
	return env
}

func openssl(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("openssl", args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("openssl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestEnrollWithOpenSSLCA runs an enrollment against a throwaway OpenSSL
// CA: request from the card, certificate from the CA with a smart card
// logon profile, import, list, export, verify, attestation.
func TestEnrollWithOpenSSLCA(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl not installed")
	}
	env := newEnrollCard(t)
	dir := t.TempDir()
	in := func(name string) string { return filepath.Join(dir, name) }

	// The CA.
	openssl(t, dir, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
		"-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=Throwaway Test CA",
		"-addext", "basicConstraints=critical,CA:true", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
	profile := "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n" +
		"extendedKeyUsage=1.3.6.1.4.1.311.20.2.2,clientAuth\nsubjectAltName=otherName:1.3.6.1.4.1.311.20.2.3;UTF8:alice@corp.example\n"
	if err := os.WriteFile(in("scl.ext"), []byte(profile), 0o644); err != nil {
		t.Fatal(err)
	}

	// enroll generates the key (the card has none) and writes the request
	// and its attestation.
	_, errs, code := cli(t, env, enrollPIN+"\n", "enroll", "--pin-stdin", "--subject", "CN=Alice Smith,O=Example Corp,C=DE",
		"--upn", "alice@corp.example", "--dns", "alice.corp.example", "--email", "alice@corp.example",
		"--eku", "1.3.6.1.5.5.7.3.4", "--out", in("req.pem"), "--attest", in("req.att"))
	if code != 0 {
		t.Fatalf("enroll: %d %s", code, errs)
	}
	openssl(t, dir, "req", "-in", "req.pem", "-verify", "-noout")
	text := openssl(t, dir, "req", "-in", "req.pem", "-text", "-noout")
	for _, want := range []string{
		"CN=Alice Smith", "O=Example Corp", "C=DE", "DNS:alice.corp.example", "email:alice@corp.example",
		"othername: UPN::alice@corp.example", // 1.3.6.1.4.1.311.20.2.3
		"X509v3 Key Usage: critical", "Digital Signature",
		"Microsoft Smartcard Login", "TLS Web Client Authentication", "E-mail Protection",
		"ecdsa-with-SHA256",
	} {
		if !strings.Contains(text, want) && !strings.Contains(text, strings.ReplaceAll(want, "=", " = ")) {
			t.Errorf("openssl req -text lacks %q:\n%s", want, text)
		}
	}

	// Offline verification of the attestation against the request.
	out, errs, code := cli(t, nil, "", "attest", "verify", "--statement", in("req.att"), "--csr", in("req.pem"))
	if code != 0 || !strings.Contains(out, "attestation verified") || !strings.Contains(out, "made for this very request") ||
		!strings.Contains(out, "NOT proved") {
		t.Fatalf("attest verify: %d\n%s%s", code, out, errs)
	}
	// A flipped byte in the statement fails.
	raw, _ := os.ReadFile(in("req.att"))
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	for _, field := range []string{"sig", "certInfo", "pubArea", "creationData", "akPubArea", "nvSig", "nvCertInfo", "nvPubArea", "nonce"} {
		s := m[field].(string)
		bad := map[string]any{}
		for k, v := range m {
			bad[k] = v
		}
		c := []byte(s)
		i := len(c) / 2
		if c[i] == 'A' {
			c[i] = 'B'
		} else {
			c[i] = 'A'
		}
		bad[field] = string(c)
		b, _ := json.Marshal(bad)
		os.WriteFile(in("bad.att"), b, 0o644)
		if out, errs, code := cli(t, nil, "", "attest", "verify", "--statement", in("bad.att")); code == 0 {
			t.Errorf("a statement with %s changed verifies:\n%s%s", field, out, errs)
		}
	}

	// The CA issues; the card takes the certificate.
	openssl(t, dir, "x509", "-req", "-in", "req.pem", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
		"-days", "1", "-extfile", "scl.ext", "-out", "cert.pem")
	_, errs, code = cli(t, env, "", "enroll", "--import", in("cert.pem"), "--chain", in("ca.pem"))
	if code != 0 {
		t.Fatalf("enroll --import: %d %s", code, errs)
	}
	out, errs, code = cli(t, env, "", "cert", "list", "--json")
	var list []certView
	if code != 0 || json.Unmarshal([]byte(out), &list) != nil || len(list) != 1 {
		t.Fatalf("cert list: %d %s %s", code, out, errs)
	}
	keys, _, _ := cli(t, env, "", "key", "list", "--json")
	if !strings.Contains(keys, list[0].KeyID) || list[0].Subject != "CN=Alice Smith,O=Example Corp,C=DE" {
		t.Fatalf("certificate %+v, keys %s", list[0], keys)
	}
	if _, errs, code = cli(t, env, "", "cert", "export", "--out", in("exported.pem")); code != 0 {
		t.Fatalf("cert export: %s", errs)
	}
	if v := openssl(t, dir, "verify", "-CAfile", "ca.pem", "exported.pem"); !strings.Contains(v, "OK") {
		t.Fatalf("openssl verify: %s", v)
	}

	// A certificate for another key is refused and changes nothing.
	openssl(t, dir, "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "other.key",
		"-out", "other.csr", "-subj", "/CN=Mallory")
	openssl(t, dir, "x509", "-req", "-in", "other.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
		"-days", "1", "-extfile", "scl.ext", "-out", "other.pem")
	if _, errs, code = cli(t, env, "", "cert", "import", "--in", in("other.pem")); code != 1 || !strings.Contains(errs, "not on card") {
		t.Fatalf("another key's certificate: %d %s", code, errs)
	}
	// Malformed input, an oversized chain, an expired certificate.
	os.WriteFile(in("garbage.pem"), []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), 0o644)
	if _, errs, code = cli(t, env, "", "cert", "import", "--in", in("garbage.pem")); code != 1 || !strings.Contains(errs, "certificate") {
		t.Fatalf("garbage: %d %s", code, errs)
	}
	os.WriteFile(in("garbage.der"), []byte{0x30, 0x03, 0x02, 0x01}, 0o644)
	if _, errs, code = cli(t, env, "", "cert", "import", "--in", in("garbage.der")); code != 1 || !strings.Contains(errs, "neither PEM nor") {
		t.Fatalf("garbage DER: %d %s", code, errs)
	}
	ca, _ := os.ReadFile(in("ca.pem"))
	os.WriteFile(in("big.pem"), []byte(strings.Repeat(string(ca), 9)), 0o644)
	if _, errs, code = cli(t, env, "", "cert", "import", "--in", in("cert.pem"), "--chain", in("big.pem")); code != 1 || !strings.Contains(errs, "limit") {
		t.Fatalf("oversized chain: %d %s", code, errs)
	}
	if _, errs, code = cli(t, env, "", "cert", "import", "--in", in("cert.pem"), "--chain", in("other.pem")); code != 1 || !strings.Contains(errs, "does not chain") {
		t.Fatalf("wrong chain: %d %s", code, errs)
	}
	openssl(t, dir, "x509", "-req", "-in", "req.pem", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
		"-days", "-1", "-extfile", "scl.ext", "-out", "expired.pem")
	if _, errs, code = cli(t, env, "", "cert", "import", "--in", in("expired.pem")); code != 1 || !strings.Contains(errs, "expired") {
		t.Fatalf("expired: %d %s", code, errs)
	}
	after, _, _ := cli(t, env, "", "cert", "list", "--json")
	if after != out {
		t.Fatalf("refused imports changed the card:\n%s\n%s", out, after)
	}

	// A certificate without the template's EKU installs with a warning.
	os.WriteFile(in("plain.ext"), []byte("keyUsage=critical,keyEncipherment\n"), 0o644)
	openssl(t, dir, "x509", "-req", "-in", "req.pem", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
		"-days", "1", "-extfile", "plain.ext", "-out", "plain.pem")
	if _, errs, code = cli(t, env, "", "cert", "import", "--in", in("plain.pem")); code != 0 ||
		!strings.Contains(errs, "digitalSignature") || !strings.Contains(errs, "extended key usage") {
		t.Fatalf("no EKU: %d %s", code, errs)
	}

	// Delete.
	if _, errs, code = cli(t, env, "", "cert", "delete", "--yes"); code != 0 {
		t.Fatalf("cert delete: %s", errs)
	}
	if out, _, _ = cli(t, env, "", "cert", "list"); !strings.Contains(out, "no certificate") {
		t.Fatalf("after delete: %s", out)
	}
}

func TestCertRequestOptions(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl not installed")
	}
	env := newEnrollCard(t)
	dir := t.TempDir()
	if _, errs, code := cli(t, env, "", "key", "generate", "--alg", "rsa-2048"); code != 0 {
		t.Fatalf("key generate: %s", errs)
	}
	req := filepath.Join(dir, "req.der")
	_, errs, code := cli(t, env, enrollPIN+"\n", "cert", "request", "--pin-stdin", "--subject", "CN=bob", "--template", "smartcard-logon",
		"--hash", "sha384", "--der", "--out", req)
	if code != 0 {
		t.Fatalf("cert request: %s", errs)
	}
	text := openssl(t, dir, "req", "-inform", "DER", "-in", req, "-text", "-noout", "-verify")
	for _, want := range []string{"sha384WithRSAEncryption", "Digital Signature, Key Encipherment", "Microsoft Smartcard Login"} {
		if !strings.Contains(text, want) {
			t.Errorf("request lacks %q:\n%s", want, text)
		}
	}
	_, errs, code = cli(t, env, enrollPIN+"\n", "cert", "request", "--pin-stdin", "--subject", "CN=old", "--sha1-insecure", "--out", filepath.Join(dir, "sha1.pem"))
	if code != 0 || !strings.Contains(errs, "WARNING") {
		t.Fatalf("sha1: %d %s", code, errs)
	}
	if text := openssl(t, dir, "req", "-in", "sha1.pem", "-text", "-noout", "-verify"); !strings.Contains(text, "sha1WithRSAEncryption") {
		t.Errorf("sha1 request:\n%s", text)
	}
	for _, bad := range [][]string{
		{"--subject", "XX=1"}, {"--template", "nope", "--subject", "CN=a"}, {"--hash", "md5", "--subject", "CN=a"},
		{"--eku", "1.2.x", "--subject", "CN=a"}, {}, {"--dns", "a b", "--subject", "CN=a"},
	} {
		if _, errs, code := cli(t, env, enrollPIN+"\n", append([]string{"cert", "request", "--pin-stdin"}, bad...)...); code != 2 {
			t.Errorf("cert request %v: %d %s", bad, code, errs)
		}
	}
	// Self-signed, installed, then attested through the CLI.
	if _, errs, code := cli(t, env, enrollPIN+"\n", "cert", "self-sign", "--pin-stdin", "--subject", "CN=standalone", "--template", "client-auth"); code != 0 {
		t.Fatalf("self-sign: %s", errs)
	}
	out, _, _ := cli(t, env, "", "cert", "list")
	if !strings.Contains(out, "CN=standalone") {
		t.Fatalf("cert list: %s", out)
	}
	st := filepath.Join(dir, "st.json")
	if _, errs, code := cli(t, env, "", "key", "attest", "--out", st, "--nonce", "00ff"); code != 0 {
		t.Fatalf("key attest: %s", errs)
	}
	if out, errs, code := cli(t, nil, "", "attest", "verify", "--statement", st, "--nonce", "00ff", "--csr", req, "--json"); code != 0 ||
		!strings.Contains(out, `"verified": true`) {
		t.Fatalf("attest verify: %d %s %s", code, out, errs)
	}
	if _, _, code := cli(t, nil, "", "attest", "verify", "--statement", st, "--nonce", "01"); code != 1 {
		t.Fatal("another nonce verifies")
	}
	// The RSA key's statement does not match another key's request.
	if _, errs, code := cli(t, env, "", "key", "generate", "--alg", "ecdsa-p384", "--label", "p384"); code != 0 {
		t.Fatalf("key generate: %s", errs)
	}
	ecReq := filepath.Join(dir, "ec.pem")
	_, errs, code = cli(t, env, enrollPIN+"\n", "cert", "request", "--pin-stdin", "--key", "p384", "--subject", "CN=ec",
		"--sha1-insecure", "--template", "email", "--out", ecReq)
	if code != 0 {
		t.Fatalf("ECDSA SHA-1 request: %s", errs)
	}
	if text := openssl(t, dir, "req", "-in", ecReq, "-text", "-noout", "-verify"); !strings.Contains(text, "ecdsa-with-SHA1") ||
		!strings.Contains(text, "E-mail Protection") {
		t.Errorf("ECDSA SHA-1 request:\n%s", text)
	}
	if _, errs, code := cli(t, nil, "", "attest", "verify", "--statement", st, "--csr", ecReq); code != 1 || !strings.Contains(errs, "not the key of the certificate request") {
		t.Fatalf("statement against another key's request: %d %s", code, errs)
	}
}
