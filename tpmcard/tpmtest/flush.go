package tpmtest

import (
	"testing"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"
)

// FlushAll flushes every transient object and every loaded or saved
// session, as the kernel's resource manager does when a process that used
// the TPM dies. Tests use it to simulate such a death on TPMs without one.
func FlushAll(t testing.TB, tpm transport.TPM) {
	t.Helper()
	for _, first := range []tpm2.TPMHandle{0x80000000, 0x02000000, 0x03000000} {
		rsp, err := tpm2.GetCapability{Capability: tpm2.TPMCapHandles, Property: uint32(first), PropertyCount: 64}.Execute(tpm)
		if err != nil {
			t.Fatalf("tpmtest: listing handles: %v", err)
		}
		hs, err := rsp.CapabilityData.Data.Handles()
		if err != nil {
			t.Fatalf("tpmtest: listing handles: %v", err)
		}
		for _, h := range hs.Handle {
			if h>>24 != first>>24 {
				continue
			}
			if _, err := (tpm2.FlushContext{FlushHandle: h}).Execute(tpm); err != nil {
				t.Fatalf("tpmtest: flushing %#x: %v", h, err)
			}
		}
	}
}
