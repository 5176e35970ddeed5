package wire

import (
	"strings"

	"github.com/tpmcard/tpmcard/tpmcard/secret"
)

// testPIN is a PIN whose digits must never show up in a trace.
const testPIN = "918273"

var sampleGID uint32 = 1001

// samples returns one fully populated message of every catalog type. Every
// field is non-zero, so a field lost in a round trip shows.
func samples() map[Type]any {
	attrs := []Attribute{{Type: 0x0, Value: []byte{3}}, {Type: 0x102, Value: []byte("id-1")}}
	s := map[Type]any{
		TypeHello:            &Hello{Version: Version, Client: "pkcs11/1.0 ssh"},
		TypeListCards:        &ListCards{},
		TypeMechanisms:       &Mechanisms{Serial: "TC-0001", Slot: 0x1234_5678},
		TypeOpenSession:      &OpenSession{Serial: "TC-0001", ReadWrite: true, Slot: 0x1234_5678, Flags: 0x6},
		TypeCloseSession:     &CloseSession{Session: 7},
		TypeCloseAllSessions: &CloseAllSessions{Serial: "TC-0001", Slot: 0x1234_5678},
		TypeSessionInfo:      &SessionInfo{Session: 7},
		TypeLogin:            &Login{Session: 7, UserType: UserNormal, PIN: secret.FromString(testPIN)},
		TypeLogout:           &Logout{Session: 7},
		TypeInitPIN:          &InitPIN{Session: 7, NewPIN: secret.FromString("11223344")},
		TypeSetPIN:           &SetPIN{Session: 7, OldPIN: secret.FromString(testPIN), NewPIN: secret.FromString("55667788")},
		TypeUnblock:          &Unblock{Serial: "TC-0001", PUK: secret.FromString("12345678"), NewPIN: secret.FromString("24681357")},
		TypeFindObjects:      &FindObjects{Session: 7, Template: attrs},
		TypeGetAttributes:    &GetAttributes{Session: 7, Object: 1 << 40, Types: []uint32{0, 3, 0x102, 0x80000001}},
		TypeSign:             &Sign{Session: 7, Object: 2, Mechanism: 0x1041, Param: []byte{1, 2, 3}, Data: make([]byte, 32)},
		TypeSignLength:       &SignLength{Session: 7, Object: 2, Mechanism: 0x1041},
		TypeGenerateKeyPair:  &GenerateKeyPair{Session: 7, Algorithm: AlgECDSAP256, Label: "auth", ID: []byte{0xde, 0xad}},
		TypeCreateObject:     &CreateObject{Session: 7, Template: attrs},
		TypeDestroyObject:    &DestroyObject{Session: 7, Object: 3},
		TypeGenerateRandom:   &GenerateRandom{Session: 7, N: 32},
		TypeWaitEvent:        &WaitEvent{TimeoutMillis: 1500},
		TypeGetSlotList:      &GetSlotList{TokenPresent: true},
		TypeGetSlotInfo:      &GetSlotInfo{Slot: 0x7fff_fffe},
		TypeGetTokenInfo:     &GetTokenInfo{Slot: 1},
		TypeSlotList:         &SlotList{Slots: []uint64{1, 0x1234_5678, 0x7fff_ffff}},
		TypeSlotDescription: &SlotDescription{
			Description: []byte("tpmcard virtual reader" + strings.Repeat(" ", 42)), Manufacturer: []byte("tpmcard" + strings.Repeat(" ", 25)),
			Flags: 0x7, HardwareMajor: 2, HardwareMinor: 3, FirmwareMajor: 4, FirmwareMinor: 1,
		},
		TypeTokenDescription: &TokenDescription{
			Label: []byte("laptop (lost)" + strings.Repeat(" ", 19)), Manufacturer: []byte("tpmcard" + strings.Repeat(" ", 25)),
			Model: []byte("TPM2 vcard      "), SerialNumber: []byte("00112233aabbccdd"), Flags: 0x000d_040d,
			MaxSessionCount: 16, SessionCount: 1<<64 - 1, MaxRWSessionCount: 8, RWSessionCount: 1<<64 - 1, MaxPINLen: 64, MinPINLen: 6,
			TotalPublicMemory: 1<<64 - 1, FreePublicMemory: 1<<64 - 1, TotalPrivateMemory: 1<<64 - 1, FreePrivateMemory: 1<<64 - 1,
			HardwareMajor: 2, HardwareMinor: 3, FirmwareMajor: 4, FirmwareMinor: 1, UTCTime: []byte("2026120206360000"),
		},
		TypeFindObjectsInit:  &FindObjectsInit{Session: 7, Template: append(attrs, Attribute{Type: 0x8000_0001_0000_0000, Value: []byte{1}})},
		TypeFindObjectsNext:  &FindObjectsNext{Session: 7, Max: 1 << 40},
		TypeFindObjectsFinal: &FindObjectsFinal{Session: 7},
		TypeGetAttributeValue: &GetAttributeValue{Session: 7, Object: 1 << 40, Attributes: []AttributeQuery{
			{Type: 0x102, Len: 64}, {Type: 0x11, Length: true}, {Type: 1 << 63, Len: 1 << 33, Length: true},
		}},
		TypeGenerateKeyPairTemplates: &GenerateKeyPairTemplates{
			Session: 7, Mechanism: 0x1040, Param: []byte{0},
			Public:  []Attribute{{Type: 0x180, Value: []byte{0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07}}},
			Private: attrs,
		},
		TypeSignInit:          &SignInit{Session: 7, Mechanism: 1<<40 | 0x0d, Param: []byte{0x50, 2, 0, 0, 0, 0, 0, 0}, Key: 1 << 33},
		TypeSignData:          &SignData{Session: 7, Data: []byte("to be signed"), Len: 1 << 32, Length: true, AfterInit: true},
		TypeSignUpdate:        &SignUpdate{Session: 7, Part: []byte{0, 1, 2, 0xff}, AfterInit: true},
		TypeSignFinal:         &SignFinal{Session: 7, Len: 255, Length: true, AfterInit: true},
		TypeSeedRandom:        &SeedRandom{Session: 7, Seed: []byte{4, 4, 4}},
		TypeGetObjectSize:     &GetObjectSize{Session: 7, Object: 1 << 40},
		TypeObjectSize:        &ObjectSize{Size: 1<<64 - 1},
		TypeDigestInit:        &DigestInit{Session: 7, Mechanism: 1<<40 | 0x250, Param: []byte{9}},
		TypeDigestData:        &DigestData{Session: 7, Data: []byte("to be digested"), Len: 1 << 32, Length: true, AfterInit: true},
		TypeDigestUpdate:      &DigestUpdate{Session: 7, Part: []byte{0, 1, 0xff}, AfterInit: true},
		TypeDigestKey:         &DigestKey{Session: 7, Key: 1 << 33, AfterInit: true},
		TypeDigestFinal:       &DigestFinal{Session: 7, Len: 31, Length: true, AfterInit: true},
		TypeDigested:          &Digested{RV: 0x150 /* CKR_BUFFER_TOO_SMALL */, Len: 32, Digest: []byte{0x5a, 0xa5}},
		TypeVerifyInit:        &VerifyInit{Session: 7, Mechanism: 1<<40 | 0x0d, Param: []byte{0x50, 2}, Key: 1 << 33},
		TypeVerifyData:        &VerifyData{Session: 7, Data: []byte("signed"), Signature: []byte{1, 2, 3}, Parts: true, AfterInit: true},
		TypeVerifyUpdate:      &VerifyUpdate{Session: 7, Part: []byte{7, 0}, AfterInit: true},
		TypeVerifyFinal:       &VerifyFinal{Session: 7, Signature: []byte{4, 5}, AfterInit: true},
		TypeSetAttributeValue: &SetAttributeValue{Session: 7, Object: 1 << 40, Template: attrs},
		TypeCopyObject:        &CopyObject{Session: 7, Object: 1 << 40, Template: attrs},
		TypeSigned:            &Signed{RV: 0x150 /* CKR_BUFFER_TOO_SMALL */, Len: 256, Signature: []byte{0xa5, 0x5a}},
		TypeFoundObjects:      &FoundObjects{Handles: []uint64{1, 1 << 63}},
		TypeGeneratedKeyPair:  &GeneratedKeyPair{Public: 8, Private: 9},
		TypeAttributeValue: &AttributeValue{RV: 0x150 /* CKR_BUFFER_TOO_SMALL */, Values: []AttributeAnswer{
			{Len: 4, Value: []byte("id-1")}, {RV: 0x11, Len: 1}, {RV: 0x150, Len: 1 << 33},
		}},
		TypeProvision: &Provision{
			Label: "laptop", PIN: secret.FromString("000000"), PUK: secret.FromString("87654321"),
			PINPolicy: PINPolicy{MinLen: 6, MaxLen: 64, Upper: CharRequired, Lower: CharDisallowed, Digit: CharRequired, Special: CharDisallowed},
			PINTries:  5, PUKTries: 10, AdminKey: []byte{0x30, 0x59}, NoPUK: true,
			Owner: &CardOwner{UID: 1000, GID: &sampleGID}, AdminsOnly: true,
		},
		TypeSetOwner:       &SetOwner{Serial: "TC-0001", Owner: &CardOwner{UID: 1000, GID: &sampleGID}},
		TypeDestroyCard:    &DestroyCard{Serial: "TC-0001"},
		TypeGetStatus:      &GetStatus{},
		TypeAttestKey:      &AttestKey{Serial: "0123456789abcdef", KeyID: []byte{1, 2}, Nonce: []byte("nonce")},
		TypeAttestation:    &Attestation{Statement: []byte(`{"type":"x"}`)},
		TypeAdminChallenge: &AdminChallenge{Serial: "0a1b2c3d4e5f6a7b", ValiditySeconds: 600},
		TypeAdminUnblock:   &AdminUnblock{Serial: "0a1b2c3d4e5f6a7b", Response: "AAAAA-BBBBB", NewPIN: secret.FromString("24681357")},
		TypeChallenge:      &Challenge{Text: "AAAAA-BBBBB", Expires: 1700000000},

		TypeAck:        &Ack{},
		TypeHelloReply: &HelloReply{Version: Version, Server: "tpmcard/0.1", Simulated: true},
		TypeCards: &Cards{Cards: []TokenInfo{{
			Serial: "TC-0001", Label: "laptop", Manufacturer: "tpmcard", Model: "TPM 2.0",
			Flags:     FlagRNG | FlagLoginRequired | FlagUserPINInitialized | FlagTokenInitialized | FlagUserPINToBeChanged,
			MinPINLen: 6, MaxPINLen: 64, PINTriesLeft: 2, PINTriesMax: 3, PUKTriesLeft: 10, PUKTriesMax: 10,
			HasPUK: true, HasAdminKey: true, Simulated: true, Owner: &CardOwner{UID: 1000, GID: &sampleGID},
			State: CardStateLost, Slot: 0x1234_5678,
		}, {Serial: "TC-0002", Flags: FlagUserPINLocked}}},
		TypeMechanismList: &MechanismList{Mechanisms: []MechanismInfo{
			{Mechanism: 0x1041, MinKeyBits: 256, MaxKeyBits: 384, Flags: 0x2800},
			{Mechanism: 0x000d, MinKeyBits: 2048, MaxKeyBits: 3072, Flags: 0x800},
		}},
		TypeSessionOpened: &SessionOpened{Session: 7},
		TypeSessionState:  &SessionState{State: 3, ReadWrite: true, Slot: 0x1234_5678, Flags: 0x6, DeviceError: 0x8000_0000},
		TypeObjects:       &Objects{Handles: []uint64{1, 2, 1 << 63}},
		TypeAttributeValues: &AttributeValues{Values: []AttributeResult{
			{Type: 0x100, Value: []byte{0, 0, 0, 3}, Status: OK},
			{Type: 0x11, Status: AttributeSensitive},
			{Type: 0x7777, Status: AttributeInvalid},
		}},
		TypeSignature:        &Signature{Sig: make([]byte, 64)},
		TypeLength:           &Length{N: 64},
		TypeKeyPairGenerated: &KeyPairGenerated{Public: 4, Private: 5},
		TypeObjectCreated:    &ObjectCreated{Object: 6},
		TypeRandom:           &Random{Bytes: []byte{9, 8, 7}},
		TypeEvent:            &Event{Serial: "TC-0001", Kind: EventChanged, Slot: 0x1234_5678},
		TypeProvisioned:      &Provisioned{Serial: "TC-0003", PUK: secret.FromString("13572468")},
		TypeServiceStatus: &ServiceStatus{
			Backend: "sim", Simulated: true, HardwareProtected: true, Manufacturer: "IBM",
			Firmware: "1.62", Cards: 1, Version: "0.1.0",
		},
		TypeProgress:    &Progress{Percent: 40, Message: "generating RSA key"},
		TypeUnsupported: &UnsupportedReply{Type: 0x7e},
		TypeError:       &StatusError{Status: PINIncorrect, TriesLeft: 2, Message: "wrong PIN", RV: 0xa0},
	}
	for t, m := range pivSamples {
		s[t] = m
	}
	for t, m := range keySamples {
		s[t] = m
	}
	return s
}
