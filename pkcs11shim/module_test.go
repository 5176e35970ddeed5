package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/sha256"
	"encoding/asn1"
	"math/big"
	"sync"
	"testing"
	"time"

	"github.com/tpmcard/tpmcard/service/p11"
	"github.com/tpmcard/tpmcard/service/wire"
	"github.com/tpmcard/tpmcard/tpmcard/secret"
)

func want(t *testing.T, what string, got, want rv) {
	t.Helper()
	if got != want {
		t.Fatalf("%s = %v, want %v", what, got, want)
	}
}

// newTestModule returns an initialised module talking to the service.
func newTestModule(t *testing.T) *module {
	t.Helper()
	m := newModule(dialService)
	want(t, "C_Initialize", m.Initialize(nil), ckrOK)
	t.Cleanup(func() { m.Finalize(false) })
	return m
}

func openSession(t *testing.T, m *module, rw bool) uint64 {
	t.Helper()
	flags := uint64(ckfSerialSession)
	if rw {
		flags |= ckfRWSession
	}
	h, r := m.OpenSession(cardSlot(t, m), flags)
	want(t, "C_OpenSession", r, ckrOK)
	return h
}

// cardSlot is the slot of the test card: the first the module lists (the
// service names slots; a card's slot ID derives from its serial).
func cardSlot(t *testing.T, m *module) uint64 {
	t.Helper()
	ids := make([]uint64, 8)
	n, r := m.GetSlotList(false, ids)
	want(t, "C_GetSlotList", r, ckrOK)
	if n == 0 || ids[0] == 0 {
		t.Fatalf("slots %v: no card's", ids[:n])
	}
	return ids[0]
}

func pinOf(s string) secret.Secret { return secret.FromString(s) }

func ulongAttr(t uint64, v uint64) Attribute { return Attribute{Type: t, Value: wire.ULong(v)} }

// findAll runs a whole search.
func findAll(t *testing.T, m *module, h uint64, tmpl ...Attribute) []uint64 {
	t.Helper()
	want(t, "C_FindObjectsInit", m.FindObjectsInit(h, tmpl), ckrOK)
	var all []uint64
	for {
		buf := make([]uint64, 1) // one at a time: the chunking works
		n, r := m.FindObjects(h, buf)
		want(t, "C_FindObjects", r, ckrOK)
		if n == 0 {
			break
		}
		all = append(all, buf[:n]...)
	}
	want(t, "C_FindObjectsFinal", m.FindObjectsFinal(h), ckrOK)
	return all
}

func privateKey(t *testing.T, m *module, h uint64) uint64 {
	t.Helper()
	objs := findAll(t, m, h, ulongAttr(p11.CKAClass, p11.CKOPrivateKey))
	if len(objs) != 1 {
		t.Fatalf("%d private keys, want 1", len(objs))
	}
	return objs[0]
}

func verifyECDSA(t *testing.T, pub *ecdsa.PublicKey, digest, sig []byte) {
	t.Helper()
	n := len(sig) / 2
	r, s := new(big.Int).SetBytes(sig[:n]), new(big.Int).SetBytes(sig[n:])
	if !ecdsa.Verify(pub, digest, r, s) {
		t.Fatalf("signature does not verify")
	}
}

func TestNotInitialized(t *testing.T) {
	m := newModule(dialService)
	_, r := m.GetInfo()
	want(t, "C_GetInfo", r, ckrCryptokiNotInitialized)
	_, r = m.GetSlotList(false, nil)
	want(t, "C_GetSlotList", r, ckrCryptokiNotInitialized)
	_, r = m.OpenSession(0, ckfSerialSession)
	want(t, "C_OpenSession", r, ckrCryptokiNotInitialized)
	want(t, "C_Login", m.Login(1, ckuUser, pinOf("x")), ckrCryptokiNotInitialized)
	want(t, "C_Finalize", m.Finalize(false), ckrCryptokiNotInitialized)
}

func TestInitializeArgs(t *testing.T) {
	t.Setenv(socketEnv, "/nonexistent/tpmcard.sock")
	for _, tc := range []struct {
		name string
		args *initArgs
		want rv
	}{
		{"ok/nil", nil, ckrOK},
		{"ok/zero", &initArgs{}, ckrOK},
		{"ok/os-locking", &initArgs{flags: ckfOSLockingOK}, ckrOK},
		{"ok/callbacks-and-os-locking", &initArgs{true, true, true, true, ckfOSLockingOK, false}, ckrOK},
		{"ok/no-threads", &initArgs{flags: ckfLibraryCantCreateOSThreads}, ckrOK},
		{"fail/reserved", &initArgs{reserved: true}, ckrArgumentsBad},
		{"fail/some-callbacks", &initArgs{createMutex: true, lockMutex: true}, ckrArgumentsBad},
		{"fail/callbacks-only", &initArgs{true, true, true, true, 0, false}, ckrCantLock},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newModule(dialService)
			want(t, "C_Initialize", m.Initialize(tc.args), tc.want)
			if tc.want == ckrOK {
				want(t, "second C_Initialize", m.Initialize(nil), ckrCryptokiAlreadyInitialized)
				want(t, "C_Finalize(reserved)", m.Finalize(true), ckrArgumentsBad)
				want(t, "C_Finalize", m.Finalize(false), ckrOK)
				want(t, "C_Finalize again", m.Finalize(false), ckrCryptokiNotInitialized)
			}
		})
	}
}

func TestServiceDown(t *testing.T) {
	t.Setenv(socketEnv, "/nonexistent/tpmcard.sock")
	m := newTestModule(t)
	info, r := m.GetInfo()
	want(t, "C_GetInfo", r, ckrOK)
	if info.Manufacturer != "tpmcard" {
		t.Errorf("manufacturer %q", info.Manufacturer)
	}
	n, r := m.GetSlotList(true, nil)
	want(t, "C_GetSlotList(present)", r, ckrOK)
	if n != 0 {
		t.Errorf("%d slots with a token, want 0", n)
	}
	n, r = m.GetSlotList(false, nil)
	want(t, "C_GetSlotList(all)", r, ckrOK)
	if n != 1 {
		t.Errorf("%d slots, want the one empty reader", n)
	}
	si, r := m.GetSlotInfo(0)
	want(t, "C_GetSlotInfo", r, ckrOK)
	if si.Flags&ckfTokenPresent != 0 {
		t.Errorf("slot flags %#x say a token is present", si.Flags)
	}
	_, r = m.GetTokenInfo(0)
	want(t, "C_GetTokenInfo", r, ckrTokenNotPresent)
	_, r = m.OpenSession(0, ckfSerialSession)
	want(t, "C_OpenSession", r, ckrTokenNotPresent)
	_, r = m.GetSlotInfo(7)
	want(t, "C_GetSlotInfo(7)", r, ckrSlotIDInvalid)
	_, r = m.WaitForSlotEvent(ckfDontBlock)
	want(t, "C_WaitForSlotEvent(DONT_BLOCK)", r, ckrNoEvent)
}

func TestSlotsAndTokens(t *testing.T) {
	s := startService(t)
	m := newTestModule(t)

	n, r := m.GetSlotList(true, nil)
	want(t, "C_GetSlotList(NULL)", r, ckrOK)
	if n != 1 {
		t.Fatalf("%d slots, want 1", n)
	}
	n, r = m.GetSlotList(true, []uint64{})
	want(t, "C_GetSlotList(short)", r, ckrBufferTooSmall)
	if n != 1 {
		t.Errorf("count after BUFFER_TOO_SMALL = %d, want 1", n)
	}
	ids := make([]uint64, 4)
	n, r = m.GetSlotList(true, ids)
	want(t, "C_GetSlotList", r, ckrOK)
	if n != 1 || ids[0] == 0 || ids[0] > 0x7fffffff {
		t.Errorf("slots %v, want one card's slot: not 0, 31 bits", ids[:n])
	}
	slot := ids[0]

	si, r := m.GetSlotInfo(slot)
	want(t, "C_GetSlotInfo", r, ckrOK)
	if si.Flags&(ckfTokenPresent|ckfRemovableDevice) != ckfTokenPresent|ckfRemovableDevice || si.Flags&ckfHWSlot != 0 {
		t.Errorf("slot flags %#x", si.Flags)
	}

	ti, r := m.GetTokenInfo(slot)
	want(t, "C_GetTokenInfo", r, ckrOK)
	if ti.Label != testLabel || ti.Serial != s.serial || ti.Manufacturer != "tpmcard" || ti.Model == "" {
		t.Errorf("token info %+v", ti)
	}
	wantFlags := uint64(wire.FlagRNG | wire.FlagLoginRequired | wire.FlagUserPINInitialized | wire.FlagTokenInitialized)
	if ti.Flags != wantFlags {
		t.Errorf("token flags %#x, want %#x", ti.Flags, wantFlags)
	}
	if ti.MinPINLen != 8 || ti.MaxPINLen < 8 {
		t.Errorf("PIN lengths %d..%d", ti.MinPINLen, ti.MaxPINLen)
	}
	if ti.MaxSessions != ckEffectivelyInfinite || ti.Sessions != ckUnavailableInformation {
		t.Errorf("session counts %d %d", ti.MaxSessions, ti.Sessions)
	}

	// Mechanisms, two calls.
	n, r = m.GetMechanismList(slot, nil)
	want(t, "C_GetMechanismList(NULL)", r, ckrOK)
	if n < 10 {
		t.Fatalf("%d mechanisms", n)
	}
	_, r = m.GetMechanismList(slot, make([]uint64, 1))
	want(t, "C_GetMechanismList(short)", r, ckrBufferTooSmall)
	mechs := make([]uint64, n)
	_, r = m.GetMechanismList(slot, mechs)
	want(t, "C_GetMechanismList", r, ckrOK)
	for _, mech := range []uint64{p11.CKMECDSA, p11.CKMECDSASHA256, p11.CKMRSAPKCS, p11.CKMSHA256RSAPKCSPSS, p11.CKMECKeyPairGen, p11.CKMRSAPKCSKeyPairGen} {
		found := false
		for _, x := range mechs {
			found = found || x == mech
		}
		if !found {
			t.Errorf("mechanism %#x missing", mech)
		}
	}
	mi, r := m.GetMechanismInfo(slot, p11.CKMECDSA)
	want(t, "C_GetMechanismInfo", r, ckrOK)
	if mi.MinKeyBits != 256 || mi.Flags&0x800 == 0 {
		t.Errorf("CKM_ECDSA info %+v", mi)
	}
	_, r = m.GetMechanismInfo(slot, 0x1234)
	want(t, "C_GetMechanismInfo(unknown)", r, ckrMechanismInvalid)
	_, r = m.GetMechanismList(3, nil)
	want(t, "C_GetMechanismList(bad slot)", r, ckrSlotIDInvalid)
}

func TestSessionsAndLogin(t *testing.T) {
	startService(t)
	m := newTestModule(t)

	_, r := m.OpenSession(cardSlot(t, m), 0)
	want(t, "C_OpenSession(no SERIAL)", r, ckrSessionParallelNotSupported)
	ro := openSession(t, m, false)
	rw := openSession(t, m, true)

	si, r := m.GetSessionInfo(ro)
	want(t, "C_GetSessionInfo", r, ckrOK)
	if si.State != cksROPublic || si.Flags != ckfSerialSession || si.Slot != cardSlot(t, m) {
		t.Errorf("RO session info %+v", si)
	}
	si, _ = m.GetSessionInfo(rw)
	if si.State != cksRWPublic || si.Flags != ckfSerialSession|ckfRWSession {
		t.Errorf("RW session info %+v", si)
	}
	_, r = m.GetSessionInfo(999)
	want(t, "C_GetSessionInfo(999)", r, ckrSessionHandleInvalid)

	// Private objects are invisible before login.
	if objs := findAll(t, m, ro); len(objs) != 1 {
		t.Errorf("%d objects before login, want the public key only", len(objs))
	}

	want(t, "C_Login(bad type)", m.Login(ro, 7, pinOf(testPIN)), ckrUserTypeInvalid)
	want(t, "C_Login(context-specific, no op)", m.Login(ro, ckuContextSpecific, pinOf(testPIN)), ckrOperationNotInitialized)
	want(t, "C_Login(SO with an RO session)", m.Login(rw, ckuSO, pinOf(testPUK)), ckrSessionReadOnlyExists)
	want(t, "C_Login(wrong PIN)", m.Login(ro, ckuUser, pinOf("00000000")), ckrPINIncorrect)
	ti, _ := m.GetTokenInfo(cardSlot(t, m))
	if ti.Flags&uint64(wire.FlagUserPINCountLow) == 0 {
		t.Errorf("token flags %#x lack CKF_USER_PIN_COUNT_LOW after a wrong PIN", ti.Flags)
	}
	want(t, "C_Login", m.Login(ro, ckuUser, pinOf(testPIN)), ckrOK)
	want(t, "C_Login again", m.Login(rw, ckuUser, pinOf(testPIN)), ckrUserAlreadyLoggedIn)
	si, _ = m.GetSessionInfo(rw)
	if si.State != 3 { // CKS_RW_USER_FUNCTIONS: the login covers every session
		t.Errorf("RW session state %d after login", si.State)
	}
	if objs := findAll(t, m, ro); len(objs) != 2 {
		t.Errorf("%d objects after login, want 2", len(objs))
	}

	want(t, "C_FindObjects without init", func() rv { _, r := m.FindObjects(ro, make([]uint64, 1)); return r }(), ckrOperationNotInitialized)
	want(t, "C_FindObjectsInit", m.FindObjectsInit(ro, nil), ckrOK)
	want(t, "C_FindObjectsInit twice", m.FindObjectsInit(ro, nil), ckrOperationActive)
	want(t, "C_FindObjectsFinal", m.FindObjectsFinal(ro), ckrOK)
	want(t, "C_FindObjectsFinal twice", m.FindObjectsFinal(ro), ckrOperationNotInitialized)

	want(t, "C_Logout", m.Logout(ro), ckrOK)
	want(t, "C_Logout again", m.Logout(ro), ckrUserNotLoggedIn)
	want(t, "C_CloseSession", m.CloseSession(ro), ckrOK)
	want(t, "C_CloseSession again", m.CloseSession(ro), ckrSessionHandleInvalid)
	want(t, "C_CloseAllSessions", m.CloseAllSessions(cardSlot(t, m)), ckrOK)
	_, r = m.GetSessionInfo(rw)
	want(t, "C_GetSessionInfo after C_CloseAllSessions", r, ckrSessionHandleInvalid)
}

func TestAttributes(t *testing.T) {
	s := startService(t)
	m := newTestModule(t)
	h := openSession(t, m, false)
	want(t, "C_Login", m.Login(h, ckuUser, pinOf(testPIN)), ckrOK)
	priv := privateKey(t, m, h)
	pubs := findAll(t, m, h, ulongAttr(p11.CKAClass, p11.CKOPublicKey), Attribute{Type: p11.CKAID, Value: s.keyID})
	if len(pubs) != 1 {
		t.Fatalf("%d public keys with the key's CKA_ID", len(pubs))
	}

	// Length query, then the value.
	attrs := []Attribute{{Type: 0x181 /* CKA_EC_POINT */}, {Type: p11.CKALabel}}
	want(t, "C_GetAttributeValue(NULL)", m.GetAttributeValue(h, pubs[0], attrs), ckrOK)
	if attrs[0].Len != 67 || attrs[1].Len != uint64(len("test key")) {
		t.Fatalf("lengths %d %d", attrs[0].Len, attrs[1].Len)
	}
	attrs[0].Value, attrs[1].Value = make([]byte, attrs[0].Len), make([]byte, 3)
	want(t, "C_GetAttributeValue(short)", m.GetAttributeValue(h, pubs[0], attrs), ckrBufferTooSmall)
	if attrs[0].Len != 67 || attrs[1].Len != ckUnavailableInformation {
		t.Errorf("after BUFFER_TOO_SMALL: %d %d", attrs[0].Len, attrs[1].Len)
	}
	var point []byte
	if _, err := asn1.Unmarshal(attrs[0].Value, &point); err != nil {
		t.Fatalf("CKA_EC_POINT: %v", err)
	}
	if keyPoint, err := s.key.Public.(*ecdsa.PublicKey).Bytes(); err != nil || !bytes.Equal(point, keyPoint) {
		t.Errorf("CKA_EC_POINT is not the key's point")
	}

	// Per-attribute errors: every attribute is answered.
	attrs = []Attribute{
		{Type: 0x011 /* CKA_VALUE */, Value: make([]byte, 64)},
		{Type: 0x80000001, Value: make([]byte, 64)},
		{Type: p11.CKASensitive, Value: make([]byte, 1)},
	}
	r := m.GetAttributeValue(h, priv, attrs)
	if r != ckrAttributeSensitive && r != ckrAttributeTypeInvalid {
		t.Errorf("C_GetAttributeValue = %v, want ATTRIBUTE_SENSITIVE or ATTRIBUTE_TYPE_INVALID", r)
	}
	if attrs[0].Len != ckUnavailableInformation || attrs[1].Len != ckUnavailableInformation || attrs[2].Len != 1 || attrs[2].Value[0] != 1 {
		t.Errorf("attributes %+v", attrs)
	}
	want(t, "C_GetAttributeValue(bad object)", m.GetAttributeValue(h, 9999, []Attribute{{Type: p11.CKALabel}}), ckrObjectHandleInvalid)
}

func TestSign(t *testing.T) {
	s := startService(t)
	m := newTestModule(t)
	h := openSession(t, m, false)
	pub := s.key.Public.(*ecdsa.PublicKey)
	msg := []byte("an authentication challenge")
	digest := sha256.Sum256(msg)

	want(t, "C_Login", m.Login(h, ckuUser, pinOf(testPIN)), ckrOK)
	priv := privateKey(t, m, h)
	_, r := m.Sign(h, msg, make([]byte, 64))
	want(t, "C_Sign without init", r, ckrOperationNotInitialized)
	want(t, "C_SignInit(bad key)", m.SignInit(h, p11.CKMECDSA, nil, 9999), ckrKeyHandleInvalid)
	want(t, "C_SignInit(unknown mechanism)", m.SignInit(h, 0x4242, nil, priv), ckrMechanismInvalid)
	want(t, "C_SignInit(RSA mechanism)", m.SignInit(h, p11.CKMSHA256RSAPKCS, nil, priv), ckrKeyTypeInconsistent)

	// One part, with the two-call convention.
	want(t, "C_SignInit", m.SignInit(h, p11.CKMECDSASHA256, nil, priv), ckrOK)
	want(t, "C_SignInit twice", m.SignInit(h, p11.CKMECDSASHA256, nil, priv), ckrOperationActive)
	n, r := m.Sign(h, msg, nil)
	want(t, "C_Sign(NULL)", r, ckrOK)
	if n != 64 {
		t.Fatalf("signature length %d, want 64", n)
	}
	n, r = m.Sign(h, msg, make([]byte, 10))
	want(t, "C_Sign(short)", r, ckrBufferTooSmall)
	if n != 64 {
		t.Errorf("length after BUFFER_TOO_SMALL %d", n)
	}
	sig := make([]byte, 100)
	n, r = m.Sign(h, msg, sig)
	want(t, "C_Sign", r, ckrOK)
	verifyECDSA(t, pub, digest[:], sig[:n])
	_, r = m.Sign(h, msg, sig)
	want(t, "C_Sign after the signature", r, ckrOperationNotInitialized)

	// Raw ECDSA over a digest.
	want(t, "C_SignInit(CKM_ECDSA)", m.SignInit(h, p11.CKMECDSA, nil, priv), ckrOK)
	n, r = m.Sign(h, digest[:], sig)
	want(t, "C_Sign(CKM_ECDSA)", r, ckrOK)
	verifyECDSA(t, pub, digest[:], sig[:n])

	// Several parts, hashed in the module.
	want(t, "C_SignInit", m.SignInit(h, p11.CKMECDSASHA256, nil, priv), ckrOK)
	want(t, "C_SignUpdate", m.SignUpdate(h, msg[:5]), ckrOK)
	want(t, "C_SignUpdate", m.SignUpdate(h, msg[5:]), ckrOK)
	n, r = m.SignFinal(h, nil)
	want(t, "C_SignFinal(NULL)", r, ckrOK)
	n, r = m.SignFinal(h, sig[:n])
	want(t, "C_SignFinal", r, ckrOK)
	verifyECDSA(t, pub, digest[:], sig[:n])
	want(t, "C_SignUpdate after final", m.SignUpdate(h, msg), ckrOperationNotInitialized)

	// An error ends the operation.
	want(t, "C_SignInit", m.SignInit(h, p11.CKMECDSA, nil, priv), ckrOK)
	_, r = m.Sign(h, nil, sig)
	want(t, "C_Sign(empty digest)", r, ckrDataLenRange)
	_, r = m.Sign(h, digest[:], sig)
	want(t, "C_Sign after an error", r, ckrOperationNotInitialized)

	// Logged out: the service refuses.
	want(t, "C_SignInit", m.SignInit(h, p11.CKMECDSA, nil, priv), ckrOK)
	want(t, "C_Logout", m.Logout(h), ckrOK)
	_, r = m.Sign(h, digest[:], sig)
	want(t, "C_Sign logged out", r, ckrUserNotLoggedIn)
}

func TestPINLifecycle(t *testing.T) {
	startService(t)
	m := newTestModule(t)
	h := openSession(t, m, true)

	want(t, "C_SetPIN(wrong old)", m.SetPIN(h, pinOf("00000000"), pinOf("11223344")), ckrPINIncorrect)
	want(t, "C_SetPIN(short new)", m.SetPIN(h, pinOf(testPIN), pinOf("1")), ckrPINLenRange)
	want(t, "C_SetPIN", m.SetPIN(h, pinOf(testPIN), pinOf("11223344")), ckrOK)
	want(t, "C_Login(old PIN)", m.Login(h, ckuUser, pinOf(testPIN)), ckrPINIncorrect)
	want(t, "C_Login(new PIN)", m.Login(h, ckuUser, pinOf("11223344")), ckrOK)
	want(t, "C_Logout", m.Logout(h), ckrOK)

	// Lock the PIN out, then unblock as SO.
	for i := 0; i < pinTries-1; i++ {
		want(t, "C_Login(wrong)", m.Login(h, ckuUser, pinOf("00000000")), ckrPINIncorrect)
	}
	ti, _ := m.GetTokenInfo(cardSlot(t, m))
	if ti.Flags&uint64(wire.FlagUserPINFinalTry) == 0 {
		t.Errorf("flags %#x lack CKF_USER_PIN_FINAL_TRY", ti.Flags)
	}
	// The try that exhausts the counter: the service says locked at once.
	if r := m.Login(h, ckuUser, pinOf("00000000")); r != ckrPINIncorrect && r != ckrPINLocked {
		t.Fatalf("C_Login(wrong, last) = %v", r)
	}
	want(t, "C_Login(locked)", m.Login(h, ckuUser, pinOf("11223344")), ckrPINLocked)
	ti, _ = m.GetTokenInfo(cardSlot(t, m))
	if ti.Flags&uint64(wire.FlagUserPINLocked) == 0 {
		t.Errorf("flags %#x lack CKF_USER_PIN_LOCKED", ti.Flags)
	}
	want(t, "C_InitPIN without SO", m.InitPIN(h, pinOf("55667788")), ckrUserNotLoggedIn)
	want(t, "C_Login(SO)", m.Login(h, ckuSO, pinOf(testPUK)), ckrOK)
	want(t, "C_InitPIN", m.InitPIN(h, pinOf("55667788")), ckrOK)
	want(t, "C_Logout(SO)", m.Logout(h), ckrOK)
	want(t, "C_Login(unblocked)", m.Login(h, ckuUser, pinOf("55667788")), ckrOK)
}

func TestObjectsKeygenRandom(t *testing.T) {
	startService(t)
	m := newTestModule(t)
	ro := openSession(t, m, false)
	rw := openSession(t, m, true)
	want(t, "C_Login", m.Login(rw, ckuUser, pinOf(testPIN)), ckrOK)

	ecParams := func(der []byte) []Attribute {
		return []Attribute{{Type: p11.CKAECParams, Value: der}, {Type: p11.CKALabel, Value: []byte("p384")}}
	}
	_, _, r := m.GenerateKeyPair(rw, p11.CKMECKeyPairGen, nil, nil, nil)
	want(t, "C_GenerateKeyPair(no curve)", r, ckrTemplateIncomplete)
	_, _, r = m.GenerateKeyPair(rw, p11.CKMECKeyPairGen, nil, ecParams([]byte{0x06, 0x03, 0x2b, 0x65, 0x70}), nil)
	want(t, "C_GenerateKeyPair(Ed25519)", r, ckrCurveNotSupported)
	_, _, r = m.GenerateKeyPair(rw, p11.CKMRSAPKCSKeyPairGen, nil, []Attribute{ulongAttr(p11.CKAModulusBits, 1024)}, nil)
	want(t, "C_GenerateKeyPair(RSA-1024)", r, ckrKeySizeRange)
	_, _, r = m.GenerateKeyPair(rw, p11.CKMECKeyPairGen, nil, ecParams(derP256), []Attribute{{Type: p11.CKAExtractable, Value: []byte{1}}})
	want(t, "C_GenerateKeyPair(extractable)", r, ckrTemplateInconsistent)
	_, _, r = m.GenerateKeyPair(rw, 0x4242, nil, nil, nil)
	want(t, "C_GenerateKeyPair(bad mechanism)", r, ckrMechanismInvalid)
	_, _, r = m.GenerateKeyPair(ro, p11.CKMECKeyPairGen, nil, ecParams(derP384), nil)
	want(t, "C_GenerateKeyPair(RO session)", r, ckrSessionReadOnly)

	pub, priv, r := m.GenerateKeyPair(rw, p11.CKMECKeyPairGen, nil, ecParams(derP384), []Attribute{{Type: p11.CKAID, Value: []byte{0x38, 0x34}}})
	want(t, "C_GenerateKeyPair(P-384)", r, ckrOK)
	if pub == 0 || priv == 0 || pub == priv {
		t.Fatalf("handles %d %d", pub, priv)
	}
	want(t, "C_SignInit(P-384)", m.SignInit(rw, p11.CKMECDSASHA384, nil, priv), ckrOK)
	n, _ := m.Sign(rw, []byte("x"), nil)
	if n != 96 {
		t.Errorf("P-384 signature length %d", n)
	}
	sig := make([]byte, n)
	_, r = m.Sign(rw, []byte("x"), sig)
	want(t, "C_Sign(P-384)", r, ckrOK)
	if objs := findAll(t, m, rw, Attribute{Type: p11.CKAID, Value: []byte{0x38, 0x34}}); len(objs) != 2 {
		t.Errorf("%d objects with the new CKA_ID", len(objs))
	}
	want(t, "C_DestroyObject", m.DestroyObject(rw, priv), ckrOK)
	want(t, "C_DestroyObject again", m.DestroyObject(rw, priv), ckrObjectHandleInvalid)
	want(t, "C_SignInit(deleted key)", m.SignInit(rw, p11.CKMECDSASHA384, nil, priv), ckrKeyHandleInvalid)

	// Certificates: the service does not store them yet.
	_, r = m.CreateObject(rw, []Attribute{{Type: p11.CKALabel, Value: []byte("x")}})
	want(t, "C_CreateObject(no class)", r, ckrTemplateIncomplete)
	_, r = m.CreateObject(rw, []Attribute{ulongAttr(p11.CKAClass, p11.CKOPrivateKey)})
	want(t, "C_CreateObject(private key)", r, ckrTemplateInconsistent)
	_, r = m.CreateObject(rw, []Attribute{ulongAttr(p11.CKAClass, p11.CKOCertificate), {Type: 0x11, Value: []byte{0x30, 0}}})
	if r != ckrOK && r != ckrFunctionNotSupported && r != ckrAttributeValueInvalid {
		t.Errorf("C_CreateObject(certificate) = %v", r)
	}

	buf := make([]byte, 5000) // more than one request's worth
	want(t, "C_GenerateRandom", m.GenerateRandom(ro, buf), ckrOK)
	if bytes.Equal(buf[4000:4100], make([]byte, 100)) {
		t.Errorf("random bytes are zero")
	}
	want(t, "C_SeedRandom", m.SeedRandom(ro), ckrRandomSeedNotSupported)
}

// TestThreads signs from many goroutines, each with its own session, while
// others open and close sessions.
func TestThreads(t *testing.T) {
	s := startService(t)
	m := newTestModule(t)
	login := openSession(t, m, false)
	want(t, "C_Login", m.Login(login, ckuUser, pinOf(testPIN)), ckrOK)
	priv := privateKey(t, m, login)
	pub := s.key.Public.(*ecdsa.PublicKey)
	digest := sha256.Sum256([]byte("threads"))
	slot := cardSlot(t, m)

	var wg sync.WaitGroup
	errs := make(chan string, 100)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h, r := m.OpenSession(slot, ckfSerialSession)
			if r != ckrOK {
				errs <- "C_OpenSession: " + r.String()
				return
			}
			defer m.CloseSession(h)
			for i := 0; i < 5; i++ {
				if r := m.SignInit(h, p11.CKMECDSA, nil, priv); r != ckrOK {
					errs <- "C_SignInit: " + r.String()
					return
				}
				sig := make([]byte, 64)
				n, r := m.Sign(h, digest[:], sig)
				if r != ckrOK {
					errs <- "C_Sign: " + r.String()
					return
				}
				rr, ss := new(big.Int).SetBytes(sig[:n/2]), new(big.Int).SetBytes(sig[n/2:n])
				if !ecdsa.Verify(pub, digest[:], rr, ss) {
					errs <- "bad signature"
				}
				if _, r := m.GetTokenInfo(slot); r != ckrOK {
					errs <- "C_GetTokenInfo: " + r.String()
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

// TestServiceRestart stops the service under a running application and
// starts it again: open sessions report the device removed, the token
// shows absent, and the module reconnects by itself.
func TestServiceRestart(t *testing.T) {
	s := startService(t)
	m := newTestModule(t)
	h := openSession(t, m, false)
	want(t, "C_Login", m.Login(h, ckuUser, pinOf(testPIN)), ckrOK)

	s.stop()
	_, r := m.GetSessionInfo(h)
	want(t, "C_GetSessionInfo, service down", r, ckrDeviceRemoved)
	want(t, "C_Login, service down", m.Login(h, ckuUser, pinOf(testPIN)), ckrDeviceRemoved)
	n, r := m.GetSlotList(true, nil)
	want(t, "C_GetSlotList, service down", r, ckrOK)
	if n != 0 {
		t.Errorf("%d slots with a token while the service is down", n)
	}
	n, _ = m.GetSlotList(false, nil)
	if n != 1 {
		t.Errorf("%d slots while the service is down, want the card's slot", n)
	}
	_, r = m.GetTokenInfo(cardSlot(t, m))
	want(t, "C_GetTokenInfo, service down", r, ckrTokenNotPresent)
	_, r = m.OpenSession(cardSlot(t, m), ckfSerialSession)
	want(t, "C_OpenSession, service down", r, ckrTokenNotPresent)

	s.start()
	n, r = m.GetSlotList(true, nil)
	want(t, "C_GetSlotList, service back", r, ckrOK)
	if n != 1 {
		t.Fatalf("%d slots with a token after the restart", n)
	}
	_, r = m.GetSessionInfo(h)
	want(t, "old session after the restart", r, ckrDeviceRemoved)
	want(t, "C_CloseSession(old)", m.CloseSession(h), ckrOK)
	h2 := openSession(t, m, false)
	want(t, "C_Login after the restart", m.Login(h2, ckuUser, pinOf(testPIN)), ckrOK)
	priv := privateKey(t, m, h2)
	want(t, "C_SignInit", m.SignInit(h2, p11.CKMECDSASHA256, nil, priv), ckrOK)
	_, r = m.Sign(h2, []byte("back"), make([]byte, 64))
	want(t, "C_Sign after the restart", r, ckrOK)

	// A restart that happens between two calls, unseen: the slot list
	// reconnects at once.
	s.stop()
	s.start()
	n, r = m.GetSlotList(true, nil)
	want(t, "C_GetSlotList after an unseen restart", r, ckrOK)
	if n != 1 {
		t.Errorf("%d slots with a token after an unseen restart", n)
	}
	_, r = m.GetSessionInfo(h2)
	want(t, "session across an unseen restart", r, ckrDeviceRemoved)
	h3 := openSession(t, m, false)
	_, r = m.GetSessionInfo(h3)
	want(t, "new session", r, ckrOK)
}

// TestFork pretends to be a child of fork(2): C_Initialize in the child
// starts afresh, and the parent's handles mean nothing there.
func TestFork(t *testing.T) {
	startService(t)
	m := newTestModule(t)
	h := openSession(t, m, false)
	pid := m.getpid()
	m.getpid = func() int { return pid + 1 }
	_, r := m.GetSessionInfo(h)
	want(t, "parent's session in the child", r, ckrCryptokiNotInitialized)
	want(t, "C_Initialize in the child", m.Initialize(nil), ckrOK)
	_, r = m.GetSessionInfo(h)
	want(t, "parent's session after the child's C_Initialize", r, ckrSessionHandleInvalid)
	h2 := openSession(t, m, false)
	want(t, "C_Login in the child", m.Login(h2, ckuUser, pinOf(testPIN)), ckrOK)
}

func TestWaitForSlotEvent(t *testing.T) {
	s := startService(t)
	m := newTestModule(t)
	_, r := m.WaitForSlotEvent(ckfDontBlock)
	want(t, "C_WaitForSlotEvent(DONT_BLOCK)", r, ckrNoEvent)

	type result struct {
		slot uint64
		r    rv
	}
	wait := func() chan result {
		ch := make(chan result, 1)
		go func() {
			id, r := m.WaitForSlotEvent(0)
			ch <- result{id, r}
		}()
		return ch
	}
	get := func(ch chan result) result {
		t.Helper()
		select {
		case res := <-ch:
			return res
		case <-time.After(20 * time.Second):
			t.Fatal("C_WaitForSlotEvent did not return")
		}
		return result{}
	}

	// A PIN change on the card is an event.
	ch := wait()
	h := openSession(t, m, false)
	want(t, "C_Login", m.Login(h, ckuUser, pinOf(testPIN)), ckrOK)
	res := get(ch)
	if res.r == ckrFunctionNotSupported {
		t.Skip("the service does not report events")
	}
	want(t, "C_WaitForSlotEvent", res.r, ckrOK)
	if res.slot != cardSlot(t, m) {
		t.Errorf("event on slot %d", res.slot)
	}
	_, r = m.WaitForSlotEvent(ckfDontBlock)
	want(t, "C_WaitForSlotEvent(DONT_BLOCK) with nothing new", r, ckrNoEvent)
	want(t, "C_Logout", m.Logout(h), ckrOK)
	want(t, "C_Login", m.Login(h, ckuUser, pinOf(testPIN)), ckrOK)
	_, r = m.WaitForSlotEvent(ckfDontBlock)
	want(t, "C_WaitForSlotEvent(DONT_BLOCK) after a login", r, ckrOK)

	// The service going away and coming back is an event: the cards are back.
	ch = wait()
	time.Sleep(100 * time.Millisecond)
	s.stop()
	time.Sleep(200 * time.Millisecond)
	s.start()
	res = get(ch)
	want(t, "C_WaitForSlotEvent across a restart", res.r, ckrOK)

	// C_Finalize ends a wait.
	ch = wait()
	time.Sleep(100 * time.Millisecond)
	want(t, "C_Finalize", m.Finalize(false), ckrOK)
	res = get(ch)
	want(t, "C_WaitForSlotEvent after C_Finalize", res.r, ckrCryptokiNotInitialized)
}
