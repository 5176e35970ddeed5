package main

import (
	"bytes"
	"encoding/json"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// Every flag's placeholder in -h names what it takes: the flag package
// takes the first `quoted` word of a usage as the placeholder, so a quoted
// command in a usage became one ("-admin-key tpmcard admin keygen").
func TestFlagPlaceholders(t *testing.T) {
	line := regexp.MustCompile(`(?m)^  -(\S+)(?: (.*))?$`)
	ok := regexp.MustCompile(`^(string|int|uint|duration|value|[A-Z][A-Z0-9_]*(\[:[A-Z]+\])?)$`)
	for g, cmds := range commands {
		for n := range cmds {
			args := []string{n, "-h"}
			if g != "" {
				args = []string{g, n, "-h"}
			}
			var errb bytes.Buffer
			_ = run(&env{stdin: strings.NewReader(""), stdout: &bytes.Buffer{}, stderr: &errb}, args)
			for _, m := range line.FindAllStringSubmatch(errb.String(), -1) {
				if m[2] != "" && !ok.MatchString(m[2]) {
					t.Errorf("tpmcard %s: -%s shows the placeholder %q", strings.Join(args[:len(args)-1], " "), m[1], m[2])
				}
			}
		}
	}
}

// Every command of a group has an example, and each flag an example uses
// is one of that command's flags.
func TestEveryCommandHasAnExample(t *testing.T) {
	flagRE := regexp.MustCompile(`--([a-z-]+)`)
	for g, cmds := range commands {
		if g == "" {
			continue
		}
		for n := range cmds {
			ex, ok := examples[g+" "+n]
			if !ok || !strings.Contains(ex, "tpmcard "+g+" "+n) {
				t.Errorf("%s %s: example %q", g, n, ex)
				continue
			}
			var errb bytes.Buffer
			_ = run(&env{stdin: strings.NewReader(""), stdout: &bytes.Buffer{}, stderr: &errb}, []string{g, n, "-h"})
			for _, m := range flagRE.FindAllStringSubmatch(ex, -1) {
				if !regexp.MustCompile(`(?m)^\s+-` + regexp.QuoteMeta(m[1]) + `\b`).MatchString(errb.String()) {
					t.Errorf("%s %s: the example's --%s is not one of its flags:\n%s", g, n, m[1], errb.String())
				}
			}
		}
	}
	for k := range examples {
		g, n, _ := strings.Cut(k, " ")
		if _, ok := commands[g][n]; !ok {
			t.Errorf("an example for %q, which is no command", k)
		}
	}
}

// Every --json output names its keys in snake_case, and a card says its
// state; "has_puk" is a card's, "puk" only the PUK card create shows once.
func TestJSONKeysSnakeCase(t *testing.T) {
	env := startService(t)
	out, errs, code := cli(t, env, "", "card", "create", "--json")
	if code != 0 || !strings.Contains(out, `"puk": "`) {
		t.Fatalf("card create --json: %d %s %s", code, out, errs)
	}
	if _, errs, code := cli(t, env, "", "key", "generate", "--json"); code != 0 {
		t.Fatalf("key generate: %s", errs)
	}
	snake := regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
	var keys func(v any) []string
	keys = func(v any) (out []string) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				out = append(append(out, k), keys(x)...)
			}
		case []any:
			for _, x := range v {
				out = append(out, keys(x)...)
			}
		}
		return out
	}
	for _, args := range [][]string{
		{"card", "list"}, {"card", "status"}, {"key", "list"}, {"cert", "list"}, {"service", "status"},
	} {
		out, errs, code := cli(t, env, "", append(args, "--json")...)
		if code != 0 {
			t.Fatalf("%v --json: %d %s", args, code, errs)
		}
		var v any
		if err := json.Unmarshal([]byte(out), &v); err != nil {
			t.Fatalf("%v --json: %v\n%s", args, err, out)
		}
		got := keys(v)
		for _, k := range got {
			if !snake.MatchString(k) {
				t.Errorf("%v --json: key %q is not snake_case", args, k)
			}
		}
		if args[0] == "card" || args[0] == "service" {
			if !slices.Contains(got, "state") {
				t.Errorf("%v --json has no state:\n%s", args, out)
			}
			if slices.Contains(got, "puk") {
				t.Errorf("%v --json has a \"puk\" key:\n%s", args, out)
			}
		}
	}
}
