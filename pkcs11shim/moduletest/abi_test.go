//go:build linux

package moduletest

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/tpmcard/tpmcard/tpmcard"
	"github.com/tpmcard/tpmcard/tpmcard/tpmtest"
)

// The module in real C programs: a harness compiled from testdata with
// gcc, pkcs11-tool, ssh-keygen, p11tool and p11-kit. No module is loaded
// into this Go process: every consumer is a separate process.

// TestCHarness runs testdata/harness.c against the module: NULL pointers,
// blank padding, calls before C_Initialize, the two-call conventions and
// fork.
func TestCHarness(t *testing.T) {
	lib := module(t)
	startService(t)
	runHarness(t, lib, nil)
}

// TestSWTPM runs the C harness and pkcs11-tool's self-test with the
// service on swtpm, a TPM behind a real transport.
func TestSWTPM(t *testing.T) {
	tool := need(t, "pkcs11-tool", "opensc")
	lib := module(t)
	startServiceOn(t, tpmtest.StartSWTPM(t).TPM())
	runHarness(t, lib, nil)
	out := run(t, tool, "--module", lib, "--test", "--login", "--pin", testPIN)
	if !strings.Contains(out, "No errors") {
		t.Errorf("pkcs11-tool --test:\n%s", out)
	}
}

// runHarness runs testdata/harness.c against lib and the running test
// service, with env added to the environment, and checks the debug log it
// asks for.
func runHarness(t *testing.T, lib string, env []string) {
	t.Helper()
	bin := cProgram(t, "harness")
	logFile := filepath.Join(t.TempDir(), "debug.log")
	cmd := exec.Command(bin, lib, testLabel, testPIN)
	cmd.Env = append(append(os.Environ(), env...), debugEnv+"="+logFile)
	out, err := cmd.CombinedOutput()
	t.Logf("harness:\n%s", out)
	if err != nil {
		t.Fatalf("harness: %v", err)
	}
	if sanitizerReport(string(out)) {
		t.Fatalf("harness: a sanitizer report")
	}

	// The debug log was asked for: it is there, and holds no PIN.
	log, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatalf("debug log: %v", err)
	}
	if !strings.Contains(string(log), "C_Login") || !strings.Contains(string(log), "C_Initialize") {
		t.Errorf("debug log lacks the calls:\n%s", log)
	}
	if strings.Contains(string(log), testPIN) {
		t.Errorf("the debug log holds the PIN")
	}
}

// TestPKCS11Tool drives the module with OpenSC's pkcs11-tool.
func TestPKCS11Tool(t *testing.T) {
	tool := need(t, "pkcs11-tool", "opensc")
	lib := module(t)
	s := startService(t)
	dir := t.TempDir()
	p11 := func(args ...string) string { return run(t, tool, append([]string{"--module", lib}, args...)...) }

	out := p11("-L")
	for _, want := range []string{testLabel, "tpmcard", "PIN initialized", "login required"} {
		if !strings.Contains(out, want) {
			t.Errorf("pkcs11-tool -L lacks %q:\n%s", want, out)
		}
	}
	out = p11("-M")
	for _, want := range []string{"ECDSA-SHA256", "RSA-PKCS-PSS", "ECDSA-KEY-PAIR-GEN"} {
		if !strings.Contains(out, want) {
			t.Errorf("pkcs11-tool -M lacks %q:\n%s", want, out)
		}
	}
	out = p11("-O")
	if !strings.Contains(out, "Public Key Object") || strings.Contains(out, "Private Key Object") {
		t.Errorf("pkcs11-tool -O without login should show the public key only:\n%s", out)
	}
	out = p11("-O", "--login", "--pin", testPIN)
	if !strings.Contains(out, "Private Key Object") || !strings.Contains(out, "test key") {
		t.Errorf("pkcs11-tool -O --login lacks the private key:\n%s", out)
	}

	// Sign, and verify with openssl and the exported public key.
	id := fmt.Sprintf("%x", s.keyID)
	data := filepath.Join(dir, "data")
	sig := filepath.Join(dir, "sig")
	pubDER := filepath.Join(dir, "pub.der")
	if err := os.WriteFile(data, []byte("an authentication challenge"), 0o600); err != nil {
		t.Fatal(err)
	}
	p11("--login", "--pin", testPIN, "--sign", "--id", id, "-m", "ECDSA-SHA256",
		"--signature-format", "openssl", "-i", data, "-o", sig)
	p11("--read-object", "--type", "pubkey", "--id", id, "-o", pubDER)
	der, err := os.ReadFile(pubDER)
	if err != nil {
		t.Fatal(err)
	}
	pk, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		t.Fatalf("exported public key: %v", err)
	}
	if !pk.(*ecdsa.PublicKey).Equal(s.key.Public) {
		t.Errorf("exported public key is not the card key")
	}
	if openssl, err := exec.LookPath("openssl"); err == nil {
		pubPEM := filepath.Join(dir, "pub.pem")
		if err := os.WriteFile(pubPEM, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		out = run(t, openssl, "dgst", "-sha256", "-verify", pubPEM, "-signature", sig, data)
		if !strings.Contains(out, "Verified OK") {
			t.Errorf("openssl: %s", out)
		}
	} else {
		t.Log("openssl is not installed: verifying in Go only")
	}
	sigDER, _ := os.ReadFile(sig)
	digest := sha256.Sum256([]byte("an authentication challenge"))
	if !ecdsa.VerifyASN1(s.key.Public.(*ecdsa.PublicKey), digest[:], sigDER) {
		t.Errorf("pkcs11-tool's signature does not verify")
	}

	// OpenSC's self-test of the token.
	out = p11("--test", "--login", "--pin", testPIN)
	if !strings.Contains(out, "No errors") {
		t.Errorf("pkcs11-tool --test:\n%s", out)
	}

	// Change the PIN.
	const newPIN = "11223344"
	p11("--login", "--pin", testPIN, "--change-pin", "--new-pin", newPIN)
	runFail(t, tool, "--module", lib, "--login", "--pin", testPIN, "-O")
	p11("--login", "--pin", newPIN, "-O")

	// Lock the PIN out, then unblock as SO with the PUK.
	for i := 0; i < pinTries; i++ {
		runFail(t, tool, "--module", lib, "--login", "--pin", "00000000", "-O")
	}
	out = runFail(t, tool, "--module", lib, "--login", "--pin", newPIN, "-O")
	if !strings.Contains(out, "CKR_PIN_LOCKED") {
		t.Errorf("login after the lockout: want CKR_PIN_LOCKED:\n%s", out)
	}
	out = p11("-L")
	if !strings.Contains(out, "user PIN locked") {
		t.Errorf("pkcs11-tool -L does not show the lock:\n%s", out)
	}
	const unblockedPIN = "55667788"
	// A wrong PUK fails at C_Login, counted by the TPM; the right one
	// then unblocks.
	out = runFail(t, tool, "--module", lib, "--login", "--login-type", "so", "--so-pin", "WRONGPUK0000", "--init-pin", "--new-pin", unblockedPIN)
	if !strings.Contains(out, "C_Login") || !strings.Contains(out, "CKR_PIN_INCORRECT") {
		t.Errorf("SO login with a wrong PUK: want C_Login to fail with CKR_PIN_INCORRECT:\n%s", out)
	}
	if out = p11("-L"); !strings.Contains(out, "SO PIN final try") && !strings.Contains(out, "SO PIN count low") {
		t.Errorf("pkcs11-tool -L does not show the wrong PUK:\n%s", out)
	}
	p11("--login", "--login-type", "so", "--so-pin", testPUK, "--init-pin", "--new-pin", unblockedPIN)

	// A PIN the administrator set must be changed before the card signs.
	out = p11("-L")
	if !strings.Contains(out, "user PIN to be changed") {
		t.Errorf("pkcs11-tool -L does not say the PIN must change:\n%s", out)
	}
	out = runFail(t, tool, "--module", lib, "--login", "--pin", unblockedPIN, "--sign", "--id", id, "-m", "ECDSA-SHA256", "-i", data, "-o", sig)
	if !strings.Contains(out, "CKR_PIN_EXPIRED") {
		t.Errorf("signing with a PIN to be changed: want CKR_PIN_EXPIRED:\n%s", out)
	}
	p11("--login", "--pin", unblockedPIN, "--change-pin", "--new-pin", newPIN)
	p11("--login", "--pin", newPIN, "--sign", "--id", id, "-m", "ECDSA-SHA256", "-i", data, "-o", sig)
}

// TestSSHKeygen lists the card key the way OpenSSH sees it.
func TestSSHKeygen(t *testing.T) {
	tool := need(t, "ssh-keygen", "openssh-client")
	lib := module(t)
	startService(t)
	out := run(t, tool, "-D", lib)
	if !strings.Contains(out, "ecdsa-sha2-nistp256 AAAA") {
		t.Errorf("ssh-keygen -D does not list the key:\n%s", out)
	}
}

// TestP11Tool lists the token with GnuTLS's p11tool.
func TestP11Tool(t *testing.T) {
	tool := need(t, "p11tool", "gnutls-bin")
	lib := module(t)
	startService(t)
	out := run(t, tool, "--provider", lib, "--list-all")
	if !strings.Contains(out, "test key") || !strings.Contains(out, "Public key") {
		t.Errorf("p11tool --list-all:\n%s", out)
	}
	out = run(t, tool, "--provider", lib, "--list-tokens")
	if !strings.Contains(out, testLabel) {
		t.Errorf("p11tool --list-tokens:\n%s", out)
	}
}

// TestP11Kit registers the module the way `make install` does, as a p11-kit
// module file, and finds the card through p11-kit and through its proxy
// module, as NSS and GnuTLS do. p11-kit reads no user configuration as
// root, so as root the consumers run as nobody, with the module and the
// configuration in a HOME of their own, and the card is given to nobody:
// the service shows a card only to its owner, its group and
// administrators.
func TestP11Kit(t *testing.T) {
	tool := need(t, "p11-kit", "p11-kit")
	lib := module(t)
	s := startService(t)
	home, err := os.MkdirTemp("", "tpmcard-p11kit-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(home) })
	conf := filepath.Join(home, ".config", "pkcs11", "modules")
	if err := os.MkdirAll(conf, 0o755); err != nil {
		t.Fatal(err)
	}
	modCopy := filepath.Join(home, "libtpmcard-pkcs11.so")
	run(t, "cp", lib, modCopy)
	src, err := os.ReadFile(filepath.Join("..", "p11-kit", "tpmcard.module"))
	if err != nil {
		t.Fatal(err)
	}
	// The installed file names the module relative to the PKCS#11
	// directory; here it names the copy.
	mod := strings.Replace(string(src), "module: libtpmcard-pkcs11.so", "module: "+modCopy, 1)
	if err := os.WriteFile(filepath.Join(conf, "tpmcard.module"), []byte(mod), 0o644); err != nil {
		t.Fatal(err)
	}
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		cred = &syscall.Credential{Uid: 65534, Gid: 65534}
		// Only a card's owner and administrators see it: give it to the
		// consumers' user.
		if err := s.m.SetOwner(s.serial, &tpmcard.Owner{UID: 65534}); err != nil {
			t.Fatal(err)
		}
		for _, d := range []string{home, filepath.Join(home, ".config"), filepath.Join(home, ".config", "pkcs11"), conf, filepath.Dir(s.sock)} {
			if err := os.Chmod(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	consumer := func(name string, args ...string) string {
		t.Helper()
		cmd := exec.Command(name, args...)
		cmd.Env = append(os.Environ(), "HOME="+home)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	out := consumer(tool, "list-modules")
	if !strings.Contains(out, testLabel) || !strings.Contains(out, "tpmcard") {
		t.Errorf("p11-kit list-modules does not show the card:\n%s", out)
	}
	proxy := ""
	for _, p := range []string{"/usr/lib/x86_64-linux-gnu/p11-kit-proxy.so", "/usr/lib/aarch64-linux-gnu/p11-kit-proxy.so", "/usr/lib/p11-kit-proxy.so"} {
		if _, err := os.Stat(p); err == nil {
			proxy = p
		}
	}
	if p11, err := exec.LookPath("pkcs11-tool"); err == nil && proxy != "" {
		out = consumer(p11, "--module", proxy, "-L")
		if !strings.Contains(out, testLabel) {
			t.Errorf("pkcs11-tool through p11-kit-proxy does not show the card:\n%s", out)
		}
	}
}

// TestPKCS11ToolKeygen generates EC and RSA keys with pkcs11-tool and signs
// with each, RSA with PKCS #1 v1.5 and PSS, verified by openssl.
func TestPKCS11ToolKeygen(t *testing.T) {
	tool := need(t, "pkcs11-tool", "opensc")
	openssl := need(t, "openssl", "openssl")
	lib := module(t)
	s := startService(t)
	dir := t.TempDir()
	p11 := func(t *testing.T, args ...string) string {
		t.Helper()
		return run(t, tool, append([]string{"--module", lib, "--login", "--pin", testPIN}, args...)...)
	}
	data := filepath.Join(dir, "data")
	writeFile(t, data, "challenge", 0o600)
	for _, tc := range []struct {
		name, keyType, id string
		mechs             []string // pkcs11-tool mechanisms
	}{
		{"ec-p384", "EC:secp384r1", "0384", []string{"ECDSA-SHA384"}},
		{"rsa-2048", "rsa:2048", "2048", []string{"SHA256-RSA-PKCS", "SHA256-RSA-PKCS-PSS"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// pkcs11-tool's default usage asks for decryption (RSA) or
			// derivation (EC) too, which the card's keys cannot do: the
			// template is refused, not quietly changed.
			out := runFail(t, tool, "--module", lib, "--login", "--pin", testPIN, "--keypairgen", "--key-type", tc.keyType, "--id", tc.id, "--label", tc.name)
			if !strings.Contains(out, "CKR_TEMPLATE_INCONSISTENT") {
				t.Fatalf("keypairgen with the default usage: want CKR_TEMPLATE_INCONSISTENT:\n%s", out)
			}
			out = p11(t, "--keypairgen", "--usage-sign", "--key-type", tc.keyType, "--id", tc.id, "--label", tc.name)
			if !strings.Contains(out, "Key pair generated") {
				t.Fatalf("keypairgen:\n%s", out)
			}
			// The public key from the card itself (pkcs11-tool 0.23
			// --read-object cannot build a P-384 key).
			id, _ := hex.DecodeString(tc.id)
			k, err := s.m.Key(s.serial, id)
			if err != nil {
				t.Fatal(err)
			}
			der, err := x509.MarshalPKIXPublicKey(k.Public)
			if err != nil {
				t.Fatal(err)
			}
			pubPEM := filepath.Join(dir, tc.name+".pem")
			writeFile(t, pubPEM, string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})), 0o600)
			for _, mech := range tc.mechs {
				sig := filepath.Join(dir, tc.name+mech+".sig")
				args := []string{"--sign", "--id", tc.id, "-m", mech, "-i", data, "-o", sig}
				verify := []string{"dgst", "-" + strings.ToLower(strings.SplitN(mech, "-", 2)[0]), "-verify", pubPEM, "-signature", sig}
				switch {
				case strings.HasPrefix(mech, "ECDSA"):
					args = append(args, "--signature-format", "openssl")
					verify[1] = "-sha384"
				case strings.HasSuffix(mech, "PSS"):
					args = append(args, "--mgf", "MGF1-SHA256", "--salt-len", "-1")
					verify = append(verify, "-sigopt", "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:-1")
				}
				p11(t, args...)
				out := run(t, openssl, append(verify, data)...)
				if !strings.Contains(out, "Verified OK") {
					t.Errorf("%s: openssl: %s", mech, out)
				}
			}
			p11(t, "--delete-object", "--type", "privkey", "--id", tc.id)
			p11(t, "--delete-object", "--type", "pubkey", "--id", tc.id)
			if out := p11(t, "-O"); strings.Contains(out, tc.name) {
				t.Errorf("the key is still there after --delete-object:\n%s", out)
			}
		})
	}
}

// TestCRestart stops and starts the service under a running C application
// (testdata/restart.c): open sessions report CKR_DEVICE_REMOVED, the token
// shows absent, and the module recovers by itself.
func TestCRestart(t *testing.T) {
	bin := cProgram(t, "restart")
	lib := module(t)
	s := startService(t)
	cmd := exec.Command(bin, lib, testPIN)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var log strings.Builder
	lines := bufio.NewScanner(stdout)
	for lines.Scan() {
		line := lines.Text()
		log.WriteString(line + "\n")
		switch line {
		case "stop":
			s.stop()
			fmt.Fprintln(stdin, "stopped")
		case "start":
			s.start()
			fmt.Fprintln(stdin, "started")
		}
	}
	err = cmd.Wait()
	t.Logf("restart:\n%s", log.String())
	if err != nil {
		t.Fatalf("restart: %v", err)
	}
}
