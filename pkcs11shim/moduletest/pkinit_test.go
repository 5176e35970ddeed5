//go:build linux

package moduletest

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-tpm/tpm2/transport"
	"github.com/tpmcard/tpmcard/service/client"
	"github.com/tpmcard/tpmcard/service/p11"
	"github.com/tpmcard/tpmcard/service/wire"
	"github.com/tpmcard/tpmcard/tpmcard"
	"github.com/tpmcard/tpmcard/tpmcard/secret"
	"github.com/tpmcard/tpmcard/tpmcard/tpmtest"
	"github.com/tpmcard/tpmcard/tpmcard/x509req"
)

const pkinitRealm = "TPMCARD.TEST"

// krb5Tools are MIT krb5's programs the PKINIT test runs, and the Debian
// packages that ship them.
type krb5Tools struct {
	krb5kdc, kdb5util, kadmin, kinit, klist string
}

func needKrb5(t *testing.T) krb5Tools {
	t.Helper()
	k := krb5Tools{
		krb5kdc:  need(t, "krb5kdc", "krb5-kdc"),
		kdb5util: need(t, "kdb5_util", "krb5-kdc"),
		kadmin:   need(t, "kadmin.local", "krb5-admin-server"),
		kinit:    need(t, "kinit", "krb5-user"),
		klist:    need(t, "klist", "krb5-user"),
	}
	// PKINIT is a plugin of its own package; kinit and the KDC load it
	// from the library's plugin directory.
	if m, _ := filepath.Glob("/usr/lib/*/krb5/plugins/preauth/pkinit.so"); len(m) == 0 {
		if m, _ = filepath.Glob("/usr/lib/krb5/plugins/preauth/pkinit.so"); len(m) == 0 {
			absent(t, "MIT krb5's PKINIT plugin is not installed (Debian package krb5-pkinit)")
		}
	}
	return k
}

// TestKinitPKINIT obtains a Kerberos TGT with MIT's kinit by PKINIT with
// a card key through the module, from a throwaway MIT KDC on loopback: the
// card's key signs a request made with the pkinit template and the
// principal (tpmcard/x509req, as `tpmcard cert request --template pkinit
// --principal` makes it), a test CA issues the certificate, the card holds
// it, and kinit, given the module as its PKCS#11 identity and the PIN on
// standard input, gets the ticket for a principal that has no password at
// all. The KDC refuses that certificate for another principal, and refuses
// one made with the smartcard-logon template, which lacks
// id-pkinit-KPClientAuth. A wrong PIN gets no ticket and costs a try the
// TPM counts. RSA-2048 on the simulator and on swtpm; ECDSA P-256 too,
// where kinit signs with PKCS#11 EC keys (Debian 12's krb5 1.20 does not:
// that subtest shows it and skips).
func TestKinitPKINIT(t *testing.T) {
	tools := needKrb5(t)
	lib := module(t)
	for _, backend := range []string{"sim", "swtpm"} {
		t.Run(backend, func(t *testing.T) {
			var tpm transport.TPM
			if backend == "sim" {
				tpm = tpmtest.Sim(t)
			} else {
				tpm = tpmtest.StartSWTPM(t).TPM()
			}
			s := startServiceOn(t, tpm)
			for _, alg := range []tpmcard.Algorithm{tpmcard.RSA2048, tpmcard.ECDSAP256} {
				t.Run(string(alg), func(t *testing.T) {
					kinitWithCard(t, tools, lib, s, alg)
				})
			}
		})
	}
}

func kinitWithCard(t *testing.T, tools krb5Tools, lib string, s *testService, alg tpmcard.Algorithm) {
	dir := t.TempDir()
	user := "alice" + strings.NewReplacer("-", "").Replace(string(alg))
	label := "pkinit " + string(alg)
	k, err := s.m.GenerateKey(context.Background(), s.serial, tpmcard.KeyOptions{Algorithm: alg, Label: label}, nil)
	if err != nil {
		t.Fatalf("generating the %s key: %v", alg, err)
	}
	caKey, ca := pkinitCA(t)
	kdc := startKDC(t, tools, dir, ca, caKey)
	kadmin := func(q string) string {
		return runEnv(t, kdc.env, tools.kadmin, "-r", pkinitRealm, "-q", q)
	}
	// No key at all: only PKINIT can authenticate this principal.
	kadmin("addprinc -nokey +requires_preauth " + user)

	cardCertificate(t, s, k, label, "pkinit", user, ca, caKey)

	ccache := filepath.Join(dir, "ccache")
	p11log := filepath.Join(dir, "module.log")
	env := append(kdc.env, "KRB5CCNAME=FILE:"+ccache, "KRB5_TRACE="+filepath.Join(dir, "kinit.trace"), debugEnv+"="+p11log)
	identity := "X509_user_identity=PKCS11:module_name=" + lib + ":certlabel=" + label
	kinit := func(pin string) (string, error) {
		cmd := exec.Command(tools.kinit, "-X", identity, user+"@"+pkinitRealm)
		cmd.Env, cmd.Stdin = env, strings.NewReader(pin+"\n")
		return runTimeout(cmd, time.Minute)
	}
	out, err := kinit(testPIN)
	if err != nil && alg != tpmcard.RSA2048 && rsaOnlyKinit(t, p11log) {
		// MIT krb5 up to at least 1.20 looks the PKCS#11 private key up
		// with CKA_KEY_TYPE = CKK_RSA and signs with CKM_RSA_PKCS: an EC
		// card key is never found. The login and the certificate worked.
		t.Skipf("this kinit signs PKINIT requests with PKCS#11 RSA keys only: it logged in to the card and read the EC certificate, "+
			"then asked for CKM_RSA_PKCS (%s)", krb5Version(tools))
	}
	if err != nil {
		trace, _ := os.ReadFile(filepath.Join(dir, "kinit.trace"))
		log, _ := os.ReadFile(filepath.Join(dir, "kdc.log"))
		t.Fatalf("kinit: %v\n%s\n--- trace ---\n%s\n--- KDC log ---\n%s", err, out, trace, log)
	}
	if !strings.Contains(out, "PIN") {
		t.Errorf("kinit did not ask for the token's PIN:\n%s", out)
	}
	list := runEnv(t, env, tools.klist, "-c", ccache)
	for _, want := range []string{"Default principal: " + user + "@" + pkinitRealm, "krbtgt/" + pkinitRealm + "@" + pkinitRealm} {
		if !strings.Contains(list, want) {
			t.Errorf("klist lacks %q:\n%s", want, list)
		}
	}
	kdcLog, _ := os.ReadFile(filepath.Join(dir, "kdc.log"))
	if !strings.Contains(string(kdcLog), "AS_REQ") || !strings.Contains(string(kdcLog), "ISSUE") {
		t.Errorf("the KDC's log has no issued AS_REQ:\n%s", kdcLog)
	}
	t.Logf("kinit %s: %s\n%s", alg, strings.TrimSpace(out), list)

	// The KDC matches the certificate's principal: the same card, the
	// same PIN, another principal gets no ticket.
	other := "bob" + strings.TrimPrefix(user, "alice")
	kadmin("addprinc -nokey +requires_preauth " + other)
	cmd := exec.Command(tools.kinit, "-X", identity, other+"@"+pkinitRealm)
	cmd.Env, cmd.Stdin = env, strings.NewReader(testPIN+"\n")
	if out, err := runTimeout(cmd, time.Minute); err == nil {
		t.Fatalf("kinit as %s with %s's certificate succeeded:\n%s", other, user, out)
	}
	kdcLog, _ = os.ReadFile(filepath.Join(dir, "kdc.log"))
	if !strings.Contains(string(kdcLog), "PREAUTH_FAILED: "+other+"@"+pkinitRealm) ||
		!strings.Contains(string(kdcLog), "Client name mismatch") {
		t.Errorf("the KDC did not refuse %s for a name mismatch:\n%s", other, kdcLog)
	}

	// A wrong PIN: no ticket, and the TPM counts the try.
	os.Remove(ccache)
	if out, err := kinit("not the PIN"); err == nil {
		t.Fatalf("kinit with a wrong PIN succeeded:\n%s", out)
	}
	if _, err := os.Stat(ccache); err == nil {
		t.Error("kinit with a wrong PIN wrote a credential cache")
	}
	info, err := s.m.Status(s.serial)
	if err != nil {
		t.Fatal(err)
	}
	if info.PINTriesLeft != pinTries-1 {
		t.Errorf("after one wrong PIN through kinit: %d tries left, want %d", info.PINTriesLeft, pinTries-1)
	}
	// The right PIN resets the count (and the next subtest starts fresh).
	if out, err := kinit(testPIN); err != nil {
		t.Fatalf("kinit after a wrong PIN: %v\n%s", err, out)
	}

	// The principal on the smartcard-logon template, whose request warns
	// of it, lacks id-pkinit-KPClientAuth: the KDC refuses the certificate.
	if alg != tpmcard.RSA2048 {
		return
	}
	logonLabel := label + " logon"
	k2, err := s.m.GenerateKey(context.Background(), s.serial, tpmcard.KeyOptions{Algorithm: alg, Label: logonLabel}, nil)
	if err != nil {
		t.Fatalf("generating a second %s key: %v", alg, err)
	}
	cardCertificate(t, s, k2, logonLabel, "smartcard-logon", user, ca, caKey)
	cmd = exec.Command(tools.kinit, "-X", "X509_user_identity=PKCS11:module_name="+lib+":certlabel="+logonLabel, user+"@"+pkinitRealm)
	cmd.Env, cmd.Stdin = env, strings.NewReader(testPIN+"\n")
	if out, err := runTimeout(cmd, time.Minute); err == nil {
		t.Fatalf("kinit with a smartcard-logon certificate succeeded:\n%s", out)
	}
	kdcLog, _ = os.ReadFile(filepath.Join(dir, "kdc.log"))
	if !strings.Contains(string(kdcLog), "PREAUTH_FAILED: "+user+"@"+pkinitRealm+" for krbtgt/"+pkinitRealm+"@"+pkinitRealm+", Inconsistent key purpose") {
		t.Errorf("the KDC did not refuse the smartcard-logon certificate for its key purpose:\n%s", kdcLog)
	}
}

// cardCertificate has the card key k sign a request made with the
// template and the principal user@pkinitRealm, over the socket as the CLI
// does, has the CA issue it and stores the certificate on the card,
// labelled label.
func cardCertificate(t *testing.T, s *testService, k tpmcard.KeyInfo, label, template, user string, ca *x509.Certificate, caKey crypto.Signer) {
	t.Helper()
	// The request, signed by the card key over the socket.
	principal, err := x509req.ParsePrincipal(user + "@" + pkinitRealm)
	if err != nil {
		t.Fatal(err)
	}
	tmpl, err := x509req.LookupTemplate(template)
	if err != nil {
		t.Fatal(err)
	}
	subject, _ := x509req.ParseSubject("CN=" + user)
	req := x509req.Request{Subject: subject, Names: x509req.Names{Principals: []x509req.Principal{principal}}, Template: tmpl}
	cont, err := req.Build(k.Public)
	if err != nil {
		t.Fatal(err)
	}
	csrDER, err := x509req.CreateRequest(cardSigner(t, s, label), cont)
	if err != nil {
		t.Fatalf("the card signing the request: %v", err)
	}
	csr, err := x509.ParseCertificateRequest(csrDER)
	if err != nil {
		t.Fatal(err)
	}
	if err := csr.CheckSignature(); err != nil {
		t.Fatalf("the request's signature: %v", err)
	}
	// The CA copies the request's extensions into the certificate.
	leaf := issue(t, ca, caKey, csr.PublicKey, pkix.Name{CommonName: user}, csr.Extensions, false)
	if _, err := s.m.ImportCertificate(s.serial, leaf.Raw, label); err != nil {
		t.Fatalf("importing the certificate: %v", err)
	}

}

// rsaOnlyKinit says whether the module's log shows a kinit that logged
// in, then asked for an RSA PKCS#1 signature (CKM_RSA_PKCS, 0x1) with a
// key it had not found.
func rsaOnlyKinit(t *testing.T, p11log string) bool {
	t.Helper()
	b, err := os.ReadFile(p11log)
	if err != nil {
		t.Fatalf("the module's log: %v", err)
	}
	var login, rsaSign bool
	for _, l := range strings.Split(string(b), "\n") {
		login = login || strings.Contains(l, " C_Login(") && strings.HasSuffix(l, " = CKR_OK")
		// The module answers at C_SignInit for an init it has not seen
		// succeed, at C_Sign for one it pipelines.
		rsaSign = rsaSign || login && strings.Contains(l, "= CKR_KEY_HANDLE_INVALID") &&
			(strings.Contains(l, " C_SignInit(") && strings.Contains(l, ", mechanism=0x1,") ||
				strings.Contains(l, " C_Sign(") && strings.Contains(string(b), ", mechanism=0x1,"))
	}
	return login && rsaSign
}

// krb5Version is what klist -V says.
func krb5Version(tools krb5Tools) string {
	out, _ := exec.Command(tools.klist, "-V").CombinedOutput()
	return strings.TrimSpace(string(out))
}

// cardSigner logs in to the service and returns a signer for the key
// labelled label, found by its CKA_ID as a client finds it.
func cardSigner(t *testing.T, s *testService, label string) crypto.Signer {
	t.Helper()
	cl, err := client.Dial(s.sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	sess, err := cl.OpenSession(s.serial, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.Login(sess, wire.UserNormal, secret.FromString(testPIN)); err != nil {
		t.Fatalf("login: %v", err)
	}
	hs, err := cl.FindObjects(sess, wire.Attribute{Type: p11.CKAClass, Value: wire.ULong(p11.CKOPublicKey)},
		wire.Attribute{Type: p11.CKALabel, Value: []byte(label)})
	if err != nil || len(hs) != 1 {
		t.Fatalf("the public key labelled %q: %v %v", label, hs, err)
	}
	vals, err := cl.GetAttributes(sess, hs[0], p11.CKAID)
	if err != nil || vals[0].Status != wire.OK {
		t.Fatalf("its CKA_ID: %v %v", vals, err)
	}
	sig, err := cl.Signer(s.serial, vals[0].Value)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sig.Close() })
	return sig
}

// pkinitCA is a throwaway CA.
func pkinitCA(t *testing.T) (*ecdsa.PrivateKey, *x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key, issue(t, nil, key, key.Public(), pkix.Name{CommonName: "tpmcard PKINIT test CA"}, nil, true)
}

// issue makes a certificate for pub signed by caKey (self-signed when ca
// is nil) with the given extensions.
func issue(t *testing.T, ca *x509.Certificate, caKey crypto.Signer, pub any, subject pkix.Name, exts []pkix.Extension, isCA bool) *x509.Certificate {
	t.Helper()
	sn, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 100))
	tmpl := &x509.Certificate{
		SerialNumber:    sn,
		Subject:         subject,
		NotBefore:       time.Now().Add(-time.Hour),
		NotAfter:        time.Now().Add(24 * time.Hour),
		ExtraExtensions: exts,
	}
	if isCA {
		tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
		tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign
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

// kdcProc is a running krb5kdc and the environment that points MIT's
// tools at its configuration.
type kdcProc struct {
	env []string
}

// startKDC creates a realm's database in dir and starts krb5kdc on a
// loopback port, with a certificate from the CA that has id-pkinit-KPKdc
// and the krbtgt principal in its subjectAltName (RFC 4556 §3.2.4).
func startKDC(t *testing.T, tools krb5Tools, dir string, ca *x509.Certificate, caKey crypto.Signer) *kdcProc {
	t.Helper()
	kdcKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tgs := x509req.Principal{Components: []string{"krbtgt", pkinitRealm}, NameType: x509req.NTSrvInst, Realm: pkinitRealm}
	san, err := x509req.Names{Principals: []x509req.Principal{tgs}}.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	eku, _ := asn1.Marshal([]asn1.ObjectIdentifier{x509req.OIDPKINITKDC})
	ku, _ := asn1.Marshal(asn1.BitString{Bytes: []byte{0x80}, BitLength: 1}) // digitalSignature
	kdcCert := issue(t, ca, caKey, kdcKey.Public(), pkix.Name{CommonName: "kdc"}, []pkix.Extension{
		{Id: x509req.OIDExtSAN, Value: san},
		{Id: x509req.OIDExtExtKeyUsage, Value: eku},
		{Id: x509req.OIDExtKeyUsage, Critical: true, Value: ku},
	}, false)
	caPEM := filepath.Join(dir, "ca.pem")
	writeFile(t, caPEM, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Raw})), 0o644)
	writeFile(t, filepath.Join(dir, "kdc.pem"), string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: kdcCert.Raw})), 0o644)
	keyDER, err := x509.MarshalPKCS8PrivateKey(kdcKey)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "kdc.key"), string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})), 0o600)

	port := freePort(t)
	kdcConf := fmt.Sprintf(`[kdcdefaults]
	kdc_ports = %[1]d
	kdc_tcp_ports = %[1]d
	kdc_listen = 127.0.0.1:%[1]d
	kdc_tcp_listen = 127.0.0.1:%[1]d

[realms]
	%[2]s = {
		database_name = %[3]s/principal
		key_stash_file = %[3]s/stash
		acl_file = %[3]s/kadm5.acl
		pkinit_identity = FILE:%[3]s/kdc.pem,%[3]s/kdc.key
		pkinit_anchors = FILE:%[3]s/ca.pem
	}

[logging]
	kdc = FILE:%[3]s/kdc.log
	admin_server = FILE:%[3]s/kadmin.log
	default = FILE:%[3]s/krb5.log
`, port, pkinitRealm, dir)
	krb5Conf := fmt.Sprintf(`[libdefaults]
	default_realm = %[1]s
	dns_lookup_kdc = false
	dns_lookup_realm = false
	rdns = false
	udp_preference_limit = 1

[realms]
	%[1]s = {
		kdc = 127.0.0.1:%[2]d
		pkinit_anchors = FILE:%[3]s/ca.pem
	}
`, pkinitRealm, port, dir)
	writeFile(t, filepath.Join(dir, "kdc.conf"), kdcConf, 0o644)
	writeFile(t, filepath.Join(dir, "krb5.conf"), krb5Conf, 0o644)
	writeFile(t, filepath.Join(dir, "kadm5.acl"), "", 0o644)
	env := append(os.Environ(), "KRB5_CONFIG="+filepath.Join(dir, "krb5.conf"), "KRB5_KDC_PROFILE="+filepath.Join(dir, "kdc.conf"))
	runEnv(t, env, tools.kdb5util, "-r", pkinitRealm, "create", "-s", "-P", "throwaway master key")

	cmd := exec.Command(tools.krb5kdc, "-n", "-r", pkinitRealm)
	cmd.Env = env
	out := &strings.Builder{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("krb5kdc: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			c.Close()
			break
		}
		select {
		case err := <-done:
			log, _ := os.ReadFile(filepath.Join(dir, "kdc.log"))
			t.Fatalf("krb5kdc exited: %v\n%s\n%s", err, out, log)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("krb5kdc does not listen on port %d\n%s", port, out)
		}
	}
	return &kdcProc{env: env}
}

// runEnv runs a command with env and returns its combined output; it
// fails the test unless the command succeeds.
func runEnv(t *testing.T, env []string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = env
	out, err := runTimeout(cmd, time.Minute)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return out
}

// runTimeout runs cmd, killing it after d.
func runTimeout(cmd *exec.Cmd, d time.Duration) (string, error) {
	var b strings.Builder
	cmd.Stdout, cmd.Stderr = &b, &b
	if err := cmd.Start(); err != nil {
		return "", err
	}
	timer := time.AfterFunc(d, func() { cmd.Process.Kill() })
	defer timer.Stop()
	err := cmd.Wait()
	return b.String(), err
}
