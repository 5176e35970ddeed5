package tpmcard

import (
	"errors"
	"fmt"

	"github.com/google/go-tpm/tpm2"
)

// The commands that need the owner's authorization: defining, reading and
// undefining a card's NV indices.

// defineIndex runs NV_DefineSpace with the authValue sent encrypted through
// a salted session.
func (m *Manager) defineIndex(pub tpm2.TPMSNVPublic, auth []byte) error {
	enc, closer, err := m.saltedHMAC(nil, tpm2.AESEncryption(128, tpm2.EncryptIn))
	if err != nil {
		return fmt.Errorf("opening session: %w", busy(err))
	}
	defer closer()
	_, err = tpm2.NVDefineSpace{
		AuthHandle: tpm2.AuthHandle{Handle: tpm2.TPMRHOwner, Auth: tpm2.PasswordAuth(m.owner)},
		Auth:       tpm2.TPM2BAuth{Buffer: auth},
		PublicInfo: tpm2.New2B(pub),
	}.Execute(m.tpm, enc)
	switch {
	case err == nil:
		return nil
	case isTPM(err, tpm2.TPMRCNVSpace):
		return fmt.Errorf("defining NV index %#x: %w", pub.NVIndex, ErrNVSpace)
	case isAuthFailure(err):
		return fmt.Errorf("defining NV index %#x: owner authorization refused: %w", pub.NVIndex, err)
	}
	return fmt.Errorf("defining NV index %#x: %w", pub.NVIndex, busy(err))
}

// readCounter reads an index's pinCount and pinLimit with the owner's
// authorization (Part 3 §31.13); it needs no PIN and does not move the
// counter.
func (m *Manager) readCounter(h uint32, name []byte) (pinData, error) {
	rsp, err := tpm2.NVRead{
		AuthHandle: tpm2.AuthHandle{Handle: tpm2.TPMRHOwner, Auth: tpm2.PasswordAuth(m.owner)},
		NVIndex:    tpm2.NamedHandle{Handle: tpm2.TPMHandle(h), Name: tpm2.TPM2BName{Buffer: name}},
		Size:       8,
	}.Execute(m.tpm)
	if err != nil {
		if isGone(err) {
			return pinData{}, fmt.Errorf("%w (NV index %#x)", ErrCardLost, h)
		}
		if isAuthFailure(err) {
			return pinData{}, fmt.Errorf("reading NV index %#x: owner authorization refused: %w", h, err)
		}
		return pinData{}, busy(err)
	}
	b := rsp.Data.Buffer
	if len(b) != 8 {
		return pinData{}, fmt.Errorf("NV index %#x: %d bytes of PIN data, want 8", h, len(b))
	}
	return pinData{Count: be32(b[:4]), Limit: be32(b[4:])}, nil
}

func be32(b []byte) uint32 {
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

func (m *Manager) pinCounter(rec *record) (pinData, error) {
	return m.readCounter(rec.PINIndex, rec.PINName)
}

func (m *Manager) pukCounter(rec *record) (pinData, error) {
	if rec.NoPUK {
		return pinData{}, nil
	}
	return m.readCounter(rec.PUKIndex, rec.PUKName)
}

// undefine removes the card's NV indices, skipping those already gone and
// those not recorded as the card's (a replaced index belongs to someone
// else).
func (m *Manager) undefine(r *record) error {
	var errs []error
	for _, ix := range []struct {
		h    uint32
		name []byte
	}{{r.PINIndex, r.PINName}, {r.PUKIndex, r.PUKName}} {
		if ix.h == 0 {
			continue
		}
		pub, err := tpm2.NVReadPublic{NVIndex: tpm2.TPMHandle(ix.h)}.Execute(m.tpm)
		if err != nil {
			if !isGone(err) {
				errs = append(errs, busy(err))
			}
			continue
		}
		if ix.name != nil && string(pub.NVName.Buffer) != string(ix.name) && !m.isUnwrittenOf(pub, ix.name) {
			continue
		}
		_, err = tpm2.NVUndefineSpace{
			AuthHandle: tpm2.AuthHandle{Handle: tpm2.TPMRHOwner, Auth: tpm2.PasswordAuth(m.owner)},
			NVIndex:    tpm2.NamedHandle{Handle: tpm2.TPMHandle(ix.h), Name: pub.NVName},
		}.Execute(m.tpm)
		if err != nil && !isGone(err) {
			errs = append(errs, fmt.Errorf("undefining NV index %#x: %w", ix.h, busy(err)))
		}
	}
	return errors.Join(errs...)
}

// isUnwrittenOf reports whether pub is the not-yet-written form of the
// index whose written name is name: a provisioning that stopped halfway.
func (m *Manager) isUnwrittenOf(rsp *tpm2.NVReadPublicResponse, name []byte) bool {
	p, err := rsp.NVPublic.Contents()
	if err != nil || p.Attributes.Written {
		return false
	}
	p.Attributes.Written = true
	return string(nvName(*p)) == string(name)
}
