package tpmcard

import (
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"errors"
	"fmt"
	"testing"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"
	"github.com/tpmcard/tpmcard/tpmcard/attest"
	"github.com/tpmcard/tpmcard/tpmcard/secret"
	"github.com/tpmcard/tpmcard/tpmcard/tpmtest"
)

// room reads how many more transient objects and sessions the TPM takes
// (TPM_PT_HR_TRANSIENT_AVAIL, TPM_PT_HR_LOADED_AVAIL).
func room(t *testing.T, tpm transport.TPM) (objects, sessions uint32) {
	t.Helper()
	rsp, err := tpm2.GetCapability{Capability: tpm2.TPMCapTPMProperties, Property: uint32(tpm2.TPMPTHRTransientAvail), PropertyCount: 2}.Execute(tpm)
	if err != nil {
		t.Fatalf("reading the TPM's room: %v", err)
	}
	props, err := rsp.CapabilityData.Data.TPMProperties()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range props.TPMProperty {
		switch p.Property {
		case tpm2.TPMPTHRTransientAvail:
			objects = p.Value
		case tpm2.TPMPTHRLoadedAvail:
			sessions = p.Value
		}
	}
	return objects, sessions
}

// fullCards is several cards with two keys each, and what their PINs and
// PUKs are now.
type fullCards struct {
	t      *testing.T
	m      *Manager
	tpm    transport.TPM
	serial []string
	keys   map[string][]KeyInfo
	pin    map[string]secret.Secret
	puk    map[string]secret.Secret
	skip   map[string]bool // locked: no login
	expire map[string]bool // the PIN must change: login, no signing
}

// fill logs in to every card and signs with every key, so that the TPM's
// object slots hold card keys and its session slots logins, and checks it
// has no room left for another object or session.
func (c *fullCards) fill() {
	c.t.Helper()
	for _, s := range c.serial {
		if c.skip[s] {
			continue
		}
		loaded := c.loadedKeys()
		if err := c.m.Login(s, c.pin[s]); err != nil {
			c.t.Fatalf("login %s: %v", s, err)
		}
		// A login needs a session slot: it makes room among sessions,
		// and leaves the loaded keys alone.
		if now := c.loadedKeys(); len(now) < len(loaded) {
			c.t.Fatalf("login %s flushed keys: %d loaded before, %d after", s, len(loaded), len(now))
		}
		for _, k := range c.keys[s] {
			if !c.expire[s] {
				c.sign(s, k)
			}
		}
	}
	if o, s := room(c.t, c.tpm); o != 0 || s != 0 {
		c.t.Fatalf("the TPM is not full: room for %d more objects and %d more sessions", o, s)
	}
}

func (c *fullCards) loadedKeys() map[string]bool {
	c.m.mu.Lock()
	defer c.m.mu.Unlock()
	out := map[string]bool{}
	for id := range c.m.keys {
		out[id] = true
	}
	return out
}

func (c *fullCards) sign(serial string, k KeyInfo) {
	c.t.Helper()
	d := sha256.Sum256([]byte("full TPM " + serial))
	sig, err := c.m.Sign(serial, k.ID, d[:], SignOptions{Hash: crypto.SHA256})
	if err != nil {
		c.t.Fatalf("signing with key %x of card %s: %v", k.ID, serial, err)
	}
	verify(c.t, k, d[:], sig, SignOptions{Hash: crypto.SHA256})
}

// Every operation works on a TPM whose object and session slots are all
// taken (three each on the reference TPM and on swtpm): each loads what it
// needs by making room, and never flushes what it holds itself.
func TestFullTPM(t *testing.T) {
	tpmtest.ForEachTPM(t, func(t *testing.T, b *tpmtest.Backend) {
		count := &commandCounter{TPM: b.TPM, n: map[tpm2.TPMCC]int{}}
		m := openManager(t, count, "")
		admin := adminKey(t)
		c := &fullCards{t: t, m: m, tpm: b.TPM, keys: map[string][]KeyInfo{},
			pin: map[string]secret.Secret{}, puk: map[string]secret.Secret{}, skip: map[string]bool{}, expire: map[string]bool{}}
		c.serial = append(c.serial, newAdminCard(t, m, admin, false), newCard(t, m), newCard(t, m))
		for _, s := range c.serial {
			c.pin[s], c.puk[s] = testPIN, testPUK
			c.keys[s] = []KeyInfo{mustGenerate(t, m, s, ECDSAP256), mustGenerate(t, m, s, ECDSAP256)}
		}
		withAdmin, plain := c.serial[0], c.serial[1]
		step := func(name string, fn func() error) {
			t.Helper()
			c.fill()
			if err := fn(); err != nil {
				t.Fatalf("%s on a full TPM: %v", name, err)
			}
		}
		newPIN := func(s, p string) func() error {
			return func() error {
				if err := m.ChangePIN(s, c.pin[s], secret.FromString(p)); err != nil {
					return err
				}
				c.pin[s], c.expire[s] = secret.FromString(p), false
				return nil
			}
		}

		step("ok/PIN change", newPIN(plain, "full pin 1"))
		step("ok/PUK change", func() error {
			if err := m.ChangePUK(plain, c.puk[plain], secret.FromString("full puk 12345")); err != nil {
				return err
			}
			c.puk[plain] = secret.FromString("full puk 12345")
			return nil
		})

		// PUK unblock of a locked card, then the PIN change it asks for.
		lockPIN2(t, m, plain, c.pin[plain])
		c.skip[plain] = true
		step("ok/PUK unblock", func() error {
			if err := m.Unblock(plain, c.puk[plain], secret.FromString("unblocked 1")); err != nil {
				return err
			}
			c.pin[plain], c.skip[plain], c.expire[plain] = secret.FromString("unblocked 1"), false, true
			return nil
		})
		step("ok/PIN change after the unblock", newPIN(plain, "full pin 2"))

		// The administrator's unblock: the challenge is made on a full
		// TPM, its sessions wait saved while the TPM fills again, and the
		// response is answered on a full TPM.
		lockPIN2(t, m, withAdmin, c.pin[withAdmin])
		c.skip[withAdmin] = true
		var ch string
		step("ok/admin challenge", func() error {
			chal, err := m.AdminChallenge(withAdmin, 0)
			if err == nil {
				ch = respond(t, admin, chal)
			}
			return err
		})
		step("ok/admin unblock", func() error {
			if err := m.AdminUnblock(withAdmin, ch, secret.FromString("admin set 1")); err != nil {
				return err
			}
			c.pin[withAdmin], c.skip[withAdmin], c.expire[withAdmin] = secret.FromString("admin set 1"), false, true
			return nil
		})
		step("ok/PIN change after the admin unblock", newPIN(withAdmin, "full pin 3"))

		for i, s := range c.serial {
			k := c.keys[s][i%2]
			step(fmt.Sprintf("ok/attest %s", s), func() error {
				st, err := m.Attest(s, k.ID, AttestOptions{Nonce: []byte("full")})
				if err != nil {
					return err
				}
				_, err = attest.Verify(st, attest.Options{PublicKey: k.Public, Nonce: []byte("full"), AKPubArea: st.AKPubArea})
				return err
			})
		}

		// A certificate request is signed by the card key (what `tpmcard
		// cert request` does through the service), then the certificate
		// is imported.
		k := c.keys[plain][1]
		var csr *x509.CertificateRequest
		step("ok/certificate request", func() error {
			s, err := m.Signer(plain, k.ID)
			if err != nil {
				return err
			}
			der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "full"}}, s)
			if err != nil {
				return err
			}
			if csr, err = x509.ParseCertificateRequest(der); err != nil {
				return err
			}
			return csr.CheckSignature()
		})
		step("ok/certificate import", func() error {
			_, err := m.ImportCertificate(plain, issue(t, csr.PublicKey, "full"), "")
			return err
		})
		step("ok/key generation", func() error {
			k, err := m.GenerateKey(t.Context(), plain, KeyOptions{Algorithm: ECDSAP256}, nil)
			c.keys[plain] = append(c.keys[plain], k)
			return err
		})
		step("ok/status", func() error {
			for _, s := range c.serial {
				if _, err := m.Status(s); err != nil {
					return err
				}
			}
			return nil
		})
		step("ok/card creation", func() error {
			cr, err := m.Create(CreateOptions{PIN: testPIN, PUK: testPUK, PINTries: 3, PUKTries: 2})
			if err != nil {
				return err
			}
			s := cr.Card.Serial
			c.serial = append(c.serial, s)
			c.pin[s], c.puk[s] = testPIN, testPUK
			k, err := m.GenerateKey(t.Context(), s, KeyOptions{Algorithm: ECDSAP256}, nil)
			c.keys[s] = append(c.keys[s], k)
			return err
		})

		// Every key of every card still signs.
		c.fill()
		c.fill()
		t.Logf("%d key loads (TPM2_Load), %d sessions started, %d commands", count.n[tpm2.TPMCCLoad], count.n[tpm2.TPMCCStartAuthSession], count.total)
	})
}

// commandCounter counts the commands sent to the TPM, and those that
// succeeded by command code.
type commandCounter struct {
	transport.TPM
	n     map[tpm2.TPMCC]int
	total int
}

func (c *commandCounter) Send(cmd []byte) ([]byte, error) {
	rsp, err := c.TPM.Send(cmd)
	c.total++
	if err == nil && len(cmd) >= 10 && len(rsp) >= 10 && binary.BigEndian.Uint32(rsp[6:10]) == 0 {
		c.n[tpm2.TPMCC(binary.BigEndian.Uint32(cmd[6:10]))]++
	}
	return rsp, err
}

// fillSessions starts HMAC sessions of another program until the TPM has
// no session slot left, and flushes them when the test ends.
func fillSessions(t *testing.T, tpm transport.TPM) []tpm2.TPMHandle {
	t.Helper()
	var hs []tpm2.TPMHandle
	for {
		rsp, err := tpm2.StartAuthSession{
			TPMKey: tpm2.TPMRHNull, Bind: tpm2.TPMRHNull, SessionType: tpm2.TPMSEHMAC,
			NonceCaller: tpm2.TPM2BNonce{Buffer: make([]byte, 16)},
			Symmetric:   tpm2.TPMTSymDef{Algorithm: tpm2.TPMAlgNull}, AuthHash: tpm2.TPMAlgSHA256,
		}.Execute(tpm)
		if isTPM(err, tpm2.TPMRCSessionMemory) {
			break
		}
		if err != nil {
			t.Fatalf("starting a session: %v", err)
		}
		hs = append(hs, rsp.SessionHandle)
	}
	t.Cleanup(func() {
		for _, h := range hs {
			flush(tpm, h)
		}
	})
	return hs
}

// When every session slot but the sign session's holds another program's
// session, a signature that needs its login's session back cannot get a
// slot: it fails with the TPM's error, and flushes neither the key it
// loaded nor the sign session it armed (it used to flush both, and then
// used the sign session it had thrown away: a nil pointer). Once the slots
// are free again, it signs.
func TestEvictionSparesWhatTheOperationHolds(t *testing.T) {
	tpmtest.ForEachTPM(t, func(t *testing.T, b *tpmtest.Backend) {
		m := openManager(t, b.TPM, "")
		serial := newCard(t, m)
		k := mustGenerate(t, m, serial, ECDSAP256)
		if err := m.Login(serial, testPIN); err != nil {
			t.Fatal(err)
		}
		d := sha256.Sum256([]byte("held"))
		if _, err := m.Sign(serial, k.ID, d[:], SignOptions{Hash: crypto.SHA256}); err != nil {
			t.Fatal(err)
		}
		// A PIN change keeps the login and closes its session (and, its
		// own sessions taking every slot, the sign session); the sign
		// session comes back and the owner session goes, as the next
		// commands may have it.
		newPIN := secret.FromString("held pin 1")
		if err := m.ChangePIN(serial, testPIN, newPIN); err != nil {
			t.Fatal(err)
		}
		m.mu.Lock()
		if err := m.prepareSignSession(); err != nil {
			t.Fatal(err)
		}
		m.dropOwnerSession()
		m.mu.Unlock()
		foreign := fillSessions(t, b.TPM)
		t.Logf("%d sessions of another program", len(foreign))

		var err error
		func() {
			defer func() {
				if p := recover(); p != nil {
					t.Fatalf("Sign panicked: %v", p)
				}
			}()
			_, err = m.Sign(serial, k.ID, d[:], SignOptions{Hash: crypto.SHA256})
		}()
		if !isTPM(err, tpm2.TPMRCSessionMemory) || !errors.Is(err, ErrTPMFull) {
			t.Fatalf("Sign with no session slot: %v, want ErrTPMFull and TPM_RC_SESSION_MEMORY", err)
		}
		m.mu.Lock()
		_, keyKept := m.keys[keyCacheID(serial, k.ID)]
		sigKept := m.sig.sess != nil
		m.mu.Unlock()
		if !keyKept || !sigKept {
			t.Fatalf("a signature that found no room flushed what it held: key kept %v, sign session kept %v", keyKept, sigKept)
		}

		flush(b.TPM, foreign[0])
		sig, err := m.Sign(serial, k.ID, d[:], SignOptions{Hash: crypto.SHA256})
		if err != nil {
			t.Fatalf("Sign once a slot is free: %v", err)
		}
		verify(t, k, d[:], sig, SignOptions{})
	})
}
