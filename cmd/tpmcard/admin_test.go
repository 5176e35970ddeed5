package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The fleet story: an admin key made offline, a card that only that key
// can unblock, a locked card unblocked by challenge and response.
func TestAdminUnblockCLI(t *testing.T) {
	env := startService(t)
	dir := t.TempDir()
	key := filepath.Join(dir, "admin.key")
	if _, errs, code := cli(t, nil, "correct battery\n", "admin", "keygen", "--out", key, "--encrypt", "--passphrase-stdin"); code != 0 {
		t.Fatalf("admin keygen: %s", errs)
	}
	if fi, err := os.Stat(key); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("private key file: %v %v", fi, err)
	}
	if b, _ := os.ReadFile(key); !strings.Contains(string(b), "AGE ENCRYPTED FILE") || strings.Contains(string(b), "PRIVATE KEY") {
		t.Fatal("the private key is not encrypted")
	}
	if _, errs, code := cli(t, nil, "", "admin", "keygen", "--out", key); code == 0 || !strings.Contains(errs, "exists") {
		t.Fatalf("keygen over an existing key: %d %q", code, errs)
	}
	if _, errs, code := cli(t, env, "fleet PIN 1234\n", "card", "create", "--pin-stdin", "--admin-key", key+".pub", "--no-puk", "--pin-tries", "3"); code != 0 {
		t.Fatalf("card create: %s", errs)
	}
	out, _, _ := cli(t, env, "", "card", "status")
	if !strings.Contains(out, "PUK       none") || !strings.Contains(out, "administrator's key") {
		t.Fatalf("card status:\n%s", out)
	}
	if _, errs, code := cli(t, env, "", "key", "generate"); code != 0 {
		t.Fatal(errs)
	}
	for i := 0; i < 3; i++ {
		cli(t, env, "wrong PIN 99\n", "sign", "--pin-stdin", "--in", "/dev/null")
	}
	_, errs, code := cli(t, env, "PUKPUKPUK\nnew PIN 5678\n", "pin", "unblock", "--puk-stdin", "--new-pin-stdin")
	if code == 0 || !strings.Contains(errs, "no PUK") {
		t.Fatalf("PUK unblock of a card without PUK: %d %q", code, errs)
	}

	out, errs, code = cli(t, env, "", "admin", "challenge", "--json")
	if code != 0 {
		t.Fatalf("admin challenge: %s", errs)
	}
	var ch struct{ Challenge string }
	if err := json.Unmarshal([]byte(out), &ch); err != nil || ch.Challenge == "" {
		t.Fatalf("challenge: %q", out)
	}
	// The administrator's machine: no service, the encrypted key.
	resp, errs, code := cli(t, nil, "correct battery\n", "admin", "respond", "--admin-key", key, "--challenge", strings.ToLower(ch.Challenge), "--passphrase-stdin")
	if code != 0 {
		t.Fatalf("admin respond: %s", errs)
	}
	if _, errs, code := cli(t, nil, "wrong passphrase\n", "admin", "respond", "--admin-key", key, "--challenge", ch.Challenge, "--passphrase-stdin"); code == 0 || !strings.Contains(errs, "wrong passphrase") {
		t.Fatalf("respond with a wrong passphrase: %d %q", code, errs)
	}
	resp = strings.TrimSpace(resp)
	if _, errs, code = cli(t, env, "new PIN 5678\n", "admin", "unblock", "--response", resp, "--new-pin-stdin"); code != 0 {
		t.Fatalf("admin unblock: %s", errs)
	}
	if _, errs, code = cli(t, env, "new PIN 5678\n", "admin", "unblock", "--response", resp, "--new-pin-stdin"); code == 0 || !strings.Contains(errs, "no challenge is pending") {
		t.Fatalf("replayed response: %d %q", code, errs)
	}
	if _, errs, code = cli(t, env, "new PIN 5678\n", "sign", "--pin-stdin", "--in", "/dev/null"); code == 0 || !strings.Contains(errs, "must be changed") {
		t.Fatalf("sign before the PIN change: %d %q", code, errs)
	}
	if _, errs, code = cli(t, env, "new PIN 5678\nmy own PIN 42\n", "pin", "change", "--pin-stdin", "--new-pin-stdin"); code != 0 {
		t.Fatal(errs)
	}
	if _, errs, code = cli(t, env, "my own PIN 42\nhello\n", "sign", "--pin-stdin"); code != 0 {
		t.Fatalf("sign after the unblock: %s", errs)
	}
}

// The admin key can live on a PKCS#11 token: here SoftHSM2, driven by the
// real pkcs11-tool to make the key.
func TestAdminRespondFromPKCS11Token(t *testing.T) {
	module := "/usr/lib/softhsm/libsofthsm2.so"
	if _, err := os.Stat(module); err != nil {
		t.Skip("SoftHSM2 not installed (apt install softhsm2)")
	}
	tool, err := exec.LookPath("pkcs11-tool")
	if err != nil {
		t.Skip("pkcs11-tool not installed (apt install opensc)")
	}
	dir := t.TempDir()
	conf := filepath.Join(dir, "softhsm2.conf")
	os.MkdirAll(filepath.Join(dir, "tokens"), 0o700)
	os.WriteFile(conf, []byte("directories.tokendir = "+filepath.Join(dir, "tokens")+"\nobjectstore.backend = file\n"), 0o600)
	hsm := append(os.Environ(), "SOFTHSM2_CONF="+conf)
	run := func(name string, args ...string) []byte {
		t.Helper()
		cmd := exec.Command(name, args...)
		cmd.Env = hsm
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s %v: %v\n%s", name, args, err, out)
		}
		return out
	}
	run("softhsm2-util", "--init-token", "--free", "--label", "helpdesk", "--pin", "hsm-pin-1", "--so-pin", "hsm-so-pin-1")
	run(tool, "--module", module, "--token-label", "helpdesk", "--login", "--pin", "hsm-pin-1",
		"--keypairgen", "--key-type", "EC:prime256v1", "--label", "fleet-admin", "--id", "01")
	pub := filepath.Join(dir, "admin.pub.der")
	run(tool, "--module", module, "--token-label", "helpdesk", "--read-object", "--type", "pubkey", "--label", "fleet-admin", "-o", pub)

	env := startService(t)
	if _, errs, code := cli(t, env, "fleet PIN 1234\n", "card", "create", "--pin-stdin", "--admin-key", pub, "--pin-tries", "3"); code != 0 {
		t.Fatalf("card create with the token's key: %s", errs)
	}
	for i := 0; i < 3; i++ {
		cli(t, env, "wrong PIN 99\n", "pin", "change", "--pin-stdin", "--new-pin-stdin")
	}
	out, errs, code := cli(t, env, "", "admin", "challenge", "--json")
	if code != 0 {
		t.Fatal(errs)
	}
	var ch struct{ Challenge string }
	json.Unmarshal([]byte(out), &ch)
	resp, errs, code := cli(t, hsm, "hsm-pin-1\n", "admin", "respond", "--challenge", ch.Challenge,
		"--pkcs11-module", module, "--pkcs11-token", "helpdesk", "--pkcs11-key", "fleet-admin", "--pin-stdin")
	if code != 0 {
		t.Fatalf("respond from the token: %s", errs)
	}
	if _, errs, code = cli(t, env, "new PIN 5678\n", "admin", "unblock", "--response", strings.TrimSpace(resp), "--new-pin-stdin"); code != 0 {
		t.Fatalf("unblock with the token's response: %s", errs)
	}
}
