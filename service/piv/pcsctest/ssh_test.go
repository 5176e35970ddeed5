//go:build linux

package pcsctest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tpmcard/tpmcard/tpmcard/tpmtest"
)

// TestSSHLogin signs in to a throwaway sshd on 127.0.0.1 with the PIV
// card through OpenSC: `ssh-keygen -D opensc-pkcs11.so` gives the
// authorized_keys line, `ssh -I opensc-pkcs11.so` asks for the PIN and the
// card signs the server's challenge over PC/SC. A wrong PIN signs nobody in
// and costs one try the TPM counts.
func TestSSHLogin(t *testing.T) {
	requireParts(t)
	for _, tool := range []string{"ssh", "ssh-keygen", "/usr/sbin/sshd"} {
		if _, err := exec.LookPath(tool); err != nil {
			absent(t, "%s is not installed (Debian packages openssh-client, openssh-server)", tool)
		}
	}
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		absent(t, "sshd's privilege separation directory: %v", err)
	}
	tpmtest.ForEachTPM(t, func(t *testing.T, b *tpmtest.Backend) {
		r := setUp(t, b.TPM, false)
		dir := t.TempDir()
		r.pc.must(t, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", filepath.Join(dir, "hostkey"))
		keys := r.pc.must(t, "ssh-keygen", "-D", openscPKCS11)
		if !strings.HasPrefix(keys, "ecdsa-sha2-nistp256 ") {
			t.Fatalf("ssh-keygen -D opensc-pkcs11.so: no P-256 key:\n%s", keys)
		}
		write := func(name, text string, mode os.FileMode) {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(text), mode); err != nil {
				t.Fatal(err)
			}
		}
		write("authorized_keys", keys, 0o600)
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		write("sshd_config", fmt.Sprintf(`Port %d
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
		sshd := exec.Command("/usr/sbin/sshd", "-D", "-e", "-f", filepath.Join(dir, "sshd_config"))
		logs := &lockedBuffer{}
		sshd.Stdout, sshd.Stderr = logs, logs
		if err := sshd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { sshd.Process.Kill(); sshd.Wait() })
		for deadline := time.Now().Add(10 * time.Second); !strings.Contains(logs.String(), "Server listening"); {
			if time.Now().After(deadline) {
				t.Fatalf("sshd did not start:\n%s", logs)
			}
			time.Sleep(20 * time.Millisecond)
		}

		login := func(pin string) (string, error) {
			write("askpass", "#!/bin/sh\necho "+pin+"\n", 0o700)
			cmd := exec.Command("ssh", "-F", "/dev/null", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
				"-o", "PreferredAuthentications=publickey", "-o", "IdentityFile=none", "-o", "BatchMode=no",
				"-I", openscPKCS11, "-p", fmt.Sprint(port), "root@127.0.0.1", "echo", "signed-in-with-the-PIV-card")
			cmd.Env = append(r.pc.env, "SSH_ASKPASS="+filepath.Join(dir, "askpass"), "SSH_ASKPASS_REQUIRE=force", "DISPLAY=:0")
			cmd.Stdin = strings.NewReader("")
			out, err := cmd.CombinedOutput()
			return string(out), err
		}
		if out, err := login(testPIN); err != nil || !strings.Contains(out, "signed-in-with-the-PIV-card") {
			t.Errorf("ok/ssh with the right PIN: %v\n%s\nsshd:\n%s", err, out, logs)
		}
		if out, err := login(wrongPIN); err == nil || strings.Contains(out, "signed-in-with-the-PIV-card") {
			t.Errorf("fail/ssh with a wrong PIN signed in:\n%s", out)
		}
		if st, err := r.m.Status(r.serial); err != nil || st.PINTriesLeft != 2 {
			t.Errorf("after a wrong PIN through ssh the TPM counts %d tries left, want 2 (%v)", st.PINTriesLeft, err)
		}
	})
}
