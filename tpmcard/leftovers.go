package tpmcard

import (
	"fmt"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"
)

// Leftovers counts what Open flushed from the TPM before it made anything
// of its own (WithFlushLeftovers).
type Leftovers struct {
	Objects  int // transient objects
	Sessions int // sessions, loaded or saved
}

// WithFlushLeftovers has Open flush every transient object and every
// loaded or saved session the TPM holds before it makes its own. On a TPM
// without a resource manager (swtpm, Linux's /dev/tpm0) nothing flushes
// what a process that died left behind: a killed service leaves its
// storage root key, card keys and sessions, and the next one finds the
// TPM's few slots taken (signing fails; after two kills Open itself
// fails). Leftovers says how many were flushed. Use it only where nothing
// else uses the TPM meanwhile: it flushes that user's objects and sessions
// too (on /dev/tpm0 this includes the sessions that programs using
// /dev/tpmrm0 keep saved). A resource manager (/dev/tpmrm0, Windows TBS)
// does this itself.
func WithFlushLeftovers() Option { return func(c *config) { c.flushLeftovers = true } }

// Leftovers reports what Open flushed under WithFlushLeftovers; zero
// without it.
func (m *Manager) Leftovers() Leftovers { return m.leftovers }

// The handle ranges TPM2_GetCapability(TPM_CAP_HANDLES) lists (TPM 2.0
// Part 2 §7.2, Part 3 §30.2): transient objects, loaded sessions (HMAC
// and policy, whatever the first byte of their handle) and saved sessions.
const (
	transientFirst     tpm2.TPMHandle = 0x80000000
	loadedSessionFirst tpm2.TPMHandle = 0x02000000
	savedSessionFirst  tpm2.TPMHandle = 0x03000000
)

// flushLeftovers flushes every transient object and every loaded or saved
// session in the TPM (TPM2_FlushContext, Part 3 §28.4). A handle that is
// gone by the time it is flushed is not counted.
func flushLeftovers(t transport.TPM) (Leftovers, error) {
	var n Leftovers
	objects, err := listHandles(t, transientFirst)
	if err != nil {
		return n, err
	}
	var sessions []tpm2.TPMHandle
	for _, first := range []tpm2.TPMHandle{loadedSessionFirst, savedSessionFirst} {
		hs, err := listHandles(t, first)
		if err != nil {
			return n, err
		}
		sessions = append(sessions, hs...)
	}
	for _, h := range objects {
		if _, err := (tpm2.FlushContext{FlushHandle: h}).Execute(t); err == nil {
			n.Objects++
		}
	}
	seen := map[tpm2.TPMHandle]bool{}
	for _, h := range sessions {
		// A session's slot is the handle's low bytes, whether the TPM
		// lists it as an HMAC or a policy handle.
		if slot := h & 0x00ffffff; !seen[slot] {
			seen[slot] = true
			if _, err := (tpm2.FlushContext{FlushHandle: h}).Execute(t); err == nil {
				n.Sessions++
			}
		}
	}
	return n, nil
}

// listHandles lists the handles of the kind whose range starts at first.
func listHandles(t transport.TPM, first tpm2.TPMHandle) ([]tpm2.TPMHandle, error) {
	var out []tpm2.TPMHandle
	next := first
	for range 64 { // a TPM holds a few dozen at most
		rsp, err := tpm2.GetCapability{Capability: tpm2.TPMCapHandles, Property: uint32(next), PropertyCount: 64}.Execute(t)
		if err != nil {
			return nil, fmt.Errorf("listing the TPM's handles from %#x: %w", first, busy(err))
		}
		hs, err := rsp.CapabilityData.Data.Handles()
		if err != nil {
			return nil, fmt.Errorf("listing the TPM's handles from %#x: %w", first, err)
		}
		for _, h := range hs.Handle {
			if ofKind(h, first) {
				out = append(out, h)
			}
		}
		if !rsp.MoreData || len(hs.Handle) == 0 {
			return out, nil
		}
		last := hs.Handle[len(hs.Handle)-1]
		next = first&0xff000000 | (last&0x00ffffff + 1)
	}
	return out, nil
}

// ofKind reports whether h, listed from first, is a handle to flush: a
// transient object's from the transient range, a session's from either
// session range (the TPM may list a saved policy session by its HMAC
// handle, and a loaded one by its policy handle).
func ofKind(h, first tpm2.TPMHandle) bool {
	if first == transientFirst {
		return h>>24 == transientFirst>>24
	}
	return h>>24 == loadedSessionFirst>>24 || h>>24 == savedSessionFirst>>24
}
