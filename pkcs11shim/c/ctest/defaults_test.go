//go:build linux

package ctest

import (
	"os"
	"regexp"
	"strconv"
	"testing"

	"github.com/tpmcard/tpmcard/service/wire"
)

// TestDefaultsAgree holds the C module's copies of the facts it shares
// with the service to service/wire, their one home: the socket it dials,
// the variable that names another, the protocol version and the largest
// frame.
func TestDefaultsAgree(t *testing.T) {
	h, err := os.ReadFile("../tc_conn.h")
	if err != nil {
		t.Fatal(err)
	}
	define := func(name string) string {
		m := regexp.MustCompile(`(?m)^#define ` + name + ` (.+)$`).FindSubmatch(h)
		if m == nil {
			t.Fatalf("tc_conn.h defines no %s", name)
		}
		return string(m[1])
	}
	for _, c := range []struct{ name, want string }{
		{"TC_DEFAULT_SOCKET", `"` + wire.DefaultSocket + `"`},
		{"TC_SOCKET_ENV", `"` + wire.SocketEnv + `"`},
		{"TC_PROTOCOL_VERSION", strconv.Itoa(int(wire.Version))},
		{"TC_MAX_FRAME", "(1u << 20)"},
	} {
		if got := define(c.name); got != c.want {
			t.Errorf("tc_conn.h: %s is %s, service/wire says %s", c.name, got, c.want)
		}
	}
	if wire.MaxFrame != 1<<20 {
		t.Errorf("wire.MaxFrame is %d, tc_conn.h's TC_MAX_FRAME 1 MiB", wire.MaxFrame)
	}
}
