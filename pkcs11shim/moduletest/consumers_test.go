//go:build linux

package moduletest

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tpmcard/tpmcard/tpmcard"
)

// withRSAKey adds an RSA-2048 key to the test card, and a certificate
// for each of its keys (issued by a throwaway CA, labelled label-EC and
// label-RSA), as an enrolled card has them.
func withRSAKey(t *testing.T, s *testService) (rsaKey tpmcard.KeyInfo) {
	t.Helper()
	k, err := s.m.GenerateKey(context.Background(), s.serial, tpmcard.KeyOptions{Algorithm: tpmcard.RSA2048, Label: "rsa key"}, nil)
	if err != nil {
		t.Fatalf("generating an RSA key: %v", err)
	}
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ca := certFor(t, "tpmcard test CA", caKey.Public(), nil, caKey, true)
	for _, c := range []struct {
		label string
		pub   any
	}{{"card EC", s.key.Public}, {"card RSA", k.Public}} {
		cert := certFor(t, c.label, c.pub, ca, caKey, false)
		if _, err := s.m.ImportCertificate(s.serial, cert.Raw, c.label); err != nil {
			t.Fatalf("importing the %s certificate: %v", c.label, err)
		}
	}
	return k
}

// TestJavaSunPKCS11 signs SHA256withECDSA, SHA256withRSA and RSASSA-PSS
// with the card's keys through Java's SunPKCS11 provider and the module,
// and verifies the signatures with the JDK's own providers. SunPKCS11 offers
// RSASSA-PSS only when the token lists the digest mechanism.
func TestJavaSunPKCS11(t *testing.T) {
	java := need(t, "java", "openjdk-17-jdk-headless")
	lib := module(t)
	s := startService(t)
	withRSAKey(t, s)
	cmd := exec.Command(java, filepath.Join("testdata", "CardSign.java"), lib, testPIN)
	out, err := cmd.CombinedOutput()
	t.Logf("java CardSign.java:\n%s", out)
	if err != nil || !strings.Contains(string(out), "0 failures") {
		t.Fatalf("java: %v", err)
	}
	for _, want := range []string{"ok   SHA256withECDSA", "ok   SHA256withRSA", "ok   RSASSA-PSS", "ok   SHA-256 through the card"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("java's output lacks %q", want)
		}
	}
}

// TestNSSCertutilRequest makes a certificate request with NSS's certutil
// for the card's RSA key, named by its certificate's nickname (certutil -R
// -k TOKEN:NICKNAME): NSS finds the key from the certificate by CKA_ID,
// SHA-1 of the modulus, and the card signs the request.
func TestNSSCertutilRequest(t *testing.T) {
	certutil := need(t, "certutil", "libnss3-tools")
	modutil := need(t, "modutil", "libnss3-tools")
	lib := module(t)
	s := startService(t)
	rsaKey := withRSAKey(t, s)
	dir := t.TempDir()
	db := "sql:" + dir
	pw := filepath.Join(dir, "pin")
	writeFile(t, pw, testPIN+"\n", 0o600)
	run(t, certutil, "-N", "-d", db, "--empty-password")
	// FRIENDLY: the token's certificates are readable without a login
	// (they are), so NSS finds one by nickname before it logs in.
	run(t, modutil, "-dbdir", db, "-add", "tpmcard", "-libfile", lib, "-mechanisms", "FRIENDLY", "-force")
	out := run(t, certutil, "-L", "-d", db, "-h", testLabel, "-f", pw)
	if !strings.Contains(out, "card RSA") {
		t.Fatalf("certutil -L does not list the card's certificate:\n%s", out)
	}
	csr := filepath.Join(dir, "req.pem")
	run(t, certutil, "-R", "-d", db, "-h", testLabel, "-f", pw, "-k", testLabel+":card RSA",
		"-s", "CN=renewed by NSS", "-a", "-o", csr)
	b, err := os.ReadFile(csr)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(bytesAfter(b, "-----BEGIN"))
	if blk == nil {
		t.Fatalf("certutil -R wrote no PEM request:\n%s", b)
	}
	req, err := x509.ParseCertificateRequest(blk.Bytes)
	if err != nil {
		t.Fatalf("the request: %v", err)
	}
	if err := req.CheckSignature(); err != nil {
		t.Errorf("the request's signature (made by the card): %v", err)
	}
	if pub, ok := req.PublicKey.(*rsa.PublicKey); !ok || !pub.Equal(rsaKey.Public) {
		t.Errorf("the request is for %T, not the card's RSA key", req.PublicKey)
	}
	if req.Subject.CommonName != "renewed by NSS" {
		t.Errorf("the request's subject is %q", req.Subject)
	}
}

// bytesAfter is b from the first sep on (certutil -a may write a header).
func bytesAfter(b []byte, sep string) []byte {
	if i := bytes.Index(b, []byte(sep)); i >= 0 {
		return b[i:]
	}
	return b
}

// TestPKCS11ToolDigestVerifyData: pkcs11-tool --hash, --verify of the
// card's own signature with its public key, and a private data object
// written with --write-object --type data and read back with
// --read-object, visible only after a login; then --test.
func TestPKCS11ToolDigestVerifyData(t *testing.T) {
	tool := need(t, "pkcs11-tool", "opensc")
	lib := module(t)
	s := startService(t)
	dir := t.TempDir()
	p11 := func(args ...string) string { return run(t, tool, append([]string{"--module", lib}, args...)...) }
	msg := []byte("a message for pkcs11-tool")
	data := filepath.Join(dir, "data")
	writeFile(t, data, string(msg), 0o600)

	out := p11("-M")
	for _, want := range []string{"SHA256, digest", "SHA-1, digest", "ECDSA-SHA256, keySize={256,384}, sign, verify", "SHA1-RSA-PKCS, keySize={2048,3072}, verify"} {
		if !strings.Contains(out, want) {
			t.Errorf("pkcs11-tool -M lacks %q:\n%s", want, out)
		}
	}

	hashed := filepath.Join(dir, "hash")
	p11("--hash", "-m", "SHA256", "-i", data, "-o", hashed)
	got, _ := os.ReadFile(hashed)
	if want := sha256.Sum256(msg); !bytes.Equal(got, want[:]) {
		t.Errorf("pkcs11-tool --hash: %x, want %x", got, want)
	}

	id := hex.EncodeToString(s.keyID)
	sig := filepath.Join(dir, "sig")
	p11("--login", "--pin", testPIN, "--sign", "--id", id, "-m", "ECDSA-SHA256", "-i", data, "-o", sig)
	out = p11("--verify", "--id", id, "-m", "ECDSA-SHA256", "-i", data, "--signature-file", sig)
	if !strings.Contains(out, "Signature is valid") {
		t.Errorf("pkcs11-tool --verify:\n%s", out)
	}
	other := filepath.Join(dir, "other")
	writeFile(t, other, "another message", 0o600)
	// pkcs11-tool says so, and exits 0 all the same.
	out = p11("--verify", "--id", id, "-m", "ECDSA-SHA256", "-i", other, "--signature-file", sig)
	if !strings.Contains(out, "Invalid signature") || strings.Contains(out, "Signature is valid") {
		t.Errorf("pkcs11-tool --verify of another message:\n%s", out)
	}

	secretFile := filepath.Join(dir, "secret")
	const secretValue = "kept on the card behind the PIN"
	writeFile(t, secretFile, secretValue, 0o600)
	p11("--login", "--pin", testPIN, "--write-object", secretFile, "--type", "data", "--label", "my secret",
		"--application-label", "tpmcard test", "--application-id", "1.3.6.1.4.1.99999.7", "--private")
	read := filepath.Join(dir, "read")
	p11("--login", "--pin", testPIN, "--read-object", "--type", "data", "--label", "my secret", "-o", read)
	if b, _ := os.ReadFile(read); string(b) != secretValue {
		t.Errorf("pkcs11-tool --read-object: %q, want %q", b, secretValue)
	}
	out = p11("--login", "--pin", testPIN, "-O", "--type", "data")
	for _, want := range []string{"Data object", "my secret", "tpmcard test", "1.3.6.1.4.1.99999.7", "private"} {
		if !strings.Contains(out, want) {
			t.Errorf("pkcs11-tool -O --type data lacks %q:\n%s", want, out)
		}
	}
	if out = p11("-O"); strings.Contains(out, "my secret") {
		t.Errorf("without a login the private data object shows:\n%s", out)
	}
	p11("--login", "--pin", testPIN, "--delete-object", "--type", "data", "--label", "my secret")
	if out = p11("--login", "--pin", testPIN, "-O"); strings.Contains(out, "my secret") {
		t.Errorf("the deleted data object still shows:\n%s", out)
	}

	out = p11("--test", "--login", "--pin", testPIN)
	if !strings.Contains(out, "No errors") || !strings.Contains(out, "Digests:") {
		t.Errorf("pkcs11-tool --test:\n%s", out)
	}
}
