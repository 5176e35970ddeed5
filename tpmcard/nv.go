package tpmcard

import (
	"encoding/binary"
	"fmt"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"
)

// Cards take their NV indices from a block inside the owner range
// 0x01000000–0x013FFFFF (TCG Registry of Reserved TPM 2.0 Handles §2.2).
const (
	nvBase  = 0x013CA000
	nvCount = 256
)

// pinIndexPublic is the public area of a PIN or PUK index: a PIN_FAIL index
// (Part 2 §13.4) written only through its policy and read by the owner.
// NO_DA is required for PIN_FAIL; there is no OWNERWRITE (the owner could
// reset the counter), no AUTHWRITE (forbidden for PIN indices), no
// POLICYREAD (see policy.go) and no POLICY_DELETE.
func pinIndexPublic(h tpm2.TPMHandle, policy []byte, written bool) tpm2.TPMSNVPublic {
	return tpm2.TPMSNVPublic{
		NVIndex: h,
		NameAlg: tpm2.TPMAlgSHA256,
		Attributes: tpm2.TPMANV{
			NT:          tpm2.TPMNTPinFail,
			NoDA:        true,
			PolicyWrite: true,
			OwnerRead:   true,
			Written:     written,
		},
		AuthPolicy: tpm2.TPM2BDigest{Buffer: policy},
		DataSize:   8,
	}
}

func nvName(pub tpm2.TPMSNVPublic) []byte {
	n, err := tpm2.NVName(&pub)
	if err != nil {
		panic(err) // SHA-256 names always compute
	}
	return n.Buffer
}

// pinData is the 8-byte TPMS_NV_PIN_COUNTER_PARAMETERS (Part 2 §13.2).
type pinData struct{ Count, Limit uint32 }

func (p pinData) bytes() []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint32(b, p.Count)
	binary.BigEndian.PutUint32(b[4:], p.Limit)
	return b
}

func (p pinData) left() int {
	if p.Count >= p.Limit {
		return 0
	}
	return int(p.Limit - p.Count)
}

// freeNVHandles returns n unused handles from the card block.
func freeNVHandles(t transport.TPM, n int) ([]tpm2.TPMHandle, error) {
	used := map[tpm2.TPMHandle]bool{}
	next := uint32(nvBase)
	for {
		cap, err := tpm2.GetCapability{Capability: tpm2.TPMCapHandles, Property: next, PropertyCount: nvCount}.Execute(t)
		if err != nil {
			return nil, fmt.Errorf("listing NV indices: %w", err)
		}
		hs, err := cap.CapabilityData.Data.Handles()
		if err != nil {
			return nil, fmt.Errorf("listing NV indices: %w", err)
		}
		for _, h := range hs.Handle {
			used[h] = true
			next = uint32(h) + 1
		}
		if !cap.MoreData || next >= nvBase+nvCount {
			break
		}
	}
	var free []tpm2.TPMHandle
	for h := tpm2.TPMHandle(nvBase); h < nvBase+nvCount && len(free) < n; h++ {
		if !used[h] {
			free = append(free, h)
		}
	}
	if len(free) < n {
		return nil, fmt.Errorf("%w (all %d card NV handles are in use)", ErrNVSpace, nvCount)
	}
	return free, nil
}
