//go:build linux

package server

import (
	"crypto/sha256"
	"testing"

	"github.com/tpmcard/tpmcard/service/p11"
	"github.com/tpmcard/tpmcard/service/wire"
)

// TestSessionKeyOneStepSignAndVerify: the one-step Sign and
// C_VerifyInit/C_Verify take a session key's objects as they take a token
// key's, with the same login rules.
func TestSessionKeyOneStepSignAndVerify(t *testing.T) {
	e := newEnv(t, nil, nil)
	admin := e.dial()
	serial := e.provision(admin)
	p := e.p11Session(serial)
	var rw wire.SessionOpened
	wantOK(t, "OpenSession", p.w.Call(&wire.OpenSession{Serial: serial, ReadWrite: true}, &rw))
	p.s = rw.Session
	d := sha256.Sum256([]byte("one step"))
	for _, c := range []struct {
		name  string
		token bool
	}{{"token-key", true}, {"session-key", false}} {
		t.Run(c.name, func(t *testing.T) {
			p.t = t
			kp, err := p.keyGen([]wire.Attribute{flag(p11.CKAToken, c.token)}, []wire.Attribute{flag(p11.CKAToken, c.token)})
			if err != nil {
				t.Fatalf("keygen: %v", err)
			}
			pub := p.keyPublicEC(kp.Public)
			var sig wire.Signature
			wantOK(t, "one-step Sign", p.w.Call(&wire.Sign{Session: p.s, Object: kp.Private, Mechanism: p11.CKMECDSA, Data: d[:]}, &sig))
			verifyECDSA(t, pub, d[:], sig.Sig)
			var n wire.Length
			wantOK(t, "SignLength", p.w.Call(&wire.SignLength{Session: p.s, Object: kp.Private, Mechanism: p11.CKMECDSA}, &n))
			if n.N != 64 {
				t.Errorf("SignLength %d, want 64", n.N)
			}
			for _, r := range []struct {
				name string
				key  uint64
				sig  []byte
				want uint64 // CK_RV
			}{
				{"ok/public-key", kp.Public, sig.Sig, 0},
				{"fail/bad-signature", kp.Public, append([]byte{sig.Sig[0] ^ 1}, sig.Sig[1:]...), p11.CKRSignatureInvalid},
				{"fail/private-key", kp.Private, sig.Sig, p11.CKRKeyFunctionNotPermitted},
			} {
				err := p.verifyInit(p11.CKMECDSA, nil, r.key)
				if err == nil {
					err = p.verify(d[:], r.sig, true)
				}
				if r.want == 0 {
					wantOK(t, "verify "+r.name, err)
				} else {
					wantRV(t, "verify "+r.name, err, r.want)
				}
			}
			err = p.w.Call(&wire.SignLength{Session: p.s, Object: kp.Public, Mechanism: p11.CKMECDSA}, &n)
			wantStatus(t, "SignLength of the public key", err, wire.KeyTypeInconsistent)
			wantOK(t, "Logout", p.w.Call(&wire.Logout{Session: p.s}, nil))
			err = p.w.Call(&wire.Sign{Session: p.s, Object: kp.Private, Mechanism: p11.CKMECDSA, Data: d[:]}, &sig)
			wantStatus(t, "one-step Sign after logout", err, wire.NotLoggedIn)
			p.login()
		})
	}
}
