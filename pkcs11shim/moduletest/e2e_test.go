//go:build linux

package moduletest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// End to end: sign-in clients signing an authentication challenge with
// the card key through the module.

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// syncBuffer collects a daemon's output while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startDaemon runs a server process until the test ends and waits until
// its output says ready.
func startDaemon(t *testing.T, ready string, name string, args ...string) *syncBuffer {
	t.Helper()
	out := &syncBuffer{}
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = out, out
	// An open stdin: s_server stops at end of input.
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stdin.Close() })
	if err := cmd.Start(); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(out.String(), ready) {
		if time.Now().After(deadline) {
			t.Fatalf("%s did not say %q:\n%s", name, ready, out)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return out
}

// sshTools returns OpenSSH's client, ssh-keygen and sshd, for a
// throwaway sshd on loopback, which needs root (privilege separation).
func sshTools(t *testing.T) (ssh, keygen, sshd string) {
	t.Helper()
	ssh = need(t, "ssh", "openssh-client")
	keygen = need(t, "ssh-keygen", "openssh-client")
	sshd = "/usr/sbin/sshd"
	if _, err := os.Stat(sshd); err != nil {
		absent(t, "%s is not installed (Debian package openssh-server)", sshd)
	}
	if os.Geteuid() != 0 {
		t.Skip("a throwaway sshd needs root here (privilege separation)")
	}
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		t.Skipf("sshd's privilege separation directory: %v", err)
	}
	return ssh, keygen, sshd
}

// TestOpenSSHLogin logs in to a throwaway sshd on 127.0.0.1 with
// `ssh -I module`: OpenSSH finds the key, asks for the PIN and signs the
// server's challenge on the card.
func TestOpenSSHLogin(t *testing.T) {
	ssh, keygen, sshd := sshTools(t)
	lib := module(t)
	startService(t)
	dir := t.TempDir()
	run(t, keygen, "-q", "-t", "ed25519", "-N", "", "-f", filepath.Join(dir, "hostkey"))
	writeFile(t, filepath.Join(dir, "authorized_keys"), run(t, keygen, "-D", lib), 0o600)
	port := freePort(t)
	writeFile(t, filepath.Join(dir, "sshd_config"), fmt.Sprintf(`Port %d
ListenAddress 127.0.0.1
HostKey %[2]s/hostkey
AuthorizedKeysFile %[2]s/authorized_keys
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PermitRootLogin prohibit-password
PidFile %[2]s/sshd.pid
`, port, dir), 0o600)
	writeFile(t, filepath.Join(dir, "askpass"), "#!/bin/sh\necho "+testPIN+"\n", 0o700)
	logs := startDaemon(t, "Server listening", sshd, "-D", "-e", "-f", filepath.Join(dir, "sshd_config"))

	cmd := exec.Command(ssh, "-F", "/dev/null", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
		"-o", "PreferredAuthentications=publickey", "-o", "IdentityFile=none", "-I", lib, "-p", fmt.Sprint(port),
		"root@127.0.0.1", "echo", "signed-in-with-the-card")
	cmd.Env = append(os.Environ(), "SSH_ASKPASS="+filepath.Join(dir, "askpass"), "SSH_ASKPASS_REQUIRE=force", "DISPLAY=:0")
	cmd.Stdin = strings.NewReader("")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "signed-in-with-the-card") {
		t.Fatalf("ssh: %v\n%s\nsshd:\n%s", err, out, logs)
	}
}

// certFor issues a certificate for pub, signed by ca (self-signed when ca
// is nil).
func certFor(t *testing.T, cn string, pub any, ca *x509.Certificate, caKey any, isCA bool) *x509.Certificate {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	if isCA {
		tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
		tmpl.KeyUsage |= x509.KeyUsageCertSign
		tmpl.ExtKeyUsage = nil
	}
	if ca == nil {
		ca = tmpl
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, pub, caKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func pemCert(c *x509.Certificate) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}))
}

// TestTLSClientAuth completes a TLS handshake with client authentication
// (openssl s_server -Verify) whose client key is the card key, used
// through OpenSSL's pkcs11 engine and the module.
func TestTLSClientAuth(t *testing.T) {
	openssl := need(t, "openssl", "openssl")
	engine := ""
	for _, p := range []string{"/usr/lib/x86_64-linux-gnu/engines-3/pkcs11.so", "/usr/lib/aarch64-linux-gnu/engines-3/pkcs11.so", "/usr/lib/engines-3/pkcs11.so"} {
		if _, err := os.Stat(p); err == nil {
			engine = p
		}
	}
	if engine == "" {
		absent(t, "the OpenSSL pkcs11 engine is not installed (Debian package libengine-pkcs11-openssl)")
	}
	lib := module(t)
	s := startService(t)
	dir := t.TempDir()

	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ca := certFor(t, "tpmcard test CA", caKey.Public(), nil, caKey, true)
	srvKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	srv := certFor(t, "127.0.0.1", srvKey.Public(), ca, caKey, false)
	client := certFor(t, "tpmcard test client", s.key.Public, ca, caKey, false)
	// Enrolled on the card, the certificate shows beside its key, with its
	// CKA_ID, to a real PKCS#11 consumer.
	if _, err := s.m.ImportCertificate(s.serial, client.Raw, "sign-in"); err != nil {
		t.Fatalf("importing the client certificate: %v", err)
	}
	objs := run(t, need(t, "pkcs11-tool", "opensc"), "--module", lib, "-O")
	if !strings.Contains(objs, "Certificate Object") || !strings.Contains(objs, "tpmcard test client") ||
		strings.Count(objs, "ID:         "+hex.EncodeToString(s.keyID)) < 2 {
		t.Fatalf("pkcs11-tool -O does not show the certificate beside its key (ID %x):\n%s", s.keyID, objs)
	}
	srvKeyDER, _ := x509.MarshalPKCS8PrivateKey(srvKey)
	writeFile(t, filepath.Join(dir, "ca.pem"), pemCert(ca), 0o600)
	writeFile(t, filepath.Join(dir, "srv.pem"), pemCert(srv), 0o600)
	writeFile(t, filepath.Join(dir, "srv.key"), string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: srvKeyDER})), 0o600)
	writeFile(t, filepath.Join(dir, "client.pem"), pemCert(client), 0o600)
	writeFile(t, filepath.Join(dir, "openssl.cnf"), fmt.Sprintf(`openssl_conf = openssl_init
[openssl_init]
engines = engine_section
[engine_section]
pkcs11 = pkcs11_section
[pkcs11_section]
engine_id = pkcs11
dynamic_path = %s
MODULE_PATH = %s
init = 0
`, engine, lib), 0o600)

	port := freePort(t)
	logs := startDaemon(t, "ACCEPT", openssl, "s_server", "-accept", fmt.Sprintf("127.0.0.1:%d", port), "-naccept", "1",
		"-cert", filepath.Join(dir, "srv.pem"), "-key", filepath.Join(dir, "srv.key"),
		"-CAfile", filepath.Join(dir, "ca.pem"), "-Verify", "1", "-verify_return_error")

	cmd := exec.Command(openssl, "s_client", "-connect", fmt.Sprintf("127.0.0.1:%d", port),
		"-engine", "pkcs11", "-keyform", "engine",
		"-key", fmt.Sprintf("pkcs11:id=%s;type=private;pin-value=%s", pctEncode(s.keyID), testPIN),
		"-cert", filepath.Join(dir, "client.pem"), "-CAfile", filepath.Join(dir, "ca.pem"), "-verify_return_error")
	cmd.Env = append(os.Environ(), "OPENSSL_CONF="+filepath.Join(dir, "openssl.cnf"))
	cmd.Stdin = strings.NewReader("Q\n")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Verify return code: 0") {
		t.Fatalf("s_client: %v\n%s\ns_server:\n%s", err, out, logs)
	}
	// s_server reports the client certificate it verified.
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(logs.String(), "tpmcard test client") && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(logs.String(), "tpmcard test client") {
		t.Errorf("s_server did not see the client certificate:\n%s\ns_client:\n%s", logs, out)
	}
}

func pctEncode(b []byte) string {
	var sb strings.Builder
	for _, c := range b {
		fmt.Fprintf(&sb, "%%%02x", c)
	}
	return sb.String()
}
