//go:build linux

package server

import (
	"bytes"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"testing"

	"github.com/tpmcard/tpmcard/service/p11"
	"github.com/tpmcard/tpmcard/service/wire"
	"github.com/tpmcard/tpmcard/tpmcard/secret"
)

// p11conn sends the C module's signing requests on a connection of its
// own, with one logged-in session on a card.
type p11conn struct {
	t *testing.T
	w *wire.Conn
	s uint32
}

func (e *env) p11Session(serial string) *p11conn {
	e.t.Helper()
	p := &p11conn{t: e.t, w: e.raw(true).w}
	var so wire.SessionOpened
	if err := p.w.Call(&wire.OpenSession{Serial: serial}, &so); err != nil {
		e.t.Fatalf("OpenSession: %v", err)
	}
	p.s = so.Session
	p.login()
	return p
}

func (p *p11conn) login() {
	p.t.Helper()
	if err := p.w.Call(&wire.Login{Session: p.s, UserType: wire.UserNormal, PIN: testPIN.Clone()}, nil); err != nil {
		p.t.Fatalf("Login: %v", err)
	}
}

// object finds the key object of a class with a CKA_ID.
func (p *p11conn) object(class uint64, id []byte) uint64 {
	p.t.Helper()
	var objs wire.Objects
	err := p.w.Call(&wire.FindObjects{Session: p.s, Template: []wire.Attribute{
		{Type: p11.CKAClass, Value: wire.ULong(class)}, {Type: p11.CKAID, Value: id}}}, &objs)
	if err != nil || len(objs.Handles) != 1 {
		p.t.Fatalf("finding object %d of %x: %v, %v", class, id, objs.Handles, err)
	}
	return objs.Handles[0]
}

func (p *p11conn) public(id []byte) any {
	p.t.Helper()
	var v wire.AttributeValues
	err := p.w.Call(&wire.GetAttributes{Session: p.s, Object: p.object(p11.CKOPublicKey, id), Types: []uint32{p11.CKAPublicKeyInfo}}, &v)
	if err != nil || v.Values[0].Status != wire.OK {
		p.t.Fatalf("reading public key: %v, %v", err, v)
	}
	pub, err := x509.ParsePKIXPublicKey(v.Values[0].Value)
	if err != nil {
		p.t.Fatal(err)
	}
	return pub
}

func (p *p11conn) init(mech uint64, param []byte, key uint64) error {
	return p.w.Call(&wire.SignInit{Session: p.s, Mechanism: mech, Param: param, Key: key}, nil)
}

func (p *p11conn) sign(data []byte, bufLen uint64, lengthOnly, afterInit bool) (*wire.Signed, error) {
	var r wire.Signed
	if err := p.w.Call(&wire.SignData{Session: p.s, Data: data, Len: bufLen, Length: lengthOnly, AfterInit: afterInit}, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

func (p *p11conn) update(part []byte, afterInit bool) error {
	return p.w.Call(&wire.SignUpdate{Session: p.s, Part: part, AfterInit: afterInit}, nil)
}

func (p *p11conn) final(bufLen uint64, lengthOnly, afterInit bool) (*wire.Signed, error) {
	var r wire.Signed
	if err := p.w.Call(&wire.SignFinal{Session: p.s, Len: bufLen, Length: lengthOnly, AfterInit: afterInit}, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// bigBuffer is a caller's buffer larger than any signature.
const bigBuffer = 4096

// signed checks a reply that carries a signature and returns it.
func (p *p11conn) signed(r *wire.Signed, err error) []byte {
	p.t.Helper()
	if err != nil {
		p.t.Fatalf("signing: %v", err)
	}
	if r.RV != p11.CKROK || r.Len != uint64(len(r.Signature)) || len(r.Signature) == 0 {
		p.t.Fatalf("signing: rv %#x, length %d, %d signature bytes", r.RV, r.Len, len(r.Signature))
	}
	return r.Signature
}

// pipelined writes SignInit and the request after it before reading a
// reply, as the module does, and returns both outcomes.
func (p *p11conn) pipelined(init *wire.SignInit, next any) (reply any, initErr, nextErr error) {
	p.t.Helper()
	init.Session = p.s
	if err := p.w.SendMsg(init); err != nil {
		p.t.Fatal(err)
	}
	if err := p.w.SendMsg(next); err != nil {
		p.t.Fatal(err)
	}
	read := func() (any, error) {
		t, msg, err := p.w.RecvMsg()
		switch {
		case err != nil:
			p.t.Fatalf("reading a reply: %v", err)
		case t == wire.TypeError:
			return nil, msg.(*wire.StatusError)
		}
		return msg, nil
	}
	_, initErr = read()
	reply, nextErr = read()
	return reply, initErr, nextErr
}

func wantOK(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// signKeys makes a card with an ECDSA P-256 and an RSA-2048 key and
// returns a C module's session on it.
func signKeys(t *testing.T) (e *env, serial string, p *p11conn, ecID, rsaID []byte) {
	e = newEnv(t, nil, nil)
	admin := e.dial()
	serial = e.provision(admin)
	ecID = e.generate(admin, serial, wire.AlgECDSAP256)
	rsaID = e.generate(admin, serial, wire.AlgRSA2048)
	return e, serial, e.p11Session(serial), ecID, rsaID
}

// TestSignSteps: C_SignInit, C_Sign, C_SignUpdate and C_SignFinal as the
// C module sends them, for every kind of mechanism: the signatures verify
// with the key's public half, in one step and in parts.
func TestSignSteps(t *testing.T) {
	_, _, p, ecID, rsaID := signKeys(t)
	ecKey, rsaKey := p.object(p11.CKOPrivateKey, ecID), p.object(p11.CKOPrivateKey, rsaID)
	ecPub, rsaPub := p.public(ecID), p.public(rsaID).(*rsa.PublicKey)

	msg := []byte("the message to sign, in two parts")
	digest := sha256.Sum256(msg)
	digestInfo := append(append([]byte(nil), digestInfoPrefixes[1].prefix...), digest[:]...)
	pssParam := pss(p11.CKMSHA256, p11.CKGMGF1SHA256, 32)
	ecdsaOK := func(t *testing.T, sig []byte) { verifyECDSA(t, ecPub, digest[:], sig) }
	pkcs1OK := func(t *testing.T, sig []byte) {
		wantOK(t, "PKCS#1 v1.5", rsa.VerifyPKCS1v15(rsaPub, crypto.SHA256, digest[:], sig))
	}
	pssOK := func(t *testing.T, sig []byte) {
		opts := &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash}
		wantOK(t, "PSS", rsa.VerifyPSS(rsaPub, crypto.SHA256, digest[:], sig, opts))
	}

	for _, c := range []struct {
		name   string
		mech   uint64
		param  []byte
		key    uint64
		data   []byte // what C_Sign gets
		length uint64
		verify func(t *testing.T, sig []byte)
		// deterministic: the signature in parts equals the one-step one
		deterministic bool
	}{
		{"ok/ecdsa", p11.CKMECDSA, nil, ecKey, digest[:], 64, ecdsaOK, false},
		{"ok/ecdsa-sha256", p11.CKMECDSASHA256, nil, ecKey, msg, 64, ecdsaOK, false},
		{"ok/rsa-pkcs", p11.CKMRSAPKCS, nil, rsaKey, digestInfo, 256, pkcs1OK, true},
		{"ok/sha256-rsa-pkcs", p11.CKMSHA256RSAPKCS, nil, rsaKey, msg, 256, pkcs1OK, true},
		{"ok/rsa-pss", p11.CKMRSAPKCSPSS, pssParam, rsaKey, digest[:], 256, pssOK, false},
		{"ok/sha256-rsa-pss", p11.CKMSHA256RSAPKCSPSS, pssParam, rsaKey, msg, 256, pssOK, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			wantOK(t, "SignInit", p.init(c.mech, c.param, c.key))
			// A length query keeps the operation, without the TPM.
			r, err := p.sign(c.data, 0, true, true)
			if err != nil || r.RV != p11.CKROK || r.Len != c.length || r.Signature != nil {
				t.Fatalf("length query: %+v, %v", r, err)
			}
			// So does a buffer one byte too short (§5.2).
			r, err = p.sign(c.data, c.length-1, false, false)
			if err != nil || r.RV != p11.CKRBufferTooSmall || r.Len != c.length || r.Signature != nil {
				t.Fatalf("short buffer: %+v, %v", r, err)
			}
			// A buffer of exactly the length signs and ends the operation.
			r, err = p.sign(c.data, c.length, false, false)
			oneStep := p.signed(r, err)
			if r.Len > c.length {
				t.Fatalf("a %d-byte signature, %d announced", r.Len, c.length)
			}
			c.verify(t, oneStep)
			_, err = p.sign(c.data, bigBuffer, false, false)
			wantRV(t, "SignData after a signature", err, p11.CKROperationNotInitialized)

			// In parts.
			wantOK(t, "SignInit", p.init(c.mech, c.param, c.key))
			half := len(c.data) / 2
			wantOK(t, "first part", p.update(c.data[:half], true))
			wantOK(t, "empty part", p.update(nil, false))
			wantOK(t, "second part", p.update(c.data[half:], false))
			if r, err := p.final(0, true, false); err != nil || r.RV != p11.CKROK || r.Len != c.length || r.Signature != nil {
				t.Fatalf("SignFinal length query: %+v, %v", r, err)
			}
			if r, err := p.final(c.length-1, false, false); err != nil || r.RV != p11.CKRBufferTooSmall || r.Len != c.length || r.Signature != nil {
				t.Fatalf("SignFinal short buffer: %+v, %v", r, err)
			}
			inParts := p.signed(p.final(bigBuffer, false, false))
			c.verify(t, inParts)
			if c.deterministic && !bytes.Equal(inParts, oneStep) {
				t.Errorf("signature in parts %x differs from the one-step one %x", inParts, oneStep)
			}
			_, err = p.final(bigBuffer, false, false)
			wantRV(t, "SignFinal after a signature", err, p11.CKROperationNotInitialized)
		})
	}

	// SignFinal without SignUpdate signs the empty message.
	wantOK(t, "SignInit", p.init(p11.CKMECDSASHA256, nil, ecKey))
	empty := sha256.Sum256(nil)
	verifyECDSA(t, ecPub, empty[:], p.signed(p.final(bigBuffer, false, true)))
}

// TestSignRules: the refusals of each step, with their CK_RV, and what
// each leaves of the operation.
func TestSignRules(t *testing.T) {
	e, serial, p, ecID, rsaID := signKeys(t)
	ecKey, rsaKey := p.object(p11.CKOPrivateKey, ecID), p.object(p11.CKOPrivateKey, rsaID)
	ecPublic := p.object(p11.CKOPublicKey, ecID)
	ecPub := p.public(ecID)
	digest := sha256.Sum256([]byte("x"))

	t.Run("fail/sign-init", func(t *testing.T) {
		for _, c := range []struct {
			name  string
			mech  uint64
			param []byte
			key   uint64
			rv    uint64
		}{
			{"fail/no-object", p11.CKMECDSA, nil, 9999, p11.CKRKeyHandleInvalid},
			{"fail/no-handle", p11.CKMECDSA, nil, 0, p11.CKRKeyHandleInvalid},
			{"fail/public-key", p11.CKMECDSA, nil, ecPublic, p11.CKRKeyHandleInvalid},
			{"fail/unknown-mechanism", 0x4242, nil, ecKey, p11.CKRMechanismInvalid},
			{"fail/key-generation-mechanism", p11.CKMECKeyPairGen, nil, ecKey, p11.CKRMechanismInvalid},
			{"fail/mechanism-64-bit", 1<<40 | p11.CKMECDSA, nil, ecKey, p11.CKRMechanismInvalid},
			{"fail/ecdsa-on-rsa", p11.CKMECDSA, nil, rsaKey, p11.CKRKeyTypeInconsistent},
			{"fail/rsa-on-ec", p11.CKMSHA256RSAPKCS, nil, ecKey, p11.CKRKeyTypeInconsistent},
			{"fail/ecdsa-param", p11.CKMECDSA, []byte{1}, ecKey, p11.CKRMechanismParamInvalid},
			{"fail/pss-no-param", p11.CKMSHA256RSAPKCSPSS, nil, rsaKey, p11.CKRMechanismParamInvalid},
			{"fail/pss-salt", p11.CKMSHA256RSAPKCSPSS, pss(p11.CKMSHA256, p11.CKGMGF1SHA256, 20), rsaKey, p11.CKRMechanismParamInvalid},
		} {
			t.Run(c.name, func(t *testing.T) {
				wantRV(t, "SignInit", p.init(c.mech, c.param, c.key), c.rv)
				_, err := p.sign(digest[:], bigBuffer, false, false)
				wantRV(t, "SignData after a failed SignInit", err, p11.CKROperationNotInitialized)
			})
		}
		wantRV(t, "SignInit in no session", p.w.Call(&wire.SignInit{Session: 77, Mechanism: p11.CKMECDSA, Key: ecKey}, nil), p11.CKRSessionHandleInvalid)
	})

	t.Run("fail/no-operation", func(t *testing.T) {
		_, err := p.sign(digest[:], bigBuffer, false, false)
		wantRV(t, "SignData", err, p11.CKROperationNotInitialized)
		_, err = p.sign(nil, 0, true, false)
		wantRV(t, "SignData length query", err, p11.CKROperationNotInitialized)
		wantRV(t, "SignUpdate", p.update([]byte("x"), false), p11.CKROperationNotInitialized)
		_, err = p.final(bigBuffer, false, false)
		wantRV(t, "SignFinal", err, p11.CKROperationNotInitialized)
		_, err = p.final(0, true, true)
		wantRV(t, "SignFinal length query", err, p11.CKROperationNotInitialized)
	})

	t.Run("fail/operation-active", func(t *testing.T) {
		wantOK(t, "SignInit", p.init(p11.CKMECDSASHA256, nil, ecKey))
		wantRV(t, "second SignInit", p.init(p11.CKMECDSA, nil, ecKey), p11.CKROperationActive)
		// The first operation is still there, and still hashes.
		verifyECDSA(t, ecPub, digest[:], p.signed(p.sign([]byte("x"), bigBuffer, false, false)))
	})

	t.Run("fail/sign-data-after-update", func(t *testing.T) {
		wantOK(t, "SignInit", p.init(p11.CKMECDSASHA256, nil, ecKey))
		wantOK(t, "SignUpdate", p.update([]byte("x"), false))
		_, err := p.sign([]byte("x"), 0, true, false)
		wantRV(t, "SignData after SignUpdate", err, p11.CKROperationActive)
		_, err = p.final(bigBuffer, false, false)
		wantRV(t, "SignFinal after that", err, p11.CKROperationNotInitialized)
	})

	t.Run("fail/raw-data-over-cap", func(t *testing.T) {
		for _, mech := range []uint64{p11.CKMECDSA, p11.CKMRSAPKCS} {
			key := ecKey
			if mech == p11.CKMRSAPKCS {
				key = rsaKey
			}
			wantOK(t, "SignInit", p.init(mech, nil, key))
			wantOK(t, "SignUpdate up to the cap", p.update(make([]byte, maxRawDigest), false))
			wantRV(t, "SignUpdate past the cap", p.update([]byte{1}, false), p11.CKRDataLenRange)
			_, err := p.final(bigBuffer, false, false)
			wantRV(t, "SignFinal after that", err, p11.CKROperationNotInitialized)
		}
		wantOK(t, "SignInit", p.init(p11.CKMECDSA, nil, ecKey))
		_, err := p.sign(make([]byte, maxRawDigest+1), bigBuffer, false, false)
		wantRV(t, "SignData past the cap", err, p11.CKRDataLenRange)
		_, err = p.sign(digest[:], bigBuffer, false, false)
		wantRV(t, "SignData after that", err, p11.CKROperationNotInitialized)
	})

	t.Run("fail/data-ends-operation", func(t *testing.T) {
		for _, c := range []struct {
			name string
			mech uint64
			key  uint64
			data []byte
			rv   uint64
		}{
			{"fail/ecdsa-empty", p11.CKMECDSA, ecKey, nil, p11.CKRDataLenRange},
			{"fail/rsa-pkcs-not-digestinfo", p11.CKMRSAPKCS, rsaKey, digest[:], p11.CKRDataInvalid},
			{"fail/rsa-pss-not-digest", p11.CKMRSAPKCSPSS, rsaKey, []byte("x"), p11.CKRDataLenRange},
		} {
			t.Run(c.name, func(t *testing.T) {
				var param []byte
				if c.mech == p11.CKMRSAPKCSPSS {
					param = pss(p11.CKMSHA256, p11.CKGMGF1SHA256, 32)
				}
				wantOK(t, "SignInit", p.init(c.mech, param, c.key))
				_, err := p.sign(c.data, bigBuffer, false, false)
				wantRV(t, "SignData", err, c.rv)
				_, err = p.sign(c.data, bigBuffer, false, false)
				wantRV(t, "SignData after that", err, p11.CKROperationNotInitialized)
				// The same data in parts fails at SignFinal.
				wantOK(t, "SignInit", p.init(c.mech, param, c.key))
				wantOK(t, "SignUpdate", p.update(c.data, false))
				_, err = p.final(bigBuffer, false, false)
				wantRV(t, "SignFinal", err, c.rv)
				_, err = p.final(bigBuffer, false, false)
				wantRV(t, "SignFinal after that", err, p11.CKROperationNotInitialized)
			})
		}
	})

	t.Run("ok/logout-ends-operation", func(t *testing.T) {
		wantOK(t, "SignInit", p.init(p11.CKMECDSASHA256, nil, ecKey))
		wantOK(t, "Logout", p.w.Call(&wire.Logout{Session: p.s}, nil))
		_, err := p.sign([]byte("x"), 0, true, false)
		wantRV(t, "SignData after logout", err, p11.CKROperationNotInitialized)
		wantRV(t, "SignInit logged out", p.init(p11.CKMECDSASHA256, nil, ecKey), p11.CKRUserNotLoggedIn)
		p.login()
	})

	t.Run("ok/login-ended-elsewhere", func(t *testing.T) {
		// A wrong PIN on another connection ends every login of the card.
		wantOK(t, "SignInit", p.init(p11.CKMECDSASHA256, nil, ecKey))
		other := e.dial()
		err := other.Login(mustOpen(t, other, serial, false), wire.UserNormal, secret.FromString("wrong PIN 1"))
		wantStatus(t, "wrong PIN", err, wire.PINIncorrect)
		_, err = p.sign([]byte("x"), bigBuffer, false, false)
		wantRV(t, "SignData with the login gone", err, p11.CKRUserNotLoggedIn)
		p.login()
		_, err = p.sign([]byte("x"), bigBuffer, false, false)
		wantRV(t, "SignData after a new login", err, p11.CKROperationNotInitialized)
		// An operation begun before a new login ends with it.
		wantOK(t, "SignInit", p.init(p11.CKMECDSASHA256, nil, ecKey))
		err = other.Login(mustOpen(t, other, serial, false), wire.UserNormal, secret.FromString("wrong PIN 2"))
		wantStatus(t, "wrong PIN", err, wire.PINIncorrect)
		p.login()
		_, err = p.final(bigBuffer, false, false)
		wantRV(t, "SignFinal after a new login", err, p11.CKROperationNotInitialized)
	})

	t.Run("ok/close-session-ends-operation", func(t *testing.T) {
		q := e.p11Session(serial)
		key := q.object(p11.CKOPrivateKey, ecID)
		wantOK(t, "SignInit", q.init(p11.CKMECDSASHA256, nil, key))
		wantOK(t, "CloseSession", q.w.Call(&wire.CloseSession{Session: q.s}, nil))
		_, err := q.sign([]byte("x"), bigBuffer, false, false)
		wantRV(t, "SignData in the closed session", err, p11.CKRSessionHandleInvalid)
	})

	t.Run("fail/seed-random", func(t *testing.T) {
		wantRV(t, "SeedRandom", p.w.Call(&wire.SeedRandom{Session: p.s, Seed: []byte{1, 2, 3}}, nil), p11.CKRRandomSeedNotSupported)
		wantRV(t, "SeedRandom in no session", p.w.Call(&wire.SeedRandom{Session: 77, Seed: []byte{1}}, nil), p11.CKRSessionHandleInvalid)
	})
}

// TestSignPipelined: the module sends SignInit and the next step without
// reading SignInit's reply; a failed SignInit answers that step too, and
// leaves the session's operation alone.
func TestSignPipelined(t *testing.T) {
	_, _, p, ecID, rsaID := signKeys(t)
	ecKey, rsaKey := p.object(p11.CKOPrivateKey, ecID), p.object(p11.CKOPrivateKey, rsaID)
	ecPub := p.public(ecID)
	digest := sha256.Sum256([]byte("x"))
	badKey := &wire.SignInit{Mechanism: p11.CKMECDSA, Key: 9999}

	for _, c := range []struct {
		name string
		next any
	}{
		{"fail/sign-data", &wire.SignData{Session: p.s, Data: digest[:], Len: bigBuffer, AfterInit: true}},
		{"fail/sign-data-length", &wire.SignData{Session: p.s, Length: true, AfterInit: true}},
		{"fail/sign-update", &wire.SignUpdate{Session: p.s, Part: digest[:], AfterInit: true}},
		{"fail/sign-final", &wire.SignFinal{Session: p.s, Len: bigBuffer, AfterInit: true}},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, initErr, nextErr := p.pipelined(badKey, c.next)
			wantRV(t, "SignInit", initErr, p11.CKRKeyHandleInvalid)
			wantRV(t, "the step after it", nextErr, p11.CKRKeyHandleInvalid)
			// Answered once: the memory is gone.
			_, err := p.sign(digest[:], bigBuffer, false, true)
			wantRV(t, "SignData after that", err, p11.CKROperationNotInitialized)
		})
	}

	t.Run("ok/operation-active-keeps-operation", func(t *testing.T) {
		wantOK(t, "SignInit", p.init(p11.CKMECDSASHA256, nil, ecKey))
		_, initErr, nextErr := p.pipelined(&wire.SignInit{Mechanism: p11.CKMSHA256RSAPKCS, Key: rsaKey},
			&wire.SignData{Session: p.s, Data: []byte("x"), Len: bigBuffer, AfterInit: true})
		wantRV(t, "second SignInit", initErr, p11.CKROperationActive)
		wantRV(t, "SignData after it", nextErr, p11.CKROperationActive)
		// The first operation was not consumed: it signs, with its key and
		// its mechanism.
		verifyECDSA(t, ecPub, digest[:], p.signed(p.sign([]byte("x"), bigBuffer, false, false)))
	})

	t.Run("ok/success-pipelined", func(t *testing.T) {
		reply, initErr, nextErr := p.pipelined(&wire.SignInit{Mechanism: p11.CKMECDSA, Key: ecKey},
			&wire.SignData{Session: p.s, Data: digest[:], Len: bigBuffer, AfterInit: true})
		wantOK(t, "SignInit", initErr)
		wantOK(t, "SignData", nextErr)
		r, ok := reply.(*wire.Signed)
		if !ok {
			t.Fatalf("reply %T", reply)
		}
		verifyECDSA(t, ecPub, digest[:], p.signed(r, nil))
	})

	t.Run("ok/without-after-init-ignored", func(t *testing.T) {
		wantRV(t, "SignInit", p.init(p11.CKMECDSA, nil, 9999), p11.CKRKeyHandleInvalid)
		_, err := p.sign(digest[:], bigBuffer, false, false)
		wantRV(t, "SignData without key 5", err, p11.CKROperationNotInitialized)
		_, err = p.sign(digest[:], bigBuffer, false, true)
		wantRV(t, "SignData with key 5 after that", err, p11.CKROperationNotInitialized)
	})

	t.Run("ok/new-sign-init-replaces", func(t *testing.T) {
		wantRV(t, "SignInit", p.init(p11.CKMECDSA, nil, 9999), p11.CKRKeyHandleInvalid)
		_, initErr, nextErr := p.pipelined(&wire.SignInit{Mechanism: 0x4242, Key: ecKey},
			&wire.SignFinal{Session: p.s, Len: bigBuffer, AfterInit: true})
		wantRV(t, "second SignInit", initErr, p11.CKRMechanismInvalid)
		wantRV(t, "SignFinal", nextErr, p11.CKRMechanismInvalid)

		wantRV(t, "SignInit", p.init(p11.CKMECDSA, nil, 9999), p11.CKRKeyHandleInvalid)
		reply, initErr, nextErr := p.pipelined(&wire.SignInit{Mechanism: p11.CKMECDSASHA256, Key: ecKey},
			&wire.SignUpdate{Session: p.s, Part: []byte("x"), AfterInit: true})
		wantOK(t, "SignInit that works", initErr)
		wantOK(t, "SignUpdate", nextErr)
		if _, ok := reply.(*wire.Ack); !ok {
			t.Fatalf("SignUpdate reply %T", reply)
		}
		verifyECDSA(t, ecPub, digest[:], p.signed(p.final(bigBuffer, false, false)))
	})
}
