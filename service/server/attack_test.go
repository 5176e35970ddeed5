//go:build linux

package server

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tpmcard/tpmcard/service/client"
	"github.com/tpmcard/tpmcard/service/p11"
	"github.com/tpmcard/tpmcard/service/wire"
	"github.com/tpmcard/tpmcard/tpmcard/adminkey"
	"github.com/tpmcard/tpmcard/tpmcard/secret"
	"github.com/tpmcard/tpmcard/tpmcard/tpmtest"
)

// The machine's other users, as attacks: a real
// client process running as uid 65534 ("nobody"), identified by the
// kernel's SO_PEERCRED and nothing else, against root's card.

// attackEnv, when set, makes TestAttackHelper run the attack it names
// ("probe" or "hold") against the card in attackCardEnv, through the
// socket in TPMCARD_SOCKET.
const (
	attackEnv     = "TPMCARD_TEST_ATTACK"
	attackCardEnv = "TPMCARD_TEST_ATTACK_CARD"
)

// TestAttackHelper is the attacker's process. It prints one "name=status"
// line per attempt.
func TestAttackHelper(t *testing.T) {
	mode := os.Getenv(attackEnv)
	if mode == "" {
		t.Skip("helper process for TestOtherUserAttacks")
	}
	serial := os.Getenv(attackCardEnv)
	switch mode {
	case "probe":
		c, err := client.Dial("")
		if err != nil {
			fmt.Printf("dial=%v\n", err)
			return
		}
		defer c.Close()
		cards, err := c.ListCards()
		fmt.Printf("list=%v,%d\n", wire.StatusOf(err), len(cards))
		_, err = c.Mechanisms(serial)
		fmt.Printf("mechanisms=%v\n", wire.StatusOf(err))
		_, err = c.OpenSession(serial, true)
		fmt.Printf("open=%v\n", wire.StatusOf(err))
		// Without a session of its own, a guessed session number.
		for s := uint32(1); s <= 3; s++ {
			err = c.Login(s, wire.UserNormal, secret.FromString("guess 0000"))
			fmt.Printf("login=%v\n", wire.StatusOf(err))
		}
		for range 3 {
			err = c.Unblock(serial, secret.FromString("WRONGPUK0000"), secret.FromString("attacker PIN 1"))
			fmt.Printf("unblock=%v\n", wire.StatusOf(err))
		}
		_, err = c.AdminChallenge(serial, 0)
		fmt.Printf("challenge=%v\n", wire.StatusOf(err))
		err = c.AdminUnblock(serial, "AAAAA-AAAAA", secret.FromString("attacker PIN 1"))
		fmt.Printf("adminunblock=%v\n", wire.StatusOf(err))
		err = c.SetOwner(serial, &wire.CardOwner{UID: 65534})
		fmt.Printf("setowner=%v\n", wire.StatusOf(err))
	case "hold":
		// Take every connection the service gives, and keep them.
		var held []*client.Client
		var err error
		for len(held) < 1000 {
			var c *client.Client
			if c, err = client.Dial(""); err != nil {
				break
			}
			held = append(held, c)
		}
		fmt.Printf("held=%d\nrefused=%v\nready\n", len(held), wire.StatusOf(unwrapAll(err)))
		_, _ = io.Copy(io.Discard, os.Stdin) // until the test lets go
		for _, c := range held {
			c.Close()
		}
	}
}

func unwrapAll(err error) error {
	for {
		u, ok := err.(interface{ Unwrap() error })
		if !ok || u.Unwrap() == nil {
			return err
		}
		err = u.Unwrap()
	}
}

// nobodyRunner prepares a directory uid 65534 can reach, holding a copy
// of this test binary, and runs it there as uid/gid 65534 with no
// supplementary groups.
type nobodyRunner struct {
	dir, helper, setpriv string
}

func newNobodyRunner(t *testing.T) *nobodyRunner {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: it runs a client as uid 65534 with setpriv")
	}
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skip("needs setpriv (util-linux) to run a client as another uid")
	}
	dir := t.TempDir()
	for d := dir; d != os.TempDir() && d != "/"; d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	r := &nobodyRunner{dir: dir, helper: filepath.Join(dir, "helper.test"), setpriv: setpriv}
	copyExecutable(t, r.helper)
	return r
}

func (r *nobodyRunner) socket() string { return filepath.Join(r.dir, "run", "tpmcard.sock") }

func (r *nobodyRunner) command(e *env, mode, serial string) *exec.Cmd {
	cmd := exec.Command(r.setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", r.helper, "-test.run=^TestAttackHelper$")
	cmd.Env = append(os.Environ(), attackEnv+"="+mode, attackCardEnv+"="+serial, client.SocketEnv+"="+e.sock)
	cmd.Dir = r.dir
	return cmd
}

// TestOtherUserAttacks: uid 65534 cannot see root's card, count down its
// PIN or PUK, unblock it, replace root's pending admin challenge, or take
// the connection slots others need.
func TestOtherUserAttacks(t *testing.T) {
	r := newNobodyRunner(t)
	const maxConns, perUser = 16, 3
	e := newEnv(t, nil, func(c *Config) {
		c.Socket = r.socket()
		c.MaxConns = maxConns
		c.MaxConnsPerUser = perUser
	})
	root := e.dial()
	adminPriv, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalPKIXPublicKey(&adminPriv.PublicKey)
	p, err := root.Provision(wire.Provision{Label: "root's", PIN: testPIN.Clone(), PUK: testPUK.Clone(), PINTries: 3, PUKTries: 2, AdminKey: der})
	if err != nil {
		t.Fatal(err)
	}
	serial := p.Serial
	// Root's pending unblock challenge, which nobody must not replace.
	ch, err := root.AdminChallenge(serial, 0)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("fail/probe", func(t *testing.T) {
		out, err := r.command(e, "probe", serial).CombinedOutput()
		if err != nil {
			t.Fatalf("helper: %v\n%s", err, out)
		}
		got := string(out)
		nf := wire.CardNotFound.String()
		for _, want := range []string{
			"list=OK,0",                 // the card does not show
			"mechanisms=" + nf,          // nor answer
			"open=" + nf,                // no session, so no login
			"login=SessionInvalid",      // nor a login through a guessed session
			"unblock=" + nf,             // the PUK is not counted down
			"challenge=" + nf,           // root's challenge stays
			"adminunblock=" + nf,        // and is not spent
			"setowner=PermissionDenied", // the card cannot be taken either
		} {
			if !strings.Contains(got, want+"\n") {
				t.Errorf("helper output lacks %q:\n%s", want, got)
			}
		}
		if strings.Count(got, "unblock="+nf) != 3+1 || strings.Count(got, "login=SessionInvalid") != 3 {
			t.Errorf("not every attempt was refused:\n%s", got)
		}
		cards, err := root.ListCards()
		if err != nil || len(cards) != 1 {
			t.Fatal(cards, err)
		}
		if cards[0].PINTriesLeft != 3 || cards[0].PUKTriesLeft != 2 {
			t.Errorf("the attack counted down the card: PIN %d of 3, PUK %d of 2", cards[0].PINTriesLeft, cards[0].PUKTriesLeft)
		}
		// Root's challenge still works: lock the PIN, answer it.
		s := mustOpen(t, root, serial, false)
		for range 3 {
			_ = root.Login(s, wire.UserNormal, secret.FromString("wrong PIN 000"))
		}
		parsed, err := adminkey.ParseChallenge(ch.Text)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := adminkey.Respond(adminPriv, parsed)
		if err != nil {
			t.Fatal(err)
		}
		if err := root.AdminUnblock(serial, resp, secret.FromString("new PIN 1234")); err != nil {
			t.Fatalf("root's own challenge no longer works after the attack: %v", err)
		}
		logs := e.logs.String()
		if !strings.Contains(logs, `"uid":65534`) || !strings.Contains(logs, "card hidden") {
			t.Errorf("the audit log does not show the refusals to uid 65534")
		}
	})

	t.Run("fail/hold every slot", func(t *testing.T) {
		cmd := r.command(e, "hold", serial)
		stdin, _ := cmd.StdinPipe()
		stdout, _ := cmd.StdoutPipe()
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { stdin.Close(); _ = cmd.Wait() }()
		lines := map[string]string{}
		sc := bufio.NewScanner(stdout)
		for sc.Scan() && sc.Text() != "ready" {
			k, v, _ := strings.Cut(sc.Text(), "=")
			lines[k] = v
		}
		if lines["held"] != fmt.Sprint(perUser) || lines["refused"] != wire.TooManyConnections.String() {
			t.Fatalf("uid 65534 held %s connections (refused: %s), want %d", lines["held"], lines["refused"], perUser)
		}
		// Root still connects, and so does another user.
		before := e.s.connCount()
		if c, err := client.Dial(e.sock); err != nil {
			t.Fatalf("root is locked out while uid 65534 holds its connections: %v", err)
		} else {
			c.Close()
		}
		// The server frees a closed connection's slot when it reads the
		// end of stream: wait for that, or root's own closed connection
		// would take the slot the last check needs.
		for deadline := time.Now().Add(5 * time.Second); e.s.connCount() > before; time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal("the server never freed a closed connection's slot")
			}
		}
		// Many other users together still leave root its room.
		others := 0
		for uid := uint32(2000); ; uid++ {
			full := false
			for range perUser {
				c, err := e.tryDialAs(Peer{UID: uid, GID: uid})
				if err != nil {
					wantStatus(t, "a user over the shared limit", unwrapAll(err), wire.TooManyConnections)
					full = true
					break
				}
				t.Cleanup(func() { c.Close() })
				others++
			}
			if full {
				break
			}
		}
		if want := maxConns - e.s.adminReserve - perUser; others != want {
			t.Errorf("other users got %d connections, want %d", others, want)
		}
		c, err := client.Dial(e.sock)
		if err != nil {
			t.Fatalf("root is locked out when other users hold every slot they may: %v", err)
		}
		c.Close()
		if !strings.Contains(e.logs.String(), "uid 65534 already has 3 connections open") {
			t.Error("the audit log does not say whose connection was refused")
		}
	})
}

// tryDialAs is dialAs that returns the error.
func (e *env) tryDialAs(p Peer) (*client.Client, error) {
	e.mu.Lock()
	e.pending = &p
	e.mu.Unlock()
	return client.Dial(e.sock)
}

// TestWrongPINEndsEveryLogin: a guesser interleaved with a logged-in
// signer, which signs between guesses, locks the card after exactly the
// PIN limit of wrong guesses; the signer's login ends at the first one.
// Before, each signature re-proved the PIN and reset the TPM's counter,
// so the guesses never added up. Likewise a wrong PUK ends SO logins.
func TestWrongPINEndsEveryLogin(t *testing.T) {
	tpmtest.ForEachTPM(t, func(t *testing.T, b *tpmtest.Backend) {
		e := newEnv(t, b.TPM, nil)
		admin := e.dial()
		const owner = 1000
		serial := e.provisionFor(admin, &wire.CardOwner{UID: owner})
		id := e.generate(admin, serial, wire.AlgECDSAP256)
		d := sha256.Sum256([]byte("challenge"))

		signer := e.dialAs(Peer{UID: owner, GID: owner})
		ss := mustOpen(t, signer, serial, false)
		mustLogin(t, signer, ss)
		priv := privateKey(t, signer, ss, id)
		if _, err := signer.Sign(ss, priv, p11.CKMECDSA, nil, d[:]); err != nil {
			t.Fatalf("signer: %v", err)
		}
		guesser := e.dialAs(Peer{UID: owner, GID: owner}) // another process of the owner
		gs := mustOpen(t, guesser, serial, false)
		const limit = 3
		for i := 1; i <= limit; i++ {
			err := guesser.Login(gs, wire.UserNormal, secret.FromString(fmt.Sprintf("guess %04d", i)))
			if i < limit {
				wantStatus(t, fmt.Sprintf("guess %d", i), err, wire.PINIncorrect)
				if left := wire.TriesLeftOf(err); left != limit-i {
					t.Fatalf("guess %d: %d tries left, want %d", i, left, limit-i)
				}
			} else {
				wantStatus(t, "last guess", err, wire.PINLocked)
			}
			_, err = signer.Sign(ss, priv, p11.CKMECDSA, nil, d[:])
			wantStatus(t, fmt.Sprintf("signature after guess %d", i), err, wire.NotLoggedIn)
			if st, _ := signer.SessionInfo(ss); st.State != cksROPublic {
				t.Fatalf("signer's session state %d after guess %d, want public", st.State, i)
			}
		}
		wantStatus(t, "the right PIN on the locked card", signer.Login(ss, wire.UserNormal, testPIN.Clone()), wire.PINLocked)
		if e.m.LoggedIn(serial) {
			t.Error("the Manager still holds a PIN proof of the locked card")
		}
		if !strings.Contains(e.logs.String(), `"logged out: a wrong PIN was entered for the card"`) {
			t.Error("the audit log does not say why the signer was logged out")
		}

		// The PUK: an SO login's InitPIN between wrong PUKs would reset the
		// PUK counter the same way.
		so := e.dialAs(Peer{UID: owner, GID: owner})
		sos := mustOpen(t, so, serial, true)
		if err := so.Login(sos, wire.UserSO, testPUK.Clone()); err != nil {
			t.Fatal(err)
		}
		wantStatus(t, "wrong PUK", guesser.Unblock(serial, secret.FromString("WRONGPUK0000"), secret.FromString("attacker PIN 1")), wire.PUKIncorrect)
		wantStatus(t, "InitPIN after another's wrong PUK", so.InitPIN(sos, secret.FromString("new PIN 1234")), wire.NotLoggedIn)
		cards, _ := admin.ListCards()
		if len(cards) != 1 || cards[0].PUKTriesLeft != 1 {
			t.Fatalf("after one wrong PUK: %+v", cards)
		}

		// Guessing by SO login: the TPM checks each PUK at C_Login, and a
		// wrong one ends the other's SO login too, so that its InitPIN
		// cannot reset the count between guesses.
		if err := so.Login(sos, wire.UserSO, testPUK.Clone()); err != nil {
			t.Fatalf("SO login with the right PUK: %v", err)
		}
		if cards, _ := admin.ListCards(); cards[0].PUKTriesLeft != cards[0].PUKTriesMax {
			t.Fatalf("the right PUK did not clear the count: %+v", cards[0])
		}
		soGuesser := e.dialAs(Peer{UID: owner, GID: owner}) // a third process, read-write
		gso := mustOpen(t, soGuesser, serial, true)
		for i := 1; i <= cards[0].PUKTriesMax; i++ {
			err := soGuesser.Login(gso, wire.UserSO, secret.FromString(fmt.Sprintf("WRONGPUK%04d", i)))
			if i < cards[0].PUKTriesMax {
				wantStatus(t, fmt.Sprintf("SO login guess %d", i), err, wire.PUKIncorrect)
			} else {
				wantStatus(t, "last SO login guess", err, wire.PUKLocked)
			}
			if st, _ := so.SessionInfo(sos); st.State != cksRWPublic {
				t.Fatalf("the SO's session state %d after guess %d, want public", st.State, i)
			}
		}
		wantStatus(t, "the right PUK on the locked PUK", so.Login(sos, wire.UserSO, testPUK.Clone()), wire.PUKLocked)
	})
}

// TestOwnerVisibility: the owner and its group see and use the card;
// another user sees nothing of it, not even in events; an owner change
// ends the old owner's sessions; an ownerless card is for admins only.
func TestOwnerVisibility(t *testing.T) {
	e := newEnv(t, nil, nil)
	admin := e.dial()
	gid := uint32(3000)
	serial := e.provisionFor(admin, &wire.CardOwner{UID: 1000, GID: &gid})
	id := e.generate(admin, serial, wire.AlgECDSAP256)
	d := sha256.Sum256([]byte("x"))

	owner := e.dialAs(Peer{UID: 1000, GID: 1000})
	member := e.dialAs(Peer{UID: 1001, GID: 1001, Groups: []uint32{gid}})
	stranger := e.dialAs(Peer{UID: 1002, GID: 1002, Groups: []uint32{27, 100}})
	for name, c := range map[string]*client.Client{"owner": owner, "member": member} {
		cards, err := c.ListCards()
		if err != nil || len(cards) != 1 || cards[0].Owner == nil || cards[0].Owner.UID != 1000 || *cards[0].Owner.GID != gid {
			t.Fatalf("%s lists %+v, %v", name, cards, err)
		}
	}
	if cards, err := stranger.ListCards(); err != nil || len(cards) != 0 {
		t.Fatalf("stranger lists %+v, %v", cards, err)
	}
	_, err := stranger.OpenSession(serial, false)
	wantStatus(t, "stranger opens a session", err, wire.CardNotFound)
	_, err = stranger.OpenSession("no-such-card", false)
	wantStatus(t, "a card that does not exist", err, wire.CardNotFound)

	// Events: the stranger is not told of the card.
	s := mustOpen(t, owner, serial, false)
	mustLogin(t, owner, s)
	if ev, err := member.WaitEvent(time.Second); err != nil || ev.Serial != serial {
		t.Errorf("member's event: %+v, %v", ev, err)
	}
	_, err = stranger.WaitEvent(200 * time.Millisecond)
	wantStatus(t, "stranger's event", err, wire.Timeout)
	// Nor can the stranger wake the owner's side with refused requests.
	wantStatus(t, "stranger unblocks", stranger.Unblock(serial, testPUK.Clone(), secret.FromString("attacker PIN 1")), wire.CardNotFound)
	_, err = member.WaitEvent(200 * time.Millisecond)
	wantStatus(t, "member's event after the stranger's refused unblock", err, wire.Timeout)

	// Only administrators give a card away.
	wantStatus(t, "owner gives the card away", owner.SetOwner(serial, &wire.CardOwner{UID: 1002}), wire.PermissionDenied)
	priv := privateKey(t, owner, s, id)
	if err := admin.SetOwner(serial, &wire.CardOwner{UID: 1002}); err != nil {
		t.Fatal(err)
	}
	// The old owner is told the card went, the new one that it changed.
	nextEvent := func(c *client.Client) []string {
		var kinds []string
		for {
			ev, err := c.WaitEvent(0)
			if err != nil {
				return kinds
			}
			kinds = append(kinds, ev.Kind)
		}
	}
	if got := nextEvent(owner); len(got) == 0 || got[len(got)-1] != wire.EventRemoved {
		t.Errorf("old owner's events: %v, want the last to be %q", got, wire.EventRemoved)
	}
	if got := nextEvent(stranger); strings.Join(got, ",") != wire.EventChanged {
		t.Errorf("new owner's events: %v, want just %q", got, wire.EventChanged)
	}
	_, err = owner.Sign(s, priv, p11.CKMECDSA, nil, d[:])
	wantStatus(t, "old owner signs", err, wire.SessionInvalid)
	if e.m.LoggedIn(serial) {
		t.Error("the old owner's login outlived the owner change")
	}
	if cards, _ := owner.ListCards(); len(cards) != 0 {
		t.Errorf("the old owner still lists the card")
	}
	ns := mustOpen(t, stranger, serial, false)
	mustLogin(t, stranger, ns)

	// No owner: administrators only, and a warning says how to fix it.
	if err := admin.SetOwner(serial, nil); err != nil {
		t.Fatal(err)
	}
	if cards, _ := stranger.ListCards(); len(cards) != 0 {
		t.Errorf("an ownerless card shows to a user")
	}
	if cards, _ := admin.ListCards(); len(cards) != 1 || cards[0].Owner != nil {
		t.Errorf("admin lists %+v", cards)
	}
	e.s.warnOwnerless()
	if !strings.Contains(e.logs.String(), "tpmcard card owner --card "+serial+" USER[:GROUP]") {
		t.Error("no warning names the command that gives an ownerless card an owner")
	}
	p, err := admin.Provision(wire.Provision{AdminsOnly: true, Owner: &wire.CardOwner{UID: 1}})
	wantStatus(t, "AdminsOnly with an owner", err, wire.BadRequest)
	if p != nil {
		t.Error(p)
	}
}

// TestWrongOldPINEndsEveryLogin: a wrong current PIN in C_SetPIN is a
// wrong PIN too, counted by the TPM: it ends the other applications'
// logins as a wrong C_Login does.
func TestWrongOldPINEndsEveryLogin(t *testing.T) {
	e := newEnv(t, nil, nil)
	admin := e.dial()
	serial := e.provision(admin)
	id := e.generate(admin, serial, wire.AlgECDSAP256)
	d := sha256.Sum256([]byte("x"))
	signer, other := e.dial(), e.dial()
	ss, so := mustOpen(t, signer, serial, false), mustOpen(t, other, serial, true)
	mustLogin(t, signer, ss)
	priv := privateKey(t, signer, ss, id)
	err := other.SetPIN(so, secret.FromString("not the PIN 1"), secret.FromString("attacker PIN 1"))
	wantStatus(t, "SetPIN with a wrong current PIN", err, wire.PINIncorrect)
	_, err = signer.Sign(ss, priv, p11.CKMECDSA, nil, d[:])
	wantStatus(t, "signature after another's wrong PIN", err, wire.NotLoggedIn)
	if cards, _ := admin.ListCards(); cards[0].PINTriesLeft != 2 {
		t.Errorf("tries left %d after one wrong PIN, want 2", cards[0].PINTriesLeft)
	}
}

// connCount is the number of connections the server counts against its
// limits.
func (s *Server) connCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}
