//go:build linux

package server

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"strings"
	"testing"

	"github.com/tpmcard/tpmcard/service/p11"
	"github.com/tpmcard/tpmcard/service/wire"
	"github.com/tpmcard/tpmcard/tpmcard/secret"
	"github.com/tpmcard/tpmcard/tpmcard/tpmtest"
)

// TestProvisionLoginSign walks the main path on the simulator and swtpm:
// provision, generate, find, login, sign with every mechanism, verify.
func TestProvisionLoginSign(t *testing.T) {
	tpmtest.ForEachTPM(t, func(t *testing.T, b *tpmtest.Backend) {
		e := newEnv(t, b.TPM, nil)
		c := e.dial()
		if !c.Server().Simulated || c.Server().Version != wire.Version {
			t.Errorf("hello reply %+v", c.Server())
		}
		serial := e.provision(c)

		cards, err := c.ListCards()
		if err != nil || len(cards) != 1 {
			t.Fatalf("ListCards: %v, %v", cards, err)
		}
		ti := cards[0]
		wantFlags := wire.FlagRNG | wire.FlagLoginRequired | wire.FlagUserPINInitialized | wire.FlagTokenInitialized
		if ti.Serial != serial || ti.Flags != wantFlags || ti.PINTriesLeft != 3 || ti.PINTriesMax != 3 ||
			ti.PUKTriesLeft != 2 || ti.MinPINLen != 8 || ti.MaxPINLen != 127 || !ti.Simulated {
			t.Errorf("token info %+v (flags %#x, want %#x)", ti, ti.Flags, wantFlags)
		}
		mechs, err := c.Mechanisms(serial)
		if err != nil || len(mechs) != len(verifyMechs)+len(digestMechs)+2 {
			t.Errorf("Mechanisms: %d, %v", len(mechs), err)
		}

		progress := 0
		s := mustOpen(t, c, serial, true)
		pub, priv, err := c.GenerateKeyPair(s, wire.AlgRSA2048, "rsa", []byte("rsa-1"), func(wire.Progress) { progress++ })
		if err != nil {
			t.Fatalf("GenerateKeyPair RSA: %v", err)
		}
		if pub == 0 || priv == 0 || pub == priv {
			t.Fatalf("handles %d, %d", pub, priv)
		}
		t.Logf("RSA key generation sent %d progress frames", progress)
		ecID := e.generate(c, serial, wire.AlgECDSAP256)

		// Before login only the public objects show.
		all, err := c.FindObjects(s)
		if err != nil || len(all) != 2 {
			t.Fatalf("FindObjects before login: %v, %v", all, err)
		}
		_, err = c.GetAttributes(s, priv, p11.CKALabel)
		wantStatus(t, "private object before login", err, wire.ObjectNotFound)
		_, err = c.Sign(s, priv, p11.CKMSHA256RSAPKCS, nil, []byte("x"))
		wantStatus(t, "sign before login", err, wire.NotLoggedIn)

		mustLogin(t, c, s)
		wantStatus(t, "second login", c.Login(s, wire.UserNormal, testPIN.Clone()), wire.AlreadyLoggedIn)
		all, err = c.FindObjects(s)
		if err != nil || len(all) != 4 {
			t.Fatalf("FindObjects after login: %v, %v", all, err)
		}
		if h := privateKey(t, c, s, []byte("rsa-1")); h != priv {
			t.Errorf("private handle changed: %d, then %d", priv, h)
		}
		vals, err := c.GetAttributes(s, priv, p11.CKAValue, p11.CKASign, p11.CKALabel, 0x7777)
		if err != nil {
			t.Fatal(err)
		}
		if vals[0].Status != wire.AttributeSensitive || vals[1].Status != wire.OK || !bytes.Equal(vals[1].Value, []byte{1}) ||
			string(vals[2].Value) != "rsa" || vals[3].Status != wire.AttributeInvalid {
			t.Errorf("attributes %+v", vals)
		}

		data := []byte("authentication challenge")
		d256 := sha256.Sum256(data)
		d512 := sha512.Sum512(data)
		rsaPub := publicKeyOf(t, c, s, []byte("rsa-1")).(*rsa.PublicKey)

		if n, err := c.SignLength(s, priv, p11.CKMSHA256RSAPKCS); err != nil || n != 256 {
			t.Errorf("SignLength RSA = %d, %v", n, err)
		}
		sig, err := c.Sign(s, priv, p11.CKMSHA256RSAPKCS, nil, data)
		if err != nil {
			t.Fatalf("Sign SHA256_RSA_PKCS: %v", err)
		}
		if err := rsa.VerifyPKCS1v15(rsaPub, crypto.SHA256, d256[:], sig); err != nil {
			t.Errorf("SHA256_RSA_PKCS: %v", err)
		}
		di := append(append([]byte(nil), digestInfoPrefixes[3].prefix...), d512[:]...)
		if sig, err = c.Sign(s, priv, p11.CKMRSAPKCS, nil, di); err != nil {
			t.Fatalf("Sign RSA_PKCS: %v", err)
		}
		if err := rsa.VerifyPKCS1v15(rsaPub, crypto.SHA512, d512[:], sig); err != nil {
			t.Errorf("RSA_PKCS over a DigestInfo: %v", err)
		}
		_, err = c.Sign(s, priv, p11.CKMRSAPKCS, nil, d256[:])
		wantStatus(t, "RSA_PKCS without DigestInfo", err, wire.DataInvalid)
		if sig, err = c.Sign(s, priv, p11.CKMSHA256RSAPKCSPSS, pss(p11.CKMSHA256, p11.CKGMGF1SHA256, 32), data); err != nil {
			t.Fatalf("Sign SHA256_RSA_PKCS_PSS: %v", err)
		}
		if err := rsa.VerifyPSS(rsaPub, crypto.SHA256, d256[:], sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash}); err != nil {
			t.Errorf("SHA256_RSA_PKCS_PSS with salt = hash length: %v", err)
		}
		_, err = c.Sign(s, priv, p11.CKMRSAPKCSPSS, pss(p11.CKMSHA256, p11.CKGMGF1SHA256, 20), d256[:])
		wantStatus(t, "PSS with a short salt", err, wire.MechanismParamInvalid)
		_, err = c.Sign(s, priv, p11.CKMECDSA, nil, d256[:])
		wantStatus(t, "ECDSA with an RSA key", err, wire.KeyTypeInconsistent)
		_, err = c.Sign(s, pub, p11.CKMSHA256RSAPKCS, nil, data)
		wantStatus(t, "signing with the public object", err, wire.KeyTypeInconsistent)

		ecPriv := privateKey(t, c, s, ecID)
		ecPub := publicKeyOf(t, c, s, ecID)
		if n, err := c.SignLength(s, ecPriv, p11.CKMECDSA); err != nil || n != 64 {
			t.Errorf("SignLength ECDSA = %d, %v", n, err)
		}
		rs, err := c.Sign(s, ecPriv, p11.CKMECDSA, nil, d256[:])
		if err != nil {
			t.Fatalf("Sign ECDSA: %v", err)
		}
		verifyECDSA(t, ecPub, d256[:], rs)
		if rs, err = c.Sign(s, ecPriv, p11.CKMECDSASHA256, nil, data); err != nil {
			t.Fatalf("Sign ECDSA_SHA256: %v", err)
		}
		verifyECDSA(t, ecPub, d256[:], rs)
		if rs, err = c.Sign(s, ecPriv, p11.CKMECDSASHA512, nil, data); err != nil {
			t.Fatalf("Sign ECDSA_SHA512: %v", err)
		}
		verifyECDSA(t, ecPub, d512[:], rs) // ECDSA uses the leftmost bits

		// The client's crypto.Signer.
		for _, id := range [][]byte{ecID, []byte("rsa-1")} {
			sg, err := c.Signer(serial, id)
			if err != nil {
				t.Fatalf("Signer: %v", err)
			}
			sig, err := sg.Sign(rand.Reader, d256[:], crypto.SHA256)
			if err != nil {
				t.Fatalf("Signer.Sign: %v", err)
			}
			switch p := sg.Public().(type) {
			case *ecdsa.PublicKey:
				if !ecdsa.VerifyASN1(p, d256[:], sig) {
					t.Error("client Signer: ECDSA signature does not verify")
				}
			case *rsa.PublicKey:
				if err := rsa.VerifyPKCS1v15(p, crypto.SHA256, d256[:], sig); err != nil {
					t.Errorf("client Signer PKCS1v15: %v", err)
				}
				opts := &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: crypto.SHA384}
				d384 := sha512.Sum384(data)
				sig, err := sg.Sign(rand.Reader, d384[:], opts)
				if err != nil {
					t.Fatalf("Signer.Sign PSS: %v", err)
				}
				if err := rsa.VerifyPSS(p, crypto.SHA384, d384[:], sig, opts); err != nil {
					t.Errorf("client Signer PSS: %v", err)
				}
			}
			if err := sg.Close(); err != nil {
				t.Error(err)
			}
		}

		// Deleting a key is for admins, one object at a time; their handles
		// then go away.
		for _, h := range []uint64{pub, priv} {
			if err := c.DestroyObject(s, h); err != nil {
				t.Fatalf("DestroyObject: %v", err)
			}
		}
		_, err = c.GetAttributes(s, priv, p11.CKALabel)
		wantStatus(t, "deleted key", err, wire.ObjectNotFound)
		if all, _ := c.FindObjects(s); len(all) != 2 {
			t.Errorf("after delete %d objects, want 2", len(all))
		}

		st, err := c.Status()
		if err != nil || st.Cards != 1 || st.Backend != "sim" || !st.Simulated || st.HardwareProtected {
			t.Errorf("Status = %+v, %v", st, err)
		}
		logs := e.logs.String()
		for _, want := range []string{`"card provisioned"`, `"key generated"`, `"key deleted"`, `"message":"login"`, `"request":"Sign"`} {
			if !strings.Contains(logs, want) {
				t.Errorf("audit log lacks %s", want)
			}
		}
		if err := c.DestroyCard(serial); err != nil {
			t.Fatalf("DestroyCard: %v", err)
		}
		_, err = c.Sign(s, ecPriv, p11.CKMECDSA, nil, d256[:])
		if st := wire.StatusOf(err); st != wire.NotLoggedIn && st != wire.ObjectNotFound && st != wire.CardNotFound {
			t.Errorf("sign on a destroyed card: %v", err)
		}
	})
}

// TestPINLifecycle: wrong PINs count down and lock, the SO unblocks with
// the PUK through InitPIN, the new PIN must be changed before signing.
func TestPINLifecycle(t *testing.T) {
	e := newEnv(t, nil, nil)
	c := e.dial()
	serial := e.provision(c)
	id := e.generate(c, serial, wire.AlgECDSAP256)
	s := mustOpen(t, c, serial, true)
	wrong := secret.FromString("wrong PIN 1")
	e.secrets = append(e.secrets, "wrong PIN 1", "brand new PIN", "NEWPUK123456", "WRONGPUK0000")

	flags := func() wire.TokenInfo {
		t.Helper()
		cards, err := c.ListCards()
		if err != nil {
			t.Fatal(err)
		}
		return cards[0]
	}
	for left := 2; left >= 1; left-- {
		err := c.Login(s, wire.UserNormal, wrong.Clone())
		wantStatus(t, "wrong PIN", err, wire.PINIncorrect)
		if got := wire.TriesLeftOf(err); got != left {
			t.Fatalf("tries left %d, want %d", got, left)
		}
	}
	if f := flags(); !f.Flags.Has(wire.FlagUserPINCountLow|wire.FlagUserPINFinalTry) || f.PINTriesLeft != 1 {
		t.Errorf("after two wrong PINs: %+v", f)
	}
	err := c.Login(s, wire.UserNormal, wrong.Clone())
	wantStatus(t, "third wrong PIN", err, wire.PINLocked)
	wantStatus(t, "right PIN on a locked card", c.Login(s, wire.UserNormal, testPIN.Clone()), wire.PINLocked)
	if f := flags(); !f.Flags.Has(wire.FlagUserPINLocked) || f.PINTriesLeft != 0 {
		t.Errorf("locked card: %+v", f)
	}

	// The TPM checks the PUK at the SO login and counts a wrong one.
	newPIN := secret.FromString("brand new PIN")
	err = c.Login(s, wire.UserSO, secret.FromString("WRONGPUK0000"))
	wantStatus(t, "SO login with a wrong PUK", err, wire.PUKIncorrect)
	if wire.TriesLeftOf(err) != 1 {
		t.Errorf("PUK tries left %d, want 1", wire.TriesLeftOf(err))
	}
	if f := flags(); !f.Flags.Has(wire.FlagSOPINFinalTry) || f.PUKTriesLeft != 1 {
		t.Errorf("PUK final try not flagged: %+v", f)
	}
	if st, _ := c.SessionInfo(s); st.State != cksRWPublic {
		t.Errorf("session state %d after a wrong PUK, want CKS_RW_PUBLIC_SESSION", st.State)
	}
	wantStatus(t, "logout after a wrong PUK", c.Logout(s), wire.NotLoggedIn)
	wantStatus(t, "InitPIN without an SO login", c.InitPIN(s, newPIN.Clone()), wire.NotLoggedIn)
	if err := c.Login(s, wire.UserSO, testPUK.Clone()); err != nil {
		t.Fatal(err)
	}
	// The right PUK clears its count, as a right PIN clears the PIN's.
	if f := flags(); f.Flags.Has(wire.FlagSOPINFinalTry) || f.PUKTriesLeft != f.PUKTriesMax {
		t.Errorf("after the right PUK: %+v", f)
	}
	if st, _ := c.SessionInfo(s); st.State != cksRWSO {
		t.Errorf("session state %d, want CKS_RW_SO_FUNCTIONS", st.State)
	}
	wantStatus(t, "user login during SO login", c.Login(s, wire.UserNormal, testPIN.Clone()), wire.AnotherUserLoggedIn)
	if err := c.InitPIN(s, newPIN.Clone()); err != nil {
		t.Fatalf("InitPIN: %v", err)
	}
	if err := c.Logout(s); err != nil {
		t.Fatal(err)
	}
	if f := flags(); f.Flags.Has(wire.FlagUserPINLocked) || !f.Flags.Has(wire.FlagUserPINToBeChanged) || f.PINTriesLeft != 3 {
		t.Errorf("after unblock: %+v", f)
	}

	// The reset PIN logs in but must change before the card signs.
	if err := c.Login(s, wire.UserNormal, newPIN.Clone()); err != nil {
		t.Fatalf("login with the new PIN: %v", err)
	}
	priv := privateKey(t, c, s, id)
	d := sha256.Sum256([]byte("x"))
	_, err = c.Sign(s, priv, p11.CKMECDSA, nil, d[:])
	wantStatus(t, "sign before changing the reset PIN", err, wire.PINExpired)
	wantStatus(t, "SetPIN too short", c.SetPIN(s, newPIN.Clone(), secret.FromString("short")), wire.PINLenRange)
	if err := c.SetPIN(s, newPIN.Clone(), testPIN.Clone()); err != nil {
		t.Fatalf("SetPIN: %v", err)
	}
	if _, err := c.Sign(s, priv, p11.CKMECDSA, nil, d[:]); err != nil {
		t.Fatalf("sign after the PIN change: %v", err)
	}
	// The unblock path without a session, and the PUK change as SO.
	if err := c.Logout(s); err != nil {
		t.Fatal(err)
	}
	wantStatus(t, "Unblock with a wrong PUK", c.Unblock(serial, secret.FromString("WRONGPUK0000"), newPIN.Clone()), wire.PUKIncorrect)
	if err := c.Unblock(serial, testPUK.Clone(), newPIN.Clone()); err != nil {
		t.Fatalf("Unblock: %v", err)
	}
	if err := c.Login(s, wire.UserSO, testPUK.Clone()); err != nil {
		t.Fatal(err)
	}
	newPUK := secret.FromString("NEWPUK123456")
	if err := c.SetPIN(s, testPUK.Clone(), newPUK.Clone()); err != nil {
		t.Fatalf("SetPIN as SO (PUK change): %v", err)
	}
	if err := c.InitPIN(s, testPIN.Clone()); err != nil {
		t.Fatalf("InitPIN with the changed PUK remembered: %v", err)
	}
	logs := e.logs.String()
	for _, want := range []string{`"login failed: wrong PIN"`, `"tries_left":1`, `"login failed: PIN locked"`, `"card unblocked (InitPIN)"`, `"PIN changed"`, `"PUK changed"`} {
		if !strings.Contains(logs, want) {
			t.Errorf("audit log lacks %s", want)
		}
	}
}

// TestPerApplicationLogin: login belongs to one connection; the Manager's
// PIN proof goes only when the last logged-in connection leaves.
func TestPerApplicationLogin(t *testing.T) {
	e := newEnv(t, nil, nil)
	admin := e.dial()
	serial := e.provision(admin)
	id := e.generate(admin, serial, wire.AlgECDSAP256)
	d := sha256.Sum256([]byte("per app"))

	a, b := e.dial(), e.dial()
	sa, sb := mustOpen(t, a, serial, false), mustOpen(t, b, serial, false)
	mustLogin(t, a, sa)
	privA := privateKey(t, a, sa, id)
	if _, err := a.Sign(sa, privA, p11.CKMECDSA, nil, d[:]); err != nil {
		t.Fatalf("A signs: %v", err)
	}
	// B is not logged in: it neither sees nor uses the private key, even
	// with A's handle number.
	if hs, _ := b.FindObjects(sb, wire.Attribute{Type: p11.CKAClass, Value: wire.ULong(ckoPrivateKey)}); len(hs) != 0 {
		t.Errorf("B sees private objects: %v", hs)
	}
	_, err := b.Sign(sb, privA, p11.CKMECDSA, nil, d[:])
	wantStatus(t, "B signs", err, wire.NotLoggedIn)
	// A wrong PIN from B ends A's login too (TestWrongPINEndsEveryLogin).
	wantStatus(t, "B's wrong PIN", b.Login(sb, wire.UserNormal, secret.FromString("not the PIN")), wire.PINIncorrect)
	_, err = a.Sign(sa, privA, p11.CKMECDSA, nil, d[:])
	wantStatus(t, "A signs after B's wrong PIN", err, wire.NotLoggedIn)
	mustLogin(t, a, sa)

	// Both logged in: A logging out leaves B working.
	mustLogin(t, b, sb)
	privB := privateKey(t, b, sb, id)
	if err := a.Logout(sa); err != nil {
		t.Fatal(err)
	}
	_, err = a.Sign(sa, privA, p11.CKMECDSA, nil, d[:])
	wantStatus(t, "A signs after logout", err, wire.NotLoggedIn)
	if _, err := b.Sign(sb, privB, p11.CKMECDSA, nil, d[:]); err != nil {
		t.Fatalf("B signs after A's logout: %v", err)
	}
	if !e.m.LoggedIn(serial) {
		t.Fatal("Manager logged out while B is logged in")
	}

	// Closing B's last session logs B out; a second session keeps it.
	sb2 := mustOpen(t, b, serial, false)
	if err := b.CloseSession(sb); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Sign(sb2, privB, p11.CKMECDSA, nil, d[:]); err != nil {
		t.Fatalf("B signs in its second session: %v", err)
	}
	if err := b.CloseSession(sb2); err != nil {
		t.Fatal(err)
	}
	if e.m.LoggedIn(serial) {
		t.Fatal("Manager still logged in after every session closed")
	}

	// A logs in again and disconnects without logging out: released.
	mustLogin(t, a, sa)
	if !e.m.LoggedIn(serial) {
		t.Fatal("Manager not logged in")
	}
	a.Close()
	waitFor(t, "the Manager forgets the closed connection's login", func() bool { return !e.m.LoggedIn(serial) })
	if !strings.Contains(e.logs.String(), `"logged out: connection closed"`) {
		t.Error("audit log lacks the logout on close")
	}
}

// TestPermissions: who may do what, by peer identity.
func TestPermissions(t *testing.T) {
	const cardGID, adminGID = 4242, 4343
	e := newEnv(t, nil, func(c *Config) { c.CardGroup = "4242"; c.AdminGroup = "4343" })
	root := e.dial()
	serial := e.provision(root)
	e.generate(root, serial, wire.AlgECDSAP256)

	outsider := e.dialAs(Peer{UID: 1000, GID: 1000, Groups: []uint32{27}})
	_, err := outsider.ListCards()
	wantStatus(t, "outsider lists cards", err, wire.PermissionDenied)
	_, err = outsider.OpenSession(serial, false)
	wantStatus(t, "outsider opens a session", err, wire.PermissionDenied)

	user := e.dialAs(Peer{UID: 1001, GID: 1001, Groups: []uint32{cardGID}})
	if cards, err := user.ListCards(); err != nil || len(cards) != 0 {
		t.Fatalf("card user lists root's card: %v, %v", cards, err)
	}
	if err := root.SetOwner(serial, &wire.CardOwner{UID: 1001}); err != nil {
		t.Fatal(err)
	}
	if cards, err := user.ListCards(); err != nil || len(cards) != 1 || cards[0].Owner == nil || cards[0].Owner.UID != 1001 {
		t.Fatalf("card user lists its card: %v, %v", cards, err)
	}
	s := mustOpen(t, user, serial, true)
	mustLogin(t, user, s)
	_, _, err = user.GenerateKeyPair(s, wire.AlgECDSAP256, "", nil, nil)
	wantStatus(t, "card user generates a key", err, wire.PermissionDenied)
	_, err = user.Provision(wire.Provision{})
	wantStatus(t, "card user provisions", err, wire.PermissionDenied)
	_, err = user.Status()
	wantStatus(t, "card user reads service status", err, wire.PermissionDenied)
	wantStatus(t, "card user destroys", user.DestroyCard(serial), wire.PermissionDenied)
	hs, _ := user.FindObjects(s)
	wantStatus(t, "card user deletes a key", user.DestroyObject(s, hs[0]), wire.PermissionDenied)

	admin := e.dialAs(Peer{UID: 1002, GID: adminGID})
	if _, err := admin.Status(); err != nil {
		t.Fatalf("admin-group member reads status: %v", err)
	}
	if strings.Count(e.logs.String(), `"permission denied`) < 7 {
		t.Errorf("denials not audited:\n%s", e.logs)
	}
}

// TestNoCardGroupEveryoneUses: without a card group anyone may use cards,
// and only uid 0 administers.
func TestNoCardGroupEveryoneUses(t *testing.T) {
	e := newEnv(t, nil, nil)
	serial := e.provisionFor(e.dial(), &wire.CardOwner{UID: 1000})
	u := e.dialAs(Peer{UID: 1000, GID: 1000})
	s := mustOpen(t, u, serial, true)
	mustLogin(t, u, s)
	_, err := u.Provision(wire.Provision{})
	wantStatus(t, "non-root provisions", err, wire.PermissionDenied)
}
