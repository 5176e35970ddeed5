package attack

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"math/big"
	"testing"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"
	"github.com/tpmcard/tpmcard/tpmcard"
	"github.com/tpmcard/tpmcard/tpmcard/adminkey"
	"github.com/tpmcard/tpmcard/tpmcard/secret"
	"github.com/tpmcard/tpmcard/tpmcard/tpmtest"
)

// TestAttackAdminUnblockReplay records the bus during a genuine admin
// unblock and replays what it saw. The old design signed with a negative
// expiration, so every PolicySigned response carried a ticket, and both
// admin branches shared one policyRef with no cpHash: the "ticket-on-bus"
// check would have failed, and a ticket (PolicyTicket) would have set any
// PIN and written any limit until the challenge expired. Here each
// signature covers one session's nonce, positive expiration, no ticket;
// the reset covers the one NV_Write of {0, the card's limit}.
func TestAttackAdminUnblockReplay(t *testing.T) {
	tpmtest.ForEachTPM(t, func(t *testing.T, b *tpmtest.Backend) {
		v := newVictim(t, b, adminOnly)
		r := v.record(t)
		a := &attacker{t: t, tpm: b.TPM}
		v.lock(t)

		v.bus.take()
		c, err := v.m.AdminChallenge(v.serial, 0)
		if err != nil {
			t.Fatalf("AdminChallenge: %v", err)
		}
		response, err := adminkey.Respond(v.admin, c)
		if err != nil {
			t.Fatal(err)
		}
		if err := v.m.AdminUnblock(v.serial, response, secret.FromString("13572468")); err != nil {
			t.Fatalf("AdminUnblock: %v", err)
		}
		bus := v.bus.take()
		if err := v.m.Login(v.serial, secret.FromString("13572468")); err != nil {
			t.Fatalf("control: the unblocked card does not take its new PIN: %v", err)
		}
		v.m.Logout(v.serial)

		// What the bus showed: the two PolicySigned, their responses, and
		// the challenge sessions' saved contexts.
		seen := policySignedOnBus(t, bus)
		if len(seen) < 2 {
			t.Fatalf("the bus shows %d successful PolicySigned during the unblock, want 2", len(seen))
		}
		if len(seen) != 2 || seen[0].kind(r) != "set" || seen[1].kind(r) != "reset" {
			t.Fatalf("the bus shows PolicySigned for %d operations, want set then reset", len(seen))
		}
		pub := adminPublic(t, r)
		for i := range seen {
			seen[i].adminPub = r.AdminKey
		}
		for i, ps := range seen {
			if !ecdsa.Verify(pub, signedDigest(ps.nonce, ps.expiration, ps.cpHash, ps.ref), new(big.Int).SetBytes(ps.r), new(big.Int).SetBytes(ps.s)) {
				t.Fatalf("control: PolicySigned #%d as parsed off the bus does not verify under the admin key: the parser is wrong", i)
			}
			if ps.ticketDigest != 0 || ps.expiration <= 0 {
				t.Errorf("ATTACK admin-replay/ticket-on-bus %s: SUCCEEDED: PolicySigned #%d (expiration %d) returned a ticket with a %d-byte digest", b.Name, i, ps.expiration, ps.ticketDigest)
			}
		}
		t.Logf("ATTACK admin-replay/ticket-on-bus %s: refused: %d PolicySigned responses, all NULL tickets (expirations %d, %d)", b.Name, len(seen), seen[0].expiration, seen[1].expiration)
		oldContexts := contextsOnBus(t, bus)

		// The genuine response a second time, against a new challenge:
		// the attacker even loads the new challenge's sessions from the
		// contexts on the bus.
		v.lock(t)
		v.bus.take()
		c2, err := v.m.AdminChallenge(v.serial, 0)
		if err != nil {
			t.Fatalf("AdminChallenge: %v", err)
		}
		newContexts := contextsOnBus(t, v.bus.take())
		if len(newContexts) != 2 {
			t.Fatalf("the bus shows %d saved session contexts for the challenge, want 2", len(newContexts))
		}
		// The administrator answers the new challenge; the attacker sees
		// that response too (it is read out, not secret).
		response2, err := adminkey.Respond(v.admin, c2)
		if err != nil {
			t.Fatal(err)
		}
		genuine, err := adminkey.ParseResponse(response2)
		if err != nil {
			t.Fatal(err)
		}
		admin, done := a.loadExternal(r.AdminKey)
		for i, ctx := range newContexts {
			rsp, err := tpm2.ContextLoad{Context: ctx}.Execute(a.tpm)
			if err != nil {
				t.Fatalf("control: loading the pending challenge's session from the bus: %v", err)
			}
			s := &rawPolicy{h: rsp.LoadedHandle, nonce: [][]byte{c2.SetNonce, c2.ResetNonce}[i]}
			old := seen[i]
			err = a.policySigned(s, admin, s.nonce, old.cpHash, old.ref, old.expiration, old.sig())
			refused(t, b, "admin-replay/response-again/"+old.kind(r)+"-sig-in-new-challenge-session", err, tpm2.TPMRCSignature)
			if i == 1 {
				// The genuine reset signature of the new challenge, in its
				// own session, for another limit: bound by cpHashA.
				var first error
				first = a.ccStep(tpm2.TPMCCNVWrite)(s)
				if first == nil {
					first = a.policySigned(s, admin, s.nonce, c2.ResetCpHash(), resetRef(r.Serial), c2.Expiration(), ecdsaSig(genuine.ResetSig))
				}
				if first != nil {
					t.Fatalf("control: the genuine reset signature is refused in its own session: %v", first)
				}
				if _, err := (tpm2.PolicyOr{PolicySession: s.h, PHashList: digestList(digests(r.pinBranches(t)))}).Execute(a.tpm); err != nil {
					t.Fatalf("control: PolicyOR after the genuine reset signature: %v", err)
				}
				// The command's cpHash is not the one signed: the TPM
				// answers POLICY_FAIL at the command (TPM_RC_CPHASH is for
				// a policy command that meets another cpHash).
				err := a.nvWrite(r.PINIndex, r.PINName, s, pinData(0, 200))
				refused(t, b, "admin-replay/genuine-reset-sig-limit-200/NV_Write", at("NV_Write", err), tpm2.TPMRCPolicyFail)
				// Control: in the same session, the write the signature
				// covers goes through, so the refusal above was the cpHash.
				if err := a.nvWrite(r.PINIndex, r.PINName, s, pinData(0, r.PINLimit)); err != nil {
					t.Fatalf("control: the genuine reset signature does not reset to the card's limit: %v", err)
				}
			}
			a.flush(rsp.LoadedHandle)
		}
		done()
		err = v.m.AdminUnblock(v.serial, response, secret.FromString("11223344"))
		if !errors.Is(err, tpmcard.ErrBadResponse) {
			t.Errorf("ATTACK admin-replay/response-again %s: AdminUnblock with the old response: %v, want ErrBadResponse", b.Name, err)
		} else {
			t.Logf("ATTACK admin-replay/response-again %s: refused by the service (ErrBadResponse) before the TPM", b.Name)
		}
		v.lock(t)
		v.close()

		// The old challenge's sessions are gone.
		for i, ctx := range oldContexts {
			rsp, err := tpm2.ContextLoad{Context: ctx}.Execute(a.tpm)
			if err == nil {
				a.flush(rsp.LoadedHandle)
			}
			refused(t, b, "admin-replay/reload-used-challenge-session-"+[]string{"set", "reset"}[i%2], at("ContextLoad", err), tpm2.TPMRCHandle)
		}

		// Every signature seen, in fresh sessions, for both commands and
		// any limit, with the captured nonce, the fresh one, or none.
		replay := func(prefix string) {
			pin := target{label: "pin", h: r.PINIndex, name: r.PINName, recName: r.PINName, branches: r.pinBranches(t)}
			for _, ps := range seen {
				for _, cmd := range []struct {
					name string
					cc   tpm2.TPMCC
					data []byte
				}{
					{"NV_ChangeAuth", tpm2.TPMCCNVChangeAuth, nil},
					{"NV_Write-card-limit", tpm2.TPMCCNVWrite, pinData(0, r.PINLimit)},
					{"NV_Write-limit-200", tpm2.TPMCCNVWrite, pinData(0, 200)},
				} {
					for _, nv := range []struct {
						name string
						want tpm2.TPMRC
					}{{"captured-nonce", tpm2.TPMRCNonce}, {"fresh-nonce", tpm2.TPMRCSignature}, {"no-nonce", tpm2.TPMRCSignature}} {
						err := a.try(pin, cmd.cc, cmd.data, a.ccStep(cmd.cc), a.replayStep(ps, nv.name))
						refused(t, b, prefix+ps.kind(r)+"-sig/"+nv.name+"/"+cmd.name, err, nv.want)
					}
				}
			}
		}
		replay("admin-replay/")
		if b.Restart != nil {
			a.tpm = b.Restart(t)
			replay("admin-replay/after-restart/")
		}
	})
}

// lock enters wrong PINs until the card locks.
func (v *victim) lock(t *testing.T) {
	t.Helper()
	for i := 0; i < 300; i++ {
		err := v.m.Login(v.serial, secret.FromString("99999999"))
		if errors.Is(err, tpmcard.ErrPINLocked) {
			return
		}
		if err == nil {
			t.Fatal("a wrong PIN logged in")
		}
	}
	t.Fatal("the card does not lock")
}

func adminPublic(t *testing.T, r *cardRecord) *ecdsa.PublicKey {
	p, err := tpm2.Unmarshal[tpm2.TPMTPublic](r.AdminKey)
	if err != nil {
		t.Fatal(err)
	}
	k, err := tpm2.Pub(*p)
	if err != nil {
		t.Fatal(err)
	}
	return k.(*ecdsa.PublicKey)
}

// replayStep sends a PolicySigned seen on the bus again in the attacker's
// session, with the captured nonce, the session's own, or none.
func (a *attacker) replayStep(ps seenSigned, nonce string) step {
	return func(s tpm2.Session) error {
		n := ps.nonce
		switch nonce {
		case "fresh-nonce":
			n = s.NonceTPM().Buffer
		case "no-nonce":
			n = nil
		}
		k, done := a.loadExternal(ps.adminPub)
		defer done()
		return a.policySigned(s, k, n, ps.cpHash, ps.ref, ps.expiration, ps.sig())
	}
}

// seenSigned is one PolicySigned command and its response off the bus.
type seenSigned struct {
	nonce, cpHash, ref []byte
	expiration         int32
	r, s               []byte
	ticketDigest       int // size of the ticket's digest: 0 for a NULL ticket
	adminPub           []byte
}

func (ps seenSigned) sig() tpm2.TPMTSignature {
	raw := make([]byte, 64)
	new(big.Int).SetBytes(ps.r).FillBytes(raw[:32])
	new(big.Int).SetBytes(ps.s).FillBytes(raw[32:])
	return ecdsaSig(raw)
}

func (ps seenSigned) kind(r *cardRecord) string {
	switch {
	case bytes.Equal(ps.ref, setPINRef(r.Serial)):
		return "set"
	case bytes.Equal(ps.ref, resetRef(r.Serial)):
		return "reset"
	}
	return "other"
}

// reader takes TPM wire types off a byte string.
type reader struct {
	t *testing.T
	b []byte
}

func (r *reader) next(n int) []byte {
	if len(r.b) < n {
		r.t.Fatalf("short TPM message")
	}
	out := r.b[:n]
	r.b = r.b[n:]
	return out
}
func (r *reader) u16() uint16 { return binary.BigEndian.Uint16(r.next(2)) }
func (r *reader) u32() uint32 { return binary.BigEndian.Uint32(r.next(4)) }
func (r *reader) b2() []byte  { return bytes.Clone(r.next(int(r.u16()))) }

// policySignedOnBus parses every successful TPM2_PolicySigned (0x160) in a
// recording (Part 3 §23.3): handles authObject and policySession, then
// nonceTPM, cpHashA, policyRef, expiration and an ECDSA TPMT_SIGNATURE;
// the response's timeout and TPMT_TK_AUTH.
func policySignedOnBus(t *testing.T, bus []exchange) []seenSigned {
	var out []seenSigned
	for _, e := range bus {
		if e.cc() != tpm2.TPMCCPolicySigned || e.rc() != tpm2.TPMRCSuccess {
			continue
		}
		c := &reader{t, e.cmd}
		tag := tpm2.TPMST(c.u16())
		c.next(8 + 8) // size, code, two handles
		if tag == tpm2.TPMSTSessions {
			c.next(int(c.u32()))
		}
		ps := seenSigned{nonce: c.b2(), cpHash: c.b2(), ref: c.b2(), expiration: int32(c.u32())}
		if alg := tpm2.TPMAlgID(c.u16()); alg != tpm2.TPMAlgECDSA {
			t.Fatalf("PolicySigned with signature algorithm %v", alg)
		}
		c.u16() // hash
		ps.r, ps.s = c.b2(), c.b2()

		rr := &reader{t, e.rsp}
		rtag := tpm2.TPMST(rr.u16())
		rr.next(8)
		if rtag == tpm2.TPMSTSessions {
			rr.u32()
		}
		rr.b2()  // timeout
		rr.u16() // ticket tag
		rr.u32() // hierarchy
		ps.ticketDigest = len(rr.b2())
		out = append(out, ps)
	}
	return out
}

// contextsOnBus returns the session contexts TPM2_ContextSave gave out.
func contextsOnBus(t *testing.T, bus []exchange) []tpm2.TPMSContext {
	var out []tpm2.TPMSContext
	for _, e := range bus {
		if e.cc() != tpm2.TPMCCContextSave || e.rc() != tpm2.TPMRCSuccess {
			continue
		}
		ctx, err := tpm2.Unmarshal[tpm2.TPMSContext](e.rsp[10:])
		if err != nil {
			t.Fatalf("parsing a ContextSave response: %v", err)
		}
		if h := uint32(ctx.SavedHandle) >> 24; h == 0x02 || h == 0x03 {
			out = append(out, *ctx)
		}
	}
	return out
}

// rawPolicy is a policy session the attacker holds only by its handle (a
// context loaded from the bus): no HMAC, since the policy needs no
// authValue.
type rawPolicy struct {
	h     tpm2.TPMHandle
	nonce []byte
}

func (p *rawPolicy) Init(transport.TPM) error           { return nil }
func (p *rawPolicy) CleanupFailure(transport.TPM) error { return nil }
func (p *rawPolicy) NonceTPM() tpm2.TPM2BNonce          { return tpm2.TPM2BNonce{Buffer: p.nonce} }
func (p *rawPolicy) NewNonceCaller() error              { return nil }
func (p *rawPolicy) IsEncryption() bool                 { return false }
func (p *rawPolicy) IsDecryption() bool                 { return false }
func (p *rawPolicy) Encrypt([]byte) error               { return nil }
func (p *rawPolicy) Decrypt([]byte) error               { return nil }
func (p *rawPolicy) Handle() tpm2.TPMHandle             { return p.h }
func (p *rawPolicy) Authorize(tpm2.TPMCC, []byte, []byte, []tpm2.TPM2BName, int) (*tpm2.TPMSAuthCommand, error) {
	nonce := make([]byte, 16)
	_, _ = rand.Read(nonce)
	return &tpm2.TPMSAuthCommand{Handle: p.h, Nonce: tpm2.TPM2BNonce{Buffer: nonce}, Attributes: tpm2.TPMASession{ContinueSession: true}}, nil
}
func (p *rawPolicy) Validate(_ tpm2.TPMRC, _ tpm2.TPMCC, _ []byte, _ []tpm2.TPM2BName, _ int, auth *tpm2.TPMSAuthResponse) error {
	p.nonce = auth.Nonce.Buffer
	return nil
}
