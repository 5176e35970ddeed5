package server

import (
	"github.com/tpmcard/tpmcard/service/wire"
	"github.com/tpmcard/tpmcard/tpmcard"
)

// attestKey answers AttestKey (administrators only): a key attestation
// statement a CA verifies offline with tpmcard/attest.
func (c *conn) attestKey(m *wire.AttestKey) (any, error) {
	if err := c.needAdmin(wire.TypeAttestKey); err != nil {
		return nil, err
	}
	st, err := c.s.m.Attest(m.Serial, m.KeyID, tpmcard.AttestOptions{Nonce: m.Nonce})
	if err != nil {
		c.log.Warn().Str("card", m.Serial).Hex("key_id", m.KeyID).Err(err).Msg("key attestation failed")
		return nil, err
	}
	b, err := st.Marshal()
	if err != nil {
		return nil, err
	}
	c.log.Info().Str("card", m.Serial).Hex("key_id", m.KeyID).Bool("ek_certificate", st.EKCert != nil).Msg("key attested")
	return &wire.Attestation{Statement: b}, nil
}
