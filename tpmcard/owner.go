package tpmcard

import (
	"errors"
	"fmt"

	"github.com/google/go-tpm/tpm2"
)

// The commands that need the owner's authorization: defining, reading and
// undefining a card's NV indices. The authorization is an HMAC in the
// owner session (ownerAuth), never the password itself.

// defineIndex runs NV_DefineSpace with the authValue sent encrypted through
// a salted session.
// The authValue is encrypted before go-tpm marshals the command, so that
// no plain copy of it is left in go-tpm's buffers.
func (m *Manager) defineIndex(pub tpm2.TPMSNVPublic, auth []byte) error {
	enc, err := m.saltedSession(nil, sessionDir{in: true})
	if err != nil {
		return fmt.Errorf("opening session: %w", busy(err))
	}
	defer enc.Close()
	owner, err := m.ownerAuth()
	if err != nil {
		return err
	}
	sealed, encOnce, err := enc.sealParam(auth)
	if err != nil {
		return err
	}
	_, err = tpm2.NVDefineSpace{
		AuthHandle: tpm2.AuthHandle{Handle: tpm2.TPMRHOwner, Auth: owner},
		Auth:       tpm2.TPM2BAuth{Buffer: sealed},
		PublicInfo: tpm2.New2B(pub),
	}.Execute(m.tpm, encOnce)
	switch {
	case err == nil:
		return nil
	case isTPM(err, tpm2.TPMRCNVSpace):
		return fmt.Errorf("defining NV index %#x: %w", pub.NVIndex, ErrNVSpace)
	case isAuthFailure(err):
		m.dropOwnerSession()
		return fmt.Errorf("defining NV index %#x: owner authorization refused: %w", pub.NVIndex, err)
	}
	return fmt.Errorf("defining NV index %#x: %w", pub.NVIndex, busy(err))
}

// readCounter reads an index's pinCount and pinLimit with the owner's
// authorization (Part 3 §31.13); it needs no PIN and does not move the
// counter.
func (m *Manager) readCounter(h uint32, name []byte) (pinData, error) {
	owner, err := m.ownerAuth()
	if err != nil {
		return pinData{}, err
	}
	rsp, err := tpm2.NVRead{
		AuthHandle: tpm2.AuthHandle{Handle: tpm2.TPMRHOwner, Auth: owner},
		NVIndex:    tpm2.NamedHandle{Handle: tpm2.TPMHandle(h), Name: tpm2.TPM2BName{Buffer: name}},
		Size:       8,
	}.Execute(m.tpm)
	if err != nil {
		if isGone(err) {
			return pinData{}, fmt.Errorf("%w (NV index %#x)", ErrCardLost, h)
		}
		if isAuthFailure(err) {
			m.dropOwnerSession()
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
		owner, err := m.ownerAuth()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		_, err = tpm2.NVUndefineSpace{
			AuthHandle: tpm2.AuthHandle{Handle: tpm2.TPMRHOwner, Auth: owner},
			NVIndex:    tpm2.NamedHandle{Handle: tpm2.TPMHandle(ix.h), Name: pub.NVName},
		}.Execute(m.tpm)
		switch {
		case err == nil || isGone(err):
		case isAuthFailure(err):
			m.dropOwnerSession()
			errs = append(errs, fmt.Errorf("undefining NV index %#x: owner authorization refused: %w", ix.h, err))
		default:
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
