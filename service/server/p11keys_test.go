//go:build linux

package server

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"
	"github.com/tpmcard/tpmcard/service/client"
	"github.com/tpmcard/tpmcard/service/p11"
	"github.com/tpmcard/tpmcard/service/wire"
	"github.com/tpmcard/tpmcard/tpmcard"
	"github.com/tpmcard/tpmcard/tpmcard/secret"
	"github.com/tpmcard/tpmcard/tpmcard/tpmtest"
)

// Key objects as PKCS#11 v2.40 has them: C_DestroyObject destroys one
// object (§5.7), CKA_TOKEN false keys live for their session only (§4.4),
// CKA_ALWAYS_AUTHENTICATE keys need C_Login(CKU_CONTEXT_SPECIFIC) for each
// signature (§4.9, §5.6).

func flag(t uint64, v bool) wire.Attribute { return wire.Attribute{Type: t, Value: wire.Bool(v)} }

var p256Params = wire.Attribute{Type: p11.CKAECParams, Value: derP256}

// genPair is C_GenerateKeyPair of a P-256 key with these private-template
// attributes added, on a raw connection.
func (p *p11conn) keyGen(pub, priv []wire.Attribute) (*wire.GeneratedKeyPair, error) {
	var r wire.GeneratedKeyPair
	err := p.w.Call(&wire.GenerateKeyPairTemplates{Session: p.s, Mechanism: p11.CKMECKeyPairGen,
		Public: append([]wire.Attribute{p256Params}, pub...), Private: priv}, &r)
	if err != nil {
		return nil, err
	}
	return &r, nil
}

func (p *p11conn) keyAttrs(h uint64, types ...uint32) ([]wire.AttributeResult, error) {
	var v wire.AttributeValues
	err := p.w.Call(&wire.GetAttributes{Session: p.s, Object: h, Types: types}, &v)
	return v.Values, err
}

// ecPublic reads an EC key object's public key.
func (p *p11conn) keyPublicEC(h uint64) *ecdsa.PublicKey {
	p.t.Helper()
	v, err := p.keyAttrs(h, p11.CKAPublicKeyInfo)
	if err != nil || v[0].Status != wire.OK {
		p.t.Fatalf("reading the public key of object %d: %v %v", h, err, v)
	}
	pub, err := x509.ParsePKIXPublicKey(v[0].Value)
	if err != nil {
		p.t.Fatal(err)
	}
	return pub.(*ecdsa.PublicKey)
}

func (p *p11conn) keyFind(template ...wire.Attribute) []uint64 {
	p.t.Helper()
	var objs wire.Objects
	if err := p.w.Call(&wire.FindObjects{Session: p.s, Template: template}, &objs); err != nil {
		p.t.Fatalf("FindObjects: %v", err)
	}
	return objs.Handles
}

func (p *p11conn) keyDestroy(h uint64) error {
	return p.w.Call(&wire.DestroyObject{Session: p.s, Object: h}, nil)
}

func (p *p11conn) keyLoginCS(pin secret.Secret) error {
	return p.w.Call(&wire.Login{Session: p.s, UserType: wire.UserContextSpecific, PIN: pin}, nil)
}

// signECDSA signs a SHA-256 digest with CKM_ECDSA in one step and checks
// the signature against pub.
func (p *p11conn) keySign(key uint64, pub *ecdsa.PublicKey, msg string) error {
	p.t.Helper()
	d := sha256.Sum256([]byte(msg))
	if err := p.init(p11.CKMECDSA, nil, key); err != nil {
		return err
	}
	r, err := p.sign(d[:], bigBuffer, false, false)
	if err != nil {
		return err
	}
	verifyECDSA(p.t, pub, d[:], p.signed(r, nil))
	return nil
}

// tpmHolds reports whether the TPM holds a loaded object with pub's
// public key: every transient handle, read back with go-tpm.
func tpmHolds(t *testing.T, tpm transport.TPM, pub *ecdsa.PublicKey) bool {
	t.Helper()
	rsp, err := tpm2.GetCapability{Capability: tpm2.TPMCapHandles, Property: uint32(tpm2.TPMHTTransient) << 24, PropertyCount: 64}.Execute(tpm)
	if err != nil {
		t.Fatalf("GetCapability: %v", err)
	}
	hs, err := rsp.CapabilityData.Data.Handles()
	if err != nil {
		t.Fatal(err)
	}
	pt, err := pub.Bytes() // 04 || X || Y
	if err != nil {
		t.Fatal(err)
	}
	x := pt[1:33]
	for _, h := range hs.Handle {
		rp, err := tpm2.ReadPublic{ObjectHandle: h}.Execute(tpm)
		if err != nil {
			continue
		}
		area, err := rp.OutPublic.Contents()
		if err != nil || area.Type != tpm2.TPMAlgECC {
			continue
		}
		if u, err := area.Unique.ECC(); err == nil && bytes.Equal(u.X.Buffer, x) {
			return true
		}
	}
	return false
}

// stateFiles reads every file of the state directory.
func stateFiles(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.Walk(dir, func(path string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		out[path] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func sameFiles(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// TestDestroyObjectHalves: C_DestroyObject destroys the one object it
// names. The private key leaves the TPM's records and the public key
// stays as its own object until it is destroyed, in either order; the
// certificate stays as SoftHSM2 keeps it; handles of destroyed objects are
// invalid on every connection.
func TestDestroyObjectHalves(t *testing.T) {
	e := newEnv(t, nil, nil)
	admin := e.dial()
	serial := e.provision(admin)
	p := e.p11Session(serial)
	var rw wire.SessionOpened
	if err := p.w.Call(&wire.OpenSession{Serial: serial, ReadWrite: true}, &rw); err != nil {
		t.Fatal(err)
	}
	ro := p.s
	for _, c := range []struct {
		name     string
		privLast bool // destroy the public key first
		cert     bool
	}{
		{name: "ok/private-then-public"},
		{name: "ok/public-then-private", privLast: true},
		{name: "ok/certificate-stays", cert: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			p.t = t
			p.s = rw.Session
			kp, err := p.keyGen([]wire.Attribute{flag(p11.CKAToken, true)}, nil)
			if err != nil {
				t.Fatalf("keygen: %v", err)
			}
			pub := p.keyPublicEC(kp.Public)
			id, _ := p.keyAttrs(kp.Public, p11.CKAID)
			keyID := id[0].Value
			if c.cert {
				if _, err := admin.ImportCertificate(serial, certFor(t, pub), ""); err != nil {
					t.Fatal(err)
				}
			}
			other := e.p11Session(serial) // another application sees the same objects
			otherPriv, otherPub := other.object(p11.CKOPrivateKey, keyID), other.object(p11.CKOPublicKey, keyID)

			// A read-only session destroys no token object.
			p.s = ro
			wantStatus(t, "destroy in a read-only session", p.keyDestroy(kp.Private), wire.SessionReadOnly)
			p.s = rw.Session

			first, second := kp.Private, kp.Public
			otherFirst, otherSecond := otherPriv, otherPub
			if c.privLast {
				first, second, otherFirst, otherSecond = second, first, otherSecond, otherFirst
			}
			wantOK(t, "destroying the first object", p.keyDestroy(first))
			wantStatus(t, "the destroyed object", p.keyDestroy(first), wire.ObjectNotFound)
			_, err = p.keyAttrs(first, p11.CKALabel)
			wantStatus(t, "the destroyed object's attributes", err, wire.ObjectNotFound)
			_, err = other.keyAttrs(otherFirst, p11.CKALabel)
			wantStatus(t, "the destroyed object in another application", err, wire.ObjectNotFound)
			if v, err := p.keyAttrs(second, p11.CKAID); err != nil || !bytes.Equal(v[0].Value, keyID) {
				t.Fatalf("the other half after the first went: %v %v", v, err)
			}
			if v, err := other.keyAttrs(otherSecond, p11.CKAID); err != nil || !bytes.Equal(v[0].Value, keyID) {
				t.Fatalf("the other half in another application: %v %v", v, err)
			}
			if n := len(p.keyFind(wire.Attribute{Type: p11.CKAID, Value: keyID})); n != 1+btoi(c.cert) {
				t.Errorf("%d objects with the key's ID after one went, want %d", n, 1+btoi(c.cert))
			}
			k, err := e.m.Key(serial, keyID)
			if err != nil || k.PrivateDestroyed != !c.privLast || k.PublicDestroyed != c.privLast {
				t.Fatalf("the card's key after the first object went: %+v %v", k, err)
			}
			if !c.privLast {
				// Nothing signs with it; its blobs left the card.
				d := sha256.Sum256([]byte("x"))
				if _, err := e.m.Sign(serial, keyID, d[:], tpmcard.SignOptions{}); err == nil {
					t.Fatal("a destroyed private key signed")
				}
				for _, f := range stateFiles(t, e.m.StateDir()) {
					if strings.Contains(f, `"private_destroyed": true`) && strings.Contains(f, `"private": null`) {
						goto recorded
					}
				}
				t.Fatal("the card record does not show the private key destroyed and its blob gone")
			recorded:
			} else if err := p.keySign(kp.Private, pub, "public key gone"); err != nil {
				t.Fatalf("the private key signs without its public object: %v", err)
			}

			wantOK(t, "destroying the second object", p.keyDestroy(second))
			if _, err := e.m.Key(serial, keyID); err == nil {
				t.Fatal("the key is still on the card after both objects went")
			}
			hs := p.keyFind(wire.Attribute{Type: p11.CKAID, Value: keyID})
			if len(hs) != btoi(c.cert) {
				t.Fatalf("%d objects with the key's ID after both went, want %d (the certificate)", len(hs), btoi(c.cert))
			}
			if c.cert {
				if v, _ := p.keyAttrs(hs[0], p11.CKAClass); !bytes.Equal(v[0].Value, wire.ULong(p11.CKOCertificate)) {
					t.Fatalf("the object left is not the certificate: %v", v)
				}
				wantOK(t, "destroying the certificate", p.keyDestroy(hs[0]))
			}
		})
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestSessionKeys: a C_GenerateKeyPair without CKA_TOKEN true makes a key
// for the session, in a read-only session too and for a card user: it
// never reaches the state directory, signs only after login, is the
// application's alone, and leaves the TPM when its session ends, however
// it ends. On the simulator and swtpm, the TPM is asked with go-tpm.
func TestSessionKeys(t *testing.T) {
	tpmtest.ForEachTPM(t, func(t *testing.T, b *tpmtest.Backend) {
		e := newEnv(t, b.TPM, nil)
		admin := e.dial()
		serial := e.provision(admin)
		if err := admin.SetOwner(serial, &wire.CardOwner{UID: 1001}); err != nil {
			t.Fatal(err)
		}
		before := stateFiles(t, e.m.StateDir())
		for _, c := range []struct {
			name string
			end  func(t *testing.T, p *p11conn, c *client.Client)
		}{
			{"ok/close-session", func(t *testing.T, p *p11conn, _ *client.Client) {
				wantOK(t, "CloseSession", p.w.Call(&wire.CloseSession{Session: p.s}, nil))
			}},
			{"ok/close-all-sessions", func(t *testing.T, p *p11conn, _ *client.Client) {
				wantOK(t, "CloseAllSessions", p.w.Call(&wire.CloseAllSessions{Serial: serial}, nil))
			}},
			{"ok/connection-closed", func(t *testing.T, p *p11conn, _ *client.Client) {
				n := strings.Count(e.logs.String(), `"disconnected"`)
				p.w.Close()
				waitFor(t, "the service ended the connection", func() bool { return strings.Count(e.logs.String(), `"disconnected"`) > n })
			}},
			{"ok/private-key-destroyed", func(t *testing.T, p *p11conn, _ *client.Client) {
				wantOK(t, "destroying the session key's private key", p.keyDestroy(p.keyFind(flag(p11.CKAToken, false), wire.Attribute{Type: p11.CKAClass, Value: wire.ULong(p11.CKOPrivateKey)})[0]))
			}},
		} {
			t.Run(c.name, func(t *testing.T) {
				e.mu.Lock()
				e.pending = &Peer{UID: 1001, GID: 1001} // the card's owner, no administrator
				e.mu.Unlock()
				p := e.p11Session(serial) // read-only
				p.t = t
				kp, err := p.keyGen(nil, nil)
				if err != nil {
					t.Fatalf("session keygen in a read-only session: %v", err)
				}
				pub := p.keyPublicEC(kp.Public)
				for _, h := range []uint64{kp.Public, kp.Private} {
					v, err := p.keyAttrs(h, p11.CKAToken, p11.CKAPrivate)
					if err != nil || !bytes.Equal(v[0].Value, wire.Bool(false)) {
						t.Fatalf("object %d: CKA_TOKEN %v %v", h, v, err)
					}
				}
				if got := p.keyFind(flag(p11.CKAToken, false)); len(got) != 2 {
					t.Errorf("FindObjects(CKA_TOKEN false) = %v, want the two halves", got)
				}
				if !sameFiles(before, stateFiles(t, e.m.StateDir())) {
					t.Fatal("the state directory changed")
				}
				if keys, _ := e.m.Keys(serial); len(keys) != 0 {
					t.Fatalf("the card lists %d keys", len(keys))
				}
				if err := p.keySign(kp.Private, pub, "session key"); err != nil {
					t.Fatalf("signing with the session key: %v", err)
				}
				if !tpmHolds(t, b.TPM, pub) {
					t.Fatal("control: the TPM does not hold the session key after it signed")
				}
				// Another session of the application sees it; another
				// application does not.
				var s2 wire.SessionOpened
				wantOK(t, "second session", p.w.Call(&wire.OpenSession{Serial: serial}, &s2))
				first := p.s
				p.s = s2.Session
				if got := p.keyFind(flag(p11.CKAToken, false)); len(got) != 2 {
					t.Errorf("another session of the application finds %v", got)
				}
				wantOK(t, "closing the second session", p.w.Call(&wire.CloseSession{Session: s2.Session}, nil))
				p.s = first
				stranger := e.p11Session(serial)
				if got := stranger.keyFind(flag(p11.CKAToken, false)); len(got) != 0 {
					t.Errorf("another application finds %v", got)
				}
				_, err = stranger.keyAttrs(kp.Public, p11.CKALabel)
				wantStatus(t, "another application's handle", err, wire.ObjectNotFound)

				c.end(t, p, nil)
				if tpmHolds(t, b.TPM, pub) {
					t.Fatal("the TPM still holds the session key")
				}
				if c.name == "ok/private-key-destroyed" {
					if got := p.keyFind(flag(p11.CKAToken, false)); len(got) != 1 || got[0] != kp.Public {
						t.Errorf("after its private key went, the session finds %v, want the public key %d", got, kp.Public)
					}
					wantStatus(t, "the destroyed private key signs", p.init(p11.CKMECDSA, nil, kp.Private), wire.ObjectNotFound)
				}
			})
		}
		if !sameFiles(before, stateFiles(t, e.m.StateDir())) {
			t.Fatal("the state directory changed")
		}
	})
}

// TestSessionKeyRules: a session key needs the user logged in to sign, the
// same PIN as the card's keys; an application holds at most
// maxSessionKeys; token keys still need an administrator.
func TestSessionKeyRules(t *testing.T) {
	e := newEnv(t, nil, nil)
	admin := e.dial()
	serial := e.provision(admin)
	if err := admin.SetOwner(serial, &wire.CardOwner{UID: 1001}); err != nil {
		t.Fatal(err)
	}
	e.mu.Lock()
	e.pending = &Peer{UID: 1001, GID: 1001}
	e.mu.Unlock()
	p := e.p11Session(serial)
	kp, err := p.keyGen(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	pub := p.keyPublicEC(kp.Public)

	_, err = p.keyGen([]wire.Attribute{flag(p11.CKAToken, true)}, nil)
	wantStatus(t, "a card user makes a token key", err, wire.PermissionDenied)

	wantOK(t, "Logout", p.w.Call(&wire.Logout{Session: p.s}, nil))
	if got := p.keyFind(wire.Attribute{Type: p11.CKAClass, Value: wire.ULong(p11.CKOPrivateKey)}); len(got) != 0 {
		t.Errorf("private session key objects before login: %v", got)
	}
	wantStatus(t, "SignInit before login", p.init(p11.CKMECDSA, nil, kp.Private), wire.NotLoggedIn)
	err = p.w.Call(&wire.Login{Session: p.s, UserType: wire.UserNormal, PIN: secret.FromString("wrong PIN!")}, nil)
	wantStatus(t, "wrong PIN", err, wire.PINIncorrect)
	wantStatus(t, "SignInit after a wrong PIN", p.init(p11.CKMECDSA, nil, kp.Private), wire.NotLoggedIn)
	p.login()
	wantOK(t, "signing after login", p.keySign(kp.Private, pub, "after login"))

	for i := 1; i < maxSessionKeys; i++ {
		if _, err := p.keyGen(nil, nil); err != nil {
			t.Fatalf("session key %d: %v", i+1, err)
		}
	}
	_, err = p.keyGen(nil, nil)
	var se *wire.StatusError
	if !asStatus(err, &se) || se.RV != p11.CKRDeviceMemory {
		t.Fatalf("session key %d: %v, want CKR_DEVICE_MEMORY", maxSessionKeys+1, err)
	}
	if !strings.Contains(se.Message, "at most 16") {
		t.Errorf("the refusal does not say the cap: %q", se.Message)
	}
	wantOK(t, "destroying one", p.keyDestroy(kp.Private))
	wantOK(t, "destroying its public half", p.keyDestroy(kp.Public))
	if _, err := p.keyGen(nil, nil); err != nil {
		t.Fatalf("a session key after one went: %v", err)
	}
}

func asStatus(err error, se **wire.StatusError) bool { return errors.As(err, se) }

// TestAlwaysAuthenticate: a key made with CKA_ALWAYS_AUTHENTICATE true (a
// token key and a session key) says so, and signs only after
// C_Login(CKU_CONTEXT_SPECIFIC) right after C_SignInit, once per login:
// the next signature needs the PIN again. A wrong PIN there is counted
// and ends the login. Keys without it sign as before. On the simulator
// and swtpm.
func TestAlwaysAuthenticate(t *testing.T) {
	tpmtest.ForEachTPM(t, func(t *testing.T, b *tpmtest.Backend) {
		e := newEnv(t, b.TPM, nil)
		admin := e.dial()
		serial := e.provision(admin)
		onceID := e.generate(admin, serial, wire.AlgECDSAP256)
		p := e.p11Session(serial)
		var rw wire.SessionOpened
		wantOK(t, "OpenSession", p.w.Call(&wire.OpenSession{Serial: serial, ReadWrite: true}, &rw))
		p.s = rw.Session
		once := p.object(p11.CKOPrivateKey, onceID)
		oncePub := p.public(onceID).(*ecdsa.PublicKey)
		for _, c := range []struct {
			name  string
			token bool
		}{{"token-key", true}, {"session-key", false}} {
			t.Run(c.name, func(t *testing.T) {
				p.t = t
				kp, err := p.keyGen([]wire.Attribute{flag(p11.CKAToken, c.token)},
					[]wire.Attribute{flag(p11.CKAToken, c.token), flag(p11.CKAAlwaysAuthenticate, true)})
				if err != nil {
					t.Fatalf("keygen: %v", err)
				}
				pub := p.keyPublicEC(kp.Public)
				if v, err := p.keyAttrs(kp.Private, p11.CKAAlwaysAuthenticate); err != nil || !bytes.Equal(v[0].Value, wire.Bool(true)) {
					t.Fatalf("CKA_ALWAYS_AUTHENTICATE %v %v", v, err)
				}
				if v, _ := p.keyAttrs(once, p11.CKAAlwaysAuthenticate); !bytes.Equal(v[0].Value, wire.Bool(false)) {
					t.Fatalf("a key made without it: CKA_ALWAYS_AUTHENTICATE %v", v)
				}
				d := sha256.Sum256([]byte("always"))
				for _, r := range []struct {
					name string
					run  func(t *testing.T) error
					want wire.Status
				}{
					{"fail/no-context-login", func(t *testing.T) error {
						wantOK(t, "SignInit", p.init(p11.CKMECDSA, nil, kp.Private))
						_, err := p.sign(d[:], bigBuffer, false, false)
						if err != nil {
							// The failure ended the operation.
							_, again := p.sign(d[:], bigBuffer, false, false)
							wantStatus(t, "the step after", again, wire.OperationNotInitialized)
						}
						return err
					}, wire.NotLoggedIn},
					{"ok/context-login", func(t *testing.T) error {
						wantOK(t, "SignInit", p.init(p11.CKMECDSA, nil, kp.Private))
						wantOK(t, "context-specific login", p.keyLoginCS(testPIN.Clone()))
						// A length query keeps the proof for the signature.
						r, err := p.sign(d[:], 0, true, false)
						if err != nil || r.Len != 64 {
							t.Fatalf("length query: %v %v", r, err)
						}
						r, err = p.sign(d[:], bigBuffer, false, false)
						if err == nil {
							verifyECDSA(t, pub, d[:], p.signed(r, nil))
						}
						return err
					}, wire.OK},
					{"fail/the-proof-served-one-signature", func(t *testing.T) error {
						wantOK(t, "SignInit", p.init(p11.CKMECDSA, nil, kp.Private))
						_, err := p.sign(d[:], bigBuffer, false, false)
						return err
					}, wire.NotLoggedIn},
					{"ok/in-parts", func(t *testing.T) error {
						wantOK(t, "SignInit", p.init(p11.CKMECDSASHA256, nil, kp.Private))
						wantOK(t, "context-specific login", p.keyLoginCS(testPIN.Clone()))
						wantOK(t, "SignUpdate", p.update([]byte("al"), false))
						wantOK(t, "SignUpdate", p.update([]byte("ways"), false))
						r, err := p.final(bigBuffer, false, false)
						if err == nil {
							verifyECDSA(t, pub, d[:], p.signed(r, nil))
						}
						return err
					}, wire.OK},
					{"ok/pipelined-as-the-module-sends", func(t *testing.T) error {
						_, initErr, err := p.pipelined(&wire.SignInit{Mechanism: p11.CKMECDSA, Key: kp.Private},
							&wire.Login{Session: p.s, UserType: wire.UserContextSpecific, PIN: testPIN.Clone()})
						wantOK(t, "SignInit", initErr)
						wantOK(t, "context-specific login", err)
						r, err := p.sign(d[:], bigBuffer, false, true)
						if err == nil {
							verifyECDSA(t, pub, d[:], p.signed(r, nil))
						}
						return err
					}, wire.OK},
					{"fail/pipelined-signinit-failed", func(t *testing.T) error {
						// The Login of an operation whose SignInit failed
						// unseen answers CKR_OK; the next step has the
						// SignInit's answer.
						_, initErr, err := p.pipelined(&wire.SignInit{Mechanism: p11.CKMRSAPKCS, Key: kp.Private},
							&wire.Login{Session: p.s, UserType: wire.UserContextSpecific, PIN: secret.FromString("not checked")})
						wantStatus(t, "SignInit", initErr, wire.KeyTypeInconsistent)
						wantOK(t, "context-specific login", err)
						_, err = p.sign(d[:], bigBuffer, false, true)
						return err
					}, wire.KeyTypeInconsistent},
					{"fail/context-login-without-operation", func(t *testing.T) error {
						return p.keyLoginCS(testPIN.Clone())
					}, wire.OperationNotInitialized},
					{"fail/context-login-for-a-key-without-it", func(t *testing.T) error {
						wantOK(t, "SignInit", p.init(p11.CKMECDSA, nil, once))
						err := p.keyLoginCS(testPIN.Clone())
						wantOK(t, "the key without it signs", func() error {
							r, err := p.sign(d[:], bigBuffer, false, false)
							if err == nil {
								verifyECDSA(t, oncePub, d[:], p.signed(r, nil))
							}
							return err
						}())
						return err
					}, wire.OperationNotInitialized},
					{"fail/one-step-sign", func(t *testing.T) error {
						var sig wire.Signature
						return p.w.Call(&wire.Sign{Session: p.s, Object: kp.Private, Mechanism: p11.CKMECDSA, Data: d[:]}, &sig)
					}, wire.NotLoggedIn},
					{"fail/wrong-pin", func(t *testing.T) error {
						wantOK(t, "SignInit", p.init(p11.CKMECDSA, nil, kp.Private))
						err := p.keyLoginCS(secret.FromString("not the PIN"))
						var se *wire.StatusError
						if !asStatus(err, &se) || se.TriesLeft != 2 {
							t.Errorf("wrong PIN: %v, want 2 tries left", err)
						}
						// Counted by the TPM, and the login ended.
						if ti, _ := admin.ListCards(); len(ti) != 1 || ti[0].PINTriesLeft != 2 {
							t.Errorf("tries left after a wrong context-specific PIN: %+v", ti)
						}
						_, serr := p.sign(d[:], bigBuffer, false, false)
						wantStatus(t, "signing after the wrong PIN", serr, wire.NotLoggedIn)
						wantStatus(t, "the key without it after the wrong PIN", p.init(p11.CKMECDSA, nil, once), wire.NotLoggedIn)
						p.login()
						return err
					}, wire.PINIncorrect},
					{"ok/right-pin-resets-the-count", func(t *testing.T) error {
						wantOK(t, "SignInit", p.init(p11.CKMECDSA, nil, kp.Private))
						wantOK(t, "context-specific login", p.keyLoginCS(testPIN.Clone()))
						_, err := p.sign(d[:], bigBuffer, false, false)
						if ti, _ := admin.ListCards(); len(ti) != 1 || ti[0].PINTriesLeft != 3 {
							t.Errorf("tries left after the right PIN: %+v", ti)
						}
						return err
					}, wire.OK},
				} {
					t.Run(r.name, func(t *testing.T) {
						p.t = t
						wantStatus(t, r.name, r.run(t), r.want)
					})
				}
			})
		}
	})
}

// TestDeleteKey: DeleteKey (the CLI's key delete) removes both halves and
// the certificate without a login, for administrators only.
func TestDeleteKey(t *testing.T) {
	e := newEnv(t, nil, nil)
	admin := e.dial()
	serial := e.provision(admin)
	id := e.generate(admin, serial, wire.AlgECDSAP256)
	p := e.p11Session(serial)
	priv, pub := p.object(p11.CKOPrivateKey, id), p.object(p11.CKOPublicKey, id)
	if _, err := admin.ImportCertificate(serial, certFor(t, p.public(id)), ""); err != nil {
		t.Fatal(err)
	}
	user := e.dialAs(Peer{UID: 1001, GID: 1001})
	wantStatus(t, "a card user deletes a key", user.DeleteKey(serial, id), wire.PermissionDenied)
	wantStatus(t, "no such key", admin.DeleteKey(serial, []byte("none")), wire.KeyNotFound)
	wantOK(t, "DeleteKey", admin.DeleteKey(serial, id))
	for _, h := range []uint64{priv, pub} {
		_, err := p.keyAttrs(h, p11.CKALabel)
		wantStatus(t, "a deleted key's object", err, wire.ObjectNotFound)
	}
	if got := p.keyFind(wire.Attribute{Type: p11.CKAID, Value: id}); len(got) != 0 {
		t.Fatalf("objects of the deleted key: %v", got)
	}
	if !strings.Contains(e.logs.String(), `"key deleted"`) {
		t.Error("the deletion is not in the audit log")
	}
}
