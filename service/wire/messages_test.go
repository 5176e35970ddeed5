package wire

import (
	"reflect"
	"testing"
)

// typeGolden pins every frame type number and its reply.
var typeGolden = []struct {
	t     Type
	num   uint8
	name  string
	reply Type // 0 for replies and notifications
}{
	{TypeHello, 0x01, "Hello", TypeHelloReply},
	{TypeListCards, 0x02, "ListCards", TypeCards},
	{TypeMechanisms, 0x03, "Mechanisms", TypeMechanismList},
	{TypeOpenSession, 0x04, "OpenSession", TypeSessionOpened},
	{TypeCloseSession, 0x05, "CloseSession", TypeAck},
	{TypeCloseAllSessions, 0x06, "CloseAllSessions", TypeAck},
	{TypeSessionInfo, 0x07, "SessionInfo", TypeSessionState},
	{TypeLogin, 0x08, "Login", TypeAck},
	{TypeLogout, 0x09, "Logout", TypeAck},
	{TypeInitPIN, 0x0a, "InitPIN", TypeAck},
	{TypeSetPIN, 0x0b, "SetPIN", TypeAck},
	{TypeUnblock, 0x0c, "Unblock", TypeAck},
	{TypeFindObjects, 0x0d, "FindObjects", TypeObjects},
	{TypeGetAttributes, 0x0e, "GetAttributes", TypeAttributeValues},
	{TypeSign, 0x0f, "Sign", TypeSignature},
	{TypeSignLength, 0x10, "SignLength", TypeLength},
	{TypeGenerateKeyPair, 0x11, "GenerateKeyPair", TypeKeyPairGenerated},
	{TypeCreateObject, 0x12, "CreateObject", TypeObjectCreated},
	{TypeDestroyObject, 0x13, "DestroyObject", TypeAck},
	{TypeGenerateRandom, 0x14, "GenerateRandom", TypeRandom},
	{TypeWaitEvent, 0x15, "WaitEvent", TypeEvent},
	{TypeGetSlotList, 0x16, "GetSlotList", TypeSlotList},
	{TypeGetSlotInfo, 0x17, "GetSlotInfo", TypeSlotDescription},
	{TypeGetTokenInfo, 0x18, "GetTokenInfo", TypeTokenDescription},
	{TypeFindObjectsInit, 0x20, "FindObjectsInit", TypeAck},
	{TypeFindObjectsNext, 0x21, "FindObjectsNext", TypeFoundObjects},
	{TypeFindObjectsFinal, 0x22, "FindObjectsFinal", TypeAck},
	{TypeGetAttributeValue, 0x23, "GetAttributeValue", TypeAttributeValue},
	{TypeGenerateKeyPairTemplates, 0x24, "GenerateKeyPairTemplates", TypeGeneratedKeyPair},
	{TypeSignInit, 0x25, "SignInit", TypeAck},
	{TypeSignData, 0x26, "SignData", TypeSigned},
	{TypeSignUpdate, 0x27, "SignUpdate", TypeAck},
	{TypeSignFinal, 0x28, "SignFinal", TypeSigned},
	{TypeSeedRandom, 0x29, "SeedRandom", TypeAck},
	{TypeGetObjectSize, 0x2a, "GetObjectSize", TypeObjectSize},
	{TypeProvision, 0x40, "Provision", TypeProvisioned},
	{TypeDestroyCard, 0x41, "DestroyCard", TypeAck},
	{TypeGetStatus, 0x42, "GetStatus", TypeServiceStatus},
	{TypeAttestKey, 0x43, "AttestKey", TypeAttestation},
	{TypeSetOwner, 0x44, "SetOwner", TypeAck},
	{TypeAdminChallenge, 0x48, "AdminChallenge", TypeChallenge},
	{TypeAdminUnblock, 0x49, "AdminUnblock", TypeAck},

	{TypeAck, 0x80, "Ack", 0},
	{TypeHelloReply, 0x81, "HelloReply", 0},
	{TypeCards, 0x82, "Cards", 0},
	{TypeMechanismList, 0x83, "MechanismList", 0},
	{TypeSessionOpened, 0x84, "SessionOpened", 0},
	{TypeSessionState, 0x87, "SessionState", 0},
	{TypeObjects, 0x8d, "Objects", 0},
	{TypeAttributeValues, 0x8e, "AttributeValues", 0},
	{TypeSignature, 0x8f, "Signature", 0},
	{TypeLength, 0x90, "Length", 0},
	{TypeKeyPairGenerated, 0x91, "KeyPairGenerated", 0},
	{TypeObjectCreated, 0x92, "ObjectCreated", 0},
	{TypeRandom, 0x94, "Random", 0},
	{TypeEvent, 0x95, "Event", 0},
	{TypeSlotList, 0x96, "SlotList", 0},
	{TypeSlotDescription, 0x97, "SlotDescription", 0},
	{TypeTokenDescription, 0x98, "TokenDescription", 0},
	{TypeFoundObjects, 0xa1, "FoundObjects", 0},
	{TypeAttributeValue, 0xa3, "AttributeValue", 0},
	{TypeGeneratedKeyPair, 0xa4, "GeneratedKeyPair", 0},
	{TypeSigned, 0xa6, "Signed", 0},
	{TypeObjectSize, 0xaa, "ObjectSize", 0},
	{TypeDigestInit, 0x30, "DigestInit", TypeAck},
	{TypeDigestData, 0x31, "DigestData", TypeDigested},
	{TypeDigestUpdate, 0x32, "DigestUpdate", TypeAck},
	{TypeDigestKey, 0x33, "DigestKey", TypeAck},
	{TypeDigestFinal, 0x34, "DigestFinal", TypeDigested},
	{TypeVerifyInit, 0x35, "VerifyInit", TypeAck},
	{TypeVerifyData, 0x36, "VerifyData", TypeAck},
	{TypeVerifyUpdate, 0x37, "VerifyUpdate", TypeAck},
	{TypeVerifyFinal, 0x38, "VerifyFinal", TypeAck},
	{TypeSetAttributeValue, 0x39, "SetAttributeValue", TypeAck},
	{TypeCopyObject, 0x3a, "CopyObject", TypeObjectCreated},
	{TypeDigested, 0xb1, "Digested", 0},
	{TypeProvisioned, 0xc0, "Provisioned", 0},
	{TypeServiceStatus, 0xc2, "ServiceStatus", 0},
	{TypeAttestation, 0xc3, "Attestation", 0},
	{TypeChallenge, 0xc8, "Challenge", 0},
	{TypeProgress, 0xfd, "Progress", 0},
	{TypeUnsupported, 0xfe, "Unsupported", 0},
	{TypeError, 0xff, "Error", 0},
}

// sharedReplies are the requests answered with another request's reply.
var sharedReplies = map[Type]bool{
	TypeSignFinal:   true, // Signed, SignData's
	TypeDigestFinal: true, // Digested, DigestData's
	TypeCopyObject:  true, // ObjectCreated, CreateObject's
}

func TestTypeNumbersPinned(t *testing.T) {
	if len(typeGolden) != len(catalog) {
		t.Errorf("%d types in catalog, %d pinned", len(catalog), len(typeGolden))
	}
	seen := map[uint8]string{}
	for _, g := range typeGolden {
		t.Run("ok/"+g.name, func(t *testing.T) {
			if uint8(g.t) != g.num {
				t.Errorf("%s = 0x%02x, pinned 0x%02x", g.name, uint8(g.t), g.num)
			}
			if g.t.String() != g.name {
				t.Errorf("String() = %q", g.t.String())
			}
			if !g.t.Known() {
				t.Error("not in catalog")
			}
			if got := ReplyType(g.t); got != g.reply {
				t.Errorf("ReplyType = %v, want %v", got, g.reply)
			}
			isReq := g.reply != 0
			if IsRequest(g.t) != isReq {
				t.Errorf("IsRequest = %v", !isReq)
			}
			// Requests below 0x80, replies from 0x80.
			if isReq != (g.num < 0x80) {
				t.Errorf("0x%02x on the wrong side of 0x80", g.num)
			}
			// A request's own reply is request+0x80, or that of the
			// request it shares its reply with.
			if isReq && g.reply != TypeAck && uint8(g.reply) != g.num+0x80 && !sharedReplies[g.t] {
				t.Errorf("reply 0x%02x is not request+0x80", uint8(g.reply))
			}
			if sharedReplies[g.t] && ReplyType(Type(uint8(g.reply)-0x80)) != g.reply {
				t.Errorf("shared reply 0x%02x is no other request's own", uint8(g.reply))
			}
			if isReq && IsRequest(g.reply) {
				t.Errorf("reply %v is itself a request", g.reply)
			}
			msg := New(g.t)
			if msg == nil || reflect.TypeOf(msg).Kind() != reflect.Pointer {
				t.Fatalf("New = %T", msg)
			}
			if got, ok := TypeOf(msg); !ok || got != g.t {
				t.Errorf("TypeOf(New) = %v, %v", got, ok)
			}
			if got, ok := TypeOf(reflect.ValueOf(msg).Elem().Interface()); !ok || got != g.t {
				t.Errorf("TypeOf(value) = %v, %v", got, ok)
			}
		})
		if prev, dup := seen[g.num]; dup {
			t.Errorf("0x%02x used by %s and %s", g.num, prev, g.name)
		}
		seen[g.num] = g.name
	}
}

func TestUnknownTypes(t *testing.T) {
	tests := []struct {
		name string
		t    Type
	}{
		{"fail/zero", 0x00},
		{"fail/unassigned-request", 0x7f},
		{"fail/unassigned-reply", 0x85},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.t.Known() || IsRequest(tt.t) || ReplyType(tt.t) != 0 || New(tt.t) != nil {
				t.Fatalf("type 0x%02x treated as known", uint8(tt.t))
			}
			if tt.t.String() == "" {
				t.Fatal("empty String")
			}
		})
	}
	for _, v := range []any{nil, 3, "x", struct{}{}, &TokenInfo{}, Attribute{}} {
		if typ, ok := TypeOf(v); ok {
			t.Errorf("TypeOf(%T) = %v", v, typ)
		}
	}
}

func TestTokenFlagsHas(t *testing.T) {
	f := FlagLoginRequired | FlagUserPINToBeChanged
	if !f.Has(FlagLoginRequired) || !f.Has(FlagLoginRequired|FlagUserPINToBeChanged) || f.Has(FlagUserPINLocked) {
		t.Fatal("Has")
	}
}
