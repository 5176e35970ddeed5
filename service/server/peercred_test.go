//go:build linux

package server

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tpmcard/tpmcard/service/client"
	"github.com/tpmcard/tpmcard/service/wire"
)

// helperEnv, when set, makes TestHelperProcess act as a client of the
// socket in TPMCARD_SOCKET instead of a test.
const helperEnv = "TPMCARD_TEST_PEER_HELPER"

// TestHelperProcess is the client that TestPeerCredentials runs as another
// user. It prints what the service answered to a card request and to an
// admin request.
func TestHelperProcess(t *testing.T) {
	if os.Getenv(helperEnv) == "" {
		t.Skip("helper process for TestPeerCredentials")
	}
	c, err := client.Dial("")
	if err != nil {
		fmt.Printf("dial=%v\n", err)
		return
	}
	defer c.Close()
	_, err = c.ListCards()
	fmt.Printf("user=%v\n", wire.StatusOf(err))
	_, err = c.Status()
	fmt.Printf("admin=%v\n", wire.StatusOf(err))
}

// TestPeerCredentials runs a real client process as uid/gid 65534 with
// chosen supplementary groups (setpriv) and checks what the service lets
// it do: the kernel's SO_PEERCRED and SO_PEERGROUPS answers, no override.
func TestPeerCredentials(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: it runs a client as uid 65534 with setpriv")
	}
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skip("needs setpriv (util-linux) to run a client as another uid")
	}
	// A directory the other user can reach, holding a copy of this test
	// binary and the socket.
	dir := t.TempDir()
	for d := dir; d != os.TempDir() && d != "/"; d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	helper := filepath.Join(dir, "helper.test")
	copyExecutable(t, helper)

	const cardGID, adminGID = 4242, 4343
	e := newEnv(t, nil, func(c *Config) {
		c.Socket = filepath.Join(dir, "run", "tpmcard.sock")
		c.CardGroup = fmt.Sprint(cardGID)
		c.AdminGroup = fmt.Sprint(adminGID)
	})
	e.provision(e.dial())

	for _, c := range []struct {
		name   string
		groups string // setpriv argument
		user   wire.Status
		admin  wire.Status
	}{
		{"fail/no-groups", "--clear-groups", wire.PermissionDenied, wire.PermissionDenied},
		{"ok/card-group", fmt.Sprintf("--groups=%d", cardGID), wire.OK, wire.PermissionDenied},
		{"ok/admin-group", fmt.Sprintf("--groups=100,%d", adminGID), wire.OK, wire.OK},
	} {
		t.Run(c.name, func(t *testing.T) {
			cmd := exec.Command(setpriv, "--reuid=65534", "--regid=65534", c.groups, helper, "-test.run=^TestHelperProcess$")
			cmd.Env = append(os.Environ(), helperEnv+"=1", client.SocketEnv+"="+e.sock)
			cmd.Dir = dir
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("helper: %v\n%s", err, out)
			}
			for _, want := range []string{"user=" + c.user.String(), "admin=" + c.admin.String()} {
				if !strings.Contains(string(out), want+"\n") {
					t.Errorf("helper output lacks %q:\n%s", want, out)
				}
			}
		})
	}
	logs := e.logs.String()
	if !strings.Contains(logs, `"uid":65534,"gid":65534`) || !strings.Contains(logs, `"permission denied: not an administrator"`) {
		t.Errorf("the audit log does not show the other user's denial:\n%s", logs)
	}
}

func copyExecutable(t *testing.T, dst string) {
	t.Helper()
	src, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}
