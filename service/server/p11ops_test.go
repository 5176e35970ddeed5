//go:build linux

package server

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"math/big"
	"testing"

	"github.com/tpmcard/tpmcard/service/p11"
	"github.com/tpmcard/tpmcard/service/wire"
)

// TestMechanismInfoFlags: every mechanism is listed with the functions it
// does: the signing ones sign and verify, the SHA-1 ones only verify, the
// digests only digest, without key sizes (PKCS#11 v2.40 §5.5).
func TestMechanismInfoFlags(t *testing.T) {
	flags := map[uint32]uint32{}
	for _, m := range mechanismList(false) {
		flags[m.Mechanism] = m.Flags
		if m.Flags&ckfDigest != 0 && (m.MinKeyBits != 0 || m.MaxKeyBits != 0) {
			t.Errorf("digest %#x has key sizes %d-%d", m.Mechanism, m.MinKeyBits, m.MaxKeyBits)
		}
	}
	for _, c := range []struct {
		name       string
		mech       uint32
		want, deny uint32
	}{
		{"ok/ecdsa", p11.CKMECDSA, p11.CKFSign | ckfVerify, ckfDigest},
		{"ok/ecdsa-sha256", p11.CKMECDSASHA256, p11.CKFSign | ckfVerify, ckfDigest},
		{"ok/ecdsa-sha1-verifies-only", ckmECDSASHA1, ckfVerify, p11.CKFSign},
		{"ok/rsa-pkcs", p11.CKMRSAPKCS, p11.CKFSign | ckfVerify, ckfDigest},
		{"ok/sha512-rsa-pss", p11.CKMSHA512RSAPKCSPSS, p11.CKFSign | ckfVerify, 0},
		{"ok/sha1-rsa-pkcs-verifies-only", ckmSHA1RSAPKCS, ckfVerify, p11.CKFSign},
		{"ok/sha1-rsa-pss-verifies-only", ckmSHA1RSAPKCSPSS, ckfVerify, p11.CKFSign},
		{"ok/sha1", p11.CKMSHA1, ckfDigest, p11.CKFSign | ckfVerify},
		{"ok/sha256", p11.CKMSHA256, ckfDigest, p11.CKFSign | ckfVerify},
		{"ok/sha384", p11.CKMSHA384, ckfDigest, p11.CKFSign | ckfVerify},
		{"ok/sha512", p11.CKMSHA512, ckfDigest, p11.CKFSign | ckfVerify},
	} {
		t.Run(c.name, func(t *testing.T) {
			f, ok := flags[c.mech]
			if !ok {
				t.Fatalf("mechanism %#x not listed", c.mech)
			}
			if f&c.want != c.want || f&c.deny != 0 {
				t.Errorf("flags %#x, want %#x set and %#x clear", f, c.want, c.deny)
			}
		})
	}
	for m := range verifyMechs {
		if flags[uint32(m)]&ckfVerify == 0 {
			t.Errorf("verify mechanism %#x not listed with CKF_VERIFY", m)
		}
	}
	for m := range digestMechs {
		if flags[uint32(m)]&ckfDigest == 0 {
			t.Errorf("digest mechanism %#x not listed with CKF_DIGEST", m)
		}
	}
}

func (p *p11conn) digestInit(mech uint64, param []byte) error {
	return p.w.Call(&wire.DigestInit{Session: p.s, Mechanism: mech, Param: param}, nil)
}

func (p *p11conn) digest(data []byte, bufLen uint64, lengthOnly, afterInit bool) (*wire.Digested, error) {
	var r wire.Digested
	if err := p.w.Call(&wire.DigestData{Session: p.s, Data: data, Len: bufLen, Length: lengthOnly, AfterInit: afterInit}, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

func (p *p11conn) digestFinal(bufLen uint64, lengthOnly bool) (*wire.Digested, error) {
	var r wire.Digested
	if err := p.w.Call(&wire.DigestFinal{Session: p.s, Len: bufLen, Length: lengthOnly}, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// TestDigestSteps: C_DigestInit, C_Digest, C_DigestUpdate, C_DigestKey
// and C_DigestFinal against the real service, for every digest, in one
// step and in parts, with PKCS#11's length rules and operation states.
func TestDigestSteps(t *testing.T) {
	_, _, p, ecID, _ := signKeys(t)
	msg := []byte("the message to digest, in parts")
	s1, s256, s384, s512 := sha1.Sum(msg), sha256.Sum256(msg), sha512.Sum384(msg), sha512.Sum512(msg)
	for _, c := range []struct {
		name string
		mech uint64
		want []byte
	}{
		{"ok/sha1", p11.CKMSHA1, s1[:]},
		{"ok/sha256", p11.CKMSHA256, s256[:]},
		{"ok/sha384", p11.CKMSHA384, s384[:]},
		{"ok/sha512", p11.CKMSHA512, s512[:]},
	} {
		t.Run(c.name, func(t *testing.T) {
			wantOK(t, "DigestInit", p.digestInit(c.mech, nil))
			// A length query and a short buffer keep the operation.
			r, err := p.digest(msg, 0, true, true)
			if err != nil || r.RV != 0 || r.Len != uint64(len(c.want)) || r.Digest != nil {
				t.Fatalf("length query: %+v, %v", r, err)
			}
			r, err = p.digest(msg, uint64(len(c.want)-1), false, false)
			if err != nil || r.RV != p11.CKRBufferTooSmall || r.Len != uint64(len(c.want)) {
				t.Fatalf("short buffer: %+v, %v", r, err)
			}
			r, err = p.digest(msg, 64, false, false)
			if err != nil || !bytes.Equal(r.Digest, c.want) || r.Len != uint64(len(c.want)) {
				t.Fatalf("digest: %+v, %v", r, err)
			}
			// The operation ended.
			_, err = p.digest(msg, 64, false, false)
			wantRV(t, "C_Digest after the digest", err, p11.CKROperationNotInitialized)

			// In parts.
			wantOK(t, "DigestInit", p.digestInit(c.mech, nil))
			wantOK(t, "DigestUpdate", p.w.Call(&wire.DigestUpdate{Session: p.s, Part: msg[:5], AfterInit: true}, nil))
			wantOK(t, "DigestUpdate", p.w.Call(&wire.DigestUpdate{Session: p.s, Part: msg[5:]}, nil))
			r, err = p.digestFinal(0, true)
			if err != nil || r.Len != uint64(len(c.want)) {
				t.Fatalf("final length query: %+v, %v", r, err)
			}
			r, err = p.digestFinal(64, false)
			if err != nil || !bytes.Equal(r.Digest, c.want) {
				t.Fatalf("DigestFinal: %+v, %v", r, err)
			}
			_, err = p.digestFinal(64, false)
			wantRV(t, "C_DigestFinal after the digest", err, p11.CKROperationNotInitialized)
		})
	}

	t.Run("ok/empty-message", func(t *testing.T) {
		wantOK(t, "DigestInit", p.digestInit(p11.CKMSHA256, nil))
		empty := sha256.Sum256(nil)
		r, err := p.digestFinal(32, false)
		if err != nil || !bytes.Equal(r.Digest, empty[:]) {
			t.Fatalf("DigestFinal of nothing: %+v, %v", r, err)
		}
	})
	t.Run("ok/no-login-needed", func(t *testing.T) {
		wantOK(t, "Logout", p.w.Call(&wire.Logout{Session: p.s}, nil))
		defer p.login()
		wantOK(t, "DigestInit", p.digestInit(p11.CKMSHA256, nil))
		if _, err := p.digest(msg, 32, false, false); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("fail/operation-active", func(t *testing.T) {
		wantOK(t, "DigestInit", p.digestInit(p11.CKMSHA256, nil))
		wantRV(t, "second DigestInit", p.digestInit(p11.CKMSHA1, nil), p11.CKROperationActive)
		// The first digest is untouched.
		r, err := p.digest(msg, 32, false, false)
		if err != nil || !bytes.Equal(r.Digest, s256[:]) {
			t.Fatalf("digest after the refused DigestInit: %+v, %v", r, err)
		}
	})
	for _, c := range []struct {
		name  string
		mech  uint64
		param []byte
		rv    uint64
	}{
		{"fail/sign-mechanism", p11.CKMECDSASHA256, nil, p11.CKRMechanismInvalid},
		{"fail/unknown-mechanism", 0x12345, nil, p11.CKRMechanismInvalid},
		{"fail/mechanism-above-32-bits", 1<<32 | p11.CKMSHA256, nil, p11.CKRMechanismInvalid},
		{"fail/parameter", p11.CKMSHA256, []byte{1}, p11.CKRMechanismParamInvalid},
	} {
		t.Run(c.name, func(t *testing.T) {
			wantRV(t, "DigestInit", p.digestInit(c.mech, c.param), c.rv)
			// Pipelined, the next step answers with DigestInit's CK_RV.
			_, err := p.digest(msg, 64, false, true)
			wantRV(t, "DigestData after the failed DigestInit", err, c.rv)
			// Without AfterInit it is forgotten: no operation.
			_, err = p.digest(msg, 64, false, false)
			wantRV(t, "DigestData", err, p11.CKROperationNotInitialized)
		})
	}
	t.Run("fail/digest-after-update", func(t *testing.T) {
		wantOK(t, "DigestInit", p.digestInit(p11.CKMSHA256, nil))
		wantOK(t, "DigestUpdate", p.w.Call(&wire.DigestUpdate{Session: p.s, Part: msg}, nil))
		_, err := p.digest(msg, 64, false, false)
		wantRV(t, "C_Digest after C_DigestUpdate", err, p11.CKROperationActive)
		_, err = p.digestFinal(64, false)
		wantRV(t, "the operation ended", err, p11.CKROperationNotInitialized)
	})
	t.Run("fail/digest-key-indigestible", func(t *testing.T) {
		for _, class := range []uint64{p11.CKOPrivateKey, p11.CKOPublicKey} {
			wantOK(t, "DigestInit", p.digestInit(p11.CKMSHA256, nil))
			err := p.w.Call(&wire.DigestKey{Session: p.s, Key: p.object(class, ecID)}, nil)
			wantRV(t, "DigestKey", err, ckrKeyIndigestible)
			_, err = p.digestFinal(64, false)
			wantRV(t, "the failed DigestKey ended the digest", err, p11.CKROperationNotInitialized)
		}
	})
	t.Run("fail/digest-key-not-a-key", func(t *testing.T) {
		wantOK(t, "DigestInit", p.digestInit(p11.CKMSHA256, nil))
		err := p.w.Call(&wire.DigestKey{Session: p.s, Key: 999999}, nil)
		wantRV(t, "DigestKey of no object", err, p11.CKRKeyHandleInvalid)
	})
	t.Run("fail/no-operation", func(t *testing.T) {
		err := p.w.Call(&wire.DigestUpdate{Session: p.s, Part: msg}, nil)
		wantRV(t, "DigestUpdate", err, p11.CKROperationNotInitialized)
		err = p.w.Call(&wire.DigestKey{Session: p.s, Key: 1}, nil)
		wantRV(t, "DigestKey", err, p11.CKROperationNotInitialized)
	})
	t.Run("ok/closing-the-session-ends-it", func(t *testing.T) {
		var so wire.SessionOpened
		wantOK(t, "OpenSession", p.w.Call(&wire.OpenSession{Serial: p.serial(t)}, &so))
		wantOK(t, "DigestInit", p.w.Call(&wire.DigestInit{Session: so.Session, Mechanism: p11.CKMSHA256}, nil))
		wantOK(t, "CloseSession", p.w.Call(&wire.CloseSession{Session: so.Session}, nil))
		err := p.w.Call(&wire.DigestFinal{Session: so.Session, Len: 64}, nil)
		wantRV(t, "DigestFinal in the closed session", err, p11.CKRSessionHandleInvalid)
	})
}

// serial reads the session's card serial through SessionInfo's slot:
// the test's own card.
func (p *p11conn) serial(t *testing.T) string {
	t.Helper()
	var cs wire.Cards
	wantOK(t, "ListCards", p.w.Call(&wire.ListCards{}, &cs))
	return cs.Cards[0].Serial
}

func (p *p11conn) verifyInit(mech uint64, param []byte, key uint64) error {
	return p.w.Call(&wire.VerifyInit{Session: p.s, Mechanism: mech, Param: param, Key: key}, nil)
}

func (p *p11conn) verify(data, sig []byte, afterInit bool) error {
	return p.w.Call(&wire.VerifyData{Session: p.s, Data: data, Signature: sig, AfterInit: afterInit}, nil)
}

// TestVerifySteps: the card's own signatures verify through C_Verify and
// C_VerifyUpdate/C_VerifyFinal with its public keys, for every kind of
// mechanism; a changed signature is CKR_SIGNATURE_INVALID, one of the
// wrong length CKR_SIGNATURE_LEN_RANGE, and either ends the operation.
func TestVerifySteps(t *testing.T) {
	_, _, p, ecID, rsaID := signKeys(t)
	ecKey, rsaKey := p.object(p11.CKOPrivateKey, ecID), p.object(p11.CKOPrivateKey, rsaID)
	ecPub, rsaPub := p.object(p11.CKOPublicKey, ecID), p.object(p11.CKOPublicKey, rsaID)
	rsaPublic := p.public(rsaID).(*rsa.PublicKey)

	msg := []byte("the message that was signed, in two parts")
	digest := sha256.Sum256(msg)
	digestInfo := append(append([]byte(nil), digestInfoPrefixes[1].prefix...), digest[:]...)
	pssParam := pss(p11.CKMSHA256, p11.CKGMGF1SHA256, 32)
	for _, c := range []struct {
		name      string
		mech      uint64
		param     []byte
		key, pub  uint64
		data      []byte
		sigLength int
	}{
		{"ok/ecdsa", p11.CKMECDSA, nil, ecKey, ecPub, digest[:], 64},
		{"ok/ecdsa-sha256", p11.CKMECDSASHA256, nil, ecKey, ecPub, msg, 64},
		{"ok/ecdsa-sha384", p11.CKMECDSASHA384, nil, ecKey, ecPub, msg, 64},
		{"ok/rsa-pkcs", p11.CKMRSAPKCS, nil, rsaKey, rsaPub, digestInfo, 256},
		{"ok/sha256-rsa-pkcs", p11.CKMSHA256RSAPKCS, nil, rsaKey, rsaPub, msg, 256},
		{"ok/sha512-rsa-pkcs", p11.CKMSHA512RSAPKCS, nil, rsaKey, rsaPub, msg, 256},
		{"ok/rsa-pss", p11.CKMRSAPKCSPSS, pssParam, rsaKey, rsaPub, digest[:], 256},
		{"ok/sha256-rsa-pss", p11.CKMSHA256RSAPKCSPSS, pssParam, rsaKey, rsaPub, msg, 256},
	} {
		t.Run(c.name, func(t *testing.T) {
			wantOK(t, "SignInit", p.init(c.mech, c.param, c.key))
			sig := p.signed(p.sign(c.data, bigBuffer, false, true))
			if len(sig) != c.sigLength {
				t.Fatalf("a %d-byte signature", len(sig))
			}
			// One step.
			wantOK(t, "VerifyInit", p.verifyInit(c.mech, c.param, c.pub))
			wantOK(t, "Verify", p.verify(c.data, sig, true))
			err := p.verify(c.data, sig, false)
			wantRV(t, "Verify after the verification", err, p11.CKROperationNotInitialized)
			// In parts.
			wantOK(t, "VerifyInit", p.verifyInit(c.mech, c.param, c.pub))
			wantOK(t, "VerifyUpdate", p.w.Call(&wire.VerifyUpdate{Session: p.s, Part: c.data[:7], AfterInit: true}, nil))
			wantOK(t, "VerifyUpdate", p.w.Call(&wire.VerifyUpdate{Session: p.s, Part: c.data[7:]}, nil))
			wantOK(t, "VerifyFinal", p.w.Call(&wire.VerifyFinal{Session: p.s, Signature: sig}, nil))
			// C_Verify's data in parts, as the module sends a large one.
			wantOK(t, "VerifyInit", p.verifyInit(c.mech, c.param, c.pub))
			wantOK(t, "Verify (parts follow)", p.w.Call(&wire.VerifyData{Session: p.s, Parts: true, AfterInit: true}, nil))
			wantOK(t, "VerifyUpdate", p.w.Call(&wire.VerifyUpdate{Session: p.s, Part: c.data}, nil))
			wantOK(t, "VerifyFinal", p.w.Call(&wire.VerifyFinal{Session: p.s, Signature: sig}, nil))

			// A changed bit anywhere is an invalid signature; the
			// operation ends.
			bad := bytes.Clone(sig)
			bad[len(bad)/2] ^= 0x10
			wantOK(t, "VerifyInit", p.verifyInit(c.mech, c.param, c.pub))
			wantRV(t, "Verify of a changed signature", p.verify(c.data, bad, true), p11.CKRSignatureInvalid)
			wantRV(t, "the operation ended", p.verify(c.data, sig, false), p11.CKROperationNotInitialized)
			changed := bytes.Clone(c.data)
			changed[0] ^= 1
			wantOK(t, "VerifyInit", p.verifyInit(c.mech, c.param, c.pub))
			wantRV(t, "Verify of changed data", p.verify(changed, sig, true), p11.CKRSignatureInvalid)
			// The wrong length is CKR_SIGNATURE_LEN_RANGE.
			for _, n := range []int{0, len(sig) - 1, len(sig) + 1} {
				wantOK(t, "VerifyInit", p.verifyInit(c.mech, c.param, c.pub))
				wantRV(t, "Verify of a short or long signature", p.verify(c.data, append(bytes.Clone(sig), 0)[:n], true), p11.CKRSignatureLenRange)
				wantRV(t, "the operation ended", p.verify(c.data, sig, false), p11.CKROperationNotInitialized)
			}
			wantOK(t, "VerifyInit", p.verifyInit(c.mech, c.param, c.pub))
			wantOK(t, "VerifyUpdate", p.w.Call(&wire.VerifyUpdate{Session: p.s, Part: c.data, AfterInit: true}, nil))
			wantRV(t, "VerifyFinal of a changed signature", p.w.Call(&wire.VerifyFinal{Session: p.s, Signature: bad}, nil), p11.CKRSignatureInvalid)
		})
	}

	t.Run("ok/sha1-mechanisms-verify-software-signatures", func(t *testing.T) {
		// No card key signs with SHA-1 here, but its signatures verify:
		// made with the same padding over a SHA-1 digest by the TPM.
		d := sha1.Sum(msg)
		di := append(append([]byte(nil), digestInfoPrefixes[0].prefix...), d[:]...)
		wantOK(t, "SignInit", p.init(p11.CKMRSAPKCS, nil, rsaKey))
		sig := p.signed(p.sign(di, bigBuffer, false, true))
		wantOK(t, "VerifyInit", p.verifyInit(ckmSHA1RSAPKCS, nil, rsaPub))
		wantOK(t, "Verify", p.verify(msg, sig, true))
		if err := rsa.VerifyPKCS1v15(rsaPublic, crypto.SHA1, d[:], sig); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("ok/no-login-needed", func(t *testing.T) {
		wantOK(t, "SignInit", p.init(p11.CKMECDSASHA256, nil, ecKey))
		sig := p.signed(p.sign(msg, bigBuffer, false, true))
		wantOK(t, "Logout", p.w.Call(&wire.Logout{Session: p.s}, nil))
		defer p.login()
		wantOK(t, "VerifyInit", p.verifyInit(p11.CKMECDSASHA256, nil, ecPub))
		wantOK(t, "Verify", p.verify(msg, sig, true))
	})
	for _, c := range []struct {
		name  string
		mech  uint64
		param []byte
		key   uint64
		rv    uint64
	}{
		{"fail/private-key", p11.CKMECDSASHA256, nil, ecKey, p11.CKRKeyFunctionNotPermitted},
		{"fail/no-such-key", p11.CKMECDSASHA256, nil, 424242, p11.CKRKeyHandleInvalid},
		{"fail/digest-mechanism", p11.CKMSHA256, nil, ecPub, p11.CKRMechanismInvalid},
		{"fail/rsa-mechanism-ec-key", p11.CKMSHA256RSAPKCS, nil, ecPub, p11.CKRKeyTypeInconsistent},
		{"fail/ecdsa-mechanism-rsa-key", p11.CKMECDSA, nil, rsaPub, p11.CKRKeyTypeInconsistent},
		{"fail/parameter-on-ecdsa", p11.CKMECDSA, []byte{0}, ecPub, p11.CKRMechanismParamInvalid},
		{"fail/pss-without-parameter", p11.CKMRSAPKCSPSS, nil, rsaPub, p11.CKRMechanismParamInvalid},
		{"fail/pss-mgf-other-hash", p11.CKMRSAPKCSPSS, pss(p11.CKMSHA256, p11.CKGMGF1SHA1, 32), rsaPub, p11.CKRMechanismParamInvalid},
		{"fail/pss-hash-not-the-mechanism's", p11.CKMSHA256RSAPKCSPSS, pss(p11.CKMSHA384, p11.CKGMGF1SHA384, 48), rsaPub, p11.CKRMechanismParamInvalid},
	} {
		t.Run(c.name, func(t *testing.T) {
			wantRV(t, "VerifyInit", p.verifyInit(c.mech, c.param, c.key), c.rv)
			wantRV(t, "Verify after it, pipelined", p.verify(msg, make([]byte, 64), true), c.rv)
			wantRV(t, "Verify", p.verify(msg, make([]byte, 64), false), p11.CKROperationNotInitialized)
		})
	}
	t.Run("fail/operation-active", func(t *testing.T) {
		wantOK(t, "VerifyInit", p.verifyInit(p11.CKMECDSASHA256, nil, ecPub))
		wantRV(t, "second VerifyInit", p.verifyInit(p11.CKMECDSASHA384, nil, ecPub), p11.CKROperationActive)
		wantOK(t, "VerifyUpdate", p.w.Call(&wire.VerifyUpdate{Session: p.s, Part: msg}, nil))
		wantRV(t, "Verify after VerifyUpdate", p.verify(msg, make([]byte, 64), false), p11.CKROperationActive)
		wantRV(t, "the operation ended", p.w.Call(&wire.VerifyFinal{Session: p.s, Signature: make([]byte, 64)}, nil), p11.CKROperationNotInitialized)
	})
	t.Run("fail/data-length", func(t *testing.T) {
		wantOK(t, "VerifyInit", p.verifyInit(p11.CKMRSAPKCSPSS, pssParam, rsaPub))
		wantRV(t, "PSS over a message, not a digest", p.verify(msg, make([]byte, 256), true), p11.CKRDataLenRange)
		wantOK(t, "VerifyInit", p.verifyInit(p11.CKMRSAPKCS, nil, rsaPub))
		wantRV(t, "CKM_RSA_PKCS over more than k-11 bytes", p.verify(make([]byte, 246), make([]byte, 256), true), p11.CKRDataLenRange)
		wantOK(t, "VerifyInit", p.verifyInit(p11.CKMECDSA, nil, ecPub))
		wantOK(t, "VerifyUpdate", p.w.Call(&wire.VerifyUpdate{Session: p.s, Part: make([]byte, maxRawDigest), AfterInit: true}, nil))
		wantRV(t, "CKM_ECDSA over more than a digest", p.w.Call(&wire.VerifyUpdate{Session: p.s, Part: []byte{1}}, nil), p11.CKRDataLenRange)
	})
	t.Run("ok/sign-and-verify-at-once-in-one-session", func(t *testing.T) {
		wantOK(t, "SignInit", p.init(p11.CKMECDSASHA256, nil, ecKey))
		wantOK(t, "VerifyInit", p.verifyInit(p11.CKMECDSASHA256, nil, ecPub))
		wantOK(t, "DigestInit", p.digestInit(p11.CKMSHA256, nil))
		sig := p.signed(p.sign(msg, bigBuffer, false, false))
		wantOK(t, "Verify", p.verify(msg, sig, false))
		r, err := p.digest(msg, 64, false, false)
		if err != nil || !bytes.Equal(r.Digest, digest[:]) {
			t.Fatalf("digest: %+v, %v", r, err)
		}
	})
}

// TestVerifyPSSSalt: software verifies PSS with any salt length, each
// exactly, a salt of 0 included (crypto/rsa would take any length there).
func TestVerifyPSSSalt(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	digest := sha256.Sum256([]byte("salted"))
	for _, c := range []struct {
		name           string
		signSalt, sLen int
		valid          bool
	}{
		{"ok/no-salt", 0, 0, true},
		{"ok/salt-20", 20, 20, true},
		{"ok/salt-32", 32, 32, true},
		{"fail/salt-20-said-0", 20, 0, false},
		{"fail/no-salt-said-32", 0, 32, false},
		{"fail/salt-32-said-20", 32, 20, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			sig := signPSSSalt(t, key, digest[:], c.signSalt)
			if n := pssSaltLen(&key.PublicKey, sig, crypto.SHA256); n != c.signSalt {
				t.Fatalf("salt length %d, signed with %d", n, c.signSalt)
			}
			h, salt, err := verifyPSSParams(pss(p11.CKMSHA256, p11.CKGMGF1SHA256, uint64(c.sLen)), crypto.SHA256)
			if err != nil {
				t.Fatal(err)
			}
			op := &verifyOp{pub: &key.PublicKey, m: mech{rsa: true, pss: true}, pssOpt: &rsa.PSSOptions{Hash: h, SaltLength: salt}}
			err = op.check(digest[:], sig)
			if c.valid {
				wantOK(t, "check", err)
			} else {
				wantRV(t, "check", err, p11.CKRSignatureInvalid)
			}
		})
	}
}

// signPSSSalt signs a SHA-256 digest with RSASSA-PSS and a salt of n
// bytes (RFC 8017 §9.1.1), which crypto/rsa cannot do for n = 0.
func signPSSSalt(t *testing.T, key *rsa.PrivateKey, digest []byte, n int) []byte {
	t.Helper()
	salt := make([]byte, n)
	if _, err := rand.Read(salt); err != nil {
		t.Fatal(err)
	}
	emBits := key.N.BitLen() - 1
	emLen := (emBits + 7) / 8
	h := sha256.New()
	h.Write(make([]byte, 8))
	h.Write(digest)
	h.Write(salt)
	mh := h.Sum(nil)
	db := make([]byte, emLen-len(mh)-1)
	db[len(db)-n-1] = 1
	copy(db[len(db)-n:], salt)
	for i, c := 0, uint32(0); i < len(db); c++ {
		m := sha256.New()
		m.Write(mh)
		m.Write([]byte{byte(c >> 24), byte(c >> 16), byte(c >> 8), byte(c)})
		for _, x := range m.Sum(nil) {
			if i < len(db) {
				db[i] ^= x
				i++
			}
		}
	}
	db[0] &= 0xff >> (8*emLen - emBits)
	em := append(append(db, mh...), 0xbc)
	s := new(big.Int).Exp(new(big.Int).SetBytes(em), key.D, key.N)
	return s.FillBytes(make([]byte, key.Size()))
}
