package tpmcard

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"testing"
	"time"

	"github.com/google/go-tpm/tpm2"
	"github.com/tpmcard/tpmcard/tpmcard/adminkey"
	"github.com/tpmcard/tpmcard/tpmcard/secret"
	"github.com/tpmcard/tpmcard/tpmcard/tpmtest"
)

func adminKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func newAdminCard(t *testing.T, m *Manager, admin *ecdsa.PrivateKey, noPUK bool) string {
	t.Helper()
	opts := CreateOptions{PIN: testPIN, PINTries: 3, AdminKey: &admin.PublicKey, NoPUK: noPUK}
	if !noPUK {
		opts.PUK, opts.PUKTries = testPUK, 2
	}
	c, err := m.Create(opts)
	if err != nil {
		t.Fatalf("Create with an admin key: %v", err)
	}
	return c.Card.Serial
}

func respond(t *testing.T, key *ecdsa.PrivateKey, c *adminkey.Challenge) string {
	t.Helper()
	r, err := adminkey.Respond(key, c)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// lock → challenge → respond → unblock → the user must change the PIN →
// sign; on a card with a PUK and on one with the admin key alone.
func TestAdminUnblock(t *testing.T) {
	tpmtest.ForEachTPM(t, func(t *testing.T, b *tpmtest.Backend) {
		for _, noPUK := range []bool{false, true} {
			m := openManager(t, b.TPM, "")
			admin := adminKey(t)
			serial := newAdminCard(t, m, admin, noPUK)
			k := mustGenerate(t, m, serial, ECDSAP256)
			info, _ := m.Card(serial)
			if info.HasPUK == noPUK || info.AdminKey == nil || !info.AdminKey.Equal(&admin.PublicKey) {
				t.Fatalf("card info: PUK %v, admin key %v", info.HasPUK, info.AdminKey)
			}
			lockPIN(t, m, serial)
			if noPUK {
				if err := m.Unblock(serial, testPUK, testPIN); !errors.Is(err, ErrNoPUK) {
					t.Fatalf("PUK unblock of a card without PUK: %v", err)
				}
			}
			c, err := m.AdminChallenge(serial, 0)
			if err != nil {
				t.Fatal(err)
			}
			if c.Serial != serial || c.Validity != DefaultChallengeValidity {
				t.Fatalf("challenge %+v", c)
			}
			// The text travels through a person: parse what they would type.
			parsed, err := adminkey.ParseChallenge(c.String())
			if err != nil {
				t.Fatal(err)
			}
			newPIN := secret.FromString("admin set PIN 1")
			if err := m.AdminUnblock(serial, respond(t, admin, parsed), newPIN); err != nil {
				t.Fatalf("admin unblock: %v", err)
			}
			st := status(t, m, serial)
			if st.PINLocked || st.PINTriesLeft != 3 || !st.MustChange {
				t.Fatalf("after the admin unblock: %+v", st)
			}
			if err := m.Login(serial, newPIN); err != nil {
				t.Fatal(err)
			}
			d := sha256.Sum256([]byte("after the admin unblock"))
			if _, err := m.Sign(serial, k.ID, d[:], SignOptions{Hash: crypto.SHA256}); !errors.Is(err, ErrPINExpired) {
				t.Fatalf("sign before the PIN change: %v", err)
			}
			if err := m.ChangePIN(serial, newPIN, testPIN); err != nil {
				t.Fatal(err)
			}
			sig, err := m.Sign(serial, k.ID, d[:], SignOptions{Hash: crypto.SHA256})
			if err != nil {
				t.Fatal(err)
			}
			verify(t, k, d[:], sig, SignOptions{})
			m.Close()
		}
	})
}

func TestAdminUnblockRefusals(t *testing.T) {
	tpmtest.ForEachTPM(t, func(t *testing.T, b *tpmtest.Backend) {
		m := openManager(t, b.TPM, "")
		admin := adminKey(t)
		serial := newAdminCard(t, m, admin, false)
		other := newAdminCard(t, m, admin, false)
		lockPIN(t, m, serial)
		pin := secret.FromString("admin set PIN 1")
		refused := func(what, response string, want error) {
			t.Helper()
			if err := m.AdminUnblock(serial, response, pin); !errors.Is(err, want) {
				t.Fatalf("%s: got %v, want %v", what, err, want)
			}
			if st := status(t, m, serial); !st.PINLocked {
				t.Fatalf("%s: the card is no longer locked", what)
			}
		}
		challenge := func() *adminkey.Challenge {
			t.Helper()
			c, err := m.AdminChallenge(serial, 0)
			if err != nil {
				t.Fatal(err)
			}
			return c
		}

		rec := m.records[serial]
		refused("no challenge", respond(t, admin, &adminkey.Challenge{
			Op: adminkey.Unblock, Serial: serial, SetNonce: make([]byte, 16), ResetNonce: []byte("0123456789abcdef"),
			Validity: time.Minute, PINLimit: uint8(rec.PINLimit),
			PINPublic: tpm2.Marshal(pinIndexPublic(tpm2.TPMHandle(rec.PINIndex), orDigest(m.pinBranches(rec)), true)),
		}), ErrNoChallenge)

		c := challenge()
		refused("another key", respond(t, adminKey(t), c), ErrBadResponse)

		challenge()
		oc, err := m.AdminChallenge(other, 0)
		if err != nil {
			t.Fatal(err)
		}
		refused("the response to another card's challenge", respond(t, admin, oc), ErrBadResponse)

		// The two signatures in each other's place.
		c = challenge()
		good, err := adminkey.ParseResponse(respond(t, admin, c))
		if err != nil {
			t.Fatal(err)
		}
		refused("the two signatures swapped", adminkey.EncodeResponse(adminkey.Response{SetSig: good.ResetSig, ResetSig: good.SetSig}), ErrBadResponse)

		// A response that would reset the card to another limit: the
		// new-PIN half is genuine, the reset half is bound to a write of
		// {0, 200}, and the TPM refuses it for the card's write of {0, 3}.
		c = challenge()
		forged := *c
		forged.PINLimit = 200
		refused("a reset to another limit", respond(t, admin, &forged), ErrBadResponse)

		// A replayed response: the first one unblocks, the same again does not.
		c = challenge()
		once := respond(t, admin, c)
		if err := m.AdminUnblock(serial, once, pin); err != nil {
			t.Fatal(err)
		}
		lockPIN2(t, m, serial, pin)
		refused("a replayed response (no challenge)", once, ErrNoChallenge)
		challenge()
		refused("a replayed response (new challenge)", once, ErrBadResponse)

		// After expiry: the service's own clock, then the TPM's alone.
		c, err = m.AdminChallenge(serial, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(1500 * time.Millisecond)
		refused("an expired challenge", respond(t, admin, c), ErrChallengeExpired)
		c, err = m.AdminChallenge(serial, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		m.challenges[serial].deadline = time.Now().Add(time.Hour) // only the TPM checks now
		time.Sleep(1500 * time.Millisecond)
		refused("an expired challenge, checked by the TPM", respond(t, admin, c), ErrChallengeExpired)
	})
}

// lockPIN2 locks a card whose PIN is pin (lockPIN assumes testPIN's card
// with three tries).
func lockPIN2(t *testing.T, m *Manager, serial string, pin secret.Secret) {
	t.Helper()
	for i := 0; i < 3; i++ {
		if err := m.Login(serial, wrongPIN(i)); err == nil {
			t.Fatal("a wrong PIN logged in")
		}
	}
	if err := m.Login(serial, pin); !errors.Is(err, ErrPINLocked) {
		t.Fatalf("not locked: %v", err)
	}
}

// A card made without an admin key has no admin branch: a valid-looking
// PolicySigned from any key gets nowhere. And the admin branch, on a card
// that has it, can neither sign with a card key nor read the PIN index.
func TestAttackAdminBranch(t *testing.T) {
	tpmtest.ForEachTPM(t, func(t *testing.T, b *tpmtest.Backend) {
		m := openManager(t, b.TPM, "")
		admin := adminKey(t)
		plain := newCard(t, m)
		if _, err := m.AdminChallenge(plain, 0); !errors.Is(err, ErrNoAdminKey) {
			t.Fatalf("challenge on a card without admin key: %v", err)
		}
		withAdmin := newAdminCard(t, m, admin, false)
		k := mustGenerate(t, m, withAdmin, ECDSAP256)

		// signedSession runs PolicyCommandCode(cc) + a valid PolicySigned
		// by admin for card serial, straight on the TPM.
		signedSession := func(serial string, cc tpm2.TPMCC) (tpm2.Session, func() error) {
			t.Helper()
			s, closer, err := tpm2.PolicySession(b.TPM, tpm2.TPMAlgSHA256, 16)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := (tpm2.PolicyCommandCode{PolicySession: s.Handle(), Code: cc}).Execute(b.TPM); err != nil {
				t.Fatal(err)
			}
			pt, _ := admin.PublicKey.Bytes()
			pub := p256Public(pt[1:33], pt[33:])
			loaded, err := tpm2.LoadExternal{InPublic: tpm2.New2B(pub), Hierarchy: tpm2.TPMRHOwner}.Execute(b.TPM)
			if err != nil {
				t.Fatal(err)
			}
			defer flush(b.TPM, loaded.ObjectHandle)
			ref := adminkey.ResetRef(serial)
			if cc == tpm2.TPMCCNVChangeAuth {
				ref = adminkey.SetPINRef(serial)
			}
			nonce := s.NonceTPM().Buffer
			sig, err := adminkey.SignDigest(admin, adminkey.PolicySignedDigest(nonce, 0, nil, ref))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := (tpm2.PolicySigned{
				AuthObject: tpm2.NamedHandle{Handle: loaded.ObjectHandle, Name: loaded.Name}, PolicySession: s.Handle(),
				NonceTPM: tpm2.TPM2BNonce{Buffer: nonce}, PolicyRef: tpm2.TPM2BNonce{Buffer: ref},
				Auth: ecdsaSignature(sig),
			}).Execute(b.TPM); err != nil {
				t.Fatalf("PolicySigned: %v", err)
			}
			return s, closer
		}

		r := m.records[plain]
		s, closer := signedSession(plain, tpm2.TPMCCNVWrite)
		_, err := tpm2.PolicyOr{PolicySession: s.Handle(), PHashList: digestList(m.pinBranches(r))}.Execute(b.TPM)
		if !isTPM(err, tpm2.TPMRCValue) {
			t.Fatalf("admin branch on a card without one: got %v, want TPM_RC_VALUE", err)
		}
		closer()

		ra := m.records[withAdmin]
		lk, err := m.loadKey(ra, ra.key(k.ID))
		if err != nil {
			t.Fatal(err)
		}
		s, closer = signedSession(withAdmin, tpm2.TPMCCSign)
		d := sha256.Sum256([]byte("admin signs?"))
		_, err = tpm2.Sign{
			KeyHandle: tpm2.AuthHandle{Handle: lk.handle, Name: lk.name, Auth: s}, Digest: tpm2.TPM2BDigest{Buffer: d[:]},
			InScheme:   tpm2.TPMTSigScheme{Scheme: tpm2.TPMAlgECDSA, Details: tpm2.NewTPMUSigScheme(tpm2.TPMAlgECDSA, &tpm2.TPMSSchemeHash{HashAlg: tpm2.TPMAlgSHA256})},
			Validation: tpm2.TPMTTKHashCheck{Tag: tpm2.TPMSTHashCheck, Hierarchy: tpm2.TPMRHNull},
		}.Execute(b.TPM)
		if !isTPM(err, tpm2.TPMRCPolicyFail) {
			t.Fatalf("signing through the admin branch: got %v, want TPM_RC_POLICY_FAIL", err)
		}
		closer()

		s, closer = signedSession(withAdmin, tpm2.TPMCCNVRead)
		if _, err := (tpm2.PolicyOr{PolicySession: s.Handle(), PHashList: digestList(m.pinBranches(ra))}).Execute(b.TPM); !isTPM(err, tpm2.TPMRCValue) {
			t.Fatalf("an NV_Read admin branch: got %v, want TPM_RC_VALUE", err)
		}
		closer()
	})
}
