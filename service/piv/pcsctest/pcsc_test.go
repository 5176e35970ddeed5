//go:build linux

package pcsctest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
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

	"github.com/google/go-tpm/tpm2/transport"
	"github.com/rs/zerolog"
	"github.com/tpmcard/tpmcard/service/client"
	"github.com/tpmcard/tpmcard/service/piv"
	"github.com/tpmcard/tpmcard/service/server"
	"github.com/tpmcard/tpmcard/tpmcard"
	"github.com/tpmcard/tpmcard/tpmcard/secret"
	"github.com/tpmcard/tpmcard/tpmcard/tpmtest"
)

const (
	openscPKCS11 = "/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so"
	vpcdDriver   = "/usr/lib/pcsc/drivers/serial/libifdvpcd.so"
	readerName   = "tpmcard test"

	testPIN    = "314159"
	testPUK    = "27182818"
	unblockPIN = "161803"
	wrongPIN   = "999999"
)

// absent skips a test whose tool or part is missing, except where
// TPMCARD_REQUIRE_TOOLS is set (make test in CI): there a missing part is
// a missing install step, and fails.
func absent(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv("TPMCARD_REQUIRE_TOOLS") != "" {
		t.Fatalf("TPMCARD_REQUIRE_TOOLS: "+format, args...)
	}
	t.Skipf(format, args...)
}

func requireParts(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		absent(t, "not root: a private pcscd needs a mount namespace of its own (unshare -m)")
	}
	for _, tool := range []string{"pcscd", "unshare", "opensc-tool", "pkcs15-tool", "pkcs11-tool", "openssl", "yubico-piv-tool"} {
		if _, err := exec.LookPath(tool); err != nil {
			absent(t, "%s is not installed (make setup installs it)", tool)
		}
	}
	for _, f := range []string{openscPKCS11, vpcdDriver} {
		if _, err := os.Stat(f); err != nil {
			absent(t, "%s is missing (make setup installs opensc and vsmartcard-vpcd)", f)
		}
	}
}

// lockedBuffer is a log sink the service and the test share.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// freePorts finds a port whose next one is free too: vpcd takes both.
func freePorts(t testing.TB) int {
	t.Helper()
	for range 50 {
		ln, err := net.Listen("tcp", "0.0.0.0:0")
		if err != nil {
			t.Fatal(err)
		}
		p := ln.Addr().(*net.TCPAddr).Port
		ln2, err := net.Listen("tcp", fmt.Sprintf("0.0.0.0:%d", p+1))
		ln.Close()
		if err == nil {
			ln2.Close()
			return p
		}
	}
	t.Fatal("no two free ports in a row")
	return 0
}

// pcscd is a private pcscd with one vpcd entry (two readers, on port and
// port+1), in a mount namespace of its own where dir is /run/pcscd:
// clients reach it through PCSCLITE_CSOCK_NAME.
type pcscd struct {
	port         int
	env          []string
	log          *lockedBuffer
	runDir, conf string
	stop         func() // kills pcscd and waits for it
}

func startPCSCD(t testing.TB) *pcscd {
	t.Helper()
	// pcscd's socket directory is compiled in; the bind mount needs it
	// to exist on the host, empty or not (the host's pcscd is not
	// touched: the mount is private to the namespace).
	if err := os.MkdirAll("/run/pcscd", 0o755); err != nil {
		absent(t, "no /run/pcscd: %v", err)
	}
	if out, err := exec.Command("unshare", "-m", "true").CombinedOutput(); err != nil {
		absent(t, "no mount namespace for a private pcscd (a container without CAP_SYS_ADMIN?): unshare -m: %v %s", err, out)
	}
	dir := t.TempDir()
	p := &pcscd{runDir: filepath.Join(dir, "run"), conf: filepath.Join(dir, "reader.conf.d"), log: &lockedBuffer{}}
	for _, d := range []string{p.runDir, p.conf} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	p.port = freePorts(t)
	entry := fmt.Sprintf("FRIENDLYNAME \"%s\"\nDEVICENAME   /dev/null:%d\nLIBPATH      %s\n", readerName, p.port, vpcdDriver)
	if err := os.WriteFile(filepath.Join(p.conf, "vpcd"), []byte(entry), 0o644); err != nil {
		t.Fatal(err)
	}
	p.env = append(os.Environ(), "PCSCLITE_CSOCK_NAME="+filepath.Join(p.runDir, "pcscd.comm"))
	p.start(t)
	t.Cleanup(func() { p.stop() })
	return p
}

// start starts pcscd and waits for its socket.
func (p *pcscd) start(t testing.TB) {
	t.Helper()
	os.Remove(filepath.Join(p.runDir, "pcscd.comm"))
	// No -a: pcscd would log every APDU, VERIFY's PIN among them.
	cmd := exec.Command("unshare", "-m", "sh", "-c", `mount --bind "$1" /run/pcscd && exec pcscd -f -c "$2"`, "sh", p.runDir, p.conf)
	cmd.Stdout, cmd.Stderr = p.log, p.log
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting pcscd: %v", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	var once sync.Once
	p.stop = func() { once.Do(func() { cmd.Process.Kill(); <-done }) }
	deadline := time.Now().Add(15 * time.Second)
	for {
		if _, err := os.Stat(filepath.Join(p.runDir, "pcscd.comm")); err == nil {
			return
		}
		select {
		case <-done:
			t.Fatalf("pcscd exited:\n%s", p.log)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("pcscd made no socket in 15s:\n%s", p.log)
		}
	}
}

// waitCard waits until the first reader holds the card.
func (p *pcscd) waitCard(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		out, _ := p.run(t, "opensc-tool", "-l")
		if strings.Contains(out, "Yes") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no card in the reader after 20s:\n%s", out)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// run runs a tool against the private pcscd and returns its output and
// whether it succeeded.
func (p *pcscd) run(t testing.TB, name string, args ...string) (string, bool) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = p.env
	out, err := cmd.CombinedOutput()
	return string(out), err == nil
}

func (p *pcscd) must(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, ok := p.run(t, name, args...)
	if !ok {
		t.Fatalf("%s %s failed:\n%s", name, strings.Join(args, " "), out)
	}
	return out
}

// card makes a PIV-ready card on m: PINs of 6 to 8 characters, 3 tries,
// an 8-character PUK, a P-256 and (withRSA) an RSA-2048 key, each with a
// self-signed certificate it signed in the TPM.
func card(t testing.TB, m *tpmcard.Manager, withRSA bool) (serial string, ec, rsa tpmcard.KeyInfo) {
	t.Helper()
	created, err := m.Create(tpmcard.CreateOptions{Label: "piv", PIN: secret.FromString(testPIN), PUK: secret.FromString(testPUK),
		PINPolicy: &tpmcard.PINPolicy{MinLength: 6, MaxLength: 8}, PINTries: 3})
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	serial = created.Card.Serial
	ctx := context.Background()
	if ec, err = m.GenerateKey(ctx, serial, tpmcard.KeyOptions{Algorithm: tpmcard.ECDSAP256, Label: "login"}, nil); err != nil {
		t.Fatal(err)
	}
	keys := []tpmcard.KeyInfo{ec}
	if withRSA {
		if rsa, err = m.GenerateKey(ctx, serial, tpmcard.KeyOptions{Algorithm: tpmcard.RSA2048, Label: "sign"}, nil); err != nil {
			t.Fatal(err)
		}
		keys = append(keys, rsa)
	}
	if err := m.Login(serial, secret.FromString(testPIN)); err != nil {
		t.Fatal(err)
	}
	for i, k := range keys {
		signer, err := m.Signer(serial, k.ID)
		if err != nil {
			t.Fatal(err)
		}
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(int64(i + 1)), Subject: pkix.Name{CommonName: "PIV " + k.Label},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.Public, signer)
		if err != nil {
			t.Fatalf("self-signing %s: %v", k.Label, err)
		}
		if _, err := m.ImportCertificate(serial, der, k.Label); err != nil {
			t.Fatal(err)
		}
	}
	m.Logout(serial)
	return serial, ec, rsa
}

// rig is a card in a PIV reader of a private pcscd, served by a service
// on its own socket.
type rig struct {
	pc      *pcscd
	m       *tpmcard.Manager
	serial  string
	ec, rsa tpmcard.KeyInfo
	sock    string
}

// setUp makes the card (with the RSA key in 9c when withRSA), starts the
// service with it in a reader and waits until the reader holds it.
func setUp(t testing.TB, tpm transport.TPM, withRSA bool) *rig {
	t.Helper()
	pc := startPCSCD(t)
	stateDir := t.TempDir()
	m, err := tpmcard.Open(tpm, tpmcard.WithStateDir(stateDir))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	serial, ec, rsaKey := card(t, m, withRSA)

	logs := &lockedBuffer{}
	sock := filepath.Join(t.TempDir(), "tpmcard.sock")
	srv, err := server.New(server.Config{Socket: sock, Manager: m, Backend: "test", Simulated: true,
		Logger: zerolog.New(logs).Level(zerolog.DebugLevel), PIVState: filepath.Join(stateDir, "piv.json")})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Stop(ctx)
		for _, s := range []string{testPIN, testPUK, unblockPIN, wrongPIN} {
			if strings.Contains(logs.String(), s) || strings.Contains(pc.log.String(), s) {
				t.Errorf("a log shows the secret %q", s)
			}
		}
		if t.Failed() {
			t.Logf("service log:\n%s\npcscd log:\n%s", logs, pc.log)
		}
	})
	cl, err := client.Dial(sock)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if _, err := cl.PIVEnable(serial, pc.port, true); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.PIVAssign(serial, piv.SlotAuthentication, ec.ID); err != nil {
		t.Fatal(err)
	}
	if withRSA {
		if _, err := cl.PIVAssign(serial, piv.SlotSignature, rsaKey.ID); err != nil {
			t.Fatal(err)
		}
	}
	pc.waitCard(t)
	return &rig{pc: pc, m: m, serial: serial, ec: ec, rsa: rsaKey, sock: sock}
}

// TestOpenSC: a card in a PIV reader, used by OpenSC's PIV driver, its
// PKCS#11 module and yubico-piv-tool through a real pcscd and vpcd; the
// signatures are checked by openssl; wrong PINs cost TPM-counted tries
// until the TPM locks the PIN, and the PUK unblocks it through OpenSC.
func TestOpenSC(t *testing.T) {
	requireParts(t)
	tpmtest.ForEachTPM(t, func(t *testing.T, b *tpmtest.Backend) { testOpenSC(t, b.TPM) })
}

func testOpenSC(t *testing.T, tpm transport.TPM) {
	r := setUp(t, tpm, true)
	pc, m, serial, ec, rsaKey := r.pc, r.m, r.serial, r.ec, r.rsa

	reader0 := readerName + " 00 00"
	out := pc.must(t, "opensc-tool", "-l", "-a")
	atr := fmt.Sprintf("% x", piv.ATR)
	if !strings.Contains(out, reader0) || !strings.Contains(out, strings.ReplaceAll(atr, " ", ":")) {
		t.Errorf("opensc-tool -l -a: want %q with ATR %s:\n%s", reader0, atr, out)
	}
	if out = pc.must(t, "opensc-tool", "-r", "0", "-n"); !strings.Contains(out, "Personal Identity Verification Card") {
		t.Errorf("opensc-tool -n: OpenSC does not see a PIV card:\n%s", out)
	}

	out = pc.must(t, "pkcs15-tool", "-r", "0", "--list-certificates")
	for _, want := range []string{"Certificate for PIV Authentication", "Certificate for Digital Signature"} {
		if !strings.Contains(out, want) {
			t.Errorf("pkcs15-tool --list-certificates: no %q:\n%s", want, out)
		}
	}
	dir := t.TempDir()
	for i, k := range []tpmcard.KeyInfo{ec, rsaKey} {
		pub, err := x509.MarshalPKIXPublicKey(k.Public)
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, fmt.Sprintf("pub%d.pem", i+1)), pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), 0o644)
	}
	data := filepath.Join(dir, "data")
	os.WriteFile(data, []byte("sign me through PC/SC"), 0o644)

	out = pc.must(t, "pkcs11-tool", "--module", openscPKCS11, "-L")
	if !strings.Contains(out, reader0) {
		t.Errorf("pkcs11-tool -L: no slot %q:\n%s", reader0, out)
	}
	out = pc.must(t, "pkcs11-tool", "--module", openscPKCS11, "-O", "--login", "--pin", testPIN)
	if !strings.Contains(out, "Private Key Object; EC") || !strings.Contains(out, "Private Key Object; RSA") {
		t.Errorf("pkcs11-tool -O --login: the private keys are missing:\n%s", out)
	}

	// sign runs pkcs11-tool and has openssl verify what it signed.
	sign := func(what, id, mech, pubFile, pin string) (string, bool) {
		t.Helper()
		sig := filepath.Join(dir, "sig-"+id)
		os.Remove(sig)
		args := []string{"--module", openscPKCS11, "--login", "--pin", pin, "--sign", "-m", mech, "--id", id, "-i", data, "-o", sig}
		if strings.HasPrefix(mech, "ECDSA") {
			args = append(args, "--signature-format", "openssl")
		}
		out, ok := pc.run(t, "pkcs11-tool", args...)
		if !ok {
			return out, false
		}
		v, err := exec.Command("openssl", "dgst", "-sha256", "-verify", filepath.Join(dir, pubFile), "-signature", sig, data).CombinedOutput()
		if err != nil {
			t.Errorf("%s: openssl does not verify the signature: %v\n%s", what, err, v)
		}
		return out, true
	}
	if out, ok := sign("ok/ECDSA P-256 in 9a", "01", "ECDSA-SHA256", "pub1.pem", testPIN); !ok {
		t.Errorf("ok/ECDSA P-256 in 9a:\n%s", out)
	}
	// 9c needs the PIN at every signature: pkcs11-tool logs in again
	// (CKU_CONTEXT_SPECIFIC), which OpenSC sends as VERIFY.
	if out, ok := sign("ok/RSA-2048 in 9c", "02", "SHA256-RSA-PKCS", "pub2.pem", testPIN); !ok {
		t.Errorf("ok/RSA-2048 PKCS#1 v1.5 in 9c:\n%s", out)
	}

	out = pc.must(t, "yubico-piv-tool", "-r", readerName, "-a", "status")
	if !strings.Contains(out, "PIN tries left:\t3") {
		t.Errorf("yubico-piv-tool -a status: want 3 PIN tries left:\n%s", out)
	}

	// Wrong PINs: each costs a try the TPM counts, until it locks.
	out, _ = pc.run(t, "yubico-piv-tool", "-r", readerName, "-a", "verify-pin", "-P", wrongPIN)
	if !strings.Contains(out, "2 tries left") {
		t.Errorf("fail/wrong PIN through yubico-piv-tool: want 2 tries left:\n%s", out)
	}
	if st, _ := m.Status(serial); st.PINTriesLeft != 2 {
		t.Errorf("the TPM counts %d tries left, want 2", st.PINTriesLeft)
	}
	out, ok := pc.run(t, "opensc-tool", "-r", "0", "-s", "00A4040005A000000308", "-s", "0020008000")
	if !ok || !strings.Contains(out, "SW1=0x63, SW2=0xC2") {
		t.Errorf("VERIFY without data: want 63C2:\n%s", out)
	}
	if out, ok := pc.run(t, "pkcs11-tool", "--module", openscPKCS11, "--login", "--pin", wrongPIN, "-O"); ok || !strings.Contains(out, "CKR_PIN_INCORRECT") {
		t.Errorf("fail/wrong PIN 2 through pkcs11-tool: want CKR_PIN_INCORRECT:\n%s", out)
	}
	// The last try: 63C0, which OpenSC reports as locked.
	if out, ok := pc.run(t, "pkcs11-tool", "--module", openscPKCS11, "--login", "--pin", wrongPIN, "-O"); ok || !strings.Contains(out, "CKR_PIN_LOCKED") {
		t.Errorf("fail/wrong PIN 3 through pkcs11-tool: want CKR_PIN_LOCKED:\n%s", out)
	}
	if st, _ := m.Status(serial); !st.PINLocked {
		t.Errorf("the TPM has not locked the PIN: %+v", st)
	}
	if out, ok := sign("fail/locked", "01", "ECDSA-SHA256", "pub1.pem", testPIN); ok || !strings.Contains(out, "CKR_PIN_LOCKED") {
		t.Errorf("fail/the right PIN when locked: want CKR_PIN_LOCKED:\n%s", out)
	}

	// The PUK unblocks through OpenSC; the new PIN must change before
	// the card signs again.
	pc.must(t, "pkcs15-tool", "-r", "0", "--unblock-pin", "--puk", testPUK, "--new-pin", unblockPIN)
	if st, _ := m.Status(serial); st.PINLocked || !st.MustChange {
		t.Errorf("after the unblock: %+v", st)
	}
	if out, ok := sign("fail/must change", "01", "ECDSA-SHA256", "pub1.pem", unblockPIN); ok {
		t.Errorf("fail/signing with a PIN that must change succeeded:\n%s", out)
	}
	pc.must(t, "pkcs15-tool", "-r", "0", "--change-pin", "--pin", unblockPIN, "--new-pin", testPIN)
	if out, ok := sign("ok/after unblock and change", "01", "ECDSA-SHA256", "pub1.pem", testPIN); !ok {
		t.Errorf("ok/signing after the unblock and the change:\n%s", out)
	}

	// pcscd restarts: the card is back in its reader by itself.
	pc.stop()
	pc.start(t)
	pc.waitCard(t)
	if out, ok := sign("ok/after pcscd restarted", "01", "ECDSA-SHA256", "pub1.pem", testPIN); !ok {
		t.Errorf("ok/signing after pcscd restarted:\n%s", out)
	}
}
