package attack

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"
	"github.com/tpmcard/tpmcard/tpmcard"
	"github.com/tpmcard/tpmcard/tpmcard/secret"
	"github.com/tpmcard/tpmcard/tpmcard/tpmtest"
)

// A key whose PIN use is "always" (docs/security.md) signs only in a
// policy session that holds PolicyCommandCode(TPM2_Sign) and a
// PolicySecret of the PIN index with the policyRef "tpmcard sign always";
// the service makes that proof for one TPM2_Sign, bound to it through
// cpHashA, and the signature uses it up.
//
// TestAttackAlwaysKeyOneProof gives the attacker the state directory, the
// bus and, on a TPM without a resource manager (the simulator, swtpm, a
// raw /dev/tpm0), the victim's own policy session at its best moment:
// armed with the PIN proof of one signature, the victim's TPM2_Sign on its
// way. The attacker signs its own message with it, then, once the victim
// has signed, tries for a second signature every way the bus and the
// record offer. It also takes the proof a login leaves for the card's
// other keys and the PIN check of a context-specific login.
func TestAttackAlwaysKeyOneProof(t *testing.T) {
	tpmtest.ForEachTPM(t, func(t *testing.T, b *tpmtest.Backend) {
		a := &attacker{t: t, tpm: b.TPM}
		bus := &recorder{TPM: b.TPM}
		tap := &interposer{TPM: bus}
		dir := t.TempDir()
		m, err := tpmcard.Open(tap, tpmcard.WithStateDir(dir))
		if err != nil {
			t.Fatalf("tpmcard.Open: %v", err)
		}
		defer m.Close()
		c, err := m.Create(tpmcard.CreateOptions{PIN: secret.FromString(victimPIN), PINTries: 5})
		if err != nil {
			t.Fatalf("Create: %v", err)
		}
		serial := c.Card.Serial
		always, err := m.GenerateKey(context.Background(), serial, tpmcard.KeyOptions{Algorithm: tpmcard.ECDSAP256, PINUse: tpmcard.PINAlways}, nil)
		if err != nil {
			t.Fatalf("GenerateKey(always): %v", err)
		}
		once, err := m.GenerateKey(context.Background(), serial, tpmcard.KeyOptions{Algorithm: tpmcard.ECDSAP256}, nil)
		if err != nil {
			t.Fatalf("GenerateKey(once): %v", err)
		}

		// What the attacker reads: the record, and in it the two keys'
		// policies, as docs/security.md gives them.
		r := readRecord(t, dir, serial)
		keys := recordKeys(t, dir, serial)
		alwaysBlob, onceBlob := keys[string(always.ID)], keys[string(once.ID)]
		if alwaysBlob.PINUse != "always" || onceBlob.PINUse != "" {
			t.Fatalf("the record's PIN uses: %q, %q", alwaysBlob.PINUse, onceBlob.PINUse)
		}
		wantAlways := secretRefDigest(t, newCalc(t).cc(tpm2.TPMCCSign), r.PINName, refSignAlways)
		if got := authPolicy(t, alwaysBlob.Public); !bytes.Equal(got, wantAlways) {
			t.Fatalf("the always key's authPolicy %x is not PolicyCommandCode(Sign) + PolicySecret(I, %q) %x", got, refSignAlways, wantAlways)
		}
		if got := authPolicy(t, onceBlob.Public); !bytes.Equal(got, newCalc(t).secret(r.PINName).digest()) {
			t.Fatalf("the once key's authPolicy %x is not PolicySecret(I)", got)
		}

		// 1. The proof a login leaves in the sign session (PolicySecret(I),
		// what the card's other keys take) does not sign with the always
		// key, though it signs with the once key (the control).
		if err := m.Login(serial, secret.FromString(victimPIN)); err != nil {
			t.Fatalf("Login: %v", err)
		}
		armed := lastPolicySession(t, bus.take())
		key, _ := a.loadBlob(alwaysBlob)
		refused(t, b, "login-proof-signs-always-key", a.rawSign(key, armed, digestOf("attacker's message")), tpm2.TPMRCPolicyFail)
		a.flush(key)

		// 2. The PIN check of a context-specific login authorizes nothing.
		proof, err := m.ProvePIN(serial, secret.FromString(victimPIN))
		if err != nil {
			t.Fatalf("ProvePIN: %v", err)
		}
		checked := lastPolicySession(t, bus.take())
		for _, k := range []struct {
			name string
			blob keyBlob
		}{{"always", alwaysBlob}, {"once", onceBlob}} {
			key, _ := a.loadBlob(k.blob)
			refused(t, b, "pin-check-signs-"+k.name+"-key", a.rawSign(key, checked, digestOf("attacker's message")), tpm2.TPMRCPolicyFail)
			a.flush(key)
		}

		// 3. The proof of one signature: the attacker goes first, with the
		// victim's session and the victim's loaded key.
		victimDigest := digestOf("victim's message")
		var first, second error
		var victimSign []byte
		var victimKey tpm2.TPMHandle
		tap.before(tpm2.TPMCCSign, func(cmd []byte) {
			victimSign = bytes.Clone(cmd)
			sess := tpm2.TPMHandle(binary.BigEndian.Uint32(cmd[18:22]))
			victimKey = tpm2.TPMHandle(binary.BigEndian.Uint32(cmd[10:14]))
			first = a.rawSign(victimKey, sess, digestOf("attacker's message"))
			second = a.rawSign(victimKey, sess, digestOf("attacker's second message"))
		})
		sig, err := m.Sign(serial, always.ID, victimDigest, tpmcard.SignOptions{PIN: proof})
		if err != nil {
			t.Fatalf("the victim's signature after the attacker's tries: %v", err)
		}
		verifyRaw(t, always, victimDigest, sig)
		refused(t, b, "one-proof-signs-another-digest", first, tpm2.TPMRCPolicyFail)
		refused(t, b, "one-proof-signs-another-digest-again", second, tpm2.TPMRCPolicyFail)
		ex := bus.take()
		armed = lastPolicySession(t, ex)

		// 4. After the victim's signature: the same session, the victim's
		// digest; the victim's command replayed; the PolicySecret replayed
		// into the session; a ticket from the bus.
		refused(t, b, "one-proof-second-signature", a.rawSign(victimKey, armed, victimDigest), tpm2.TPMRCPolicyFail)
		refused(t, b, "replay-victim-sign", a.send(victimSign), tpm2.TPMRCPolicyFail)
		var secrets int
		for _, e := range ex {
			if e.cc() != tpm2.TPMCCPolicySecret {
				continue
			}
			secrets++
			if n := ticketSize(t, e.rsp); n != 0 {
				t.Errorf("ATTACK ticket-from-the-bus %s: a PolicySecret response carries a %d-byte ticket", b.Name, n)
			}
			refused(t, b, "replay-pin-proof", a.send(e.cmd), tpm2.TPMRCReferenceS0)
		}
		if secrets != 1 {
			t.Fatalf("%d PolicySecret commands on the bus for one signature, want 1", secrets)
		}
		t.Logf("ATTACK ticket-from-the-bus %s: none to take (the PIN proofs ask for no ticket)", b.Name)

		// 5. The attacker takes the one signature a proof is good for, the
		// victim's own digest, before the victim: it gets that signature
		// (the control that shows the proof is what signs), and nothing
		// else; the victim's signature then fails.
		proof, err = m.ProvePIN(serial, secret.FromString(victimPIN))
		if err != nil {
			t.Fatalf("ProvePIN: %v", err)
		}
		var taken, more error
		tap.before(tpm2.TPMCCSign, func(cmd []byte) {
			sess := tpm2.TPMHandle(binary.BigEndian.Uint32(cmd[18:22]))
			victimKey = tpm2.TPMHandle(binary.BigEndian.Uint32(cmd[10:14]))
			taken = a.send(cmd)
			more = a.rawSign(victimKey, sess, digestOf("attacker's message"))
		})
		if _, err := m.Sign(serial, always.ID, victimDigest, tpmcard.SignOptions{PIN: proof}); err == nil {
			t.Fatal("the victim signed with a proof the attacker had used")
		}
		if taken != nil {
			t.Fatalf("control: the victim's own TPM2_Sign, sent first by the attacker, failed (%v): the hijack is broken", taken)
		}
		t.Logf("CONTROL one-proof %s: sent first, the victim's own TPM2_Sign signs once, over the victim's digest", b.Name)
		refused(t, b, "taken-proof-second-signature", more, tpm2.TPMRCPolicyFail)
		bus.take()

		// 6. Without a new proof the victim's service signs no more either.
		if _, err := m.Sign(serial, always.ID, victimDigest, tpmcard.SignOptions{PIN: proof}); !errors.Is(err, tpmcard.ErrNotLoggedIn) {
			t.Fatalf("a used proof: %v", err)
		}

		// The control: the same hijack of a fresh login's session signs
		// with the once key, so the refusals above come from the always
		// key's policy and its proofs, not from a broken attack. The
		// victim's next signature still works (a new session).
		m.Logout(serial)
		if err := m.Login(serial, secret.FromString(victimPIN)); err != nil {
			t.Fatalf("Login: %v", err)
		}
		armed = lastPolicySession(t, bus.take())
		key, _ = a.loadBlob(onceBlob)
		if err := a.rawSign(key, armed, digestOf("attacker's message")); err != nil {
			t.Fatalf("control: the login's proof, taken from its session, does not sign with the once key (%v): the hijack is broken", err)
		}
		a.flush(key)
		t.Logf("CONTROL login-proof %s: a login's armed session, taken by another client of a TPM without a resource manager, signs once with a once key", b.Name)
		if _, err := m.Sign(serial, once.ID, victimDigest, tpmcard.SignOptions{}); err != nil {
			t.Fatalf("the victim's signature after its session was taken: %v", err)
		}
	})
}

// interposer runs a function before the next command of a code leaves
// for the TPM: the attacker acting between a victim's commands.
type interposer struct {
	transport.TPM
	mu   sync.Mutex
	cc   tpm2.TPMCC
	hook func(cmd []byte)
}

func (p *interposer) before(cc tpm2.TPMCC, fn func(cmd []byte)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cc, p.hook = cc, fn
}

func (p *interposer) Send(cmd []byte) ([]byte, error) {
	p.mu.Lock()
	hook := p.hook
	if hook != nil && (exchange{cmd: cmd}).cc() == p.cc {
		p.hook = nil
	} else {
		hook = nil
	}
	p.mu.Unlock()
	if hook != nil {
		hook(cmd)
	}
	return p.TPM.Send(cmd)
}

// keyBlob is a key as the record keeps it.
type keyBlob struct {
	ID      []byte `json:"id"`
	Public  []byte `json:"public"`
	Private []byte `json:"private"`
	PINUse  string `json:"pin_use"`
}

func recordKeys(t *testing.T, dir, serial string) map[string]keyBlob {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "cards", serial+".json"))
	if err != nil {
		t.Fatal(err)
	}
	var r struct {
		Keys []keyBlob `json:"keys"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	out := map[string]keyBlob{}
	for _, k := range r.Keys {
		out[string(k.ID)] = k
	}
	return out
}

func authPolicy(t *testing.T, pub []byte) []byte {
	t.Helper()
	p, err := tpm2.Unmarshal[tpm2.TPMTPublic](pub)
	if err != nil {
		t.Fatal(err)
	}
	return p.AuthPolicy.Buffer
}

// refSignAlways is the policyRef of an always key's PIN proof.
const refSignAlways = "tpmcard sign always"

func secretRefDigest(t *testing.T, c calc, name []byte, ref string) []byte {
	return c.must(tpm2.PolicySecret{AuthHandle: tpm2.NamedHandle{Name: tpm2.TPM2BName{Buffer: name}}, PolicyRef: tpm2.TPM2BNonce{Buffer: []byte(ref)}}.Update(c.pc)).digest()
}

func digestOf(msg string) []byte {
	d := sha256.Sum256([]byte(msg))
	return d[:]
}

// lastPolicySession is the policy session of the last PolicySecret on the
// bus: the session the victim's service arms for its signatures.
func lastPolicySession(t *testing.T, ex []exchange) tpm2.TPMHandle {
	t.Helper()
	for i := len(ex) - 1; i >= 0; i-- {
		if ex[i].cc() == tpm2.TPMCCPolicySecret && len(ex[i].cmd) >= 18 {
			return tpm2.TPMHandle(binary.BigEndian.Uint32(ex[i].cmd[14:18]))
		}
	}
	t.Fatal("no PolicySecret on the bus")
	return 0
}

// loadBlob loads a key's blobs from the record under the owner's SRK:
// the one the victim's service keeps loaded (a TPM without a resource
// manager shows every client's objects), or one of the attacker's own.
func (a *attacker) loadBlob(k keyBlob) (tpm2.TPMHandle, tpm2.TPM2BName) {
	a.t.Helper()
	srk, srkName, found := a.loadedSRK()
	if !found {
		srk, srkName = a.ownerSRK()
		defer a.flush(srk)
	}
	rsp, err := tpm2.Load{
		ParentHandle: tpm2.AuthHandle{Handle: srk, Name: srkName, Auth: tpm2.PasswordAuth(nil)},
		InPrivate:    tpm2.TPM2BPrivate{Buffer: k.Private},
		InPublic:     tpm2.BytesAs2B[tpm2.TPMTPublic](k.Public),
	}.Execute(a.tpm)
	if err != nil {
		a.t.Fatalf("loading the key's blobs under the owner SRK: %v", err)
	}
	return rsp.ObjectHandle, rsp.Name
}

// loadedSRK finds a loaded storage key: a restricted decryption key among
// the TPM's transient objects.
func (a *attacker) loadedSRK() (tpm2.TPMHandle, tpm2.TPM2BName, bool) {
	for _, h := range a.handles(0x80000000) {
		rp, err := tpm2.ReadPublic{ObjectHandle: h}.Execute(a.tpm)
		if err != nil {
			continue
		}
		if p, err := rp.OutPublic.Contents(); err == nil && p.ObjectAttributes.Restricted && p.ObjectAttributes.Decrypt {
			return h, rp.Name, true
		}
	}
	return 0, tpm2.TPM2BName{}, false
}

// rawSign sends TPM2_Sign of digest authorized by a policy session the
// attacker did not start (go-tpm only uses sessions it starts): the
// session's handle, no nonce, no HMAC, continueSession.
func (a *attacker) rawSign(key, sess tpm2.TPMHandle, digest []byte) error {
	var auth bytes.Buffer
	_ = binary.Write(&auth, binary.BigEndian, sess)
	auth.Write(tpm2.Marshal(tpm2.TPM2BNonce{}))
	auth.WriteByte(1) // continueSession
	auth.Write(tpm2.Marshal(tpm2.TPM2BAuth{}))
	params := append(tpm2.Marshal(tpm2.TPM2BDigest{Buffer: digest}), tpm2.Marshal(ecdsaScheme)...)
	params = append(params, tpm2.Marshal(tpm2.TPMTTKHashCheck{Tag: tpm2.TPMSTHashCheck, Hierarchy: tpm2.TPMRHNull})...)
	var cmd bytes.Buffer
	_ = binary.Write(&cmd, binary.BigEndian, tpm2.TPMSTSessions)
	_ = binary.Write(&cmd, binary.BigEndian, uint32(10+4+4+auth.Len()+len(params)))
	_ = binary.Write(&cmd, binary.BigEndian, tpm2.TPMCCSign)
	_ = binary.Write(&cmd, binary.BigEndian, key)
	_ = binary.Write(&cmd, binary.BigEndian, uint32(auth.Len()))
	cmd.Write(auth.Bytes())
	cmd.Write(params)
	return a.send(cmd.Bytes())
}

// send sends a command as it is and returns the TPM's response code.
func (a *attacker) send(cmd []byte) error {
	rsp, err := a.tpm.Send(cmd)
	if err != nil {
		return err
	}
	if len(rsp) < 10 {
		return errors.New("short response")
	}
	if rc := tpm2.TPMRC(binary.BigEndian.Uint32(rsp[6:10])); rc != tpm2.TPMRCSuccess {
		return rc
	}
	return nil
}

// ticketSize reads the size of the ticket digest in a PolicySecret
// response (Part 3 §23.4: timeout, then the TPMT_TK_AUTH).
func ticketSize(t *testing.T, rsp []byte) int {
	t.Helper()
	if len(rsp) < 16 || binary.BigEndian.Uint32(rsp[6:10]) != 0 {
		return 0
	}
	off := 14 // header, parameterSize
	off += 2 + int(binary.BigEndian.Uint16(rsp[off:]))
	off += 2 + 4 // ticket tag, hierarchy
	if len(rsp) < off+2 {
		t.Fatalf("a short PolicySecret response: %x", rsp)
	}
	return int(binary.BigEndian.Uint16(rsp[off:]))
}

func verifyRaw(t *testing.T, k tpmcard.KeyInfo, digest, sig []byte) {
	t.Helper()
	der, err := tpmcard.RawToASN1(sig)
	if err != nil {
		t.Fatal(err)
	}
	if !ecdsa.VerifyASN1(k.Public.(*ecdsa.PublicKey), digest, der) {
		t.Fatal("the victim's signature does not verify")
	}
}
