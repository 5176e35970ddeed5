package main

import (
	"testing"

	"github.com/tpmcard/tpmcard/tpmcard"
	"github.com/tpmcard/tpmcard/tpmcard/backend"
)

// The service flushes a killed run's leftovers where no resource manager
// does: swtpm and a bare TPM device.
func TestWithoutResourceManager(t *testing.T) {
	for _, tc := range []struct {
		tpm  string
		want bool
	}{
		{"swtpm", true},
		{"swtpm:127.0.0.1:2321", true},
		{"device:/dev/tpm0", true},
		{"device:/dev/tpm1", true},
		{"device:/dev/tpmrm0", false},
		{"device", false}, // /dev/tpmrm0 on Linux, TBS on Windows
		{"sim", false},
	} {
		spec, err := backend.Parse(tc.tpm)
		if err != nil {
			t.Fatal(err)
		}
		if got := withoutResourceManager(spec); got != tc.want {
			t.Errorf("%s: flush leftovers %v, want %v", tc.tpm, got, tc.want)
		}
	}
	for _, tc := range []struct {
		l    tpmcard.Leftovers
		want string
	}{
		{tpmcard.Leftovers{Objects: 3, Sessions: 2}, "flushed 3 transient objects and 2 sessions left in the TPM by an earlier run"},
		{tpmcard.Leftovers{Objects: 1, Sessions: 1}, "flushed 1 transient object and 1 session left in the TPM by an earlier run"},
		{tpmcard.Leftovers{Sessions: 4}, "flushed 0 transient objects and 4 sessions left in the TPM by an earlier run"},
	} {
		if got := leftoversMessage(tc.l); got != tc.want {
			t.Errorf("%+v: %q, want %q", tc.l, got, tc.want)
		}
	}
}
