package main

import (
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/tpmcard/tpmcard/service/client"
	"github.com/tpmcard/tpmcard/service/server"
	"github.com/tpmcard/tpmcard/tpmcard"
)

// The README states facts that have one home in the code: the Go release
// (go.mod), the defaults (the tpmcard, server and client constants), the
// configuration's keys (Config). Each is checked against that home.
func TestREADMEFacts(t *testing.T) {
	readme := readRepoFile(t, "README.md")
	gomod := readRepoFile(t, "go.mod")
	m := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindStringSubmatch(gomod)
	if m == nil {
		t.Fatal("go.mod has no go line")
	}
	for _, want := range []string{
		"with Go " + m[1] + " or newer",
		"default PIN\n`" + tpmcard.DefaultPIN + "`",
		fmt.Sprintf("Defaults: PIN `%s`", tpmcard.DefaultPIN),
		fmt.Sprintf("%d PIN tries; a\ngenerated PUK; %d PUK tries", tpmcard.DefaultPINTries, tpmcard.DefaultPUKTries),
		fmt.Sprintf("PIN policy %d–%d printable characters (minimum never below %d", tpmcard.DefaultPINPolicy().MinLength, tpmcard.MaxPINLength, tpmcard.MinPINLength),
		fmt.Sprintf("at most `max_connections` (%d)", server.DefaultMaxConns),
		fmt.Sprintf("`max_connections_per_user` (%d)", server.DefaultMaxConnsPerUser),
		fmt.Sprintf("`idle_timeout` (%d minutes", int(server.DefaultIdleTimeout.Minutes())),
		fmt.Sprintf(`"socket": %q`, client.DefaultSocket),
		fmt.Sprintf(`"state_dir": %q`, tpmcard.DefaultStateDir),
		fmt.Sprintf(`"max_connections": %d`, server.DefaultMaxConns),
		fmt.Sprintf(`"max_connections_per_user": %d`, server.DefaultMaxConnsPerUser),
		"`" + client.SocketEnv + "`",
	} {
		if !strings.Contains(readme, want) {
			t.Errorf("README.md does not say %q", want)
		}
	}
	// The configuration example holds only keys the service reads.
	block := regexp.MustCompile("(?s)reads `" + regexp.QuoteMeta(DefaultConfigFile) + "`.*?```json\n(.*?)```").FindStringSubmatch(readme)
	if block == nil {
		t.Fatal("README.md has no configuration example after the config file's name")
	}
	dec := json.NewDecoder(strings.NewReader(block[1]))
	dec.DisallowUnknownFields()
	var cfg Config
	if err := dec.Decode(&cfg); err != nil {
		t.Errorf("README.md's configuration example: %v", err)
	}
	if makefile := readRepoFile(t, "Makefile"); !strings.Contains(makefile, "get Go $(GO_VERSION) or newer") {
		t.Error("the Makefile's setup message does not take the Go release from go.mod")
	}
}

func readRepoFile(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile("../../" + name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
