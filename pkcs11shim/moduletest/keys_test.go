//go:build linux

package moduletest

import (
	"context"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/tpmcard/tpmcard/tpmcard"
	"github.com/tpmcard/tpmcard/tpmcard/tpmtest"
	"golang.org/x/crypto/ssh"
)

// Key objects through the module with real consumers: pkcs11-tool's
// keygen and clean-up (one C_DestroyObject per half), keys made with
// CKA_ALWAYS_AUTHENTICATE, which pkcs11-tool signs with after its own
// C_Login(CKU_CONTEXT_SPECIFIC), and OpenSSH, which does not log in
// context-specific after its first login.

// p11tool runs pkcs11-tool against the module with the debug log on.
type p11tool struct {
	tool, lib, log string
}

func newP11Tool(t *testing.T) *p11tool {
	t.Helper()
	return &p11tool{tool: need(t, "pkcs11-tool", "opensc"), lib: module(t), log: filepath.Join(t.TempDir(), "debug.log")}
}

func (p *p11tool) cmd(args ...string) *exec.Cmd {
	c := exec.Command(p.tool, append([]string{"--module", p.lib, "--login", "--pin", testPIN}, args...)...)
	c.Env = append(os.Environ(), debugEnv+"="+p.log)
	return c
}

func (p *p11tool) run(t *testing.T, args ...string) string {
	t.Helper()
	out, err := p.cmd(args...).CombinedOutput()
	if err != nil {
		t.Fatalf("pkcs11-tool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func (p *p11tool) fail(t *testing.T, args ...string) string {
	t.Helper()
	out, err := p.cmd(args...).CombinedOutput()
	if err == nil {
		t.Fatalf("pkcs11-tool %s succeeded, want a failure\n%s", strings.Join(args, " "), out)
	}
	return string(out)
}

// calls returns the module's debug log: one line per call.
func (p *p11tool) calls(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(p.log)
	if err != nil {
		t.Fatalf("the module's debug log: %v", err)
	}
	return string(b)
}

// objects counts pkcs11-tool -O's private and public key objects labelled
// label.
func objects(out, label string) (priv, pub int) {
	for _, o := range strings.Split(out, "Object;")[1:] {
		if !strings.Contains(o, "label:      "+label+"\n") {
			continue
		}
		if strings.Contains(o, "Usage:      sign") {
			priv++
		} else {
			pub++
		}
	}
	return priv, pub
}

// TestPKCS11ToolKeygenDestroy: pkcs11-tool's keygen and clean-up, private
// key first, then the public key, and the other order: each
// --delete-object removes its own object and the other stays, as
// pkcs11-tool -O shows; a key whose private half is gone does not sign.
func TestPKCS11ToolKeygenDestroy(t *testing.T) {
	p := newP11Tool(t)
	startService(t)
	data := filepath.Join(t.TempDir(), "data")
	writeFile(t, data, "challenge", 0o600)
	for _, c := range []struct{ id, first, second, keyType string }{
		{"51", "privkey", "pubkey", "EC:prime256v1"},
		{"52", "pubkey", "privkey", "EC:secp384r1"},
		{"53", "privkey", "pubkey", "rsa:2048"},
	} {
		label := "destroy " + c.id
		t.Run(c.first+"-first-"+c.keyType, func(t *testing.T) {
			if out := p.run(t, "--keypairgen", "--usage-sign", "--key-type", c.keyType, "--id", c.id, "--label", label); !strings.Contains(out, "Key pair generated") {
				t.Fatalf("keypairgen:\n%s", out)
			}
			p.run(t, "--delete-object", "--type", c.first, "--id", c.id)
			out := p.run(t, "-O")
			priv, pub := objects(out, label)
			if c.first == "privkey" && (priv != 0 || pub != 1) || c.first == "pubkey" && (priv != 1 || pub != 0) {
				t.Fatalf("after --delete-object --type %s: %d private and %d public key objects, want the other half only:\n%s", c.first, priv, pub, out)
			}
			mech := "ECDSA"
			if strings.HasPrefix(c.keyType, "rsa") {
				mech = "SHA256-RSA-PKCS"
			}
			if c.first == "privkey" {
				if out := p.fail(t, "--sign", "--id", c.id, "-m", mech, "-i", data); !strings.Contains(out, "Private key not found") {
					t.Errorf("signing with the destroyed private key:\n%s", out)
				}
			} else {
				p.run(t, "--sign", "--id", c.id, "-m", mech, "-i", data, "-o", data+".sig")
			}
			p.run(t, "--delete-object", "--type", c.second, "--id", c.id)
			if priv, pub := objects(p.run(t, "-O"), label); priv+pub != 0 {
				t.Fatalf("%d private and %d public key objects after both went", priv, pub)
			}
		})
	}
}

// TestPKCS11ToolAlwaysAuthenticate: pkcs11-tool --keypairgen --always-auth
// makes keys that say "always authenticate"; pkcs11-tool --sign logs in
// context-specific by itself after C_SignInit and the signatures verify
// with openssl; pkcs11-tool --test passes with such a key on the card. On
// the simulator and swtpm.
func TestPKCS11ToolAlwaysAuthenticate(t *testing.T) {
	openssl := need(t, "openssl", "openssl")
	for _, backend := range []string{"sim", "swtpm"} {
		t.Run(backend, func(t *testing.T) {
			p := newP11Tool(t)
			var s *testService
			if backend == "sim" {
				s = startService(t)
			} else {
				s = startServiceOn(t, tpmtest.StartSWTPM(t).TPM())
			}
			dir := t.TempDir()
			data := filepath.Join(dir, "data")
			writeFile(t, data, "challenge", 0o600)
			for _, c := range []struct{ id, keyType, mech, dgst string }{
				{"61", "EC:prime256v1", "ECDSA-SHA256", "-sha256"},
				{"62", "rsa:2048", "SHA256-RSA-PKCS", "-sha256"},
			} {
				out := p.run(t, "--keypairgen", "--always-auth", "--usage-sign", "--key-type", c.keyType, "--id", c.id, "--label", "always "+c.id)
				if !regexp.MustCompile(`Access: +always authenticate`).MatchString(out) {
					t.Fatalf("keypairgen --always-auth: the private key does not say always authenticate:\n%s", out)
				}
				id, _ := hex.DecodeString(c.id)
				k, err := s.m.Key(s.serial, id)
				if err != nil || k.PINUse != tpmcard.PINAlways {
					t.Fatalf("the card's key %s: %+v, %v", c.id, k, err)
				}
				der, _ := x509.MarshalPKIXPublicKey(k.Public)
				pubPEM := filepath.Join(dir, c.id+".pem")
				writeFile(t, pubPEM, string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})), 0o600)
				for i := 0; i < 2; i++ {
					sig := filepath.Join(dir, fmt.Sprintf("%s-%d.sig", c.id, i))
					args := []string{"--sign", "--id", c.id, "-m", c.mech, "-i", data, "-o", sig}
					if strings.HasPrefix(c.mech, "ECDSA") {
						args = append(args, "--signature-format", "openssl")
					}
					p.run(t, args...)
					if out := run(t, openssl, "dgst", c.dgst, "-verify", pubPEM, "-signature", sig, data); !strings.Contains(out, "Verified OK") {
						t.Errorf("%s: openssl: %s", c.mech, out)
					}
				}
			}
			// Every C_Sign of those keys came after a C_Login with
			// CKU_CONTEXT_SPECIFIC (user=2) that followed its C_SignInit.
			if n := contextSigns(p.calls(t)); n != 4 {
				t.Errorf("%d C_SignInit, C_Login(CKU_CONTEXT_SPECIFIC), C_Sign sequences in the module's log, want 4:\n%s", n, p.calls(t))
			}
			p.run(t, "--delete-object", "--type", "privkey", "--id", "62")
			p.run(t, "--delete-object", "--type", "pubkey", "--id", "62")
			if out := p.run(t, "--test"); !strings.Contains(out, "No errors") {
				t.Errorf("pkcs11-tool --test with an always-authenticate key:\n%s", out)
			}
		})
	}
}

// contextSigns counts the signatures in a module's debug log that were
// made as PKCS#11 v2.40 §5.6 has it for CKA_ALWAYS_AUTHENTICATE: C_SignInit,
// then C_Login with CKU_CONTEXT_SPECIFIC, then C_Sign, each CKR_OK, in one
// process (other calls may come between).
func contextSigns(log string) int {
	n := 0
	state := map[string]int{} // pid -> 0 nothing, 1 after SignInit, 2 after the login
	pid := regexp.MustCompile(`pid=(\d+) `)
	for _, l := range strings.Split(log, "\n") {
		m := pid.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		ok := strings.Contains(l, ") = CKR_OK")
		switch {
		case strings.Contains(l, " C_SignInit("):
			state[m[1]] = map[bool]int{true: 1}[ok]
		case strings.Contains(l, " C_Login(") && strings.Contains(l, "user=2,"):
			if state[m[1]] == 1 && ok {
				state[m[1]] = 2
			} else {
				state[m[1]] = 0
			}
		case strings.Contains(l, " C_Sign("):
			if state[m[1]] == 2 && ok {
				n++
			}
			state[m[1]] = 0
		}
	}
	return n
}

// TestOpenSSHAlwaysAuthenticate: ssh-keygen -D lists a key that needs the
// PIN for every signature. OpenSSH 9.2 reads CKA_ALWAYS_AUTHENTICATE but,
// having just logged in with CKU_USER, skips CKU_CONTEXT_SPECIFIC before
// its first signature, as a PIV card's driver lets it: the service signs
// nothing without that login, so ssh -I gets CKR_USER_NOT_LOGGED_IN from
// C_Sign and the server refuses the key.
func TestOpenSSHAlwaysAuthenticate(t *testing.T) {
	sshBin, keygen, sshd := sshTools(t)
	lib := module(t)
	s := startService(t)
	k, err := s.m.GenerateKey(context.Background(), s.serial, tpmcard.KeyOptions{Algorithm: tpmcard.ECDSAP256, Label: "always key", PINUse: tpmcard.PINAlways}, nil)
	if err != nil {
		t.Fatal(err)
	}
	pk, err := ssh.NewPublicKey(k.Public)
	if err != nil {
		t.Fatal(err)
	}
	line := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pk)))
	if out := run(t, keygen, "-D", lib); !strings.Contains(out, line) {
		t.Fatalf("ssh-keygen -D does not list the key:\n%s", out)
	}
	dir := t.TempDir()
	run(t, keygen, "-q", "-t", "ed25519", "-N", "", "-f", filepath.Join(dir, "hostkey"))
	writeFile(t, filepath.Join(dir, "authorized_keys"), line+"\n", 0o600)
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
	startDaemon(t, "Server listening", sshd, "-D", "-e", "-f", filepath.Join(dir, "sshd_config"))
	logFile := filepath.Join(dir, "debug.log")
	cmd := exec.Command(sshBin, "-F", "/dev/null", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
		"-o", "PreferredAuthentications=publickey", "-o", "IdentityFile=none", "-I", lib, "-p", fmt.Sprint(port),
		"root@127.0.0.1", "echo", "signed-in-with-the-card")
	cmd.Env = append(os.Environ(), "SSH_ASKPASS="+filepath.Join(dir, "askpass"), "SSH_ASKPASS_REQUIRE=force", "DISPLAY=:0", debugEnv+"="+logFile)
	cmd.Stdin = strings.NewReader("")
	out, err := cmd.CombinedOutput()
	calls, _ := os.ReadFile(logFile)
	if err == nil || strings.Contains(string(out), "signed-in-with-the-card") {
		t.Fatalf("ssh signed in with a key that needs the PIN for every signature, without a context-specific login:\n%s\n%s", out, calls)
	}
	if strings.Contains(string(calls), "user=2") || !regexp.MustCompile(`C_Sign\([^\n]*\) = CKR_USER_NOT_LOGGED_IN`).Match(calls) {
		t.Fatalf("want OpenSSH's C_Sign without C_Login(CKU_CONTEXT_SPECIFIC) refused with CKR_USER_NOT_LOGGED_IN:\n%s", calls)
	}
}
