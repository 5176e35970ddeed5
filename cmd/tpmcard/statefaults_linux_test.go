package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-tpm/tpm2"
	"github.com/tpmcard/tpmcard/tpmcard"
	"github.com/tpmcard/tpmcard/tpmcard/tpmtest"
)

// State-directory faults, damaged cards, stale files and retried key
// generation, through the real service process on the simulator and on
// swtpm. On swtpm the test also reads the TPM's
// NV indices while the service is stopped.

// onEachTPM runs fn on the simulator and on swtpm (sw nil on the simulator).
func onEachTPM(t *testing.T, fn func(t *testing.T, spec string, sw *tpmtest.SWTPM)) {
	t.Run("sim", func(t *testing.T) { fn(t, "sim", nil) })
	t.Run("swtpm", func(t *testing.T) {
		sw := tpmtest.StartSWTPM(t)
		fn(t, sw.Spec(), sw)
	})
}

type diskRecord struct {
	Serial   string `json:"serial"`
	PINIndex uint32 `json:"pin_index"`
	PUKIndex uint32 `json:"puk_index"`
	PINName  []byte `json:"pin_name"`
	PUKName  []byte `json:"puk_name"`
}

func diskRecords(t *testing.T, state string) []diskRecord {
	t.Helper()
	names, _ := filepath.Glob(filepath.Join(state, "cards", "*.json"))
	var out []diskRecord
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err != nil {
			t.Fatal(err)
		}
		var r diskRecord
		if err := json.Unmarshal(b, &r); err != nil {
			t.Fatalf("%s: %v", n, err)
		}
		out = append(out, r)
	}
	return out
}

// tpmNV checks, with the service stopped, that every record's indices are
// defined with the record's Names, and returns the TPM's NV indices.
func tpmNV(t *testing.T, sw *tpmtest.SWTPM, state string) []tpm2.TPMHandle {
	t.Helper()
	tpm := sw.TPM()
	defer tpm.Close()
	for _, r := range diskRecords(t, state) {
		for _, ix := range []struct {
			h    uint32
			name []byte
		}{{r.PINIndex, r.PINName}, {r.PUKIndex, r.PUKName}} {
			rsp, err := tpm2.NVReadPublic{NVIndex: tpm2.TPMHandle(ix.h)}.Execute(tpm)
			if err != nil {
				t.Fatalf("card %s: NV_ReadPublic(%#x): %v", r.Serial, ix.h, err)
			}
			if !bytes.Equal(rsp.NVName.Buffer, ix.name) {
				t.Fatalf("card %s: NV index %#x is not the record's", r.Serial, ix.h)
			}
		}
	}
	rsp, err := tpm2.GetCapability{Capability: tpm2.TPMCapHandles, Property: uint32(tpm2.TPMHTNVIndex) << 24, PropertyCount: 256}.Execute(tpm)
	if err != nil {
		t.Fatal(err)
	}
	hs, err := rsp.CapabilityData.Data.Handles()
	if err != nil {
		t.Fatal(err)
	}
	return hs.Handle
}

func mustCLI(t *testing.T, env []string, stdin string, args ...string) string {
	t.Helper()
	out, errs, code := cli(t, env, stdin, args...)
	if code != 0 {
		t.Fatalf("tpmcard %v: exit %d: %s", args, code, errs)
	}
	return out
}

// Item 4: on a full state directory card create, key generate, PIN change
// and PUK unblock each answer StateDirFull with a message that names the
// directory and says what to do; nothing is half-made; after freeing space
// all of them work.
func TestFullStateDirThroughService(t *testing.T) {
	onEachTPM(t, func(t *testing.T, spec string, sw *tpmtest.SWTPM) {
		state := tpmtest.Tmpfs(t, 1<<20)
		env, stop, _ := serviceAt(t, spec, state, "")
		pin, puk := "full disk PIN 1", "FULLDISKPUK1234"
		mustCLI(t, env, pin+"\n"+puk+"\n", "card", "create", "--label", "a", "--pin-stdin", "--puk-stdin")
		mustCLI(t, env, puk+"\n", "card", "create", "--label", "b", "--puk-stdin") // default PIN, must change
		var before []tpm2.TPMHandle
		if sw != nil {
			stop()
			before = tpmNV(t, sw, state)
			env, stop, _ = serviceAt(t, spec, state, "")
		}

		free := tpmtest.Fill(t, state)
		full := "the state directory " + state + " is full: free space on its file system, then try again"
		for _, c := range []struct {
			name, stdin string
			args        []string
		}{
			{"card create", pin + "\n", []string{"card", "create", "--label", "c", "--pin-stdin"}},
			{"key generate", "", []string{"key", "generate", "--card", "a"}},
			{"pin change", tpmcard.DefaultPIN + "\nnew full PIN 2\n", []string{"pin", "change", "--card", "b", "--pin-stdin", "--new-pin-stdin"}},
			{"pin unblock", puk + "\nnew full PIN 3\n", []string{"pin", "unblock", "--card", "a", "--puk-stdin", "--new-pin-stdin"}},
		} {
			_, errs, code := cli(t, env, c.stdin, c.args...)
			if code != 1 || !strings.Contains(errs, full) || !strings.Contains(errs, "nothing was changed") {
				t.Errorf("%s on a full state directory: exit %d, %q; want %q", c.name, code, errs, full)
			}
		}
		var cards []cardView
		if err := json.Unmarshal([]byte(mustCLI(t, env, "", "card", "list", "--json")), &cards); err != nil || len(cards) != 2 {
			t.Fatalf("card list on a full disk: %v %v", cards, err)
		}
		for _, c := range cards {
			want := "ready"
			if c.Label == "b" {
				want = "PIN must change"
			}
			if c.PINTriesLeft != c.PINTries || c.PUKTriesLeft != c.PUKTries || c.State != want || c.PINMustChange != (c.Label == "b") {
				t.Fatalf("a refused request changed card %+v", c)
			}
		}
		if sw != nil {
			stop()
			if after := tpmNV(t, sw, state); !slices.Equal(after, before) {
				t.Fatalf("NV indices after the refusals %v, before %v", after, before)
			}
			env, stop, _ = serviceAt(t, spec, state, "")
		}

		free()
		mustCLI(t, env, pin+"\n", "card", "create", "--label", "c", "--pin-stdin")
		mustCLI(t, env, "", "key", "generate", "--card", "a")
		mustCLI(t, env, tpmcard.DefaultPIN+"\nnew full PIN 2\n", "pin", "change", "--card", "b", "--pin-stdin", "--new-pin-stdin")
		mustCLI(t, env, puk+"\nnew full PIN 3\n", "pin", "unblock", "--card", "a", "--puk-stdin", "--new-pin-stdin")
		if sw != nil {
			stop()
			if n := len(tpmNV(t, sw, state)); n != len(before)+2 {
				t.Fatalf("%d NV indices after a third card, want %d", n, len(before)+2)
			}
		}
	})
}

// Item 5: a destroy cut short lists as "destroy incomplete", a card whose
// indices were undefined behind the service as "lost" (not "ready, 0/5"),
// and destroying each again finishes the job.
func TestDamagedCardsListedAndDestroyed(t *testing.T) {
	onEachTPM(t, func(t *testing.T, spec string, sw *tpmtest.SWTPM) {
		state := filepath.Join(t.TempDir(), "state")
		env, stop, _ := serviceAt(t, spec, state, "")
		var before []tpm2.TPMHandle
		if sw != nil {
			stop()
			before = tpmNV(t, sw, state)
			env, stop, _ = serviceAt(t, spec, state, "")
		}
		mustCLI(t, env, "damaged PIN 1\n", "card", "create", "--label", "half", "--pin-stdin")
		mustCLI(t, env, "damaged PIN 1\n", "card", "create", "--label", "gone", "--pin-stdin")
		stop()
		recs := diskRecords(t, state)
		byLabel := map[string]diskRecord{}
		for _, r := range recs {
			b, _ := os.ReadFile(filepath.Join(state, "cards", r.Serial+".json"))
			var m map[string]any
			json.Unmarshal(b, &m)
			byLabel[m["label"].(string)] = r
		}
		// "half": a destroy that undefined its indices and was killed
		// before the record went: the record says the destroy began.
		half := filepath.Join(state, "cards", byLabel["half"].Serial+".json")
		b, _ := os.ReadFile(half)
		b = bytes.Replace(b, []byte(`"version":`), []byte(`"destroying": true, "version":`), 1)
		if err := os.WriteFile(half, b, 0o600); err != nil {
			t.Fatal(err)
		}
		gone := byLabel["gone"]
		if sw != nil {
			// Undefined behind the service, with the owner's (empty)
			// authorization; "half" loses its indices too.
			tpm := sw.TPM()
			for _, h := range []uint32{gone.PINIndex, gone.PUKIndex, byLabel["half"].PINIndex, byLabel["half"].PUKIndex} {
				if _, err := (tpm2.NVUndefineSpace{AuthHandle: tpm2.AuthHandle{Handle: tpm2.TPMRHOwner, Auth: tpm2.PasswordAuth(nil)}, NVIndex: tpm2.NamedHandle{Handle: tpm2.TPMHandle(h), Name: nvNameOf(t, tpm, h)}}).Execute(tpm); err != nil {
					t.Fatalf("undefining %#x: %v", h, err)
				}
			}
			tpm.Close()
		} else {
			// The simulator lives in the service: a record that names an
			// index nobody defined is what the service sees of it.
			p := filepath.Join(state, "cards", gone.Serial+".json")
			b, _ := os.ReadFile(p)
			var m map[string]any
			json.Unmarshal(b, &m)
			m["pin_index"] = 0x01fffff0
			b, _ = json.Marshal(m)
			if err := os.WriteFile(p, b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		env, stop, _ = serviceAt(t, spec, state, "")

		out := mustCLI(t, env, "", "card", "list")
		for _, want := range []string{"half", "destroy incomplete", "gone", "lost", "-/5"} {
			if !strings.Contains(out, want) {
				t.Errorf("card list does not say %q:\n%s", want, out)
			}
		}
		if strings.Contains(out, "ready") || strings.Contains(out, "0/5") {
			t.Errorf("card list shows a damaged card as usable:\n%s", out)
		}
		out = mustCLI(t, env, "", "card", "status", "--card", "half")
		if !strings.Contains(out, "destroy incomplete") || !strings.Contains(out, "run `tpmcard card destroy` again") {
			t.Errorf("card status of a half-destroyed card:\n%s", out)
		}
		out = mustCLI(t, env, "", "card", "status", "--card", "gone")
		if !strings.Contains(out, "state     lost") {
			t.Errorf("card status of a lost card:\n%s", out)
		}
		_, errs, code := cli(t, env, "damaged PIN 1\nanother PIN 2\n", "pin", "change", "--card", "half", "--pin-stdin", "--new-pin-stdin")
		if code == 0 || !strings.Contains(errs, "destroy of the card did not finish") {
			t.Errorf("pin change on a half-destroyed card: exit %d %s", code, errs)
		}
		mustCLI(t, env, "", "card", "destroy", "--card", "half", "--yes")
		mustCLI(t, env, "", "card", "destroy", "--card", "gone", "--yes")
		if out := mustCLI(t, env, "", "card", "list"); !strings.Contains(out, "no cards") {
			t.Fatalf("card list after the destroys:\n%s", out)
		}
		if sw != nil {
			stop()
			if after := tpmNV(t, sw, state); !slices.Equal(after, before) {
				t.Fatalf("NV indices at the end %v, at the start %v", after, before)
			}
		}
	})
}

func nvNameOf(t *testing.T, tpm interface {
	Send([]byte) ([]byte, error)
}, h uint32) tpm2.TPM2BName {
	t.Helper()
	rsp, err := tpm2.NVReadPublic{NVIndex: tpm2.TPMHandle(h)}.Execute(tpm)
	if err != nil {
		t.Fatalf("NV_ReadPublic(%#x): %v", h, err)
	}
	return rsp.NVName
}

// Item 6: temporary files that a killed write left are removed at start,
// and the service's log says how many; a key generation whose client was
// killed midway is not repeated when the client retries with the same ID.
func TestStaleFilesAndKilledKeygen(t *testing.T) {
	onEachTPM(t, func(t *testing.T, spec string, sw *tpmtest.SWTPM) {
		state := filepath.Join(t.TempDir(), "state")
		env, stop, _ := serviceAt(t, spec, state, "")
		mustCLI(t, env, "keygen PIN 1\n", "card", "create", "--pin-stdin")
		stop()
		serial := diskRecords(t, state)[0].Serial
		for _, n := range []string{".tmp-" + serial + "-111", ".tmp-" + serial + "-222"} {
			if err := os.WriteFile(filepath.Join(state, "cards", n), []byte(`{"serial":`), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		env, _, log := serviceAt(t, spec, state, "")
		if !strings.Contains(log.String(), `"files":2`) || !strings.Contains(log.String(), "removed temporary files") {
			t.Errorf("the service's start does not log the two stale files:\n%s", log.String())
		}
		if left, _ := filepath.Glob(filepath.Join(state, "cards", ".tmp-*")); len(left) != 0 {
			t.Errorf("stale files left: %v", left)
		}

		// Kill the client while the TPM generates (RSA takes a while).
		cmd := exec.Command(cliBin, "key", "generate", "--alg", "rsa-2048", "--id", "0badc0de")
		cmd.Env = append(os.Environ(), env...)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
			if strings.Contains(log.String(), `"request":"OpenSession"`) {
				break
			}
		}
		time.Sleep(30 * time.Millisecond) // GenerateKeyPair follows OpenSession
		cmd.Process.Kill()
		cmd.Wait()

		out := mustCLI(t, env, "", "key", "generate", "--alg", "rsa-2048", "--id", "0badc0de", "--json")
		var k keyView
		if err := json.Unmarshal([]byte(out), &k); err != nil || k.ID != "0badc0de" {
			t.Fatalf("the retry: %q %v", out, err)
		}
		var keys []keyView
		if err := json.Unmarshal([]byte(mustCLI(t, env, "", "key", "list", "--json")), &keys); err != nil || len(keys) != 1 {
			t.Fatalf("keys after a killed generation and its retry: %v %v, want one", keys, err)
		}
		_, errs, code := cli(t, env, "", "key", "generate", "--alg", "ecdsa-p256", "--id", "0badc0de")
		if code == 0 || !strings.Contains(errs, "already has a rsa-2048 key with ID 0badc0de") {
			t.Errorf("the same ID for another algorithm: exit %d %s", code, errs)
		}
	})
}
