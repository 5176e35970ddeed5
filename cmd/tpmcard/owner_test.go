package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/tpmcard/tpmcard/service/server"
)

// TestDocumentedLimits: the connection limits and the idle timeout that
// `service run -h` and the README state are the ones the service applies.
func TestDocumentedLimits(t *testing.T) {
	_, help, _ := cli(t, nil, "", "service", "run", "-h")
	for flag, def := range map[string]string{
		"max-connections":          fmt.Sprint(server.DefaultMaxConns),
		"max-connections-per-user": fmt.Sprint(server.DefaultMaxConnsPerUser),
		"idle-timeout":             server.DefaultIdleTimeout.String(),
	} {
		re := regexp.MustCompile(`(?s)-` + regexp.QuoteMeta(flag) + ` [a-z]+\n[^\n]*\(default ` + regexp.QuoteMeta(def) + `\)`)
		if !re.MatchString(help) {
			t.Errorf("service run -h does not give -%s the default %s:\n%s", flag, def, help)
		}
	}

	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)```json\n(\\{\n  \"tpm\".*?\\})\n```").FindSubmatch(readme)
	if m == nil {
		t.Fatal("README has no example config.json")
	}
	var cfg Config
	dec := json.NewDecoder(strings.NewReader(string(m[1])))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cfg); err != nil {
		t.Fatalf("README's config.json: %v", err)
	}
	idle, err := cfg.idleTimeout()
	if cfg.MaxConns != server.DefaultMaxConns || cfg.MaxConnsPerUser != server.DefaultMaxConnsPerUser || err != nil || idle != server.DefaultIdleTimeout {
		t.Errorf("README's config.json says max_connections %d, per user %d, idle %q; the service's defaults are %d, %d, %v",
			cfg.MaxConns, cfg.MaxConnsPerUser, cfg.IdleTimeout, server.DefaultMaxConns, server.DefaultMaxConnsPerUser, server.DefaultIdleTimeout)
	}
	for _, want := range []string{
		fmt.Sprintf("`max_connections` (%d)", server.DefaultMaxConns),
		fmt.Sprintf("`max_connections_per_user` (%d)", server.DefaultMaxConnsPerUser),
		fmt.Sprintf("`idle_timeout` (%d minutes", int(server.DefaultIdleTimeout.Minutes())),
	} {
		if !strings.Contains(strings.Join(strings.Fields(string(readme)), " "), want) {
			t.Errorf("README lacks %q", want)
		}
	}
	if _, errs, code := cli(t, nil, "", "service", "run", "--config", "/dev/null", "--idle-timeout", "soon"); code != 2 || !strings.Contains(errs, "idle timeout") {
		t.Errorf("a bad --idle-timeout: %d %q", code, errs)
	}
}

// TestCardOwner: a card created through sudo belongs to the user who ran
// sudo; another user sees nothing of it; an admin gives it away.
func TestCardOwner(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to run a client as another user")
	}
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skip("setpriv (util-linux) not installed")
	}
	env := startService(t)
	if err := os.Chmod(filepath.Dir(cliBin), 0o755); err != nil {
		t.Fatal(err)
	}
	nobody := asNobody(setpriv, env)

	// Root's own card: nobody does not see it, nor reach it by serial.
	out, errs, code := cli(t, env, "", "card", "create", "--label", "root's")
	if code != 0 || !strings.Contains(out, "it belongs to you") {
		t.Fatalf("card create: %d %s %s", code, out, errs)
	}
	rootSerial := strings.Fields(out)[1]
	if out, _, code := nobody("card", "list", "--json"); code != 0 || strings.TrimSpace(out) != "[]" {
		t.Fatalf("nobody lists root's card: %d %s", code, out)
	}
	if _, out, code := nobody("card", "status", "--card", rootSerial); code == 0 || !strings.Contains(out, "no such card") {
		t.Fatalf("nobody reads root's card status: %d %s", code, out)
	}
	if _, out, code := nobody("pin", "unblock", "--card", rootSerial, "--puk-stdin", "--new-pin-stdin"); code == 0 {
		t.Fatalf("nobody unblocks root's card: %d %s", code, out)
	}

	// sudo tpmcard card create, run by nobody: the card is nobody's.
	out, errs, code = cli(t, append(env, "SUDO_UID=65534", "SUDO_USER=nobody"), "", "card", "create", "--label", "nobody's")
	if code != 0 || !strings.Contains(out, "uid 65534") {
		t.Fatalf("card create through sudo: %d %s %s", code, out, errs)
	}
	serial := strings.Fields(out)[1]
	out, errs, code = nobody("card", "list", "--json")
	var cards []cardView
	if err := json.Unmarshal([]byte(out), &cards); code != 0 || err != nil || len(cards) != 1 || cards[0].Serial != serial ||
		cards[0].Owner == nil || cards[0].Owner.UID != 65534 {
		t.Fatalf("nobody lists its card: %d %s %s", code, out, errs)
	}
	if _, out, code := nobody("card", "owner", "--card", serial, "nobody"); code == 0 || !strings.Contains(out, "permission denied") {
		t.Fatalf("the owner changes the owner: %d %s", code, out)
	}

	// Root gives it to root and a group, then to administrators only.
	out, errs, code = cli(t, env, "", "card", "owner", "--card", serial, "0:0")
	if code != 0 || !strings.Contains(out, "uid 0") || !strings.Contains(out, "gid 0") {
		t.Fatalf("card owner: %d %s %s", code, out, errs)
	}
	if out, _, _ := nobody("card", "list", "--json"); strings.TrimSpace(out) != "[]" {
		t.Fatalf("nobody still lists the card it no longer owns: %s", out)
	}
	if out, _, code = cli(t, env, "", "card", "owner", "--card", serial, "--admins-only"); code != 0 {
		t.Fatalf("card owner --admins-only: %d %s", code, out)
	}
	out, _, _ = cli(t, env, "", "card", "status", "--card", serial)
	if !strings.Contains(out, "owner     administrators only") {
		t.Errorf("card status of an ownerless card:\n%s", out)
	}
	for _, bad := range [][]string{
		{"card", "owner", "--card", serial},
		{"card", "owner", "--card", serial, "no-such-user-here"},
		{"card", "owner", "--card", serial, "--admins-only", "root"},
		{"card", "create", "--owner", "root:no-such-group-here"},
	} {
		if _, errs, code := cli(t, env, "", bad...); code != 2 {
			t.Errorf("%v: exit %d, want 2 (usage): %s", bad, code, errs)
		}
	}
}
