package main

import "bytes"

// ---------------------------------------------------------------------------
// Key generation (§5.14) and random numbers (§5.15).

// GenerateKeyPair is C_GenerateKeyPair: the service checks the mechanism,
// its parameter and both templates and answers the two handles or the
// CK_RV.
func (m *module) GenerateKeyPair(h, mech uint64, param []byte, pub, priv []Attribute) (uint64, uint64, rv) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, b, r := m.session(h)
	if r != ckrOK {
		return 0, 0, r
	}
	pubH, privH, err := b.GenerateKeyPairTemplates(s.wireID, mech, bytes.Clone(param), toWire(pub), toWire(priv))
	if err != nil {
		return 0, 0, m.result(err, ckrDeviceRemoved)
	}
	m.log.printf("C_GenerateKeyPair session=%d mechanism=%#x -> %d,%d", h, mech, pubH, privH)
	return pubH, privH, ckrOK
}

// GenerateRandom is C_GenerateRandom: bytes from the TPM.
func (m *module) GenerateRandom(h uint64, out []byte) rv {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, b, r := m.session(h)
	if r != ckrOK {
		return r
	}
	for done := 0; done < len(out); {
		n := min(len(out)-done, maxRandomChunk)
		rnd, err := b.GenerateRandom(s.wireID, n)
		if err != nil {
			return m.result(err, ckrDeviceRemoved)
		}
		if len(rnd) != n {
			return ckrFunctionFailed
		}
		done += copy(out[done:], rnd)
	}
	return ckrOK
}

// SeedRandom is C_SeedRandom: the TPM's generator takes no seed from here.
func (m *module) SeedRandom(h uint64) rv {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, _, r := m.session(h); r != ckrOK {
		return r
	}
	return ckrRandomSeedNotSupported
}
