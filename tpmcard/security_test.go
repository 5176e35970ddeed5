package tpmcard

import (
	"crypto"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"
	"github.com/tpmcard/tpmcard/tpmcard/secret"
	"github.com/tpmcard/tpmcard/tpmcard/tpmtest"
)

func wrongPIN(i int) secret.Secret { return secret.FromString(fmt.Sprintf("wrong-pin-%03d", i)) }

func status(t *testing.T, m *Manager, serial string) *CardStatus {
	t.Helper()
	st, err := m.Status(serial)
	if err != nil {
		t.Fatalf("Status: %v", err)
	}
	return st
}

// lockPIN uses up every PIN try with wrong PINs.
func lockPIN(t *testing.T, m *Manager, serial string) {
	t.Helper()
	for left := 2; left >= 1; left-- {
		wantPINError(t, m.Login(serial, wrongPIN(left)), left)
	}
	if err := m.Login(serial, wrongPIN(0)); !errors.Is(err, ErrPINLocked) {
		t.Fatalf("third wrong PIN: got %v, want ErrPINLocked", err)
	}
}

func TestWrongPINsUntilLocked(t *testing.T) {
	tpmtest.ForEachTPM(t, func(t *testing.T, b *tpmtest.Backend) {
		m := openManager(t, b.TPM, "")
		serial := newCard(t, m)
		k := mustGenerate(t, m, serial, ECDSAP256)

		// A right PIN before the limit resets the count.
		wantPINError(t, m.Login(serial, wrongPIN(1)), 2)
		wantPINError(t, m.Login(serial, wrongPIN(2)), 1)
		if err := m.Login(serial, testPIN); err != nil {
			t.Fatalf("right PIN with one try left: %v", err)
		}
		if st := status(t, m, serial); st.PINTriesLeft != 3 {
			t.Fatalf("a right PIN left %d tries, want the count reset to 3", st.PINTriesLeft)
		}

		lockPIN(t, m, serial)
		if err := m.Login(serial, testPIN); !errors.Is(err, ErrPINLocked) {
			t.Fatalf("right PIN on a locked card: got %v, want ErrPINLocked", err)
		}
		if err := m.ChangePIN(serial, testPIN, secret.FromString("another PIN")); !errors.Is(err, ErrPINLocked) {
			t.Fatalf("PIN change on a locked card: got %v, want ErrPINLocked", err)
		}
		d := sha256.Sum256([]byte("x"))
		if _, err := m.Sign(serial, k.ID, d[:], SignOptions{Hash: crypto.SHA256}); err == nil {
			t.Fatal("a locked card signed")
		}
		st := status(t, m, serial)
		if !st.PINLocked || st.PINTriesLeft != 0 || st.PUKLocked || st.Blocked || st.LoggedIn {
			t.Fatalf("status of a locked card: %+v", st)
		}
	})
}

// The owner (empty owner auth on most machines) cannot write the PIN
// index: no OWNERWRITE. The counter and the lock stay.
func TestAttackOwnerResetsCounter(t *testing.T) {
	tpmtest.ForEachTPM(t, func(t *testing.T, b *tpmtest.Backend) {
		m := openManager(t, b.TPM, "")
		serial := newCard(t, m)
		lockPIN(t, m, serial)
		r := m.records[serial]
		_, err := tpm2.NVWrite{
			AuthHandle: tpm2.AuthHandle{Handle: tpm2.TPMRHOwner, Auth: tpm2.PasswordAuth(nil)},
			NVIndex:    tpm2.NamedHandle{Handle: tpm2.TPMHandle(r.PINIndex), Name: tpm2.TPM2BName{Buffer: r.PINName}},
			Data:       tpm2.TPM2BMaxNVBuffer{Buffer: pinData{0, 3}.bytes()},
		}.Execute(b.TPM)
		if !isTPM(err, tpm2.TPMRCNVAuthorization) {
			t.Fatalf("owner write to the PIN index: got %v, want TPM_RC_NV_AUTHORIZATION", err)
		}
		if err := m.Login(serial, testPIN); !errors.Is(err, ErrPINLocked) {
			t.Fatalf("after the owner's attempt: got %v, want ErrPINLocked", err)
		}
	})
}

// A policy branch NV_ChangeAuth + PolicyAuthValue would let anyone keep
// guessing a locked PIN (the TPM checks the limit only for HMAC and
// password use). The card has no such branch: the TPM refuses the OR.
func TestAttackGuessLockedPINThroughPolicyAuthValue(t *testing.T) {
	tpmtest.ForEachTPM(t, func(t *testing.T, b *tpmtest.Backend) {
		m := openManager(t, b.TPM, "")
		serial := newCard(t, m)
		lockPIN(t, m, serial)
		r := m.records[serial]
		s, closer, err := tpm2.PolicySession(b.TPM, tpm2.TPMAlgSHA256, 16, tpm2.Auth(r.authValue("pin", testPIN)))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := (tpm2.PolicyCommandCode{PolicySession: s.Handle(), Code: tpm2.TPMCCNVChangeAuth}).Execute(b.TPM); err != nil {
			t.Fatal(err)
		}
		if _, err := (tpm2.PolicyAuthValue{PolicySession: s.Handle()}).Execute(b.TPM); err != nil {
			t.Fatal(err)
		}
		_, err = tpm2.PolicyOr{PolicySession: s.Handle(), PHashList: digestList(m.pinBranches(r))}.Execute(b.TPM)
		if !isTPM(err, tpm2.TPMRCValue) {
			t.Fatalf("PolicyOR with a PolicyAuthValue branch: got %v, want TPM_RC_VALUE", err)
		}
		enc, encClose, err := m.saltedHMAC(nil, tpm2.AESEncryption(128, tpm2.EncryptIn))
		if err != nil {
			t.Fatal(err)
		}
		err = nvChangeAuth(b.TPM, tpm2.TPMHandle(r.PINIndex), r.PINName, r.authValue("pin", secret.FromString("attacker PIN")), s, enc)
		if !isTPM(err, tpm2.TPMRCPolicyFail) {
			t.Fatalf("NV_ChangeAuth through PolicyAuthValue on a locked card: got %v, want TPM_RC_POLICY_FAIL", err)
		}
		encClose()
		closer()
		if err := m.Login(serial, testPIN); !errors.Is(err, ErrPINLocked) {
			t.Fatalf("after the attack: got %v, want ErrPINLocked", err)
		}
	})
}

// A key used without the PIN: with a password session (its authValue is
// empty) and with a policy session that skipped PolicySecret.
func TestAttackKeyWithoutPIN(t *testing.T) {
	tpmtest.ForEachTPM(t, func(t *testing.T, b *tpmtest.Backend) {
		m := openManager(t, b.TPM, "")
		serial := newCard(t, m)
		k := mustGenerate(t, m, serial, ECDSAP256)
		r := m.records[serial]
		lk, err := m.loadKey(r, r.key(k.ID))
		if err != nil {
			t.Fatal(err)
		}
		d := sha256.Sum256([]byte("no PIN"))
		sign := func(s tpm2.Session) error {
			_, err := tpm2.Sign{
				KeyHandle:  tpm2.AuthHandle{Handle: lk.handle, Name: lk.name, Auth: s},
				Digest:     tpm2.TPM2BDigest{Buffer: d[:]},
				InScheme:   tpm2.TPMTSigScheme{Scheme: tpm2.TPMAlgECDSA, Details: tpm2.NewTPMUSigScheme(tpm2.TPMAlgECDSA, &tpm2.TPMSSchemeHash{HashAlg: tpm2.TPMAlgSHA256})},
				Validation: tpm2.TPMTTKHashCheck{Tag: tpm2.TPMSTHashCheck, Hierarchy: tpm2.TPMRHNull},
			}.Execute(b.TPM)
			return err
		}
		if err := sign(tpm2.PasswordAuth(nil)); !isTPM(err, tpm2.TPMRCAuthUnavailable) {
			t.Fatalf("sign with the empty password: got %v, want TPM_RC_AUTH_UNAVAILABLE", err)
		}
		s, closer, err := tpm2.PolicySession(b.TPM, tpm2.TPMAlgSHA256, 16)
		if err != nil {
			t.Fatal(err)
		}
		defer closer()
		if err := sign(s); !isTPM(err, tpm2.TPMRCPolicyFail) {
			t.Fatalf("sign with an empty policy: got %v, want TPM_RC_POLICY_FAIL", err)
		}
		// A wrong PIN does not satisfy the policy either.
		if err := m.secretStep(s.Handle(), tpm2.TPMHandle(r.PINIndex), r.PINName, r.authValue("pin", wrongPIN(1))); !isAuthFailure(err) {
			t.Fatalf("PolicySecret with a wrong PIN: %v", err)
		}
		if err := sign(s); !isTPM(err, tpm2.TPMRCPolicyFail) {
			t.Fatalf("sign after a wrong PIN: got %v, want TPM_RC_POLICY_FAIL", err)
		}
	})
}

// A key blob copied to another TPM does not load there.
func TestAttackKeyBlobOnAnotherTPM(t *testing.T) {
	m := openManager(t, tpmtest.Sim(t), "")
	serial := newCard(t, m)
	k := mustGenerate(t, m, serial, ECDSAP256)
	kr := m.records[serial].key(k.ID)

	other := tpmtest.SecondTPM(t)
	srk, err := tpm2.CreatePrimary{
		PrimaryHandle: tpm2.AuthHandle{Handle: tpm2.TPMRHOwner, Auth: tpm2.PasswordAuth(nil)},
		InPublic:      tpm2.New2B(tpm2.ECCSRKTemplate),
	}.Execute(other)
	if err != nil {
		t.Fatal(err)
	}
	_, err = tpm2.Load{
		ParentHandle: tpm2.AuthHandle{Handle: srk.ObjectHandle, Name: srk.Name, Auth: tpm2.PasswordAuth(nil)},
		InPrivate:    tpm2.TPM2BPrivate{Buffer: kr.Private},
		InPublic:     tpm2.BytesAs2B[tpm2.TPMTPublic](kr.Public),
	}.Execute(other)
	if !isTPM(err, tpm2.TPMRCIntegrity) {
		t.Fatalf("loading the blob into another TPM: got %v, want TPM_RC_INTEGRITY", err)
	}
	// The whole state directory on the other TPM: the card is lost.
	m2 := openManager(t, other, m.st.dir)
	if _, err := m2.Status(serial); !errors.Is(err, ErrCardLost) {
		t.Fatalf("card on another TPM: got %v, want ErrCardLost", err)
	}
	if err := m2.Login(serial, testPIN); !errors.Is(err, ErrCardLost) {
		t.Fatalf("login on another TPM: got %v, want ErrCardLost", err)
	}
}

// 32 goroutines guessing at once get exactly the PIN limit of answers
// "incorrect"; every other guess meets the lock.
func TestAttackParallelGuessing(t *testing.T) {
	tpmtest.ForEachTPM(t, func(t *testing.T, b *tpmtest.Backend) {
		m := openManager(t, b.TPM, "")
		serial := newCard(t, m)
		var wg sync.WaitGroup
		var mu sync.Mutex
		incorrect, locked := 0, 0
		for i := 0; i < 32; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				err := m.Login(serial, wrongPIN(i))
				mu.Lock()
				defer mu.Unlock()
				var pe *PINError
				switch {
				case errors.As(err, &pe):
					incorrect++
				case errors.Is(err, ErrPINLocked):
					locked++
				default:
					t.Errorf("guess %d: %v", i, err)
				}
			}()
		}
		wg.Wait()
		// The guess that hits the limit reports the lock, so the TPM
		// counted exactly three failures.
		if incorrect != 2 || locked != 30 {
			t.Fatalf("32 parallel guesses: %d incorrect, %d locked; want 2 and 30", incorrect, locked)
		}
		if err := m.Login(serial, testPIN); !errors.Is(err, ErrPINLocked) {
			t.Fatalf("right PIN after the parallel guesses: %v", err)
		}
	})
}

// Interleaved sessions straight on the TPM, as an attacker with raw TPM
// access would run them, win no extra tries either.
func TestAttackInterleavedSessions(t *testing.T) {
	tpmtest.ForEachTPM(t, func(t *testing.T, b *tpmtest.Backend) {
		m := openManager(t, b.TPM, "")
		serial := newCard(t, m)
		r := m.records[serial]
		m.Close() // the attacker has the TPM to itself
		var sessions []tpm2.Session
		var closers []func() error
		for i := 0; i < 2; i++ {
			s, closer, err := tpm2.HMACSession(b.TPM, tpm2.TPMAlgSHA256, 16, tpm2.Auth(r.authValue("pin", wrongPIN(i))))
			if err != nil {
				t.Fatal(err)
			}
			sessions, closers = append(sessions, s), append(closers, closer)
		}
		ps, closer, err := tpm2.PolicySession(b.TPM, tpm2.TPMAlgSHA256, 16)
		if err != nil {
			t.Fatal(err)
		}
		closers = append(closers, closer)
		failures := 0
		for round := 0; round < 3; round++ {
			for _, s := range sessions {
				_, err := tpm2.PolicySecret{
					AuthHandle:    tpm2.AuthHandle{Handle: tpm2.TPMHandle(r.PINIndex), Name: tpm2.TPM2BName{Buffer: r.PINName}, Auth: s},
					PolicySession: ps.Handle(),
				}.Execute(b.TPM)
				switch {
				case isAuthFailure(err):
					failures++
				case isTPM(err, tpm2.TPMRCAuthUnavailable):
				default:
					t.Fatalf("guess: %v", err)
				}
			}
		}
		if failures != 3 {
			t.Fatalf("the TPM answered %d guesses, want exactly the limit 3", failures)
		}
		for _, c := range closers {
			c()
		}
		m = openManager(t, b.TPM, m.st.dir)
		if err := m.Login(serial, testPIN); !errors.Is(err, ErrPINLocked) {
			t.Fatalf("after interleaved guessing: %v", err)
		}
	})
}

func TestCounterSurvivesRestart(t *testing.T) {
	s := tpmtest.StartSWTPM(t)
	dir := t.TempDir()
	tpm := s.TPM()
	m := openManager(t, tpm, dir)
	serial := newCard(t, m)
	wantPINError(t, m.Login(serial, wrongPIN(1)), 2)

	// Process restart: a new Manager on the same TPM and state.
	m.Close()
	m = openManager(t, tpm, dir)
	wantPINError(t, m.Login(serial, wrongPIN(2)), 1)

	// TPM restart: swtpm stopped and started on its state.
	m.Close()
	tpm.Close()
	s.Restart(t)
	m = openManager(t, s.TPM(), dir)
	if st := status(t, m, serial); st.PINTriesLeft != 1 {
		t.Fatalf("after a TPM restart: %d tries left, want 1", st.PINTriesLeft)
	}
	if err := m.Login(serial, wrongPIN(3)); !errors.Is(err, ErrPINLocked) {
		t.Fatalf("last try after the restart: got %v, want ErrPINLocked", err)
	}
}

func TestUnblockWithPUK(t *testing.T) {
	tpmtest.ForEachTPM(t, func(t *testing.T, b *tpmtest.Backend) {
		m := openManager(t, b.TPM, "")
		serial := newCard(t, m)
		k := mustGenerate(t, m, serial, ECDSAP256)
		lockPIN(t, m, serial)

		newPIN := secret.FromString("unblocked PIN")
		var pe *PINError
		if err := m.Unblock(serial, secret.FromString("not the PUK"), newPIN); !errors.As(err, &pe) || !pe.PUK || pe.TriesLeft != 1 {
			t.Fatalf("unblock with a wrong PUK: got %v, want PUK incorrect, 1 try left", err)
		}
		if err := m.Unblock(serial, testPUK, secret.FromString("short")); err == nil {
			t.Fatal("unblock accepted a PIN the policy refuses")
		}
		if err := m.Unblock(serial, testPUK, newPIN); err != nil {
			t.Fatalf("unblock: %v", err)
		}
		st := status(t, m, serial)
		if st.PINLocked || st.PINTriesLeft != 3 || st.PUKTriesLeft != 2 || !st.MustChange {
			t.Fatalf("after unblock: %+v", st)
		}
		if err := m.Login(serial, testPIN); err == nil {
			t.Fatal("the old PIN logs in after an unblock")
		}
		if err := m.Login(serial, newPIN); err != nil {
			t.Fatal(err)
		}
		d := sha256.Sum256([]byte("after unblock"))
		if _, err := m.Sign(serial, k.ID, d[:], SignOptions{Hash: crypto.SHA256}); !errors.Is(err, ErrPINExpired) {
			t.Fatalf("sign right after an unblock: got %v, want ErrPINExpired", err)
		}
		if err := m.ChangePIN(serial, newPIN, newPIN); err == nil {
			t.Fatal("a must-change PIN was changed to itself")
		}
		if err := m.ChangePIN(serial, newPIN, testPIN); err != nil {
			t.Fatal(err)
		}
		sig, err := m.Sign(serial, k.ID, d[:], SignOptions{Hash: crypto.SHA256})
		if err != nil {
			t.Fatal(err)
		}
		verify(t, k, d[:], sig, SignOptions{})
	})
}

func TestPUKExhaustionBlocksCard(t *testing.T) {
	tpmtest.ForEachTPM(t, func(t *testing.T, b *tpmtest.Backend) {
		m := openManager(t, b.TPM, "")
		serial := newCard(t, m)
		lockPIN(t, m, serial)
		newPIN := secret.FromString("never set")
		var pe *PINError
		if err := m.Unblock(serial, wrongPIN(1), newPIN); !errors.As(err, &pe) || pe.TriesLeft != 1 {
			t.Fatalf("first wrong PUK: %v", err)
		}
		if err := m.Unblock(serial, wrongPIN(2), newPIN); !errors.Is(err, ErrPUKLocked) {
			t.Fatalf("last wrong PUK: got %v, want ErrPUKLocked", err)
		}
		if err := m.Unblock(serial, testPUK, newPIN); !errors.Is(err, ErrPUKLocked) {
			t.Fatalf("right PUK after exhaustion: got %v, want ErrPUKLocked", err)
		}
		if err := m.Login(serial, testPIN); !errors.Is(err, ErrCardBlocked) {
			t.Fatalf("login on a blocked card: got %v, want ErrCardBlocked", err)
		}
		if st := status(t, m, serial); !st.Blocked || !st.PUKLocked {
			t.Fatalf("status: %+v", st)
		}
		if err := m.ChangePUK(serial, testPUK, secret.FromString("NEWPUK12345")); !errors.Is(err, ErrPUKLocked) {
			t.Fatalf("PUK change after exhaustion: %v", err)
		}
		// Destroy, then the same TPM provisions again.
		if err := m.Destroy(serial); err != nil {
			t.Fatal(err)
		}
		again := newCard(t, m)
		if err := m.Login(again, testPIN); err != nil {
			t.Fatalf("re-provisioned card: %v", err)
		}
	})
}

func TestChangePUK(t *testing.T) {
	m := openManager(t, tpmtest.Sim(t), "")
	serial := newCard(t, m)
	newPUK := secret.FromString("SECONDPUK99")
	var pe *PINError
	if err := m.ChangePUK(serial, wrongPIN(1), newPUK); !errors.As(err, &pe) || !pe.PUK {
		t.Fatalf("PUK change with a wrong PUK: %v", err)
	}
	if err := m.ChangePUK(serial, testPUK, newPUK); err != nil {
		t.Fatal(err)
	}
	lockPIN(t, m, serial)
	if err := m.Unblock(serial, testPUK, testPIN); err == nil {
		t.Fatal("the old PUK still unblocks")
	}
	if err := m.Unblock(serial, newPUK, testPIN); err != nil {
		t.Fatalf("unblock with the new PUK: %v", err)
	}
}

func TestWrongOldPINOnChangeCounts(t *testing.T) {
	m := openManager(t, tpmtest.Sim(t), "")
	serial := newCard(t, m)
	wantPINError(t, m.ChangePIN(serial, wrongPIN(1), secret.FromString("new PIN 1234")), 2)
	if st := status(t, m, serial); st.PINTriesLeft != 2 {
		t.Fatalf("tries left %d, want 2", st.PINTriesLeft)
	}
}

func TestNVExhaustion(t *testing.T) {
	tpm := tpmtest.Sim(t)
	m := openManager(t, tpm, "")
	// Fill the NV with large ordinary indices, as other software might.
	var filled []tpm2.TPMSNVPublic
	size := uint16(2048)
	for i := 0; size > 0; i++ {
		pub := tpm2.TPMSNVPublic{
			NVIndex: tpm2.TPMHandle(0x01500000 + i), NameAlg: tpm2.TPMAlgSHA256,
			Attributes: tpm2.TPMANV{NT: tpm2.TPMNTOrdinary, OwnerWrite: true, OwnerRead: true, NoDA: true},
			DataSize:   size,
		}
		_, err := tpm2.NVDefineSpace{
			AuthHandle: tpm2.AuthHandle{Handle: tpm2.TPMRHOwner, Auth: tpm2.PasswordAuth(nil)},
			PublicInfo: tpm2.New2B(pub),
		}.Execute(tpm)
		if isTPM(err, tpm2.TPMRCNVSpace) {
			size /= 2 // fill the remaining gaps with smaller indices
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		filled = append(filled, pub)
		if i > 5000 {
			t.Fatal("NV never filled up")
		}
	}
	_, err := m.Create(CreateOptions{PIN: testPIN, PUK: testPUK})
	if !errors.Is(err, ErrNVSpace) {
		t.Fatalf("Create on a full TPM: got %v, want ErrNVSpace", err)
	}
	if cards, _ := m.Cards(); len(cards) != 0 {
		t.Fatalf("a failed Create left %d records", len(cards))
	}
	for _, pub := range filled {
		if _, err := (tpm2.NVUndefineSpace{
			AuthHandle: tpm2.AuthHandle{Handle: tpm2.TPMRHOwner, Auth: tpm2.PasswordAuth(nil)},
			NVIndex:    tpm2.NamedHandle{Handle: pub.NVIndex, Name: tpm2.TPM2BName{Buffer: nvName(pub)}},
		}).Execute(tpm); err != nil {
			t.Fatal(err)
		}
	}
	// The failed Create left no index behind: the handles are all free.
	free, err := freeNVHandles(m.tpm, nvCount)
	if err != nil || len(free) != nvCount {
		t.Fatalf("after a failed Create: %d free card handles (%v)", len(free), err)
	}
	serial := newCard(t, m)
	if err := m.Login(serial, testPIN); err != nil {
		t.Fatal(err)
	}
}

func TestTornRecordWrite(t *testing.T) {
	tpm := tpmtest.Sim(t)
	dir := t.TempDir()
	m := openManager(t, tpm, dir)
	serial := newCard(t, m)
	k := mustGenerate(t, m, serial, ECDSAP256)

	// Crash between the write of the new record and its rename.
	m.st.rename = func(string, string) error { return errors.New("injected crash before rename") }
	if _, err := m.GenerateKey(t.Context(), serial, KeyOptions{Algorithm: ECDSAP256}, nil); err == nil {
		t.Fatal("GenerateKey reported success though its record was not written")
	}
	m.Close()

	m2 := openManager(t, tpm, dir)
	keys, err := m2.Keys(serial)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 1 || string(keys[0].ID) != string(k.ID) {
		t.Fatalf("after a torn write: %d keys, want the one key from before", len(keys))
	}
	if ents, _ := m2.st.list(); len(ents) != 1 {
		t.Fatalf("records after a torn write: %v", ents)
	}
}

func TestCardLostWhenTPMObjectsGone(t *testing.T) {
	s := tpmtest.StartSWTPM(t)
	dir := t.TempDir()
	tpm := s.TPM()
	m := openManager(t, tpm, dir)
	serial := newCard(t, m)
	k := mustGenerate(t, m, serial, ECDSAP256)
	r := m.records[serial]
	// Someone with owner auth undefines the PIN index (e.g. a TPM clear).
	if _, err := (tpm2.NVUndefineSpace{
		AuthHandle: tpm2.AuthHandle{Handle: tpm2.TPMRHOwner, Auth: tpm2.PasswordAuth(nil)},
		NVIndex:    tpm2.NamedHandle{Handle: tpm2.TPMHandle(r.PINIndex), Name: tpm2.TPM2BName{Buffer: r.PINName}},
	}).Execute(tpm); err != nil {
		t.Fatal(err)
	}
	m.Close()
	m = openManager(t, tpm, dir)
	if _, err := m.Status(serial); !errors.Is(err, ErrCardLost) {
		t.Fatalf("Status: got %v, want ErrCardLost", err)
	}
	if err := m.Login(serial, testPIN); !errors.Is(err, ErrCardLost) {
		t.Fatalf("Login: got %v, want ErrCardLost", err)
	}
	if _, err := m.Key(serial, k.ID); err != nil {
		t.Fatalf("the record still lists the key: %v", err)
	}
	if err := m.Destroy(serial); err != nil {
		t.Fatalf("destroying a lost card: %v", err)
	}
	if cards, _ := m.Cards(); len(cards) != 0 {
		t.Fatalf("%d cards after destroying the lost one", len(cards))
	}
}

// nvRateTPM answers the first PolicySecret with TPM_RC_NV_RATE, as a TPM
// that rate-limits NV writes does, and passes everything to the real TPM.
type nvRateTPM struct {
	transport.TPM
	rateLimited int
}

func (n *nvRateTPM) Send(cmd []byte) ([]byte, error) {
	if len(cmd) >= 10 && tpm2.TPMCC(be32(cmd[6:10])) == tpm2.TPMCCPolicySecret && n.rateLimited < 3 {
		n.rateLimited++
		rsp := make([]byte, 10)
		binary.BigEndian.PutUint16(rsp, uint16(tpm2.TPMSTNoSessions))
		binary.BigEndian.PutUint32(rsp[2:], 10)
		binary.BigEndian.PutUint32(rsp[6:], uint32(tpm2.TPMRCNVRate))
		return rsp, nil
	}
	return n.TPM.Send(cmd)
}

func TestNVRateIsRetriedAndNeverCounted(t *testing.T) {
	tpm := &nvRateTPM{TPM: tpmtest.Sim(t)}
	m := openManager(t, tpm, "")
	serial := newCard(t, m)
	tpm.rateLimited = 0
	wantPINError(t, m.Login(serial, wrongPIN(1)), 2)
	if tpm.rateLimited != 3 {
		t.Fatalf("rate limited %d times, want 3", tpm.rateLimited)
	}
	if st := status(t, m, serial); st.PINTriesLeft != 2 {
		t.Fatalf("%d tries left: a rate-limited attempt was counted", st.PINTriesLeft)
	}
}

// dyingTPM stops answering after a number of commands, as a TPM does when
// the process that drives it is killed: nothing after that point runs, the
// clean-up included.
type dyingTPM struct {
	transport.TPM
	left int
}

func (d *dyingTPM) Send(cmd []byte) ([]byte, error) {
	if d.left <= 0 {
		return nil, errors.New("process killed")
	}
	d.left--
	return d.TPM.Send(cmd)
}

func TestCrashDuringCreateLeavesNothing(t *testing.T) {
	tpm := tpmtest.Sim(t)
	dir := t.TempDir()
	// Count the commands a Create takes, then crash at every one of them.
	count := &countingTPM{TPM: tpm}
	m := openManager(t, count, dir)
	before := count.n.Load()
	serial := newCard(t, m)
	total := int(count.n.Load() - before)
	if err := m.Destroy(serial); err != nil {
		t.Fatal(err)
	}
	m.Close()
	for crashAt := 1; crashAt < total; crashAt++ {
		d := &dyingTPM{TPM: tpm, left: 1 << 30}
		m, err := Open(d, WithStateDir(dir))
		if err != nil {
			t.Fatal(err)
		}
		d.left = crashAt
		if _, err := m.Create(CreateOptions{PIN: testPIN, PUK: testPUK}); err == nil {
			t.Fatalf("Create succeeded with the TPM gone after %d commands", crashAt)
		}
		// What the dead process held goes, as with the kernel's resource manager.
		tpmtest.FlushAll(t, tpm)
		m2 := openManager(t, tpm, dir)
		if cards, err := m2.Cards(); err != nil || len(cards) != 0 {
			t.Fatalf("crash after %d commands: cards %v, %v", crashAt, cards, err)
		}
		free, err := freeNVHandles(m2.tpm, nvCount)
		if err != nil || len(free) != nvCount {
			t.Fatalf("crash after %d commands: %d card NV handles free (%v), want all %d", crashAt, len(free), err, nvCount)
		}
		if ents, _ := os.ReadDir(m2.st.cardsDir()); len(ents) != 0 {
			t.Fatalf("crash after %d commands: files left: %v", crashAt, ents)
		}
		m2.Close()
	}
	t.Logf("crashed Create at each of its %d TPM commands", total-1)
}
