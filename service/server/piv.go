package server

import (
	"errors"
	"fmt"

	"github.com/tpmcard/tpmcard/service/piv"
	"github.com/tpmcard/tpmcard/tpmcard"
	"github.com/tpmcard/tpmcard/tpmcard/secret"
)

// pivCard is a card in a PIV reader: piv.Card on the same Manager calls
// and login state as the socket API. The reader is one application (a
// conn without a socket) in the card's logins, so a PIV VERIFY is a login
// like C_Login: the TPM checks and counts the PIN, a wrong one ends every
// application's login of the card, and a logout of the last application
// makes the Manager forget the PIN proof.
//
// A key that needs the PIN for every signature (tpmcard.PINAlways) signs
// once per VERIFY: VERIFY then also has the TPM check the PIN for a
// proof (Manager.ProvePIN), which the next signature with such a key
// uses up, as C_Login(CKU_CONTEXT_SPECIFIC) does for the PKCS#11 module.
//
// The applet calls it from one goroutine; the logins' locks keep it safe
// against the socket API's applications.
type pivCard struct {
	s      *Server
	serial string
	c      *conn // the reader, as an application of the card
	always bool  // some slot holds a PINAlways key
	proof  *tpmcard.PINProof
}

var _ piv.Card = (*pivCard)(nil)

// newPIVCard returns the card serial as the reader named reader sees it;
// slots are the card key IDs in its PIV slots.
func (s *Server) newPIVCard(serial, reader string, slots map[byte][]byte) *pivCard {
	c := &conn{s: s, log: s.log.With().Str("reader", reader).Logger()}
	p := &pivCard{s: s, serial: serial, c: c}
	for _, id := range slots {
		if k, err := s.m.Key(serial, id); err == nil && k.PINUse == tpmcard.PINAlways {
			p.always = true
		}
	}
	return p
}

func (p *pivCard) Verify(pin secret.Secret) error {
	p.proof.Wipe()
	p.proof = nil
	if user, _ := p.s.logins.state(p.c, p.serial); !user {
		err := p.s.logins.loginUser(p.c, p.serial, pin)
		p.c.auditCredential(p.serial, "PIV VERIFY", err)
		if err != nil || !p.always {
			return err
		}
	}
	// Logged in already, or a key needs the PIN at each signature: the
	// TPM checks the PIN again, counted as any entry of it.
	proof, err := p.s.logins.provePIN(p.c, p.serial, pin)
	p.c.auditCredential(p.serial, "PIV VERIFY", err)
	if err != nil {
		return err
	}
	p.proof = proof
	return nil
}

func (p *pivCard) Verified() bool {
	user, _ := p.s.logins.state(p.c, p.serial)
	return user
}

func (p *pivCard) Logout() {
	p.proof.Wipe()
	p.proof = nil
	p.s.logins.logout(p.c, p.serial)
}

func (p *pivCard) Status() (*tpmcard.CardStatus, error) { return p.s.m.Status(p.serial) }

func (p *pivCard) ChangePIN(oldPIN, newPIN secret.Secret) error {
	err := p.s.logins.withCard(p.serial, func() error { return p.s.m.ChangePIN(p.serial, oldPIN, newPIN) })
	p.c.auditCredential(p.serial, "PIN changed (PIV CHANGE REFERENCE DATA)", err)
	return err
}

func (p *pivCard) ChangePUK(oldPUK, newPUK secret.Secret) error {
	err := p.s.logins.withCard(p.serial, func() error { return p.s.m.ChangePUK(p.serial, oldPUK, newPUK) })
	p.c.auditCredential(p.serial, "PUK changed (PIV CHANGE REFERENCE DATA)", err)
	return err
}

func (p *pivCard) Unblock(puk, newPIN secret.Secret) error {
	p.proof.Wipe()
	p.proof = nil
	err := p.s.logins.withCard(p.serial, func() error { return p.s.m.Unblock(p.serial, puk, newPIN) })
	p.c.auditCredential(p.serial, "card unblocked (PIV RESET RETRY COUNTER)", err)
	return err
}

func (p *pivCard) Sign(keyID, digest []byte, opts tpmcard.SignOptions) ([]byte, error) {
	var sig []byte
	err := p.s.logins.withUser(p.c, p.serial, func() (err error) {
		k, err := p.s.m.Key(p.serial, keyID)
		if err != nil {
			return err
		}
		if k.PINUse == tpmcard.PINAlways {
			if p.proof == nil {
				return fmt.Errorf("%w: key %x needs VERIFY before each signature", tpmcard.ErrNotLoggedIn, keyID)
			}
			opts.PIN, p.proof = p.proof, nil
		}
		sig, err = p.s.m.Sign(p.serial, keyID, digest, opts)
		return err
	})
	if err != nil && !errors.Is(err, tpmcard.ErrNotLoggedIn) {
		p.c.log.Warn().Str("card", p.serial).Hex("key", keyID).Err(err).Msg("PIV signature failed")
	} else if err == nil {
		p.c.log.Debug().Str("card", p.serial).Hex("key", keyID).Msg("PIV signature")
	}
	return sig, err
}

func (p *pivCard) Key(keyID []byte) (tpmcard.KeyInfo, error) { return p.s.m.Key(p.serial, keyID) }

func (p *pivCard) Certificate(keyID []byte) ([]byte, error) {
	ci, err := p.s.m.Certificate(p.serial, keyID)
	if err != nil {
		return nil, err
	}
	return ci.DER, nil
}
