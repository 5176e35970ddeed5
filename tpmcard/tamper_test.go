package tpmcard

import (
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/google/go-tpm/tpm2"
	"github.com/tpmcard/tpmcard/tpmcard/tpmtest"
)

// A PIN limit written behind the service (here through the PUK branch, the
// one way the policy allows) shows as an altered card, not as "ready, 999
// tries".
func TestStatusReportsAlteredLimit(t *testing.T) {
	tpmtest.ForEachTPM(t, func(t *testing.T, b *tpmtest.Backend) {
		m := openManager(t, b.TPM, "")
		serial := newCard(t, m)
		status(t, m, serial)
		r := m.records[serial]
		pukAuth := r.authValue("puk", testPUK)
		err := m.policyWrite(tpm2.TPMHandle(r.PINIndex), r.PINName, pinData{0, 999}, m.pinBranches(r), func(s tpm2.Session) error {
			if _, err := (tpm2.PolicyCommandCode{PolicySession: s.Handle(), Code: tpm2.TPMCCNVWrite}).Execute(m.tpm); err != nil {
				return err
			}
			return m.secretStep(s.Handle(), tpm2.TPMHandle(r.PUKIndex), r.PUKName, pukAuth)
		})
		if err != nil {
			t.Fatalf("writing limit 999 with the PUK: %v", err)
		}
		_, err = m.Status(serial)
		if !errors.Is(err, ErrCardAltered) || !strings.Contains(err.Error(), "999") {
			t.Fatalf("status of a card with limit 999: %v", err)
		}
	})
}

// A card made by an earlier tpmcard (record version 1) lists as outdated,
// refuses everything but status and destroy, and destroys cleanly.
func TestOutdatedCard(t *testing.T) {
	tpmtest.ForEachTPM(t, func(t *testing.T, b *tpmtest.Backend) {
		dir := t.TempDir()
		m := openManager(t, b.TPM, dir)
		serial := newCard(t, m)
		m.Close()
		path := dir + "/cards/" + serial + ".json"
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var rec map[string]any
		if err := json.Unmarshal(raw, &rec); err != nil {
			t.Fatal(err)
		}
		rec["version"] = 1
		raw, _ = json.Marshal(rec)
		if err := os.WriteFile(path, raw, 0o600); err != nil {
			t.Fatal(err)
		}
		m = openManager(t, b.TPM, dir)
		info, err := m.Card(serial)
		if err != nil || !info.Outdated {
			t.Fatalf("outdated card: %+v, %v", info, err)
		}
		if st := status(t, m, serial); !st.Outdated {
			t.Fatal("status does not say outdated")
		}
		if err := m.Login(serial, testPIN); !errors.Is(err, ErrCardOutdated) {
			t.Fatalf("login to an outdated card: %v", err)
		}
		if err := m.Destroy(serial); err != nil {
			t.Fatalf("destroying an outdated card: %v", err)
		}
		if _, err := m.Card(serial); !errors.Is(err, ErrCardNotFound) {
			t.Fatalf("after destroy: %v", err)
		}
	})
}
