package wire

import (
	"reflect"
	"slices"
	"strconv"

	"github.com/tpmcard/tpmcard/tpmcard/secret"
)

// Version is the protocol version named in Hello. It changes only for an
// incompatible change; see the package documentation.
const Version uint16 = 1

// Type is the frame type byte. Requests use 0x01–0x7f, replies and
// notifications 0x80–0xff; a request's own reply is, where it has one, the
// request number plus 0x80 (SignFinal shares SignData's). Numbers are
// never renumbered or reused; 0x00 is never a valid type.
type Type uint8

// Requests.
const (
	TypeHello            Type = 0x01
	TypeListCards        Type = 0x02
	TypeMechanisms       Type = 0x03
	TypeOpenSession      Type = 0x04
	TypeCloseSession     Type = 0x05
	TypeCloseAllSessions Type = 0x06
	TypeSessionInfo      Type = 0x07
	TypeLogin            Type = 0x08
	TypeLogout           Type = 0x09
	TypeInitPIN          Type = 0x0a
	TypeSetPIN           Type = 0x0b
	TypeUnblock          Type = 0x0c
	TypeFindObjects      Type = 0x0d
	TypeGetAttributes    Type = 0x0e
	TypeSign             Type = 0x0f
	TypeSignLength       Type = 0x10
	TypeGenerateKeyPair  Type = 0x11
	TypeCreateObject     Type = 0x12
	TypeDestroyObject    Type = 0x13
	TypeGenerateRandom   Type = 0x14
	TypeWaitEvent        Type = 0x15
	TypeGetSlotList      Type = 0x16 // PKCS#11 slots (docs/wire.md)
	TypeGetSlotInfo      Type = 0x17
	TypeGetTokenInfo     Type = 0x18

	// Administration.
	TypeProvision   Type = 0x40
	TypeDestroyCard Type = 0x41
	TypeGetStatus   Type = 0x42
	TypeAttestKey   Type = 0x43 // enrollment: key attestation (attest.go)
	TypeSetOwner    Type = 0x44 // who the card belongs to (owner.go)

	// The administrator's offline unblock.
	TypeAdminChallenge Type = 0x48
	TypeAdminUnblock   Type = 0x49
)

// Replies and notifications.
const (
	TypeAck              Type = 0x80 // success with nothing to return
	TypeHelloReply       Type = 0x81
	TypeCards            Type = 0x82
	TypeMechanismList    Type = 0x83
	TypeSessionOpened    Type = 0x84
	TypeSessionState     Type = 0x87
	TypeObjects          Type = 0x8d
	TypeAttributeValues  Type = 0x8e
	TypeSignature        Type = 0x8f
	TypeLength           Type = 0x90
	TypeKeyPairGenerated Type = 0x91
	TypeObjectCreated    Type = 0x92
	TypeRandom           Type = 0x94
	TypeEvent            Type = 0x95
	TypeSlotList         Type = 0x96
	TypeSlotDescription  Type = 0x97
	TypeTokenDescription Type = 0x98
	TypeProvisioned      Type = 0xc0
	TypeServiceStatus    Type = 0xc2
	TypeAttestation      Type = 0xc3
	TypeChallenge        Type = 0xc8

	TypeProgress    Type = 0xfd // notification before a final reply
	TypeUnsupported Type = 0xfe // final reply to an unknown request type
	TypeError       Type = 0xff // final reply: body is a StatusError
)

// entry describes one message type.
type entry struct {
	name  string
	new   func() any
	reply Type // for requests: the success reply; 0 for replies
}

func mk[T any]() func() any { return func() any { return new(T) } }

// catalog is the single table of message types.
var catalog = map[Type]entry{
	TypeHello:            {"Hello", mk[Hello](), TypeHelloReply},
	TypeListCards:        {"ListCards", mk[ListCards](), TypeCards},
	TypeMechanisms:       {"Mechanisms", mk[Mechanisms](), TypeMechanismList},
	TypeOpenSession:      {"OpenSession", mk[OpenSession](), TypeSessionOpened},
	TypeCloseSession:     {"CloseSession", mk[CloseSession](), TypeAck},
	TypeCloseAllSessions: {"CloseAllSessions", mk[CloseAllSessions](), TypeAck},
	TypeSessionInfo:      {"SessionInfo", mk[SessionInfo](), TypeSessionState},
	TypeLogin:            {"Login", mk[Login](), TypeAck},
	TypeLogout:           {"Logout", mk[Logout](), TypeAck},
	TypeInitPIN:          {"InitPIN", mk[InitPIN](), TypeAck},
	TypeSetPIN:           {"SetPIN", mk[SetPIN](), TypeAck},
	TypeUnblock:          {"Unblock", mk[Unblock](), TypeAck},
	TypeFindObjects:      {"FindObjects", mk[FindObjects](), TypeObjects},
	TypeGetAttributes:    {"GetAttributes", mk[GetAttributes](), TypeAttributeValues},
	TypeSign:             {"Sign", mk[Sign](), TypeSignature},
	TypeSignLength:       {"SignLength", mk[SignLength](), TypeLength},
	TypeGenerateKeyPair:  {"GenerateKeyPair", mk[GenerateKeyPair](), TypeKeyPairGenerated},
	TypeCreateObject:     {"CreateObject", mk[CreateObject](), TypeObjectCreated},
	TypeDestroyObject:    {"DestroyObject", mk[DestroyObject](), TypeAck},
	TypeGenerateRandom:   {"GenerateRandom", mk[GenerateRandom](), TypeRandom},
	TypeWaitEvent:        {"WaitEvent", mk[WaitEvent](), TypeEvent},
	TypeGetSlotList:      {"GetSlotList", mk[GetSlotList](), TypeSlotList},
	TypeGetSlotInfo:      {"GetSlotInfo", mk[GetSlotInfo](), TypeSlotDescription},
	TypeGetTokenInfo:     {"GetTokenInfo", mk[GetTokenInfo](), TypeTokenDescription},
	TypeProvision:        {"Provision", mk[Provision](), TypeProvisioned},
	TypeDestroyCard:      {"DestroyCard", mk[DestroyCard](), TypeAck},
	TypeGetStatus:        {"GetStatus", mk[GetStatus](), TypeServiceStatus},
	TypeAttestKey:        {"AttestKey", mk[AttestKey](), TypeAttestation},
	TypeSetOwner:         {"SetOwner", mk[SetOwner](), TypeAck},
	TypeAdminChallenge:   {"AdminChallenge", mk[AdminChallenge](), TypeChallenge},
	TypeAdminUnblock:     {"AdminUnblock", mk[AdminUnblock](), TypeAck},

	TypeAck:              {"Ack", mk[Ack](), 0},
	TypeHelloReply:       {"HelloReply", mk[HelloReply](), 0},
	TypeCards:            {"Cards", mk[Cards](), 0},
	TypeMechanismList:    {"MechanismList", mk[MechanismList](), 0},
	TypeSessionOpened:    {"SessionOpened", mk[SessionOpened](), 0},
	TypeSessionState:     {"SessionState", mk[SessionState](), 0},
	TypeObjects:          {"Objects", mk[Objects](), 0},
	TypeAttributeValues:  {"AttributeValues", mk[AttributeValues](), 0},
	TypeSignature:        {"Signature", mk[Signature](), 0},
	TypeLength:           {"Length", mk[Length](), 0},
	TypeKeyPairGenerated: {"KeyPairGenerated", mk[KeyPairGenerated](), 0},
	TypeObjectCreated:    {"ObjectCreated", mk[ObjectCreated](), 0},
	TypeRandom:           {"Random", mk[Random](), 0},
	TypeEvent:            {"Event", mk[Event](), 0},
	TypeSlotList:         {"SlotList", mk[SlotList](), 0},
	TypeSlotDescription:  {"SlotDescription", mk[SlotDescription](), 0},
	TypeTokenDescription: {"TokenDescription", mk[TokenDescription](), 0},
	TypeProvisioned:      {"Provisioned", mk[Provisioned](), 0},
	TypeServiceStatus:    {"ServiceStatus", mk[ServiceStatus](), 0},
	TypeAttestation:      {"Attestation", mk[Attestation](), 0},
	TypeChallenge:        {"Challenge", mk[Challenge](), 0},
	TypeProgress:         {"Progress", mk[Progress](), 0},
	TypeUnsupported:      {"Unsupported", mk[UnsupportedReply](), 0},
	TypeError:            {"Error", mk[StatusError](), 0},
}

// typeOf maps a message's Go type to its frame type.
var typeOf = func() map[reflect.Type]Type {
	m := make(map[reflect.Type]Type, len(catalog))
	for t, e := range catalog {
		m[reflect.TypeOf(e.new()).Elem()] = t
	}
	return m
}()

// String returns the message name, or "Type(0xNN)" for an unknown type.
func (t Type) String() string {
	if e, ok := catalog[t]; ok {
		return e.name
	}
	return "Type(0x" + strconv.FormatUint(uint64(t), 16) + ")"
}

// Known reports whether t is in the catalog.
func (t Type) Known() bool {
	_, ok := catalog[t]
	return ok
}

// IsRequest reports whether t is a request this build knows. The server
// answers any other type a client sends with UnsupportedReply.
func IsRequest(t Type) bool {
	e, ok := catalog[t]
	return ok && e.reply != 0
}

// ReplyType returns the success reply type for request type req, or 0 if
// req is not a known request. Any request may instead be answered with
// TypeError or TypeUnsupported, preceded by TypeProgress frames.
func ReplyType(req Type) Type { return catalog[req].reply }

// New returns a pointer to a new zero message of type t, ready for
// Unmarshal, or nil if t is unknown.
func New(t Type) any {
	e, ok := catalog[t]
	if !ok {
		return nil
	}
	return e.new()
}

// TypeOf returns the frame type of msg, a catalog struct or a pointer to
// one. ok is false for anything else.
func TypeOf(msg any) (t Type, ok bool) {
	rt := reflect.TypeOf(msg)
	if rt == nil {
		return 0, false
	}
	if rt.Kind() == reflect.Pointer {
		rt = rt.Elem()
	}
	t, ok = typeOf[rt]
	return t, ok
}

// Types returns every type in the catalog, in numeric order.
func Types() []Type {
	out := make([]Type, 0, len(catalog))
	for t := range catalog {
		out = append(out, t)
	}
	slices.Sort(out)
	return out
}

// ---------------------------------------------------------------------------
// Connection setup and generic replies.

// Hello is the first frame of every connection.
type Hello struct {
	Version uint16 `cbor:"1,keyasint,omitempty"`
	Client  string `cbor:"2,keyasint,omitempty"` // e.g. "pkcs11/1.0 ssh", "tpmcard-cli/1.0"; for the log only
}

// HelloReply accepts the connection.
type HelloReply struct {
	Version   uint16 `cbor:"1,keyasint,omitempty"`
	Server    string `cbor:"2,keyasint,omitempty"`
	Simulated bool   `cbor:"3,keyasint,omitempty"` // the TPM is a simulator: keys are not hardware-protected
}

// Ack is the success reply of requests that return nothing. Warning, when
// set, says what a request that did what was asked left undone (a PIN
// changed in the TPM whose record could not be written).
type Ack struct {
	Warning string `cbor:"1,keyasint,omitempty"`
}

// UnsupportedReply answers a request type the server does not know.
type UnsupportedReply struct {
	Type Type `cbor:"1,keyasint,omitempty"` // the type that was not understood
}

// Progress may precede the final reply of a long request.
type Progress struct {
	Percent int    `cbor:"1,keyasint,omitempty"` // 0–100
	Message string `cbor:"2,keyasint,omitempty"`
}

// ---------------------------------------------------------------------------
// Cards (PKCS#11 slots and tokens).

// ListCards asks for every card the service holds.
type ListCards struct{}

// Cards lists the cards.
type Cards struct {
	Cards []TokenInfo `cbor:"1,keyasint,omitempty"`
}

// TokenFlags carries token state. The bit values are those of the PKCS#11
// CK_TOKEN_INFO flags (PKCS#11 v2.40 §5.3.3), so the module passes them
// through unchanged.
type TokenFlags uint32

const (
	FlagRNG                TokenFlags = 0x00000001 // CKF_RNG
	FlagLoginRequired      TokenFlags = 0x00000004 // CKF_LOGIN_REQUIRED
	FlagUserPINInitialized TokenFlags = 0x00000008 // CKF_USER_PIN_INITIALIZED
	FlagTokenInitialized   TokenFlags = 0x00000400 // CKF_TOKEN_INITIALIZED
	FlagUserPINCountLow    TokenFlags = 0x00010000 // CKF_USER_PIN_COUNT_LOW
	FlagUserPINFinalTry    TokenFlags = 0x00020000 // CKF_USER_PIN_FINAL_TRY
	FlagUserPINLocked      TokenFlags = 0x00040000 // CKF_USER_PIN_LOCKED
	FlagUserPINToBeChanged TokenFlags = 0x00080000 // CKF_USER_PIN_TO_BE_CHANGED
	FlagSOPINCountLow      TokenFlags = 0x00100000 // CKF_SO_PIN_COUNT_LOW
	FlagSOPINFinalTry      TokenFlags = 0x00200000 // CKF_SO_PIN_FINAL_TRY
	FlagSOPINLocked        TokenFlags = 0x00400000 // CKF_SO_PIN_LOCKED
)

// Has reports whether every bit of g is set in f.
func (f TokenFlags) Has(g TokenFlags) bool { return f&g == g }

// TokenInfo describes one card.
type TokenInfo struct {
	Serial       string     `cbor:"1,keyasint,omitempty"`
	Label        string     `cbor:"2,keyasint,omitempty"`
	Manufacturer string     `cbor:"3,keyasint,omitempty"`
	Model        string     `cbor:"4,keyasint,omitempty"`
	Flags        TokenFlags `cbor:"5,keyasint,omitempty"`
	MinPINLen    int        `cbor:"6,keyasint,omitempty"`
	MaxPINLen    int        `cbor:"7,keyasint,omitempty"`
	PINTriesLeft int        `cbor:"8,keyasint,omitempty"`
	PINTriesMax  int        `cbor:"9,keyasint,omitempty"`
	PUKTriesLeft int        `cbor:"10,keyasint,omitempty"`
	PUKTriesMax  int        `cbor:"11,keyasint,omitempty"`
	HasPUK       bool       `cbor:"12,keyasint,omitempty"`
	HasAdminKey  bool       `cbor:"13,keyasint,omitempty"` // unblock by admin signature (PolicySigned) is possible
	Simulated    bool       `cbor:"14,keyasint,omitempty"`
	Owner        *CardOwner `cbor:"15,keyasint,omitempty"` // nil: administrators only
	State        CardState  `cbor:"16,keyasint,omitempty"` // ready, or why the card cannot be used
	Slot         uint64     `cbor:"17,keyasint,omitempty"` // its PKCS#11 slot ID
}

// Mechanisms asks for the mechanisms a card supports, named by its serial
// or, without one, by its PKCS#11 slot ID.
type Mechanisms struct {
	Serial string `cbor:"1,keyasint,omitempty"`
	Slot   uint64 `cbor:"2,keyasint,omitempty"`
}

// ---------------------------------------------------------------------------
// PKCS#11 slots and tokens, ready to copy (PKCS#11 v2.40 §5.5; docs/wire.md).
//
// Every card has a slot ID the service derives from its serial: never 0,
// below 2^31 (CK_SLOT_ID is 32 bits on Windows), the same on every
// connection and across restarts. Slot 0 is the empty reader an
// application sees while there is no card at all.

// GetSlotList is C_GetSlotList.
type GetSlotList struct {
	TokenPresent bool `cbor:"1,keyasint,omitempty"`
}

// SlotList answers GetSlotList: the slot IDs, in ascending order.
type SlotList struct {
	Slots []uint64 `cbor:"1,keyasint,omitempty"`
}

// GetSlotInfo is C_GetSlotInfo.
type GetSlotInfo struct {
	Slot uint64 `cbor:"1,keyasint,omitempty"`
}

// SlotDescription is CK_SLOT_INFO: the text fields exactly as wide as the
// structure's (64 and 32 bytes), blank-padded, and the flags
// (CKF_TOKEN_PRESENT, CKF_REMOVABLE_DEVICE, CKF_HW_SLOT).
type SlotDescription struct {
	Description   []byte `cbor:"1,keyasint,omitempty"`
	Manufacturer  []byte `cbor:"2,keyasint,omitempty"`
	Flags         uint64 `cbor:"3,keyasint,omitempty"`
	HardwareMajor uint8  `cbor:"4,keyasint,omitempty"`
	HardwareMinor uint8  `cbor:"5,keyasint,omitempty"`
	FirmwareMajor uint8  `cbor:"6,keyasint,omitempty"`
	FirmwareMinor uint8  `cbor:"7,keyasint,omitempty"`
}

// GetTokenInfo is C_GetTokenInfo.
type GetTokenInfo struct {
	Slot uint64 `cbor:"1,keyasint,omitempty"`
}

// TokenDescription is CK_TOKEN_INFO: text fields blank-padded to the
// structure's widths (label 32, manufacturerID 32, model 16, serialNumber
// 16, utcTime 16), CK_ULONG fields as the module stores them: an absent
// one is 0, CK_EFFECTIVELY_INFINITE, and CK_UNAVAILABLE_INFORMATION is
// 2^64-1, which a 32-bit CK_ULONG truncates to its own all-ones value.
type TokenDescription struct {
	Label              []byte `cbor:"1,keyasint,omitempty"`
	Manufacturer       []byte `cbor:"2,keyasint,omitempty"`
	Model              []byte `cbor:"3,keyasint,omitempty"`
	SerialNumber       []byte `cbor:"4,keyasint,omitempty"`
	Flags              uint64 `cbor:"5,keyasint,omitempty"`
	MaxSessionCount    uint64 `cbor:"6,keyasint,omitempty"`
	SessionCount       uint64 `cbor:"7,keyasint,omitempty"`
	MaxRWSessionCount  uint64 `cbor:"8,keyasint,omitempty"`
	RWSessionCount     uint64 `cbor:"9,keyasint,omitempty"`
	MaxPINLen          uint64 `cbor:"10,keyasint,omitempty"`
	MinPINLen          uint64 `cbor:"11,keyasint,omitempty"`
	TotalPublicMemory  uint64 `cbor:"12,keyasint,omitempty"`
	FreePublicMemory   uint64 `cbor:"13,keyasint,omitempty"`
	TotalPrivateMemory uint64 `cbor:"14,keyasint,omitempty"`
	FreePrivateMemory  uint64 `cbor:"15,keyasint,omitempty"`
	HardwareMajor      uint8  `cbor:"16,keyasint,omitempty"`
	HardwareMinor      uint8  `cbor:"17,keyasint,omitempty"`
	FirmwareMajor      uint8  `cbor:"18,keyasint,omitempty"`
	FirmwareMinor      uint8  `cbor:"19,keyasint,omitempty"`
	UTCTime            []byte `cbor:"20,keyasint,omitempty"`
}

// MechanismList answers Mechanisms.
type MechanismList struct {
	Mechanisms []MechanismInfo `cbor:"1,keyasint,omitempty"`
}

// MechanismInfo mirrors CK_MECHANISM_INFO.
type MechanismInfo struct {
	Mechanism  uint32 `cbor:"1,keyasint,omitempty"` // CKM_* value
	MinKeyBits int    `cbor:"2,keyasint,omitempty"`
	MaxKeyBits int    `cbor:"3,keyasint,omitempty"`
	Flags      uint32 `cbor:"4,keyasint,omitempty"` // CKF_* mechanism flags
}

// ---------------------------------------------------------------------------
// Sessions and login.

// OpenSession opens a session on a card. With a Serial (and Slot 0) the
// card is named by it and ReadWrite says the session's kind. Without one
// it is C_OpenSession: the card is in Slot, Flags are the raw CK_FLAGS,
// checked by the service (CKF_SERIAL_SESSION is required, CKF_RW_SESSION
// makes the session read-write), and ReadWrite is ignored.
type OpenSession struct {
	Serial    string `cbor:"1,keyasint,omitempty"`
	ReadWrite bool   `cbor:"2,keyasint,omitempty"`
	Slot      uint64 `cbor:"3,keyasint,omitempty"`
	Flags     uint64 `cbor:"4,keyasint,omitempty"`
}

// SessionOpened answers OpenSession.
type SessionOpened struct {
	Session uint32 `cbor:"1,keyasint,omitempty"`
}

// CloseSession closes one session; the others, and the login, stay.
type CloseSession struct {
	Session uint32 `cbor:"1,keyasint,omitempty"`
}

// CloseAllSessions closes every session of this connection on a card,
// named by its serial or, without one, by its slot ID.
type CloseAllSessions struct {
	Serial string `cbor:"1,keyasint,omitempty"`
	Slot   uint64 `cbor:"2,keyasint,omitempty"`
}

// SessionInfo asks for a session's state.
type SessionInfo struct {
	Session uint32 `cbor:"1,keyasint,omitempty"`
}

// SessionState answers SessionInfo. Slot, State, Flags and DeviceError
// are CK_SESSION_INFO's fields as they are to be copied.
type SessionState struct {
	State       uint32 `cbor:"1,keyasint,omitempty"` // CKS_* value
	ReadWrite   bool   `cbor:"2,keyasint,omitempty"`
	Slot        uint64 `cbor:"3,keyasint,omitempty"` // the card's slot ID
	Flags       uint64 `cbor:"4,keyasint,omitempty"` // CKF_SERIAL_SESSION | CKF_RW_SESSION
	DeviceError uint64 `cbor:"5,keyasint,omitempty"` // ulDeviceError
}

// UserType is the PKCS#11 user type, the raw CK_USER_TYPE: the service
// rejects values other than these three with UserTypeInvalid.
type UserType uint64

const (
	UserSO              UserType = 0 // CKU_SO: the administrator, authenticating with the PUK
	UserNormal          UserType = 1 // CKU_USER: the PIN
	UserContextSpecific UserType = 2 // CKU_CONTEXT_SPECIFIC: the PIN again for one operation
)

// Login logs the connection (all its sessions on the card) in.
type Login struct {
	Session  uint32        `cbor:"1,keyasint,omitempty"`
	UserType UserType      `cbor:"2,keyasint,omitempty"`
	PIN      secret.Secret `cbor:"3,keyasint,omitempty"`
}

// Logout logs every session of the connection on the card out.
type Logout struct {
	Session uint32 `cbor:"1,keyasint,omitempty"`
}

// InitPIN sets a new user PIN; the session must be logged in as SO.
type InitPIN struct {
	Session uint32        `cbor:"1,keyasint,omitempty"`
	NewPIN  secret.Secret `cbor:"2,keyasint,omitempty"`
}

// SetPIN changes the PIN of the logged-in user (the PIN, or the PUK when
// logged in as SO).
type SetPIN struct {
	Session uint32        `cbor:"1,keyasint,omitempty"`
	OldPIN  secret.Secret `cbor:"2,keyasint,omitempty"`
	NewPIN  secret.Secret `cbor:"3,keyasint,omitempty"`
}

// Unblock resets a locked PIN with the PUK and sets a new PIN, without a
// session (admin path).
type Unblock struct {
	Serial string        `cbor:"1,keyasint,omitempty"`
	PUK    secret.Secret `cbor:"2,keyasint,omitempty"`
	NewPIN secret.Secret `cbor:"3,keyasint,omitempty"`
}

// ---------------------------------------------------------------------------
// Objects.

// Attribute is one CK_ATTRIBUTE with its value in PKCS#11 encoding.
type Attribute struct {
	Type  uint64 `cbor:"1,keyasint,omitempty"` // CKA_* value, any CK_ULONG
	Value []byte `cbor:"2,keyasint,omitempty"`
}

// FindObjects returns every object matching the template.
type FindObjects struct {
	Session  uint32      `cbor:"1,keyasint,omitempty"`
	Template []Attribute `cbor:"2,keyasint,omitempty"`
}

// Objects answers FindObjects.
type Objects struct {
	Handles []uint64 `cbor:"1,keyasint,omitempty"`
}

// GetAttributes reads attributes of an object.
type GetAttributes struct {
	Session uint32   `cbor:"1,keyasint,omitempty"`
	Object  uint64   `cbor:"2,keyasint,omitempty"`
	Types   []uint32 `cbor:"3,keyasint,omitempty"` // CKA_* values
}

// AttributeValues answers GetAttributes, one result per requested type, in
// order.
type AttributeValues struct {
	Values []AttributeResult `cbor:"1,keyasint,omitempty"`
}

// AttributeResult is one attribute read. Status is OK, AttributeSensitive
// or AttributeInvalid; Value is set only with OK.
type AttributeResult struct {
	Type   uint32 `cbor:"1,keyasint,omitempty"`
	Value  []byte `cbor:"2,keyasint,omitempty"`
	Status Status `cbor:"3,keyasint,omitempty"`
}

// CreateObject stores an object (a certificate, say) on the card.
type CreateObject struct {
	Session  uint32      `cbor:"1,keyasint,omitempty"`
	Template []Attribute `cbor:"2,keyasint,omitempty"`
}

// ObjectCreated answers CreateObject.
type ObjectCreated struct {
	Object uint64 `cbor:"1,keyasint,omitempty"`
}

// DestroyObject deletes an object.
type DestroyObject struct {
	Session uint32 `cbor:"1,keyasint,omitempty"`
	Object  uint64 `cbor:"2,keyasint,omitempty"`
}

// ---------------------------------------------------------------------------
// Keys and signing.

// Sign signs Data with a private key object in one step.
type Sign struct {
	Session   uint32 `cbor:"1,keyasint,omitempty"`
	Object    uint64 `cbor:"2,keyasint,omitempty"`
	Mechanism uint32 `cbor:"3,keyasint,omitempty"` // CKM_* value
	Param     []byte `cbor:"4,keyasint,omitempty"` // mechanism parameter as the module received it (e.g. CK_RSA_PKCS_PSS_PARAMS), raw
	Data      []byte `cbor:"5,keyasint,omitempty"`
}

// Signature answers Sign.
type Signature struct {
	Sig []byte `cbor:"1,keyasint,omitempty"`
}

// SignLength asks how long a signature will be; the server answers it
// without using the TPM.
type SignLength struct {
	Session   uint32 `cbor:"1,keyasint,omitempty"`
	Object    uint64 `cbor:"2,keyasint,omitempty"`
	Mechanism uint32 `cbor:"3,keyasint,omitempty"`
}

// Length answers SignLength.
type Length struct {
	N int `cbor:"1,keyasint,omitempty"`
}

// Key algorithms for GenerateKeyPair.
const (
	AlgECDSAP256 = "ecdsa-p256"
	AlgECDSAP384 = "ecdsa-p384"
	AlgRSA2048   = "rsa-2048"
	AlgRSA3072   = "rsa-3072"
)

// GenerateKeyPair creates a key pair in the TPM. The server may send
// Progress frames before the reply.
type GenerateKeyPair struct {
	Session   uint32 `cbor:"1,keyasint,omitempty"`
	Algorithm string `cbor:"2,keyasint,omitempty"` // one of the Alg* constants
	Label     string `cbor:"3,keyasint,omitempty"` // CKA_LABEL
	ID        []byte `cbor:"4,keyasint,omitempty"` // CKA_ID
	// PINPolicy is "once" (also when empty) or "always": the key needs
	// the PIN for every signature (CKA_ALWAYS_AUTHENTICATE).
	PINPolicy string `cbor:"5,keyasint,omitempty"`
}

// KeyPairGenerated answers GenerateKeyPair with the two object handles.
type KeyPairGenerated struct {
	Public  uint64 `cbor:"1,keyasint,omitempty"`
	Private uint64 `cbor:"2,keyasint,omitempty"`
}

// GenerateRandom asks for N random bytes from the TPM.
type GenerateRandom struct {
	Session uint32 `cbor:"1,keyasint,omitempty"`
	N       int    `cbor:"2,keyasint,omitempty"`
}

// Random answers GenerateRandom.
type Random struct {
	Bytes []byte `cbor:"1,keyasint,omitempty"`
}

// ---------------------------------------------------------------------------
// Events.

// Event kinds.
const (
	EventAdded   = "added"   // a card was provisioned
	EventRemoved = "removed" // a card was destroyed or lost
	EventChanged = "changed" // a card's state (PIN, objects) changed
)

// WaitEvent waits for a card event (C_WaitForSlotEvent). With no event
// before the timeout the server replies with the Timeout status. 0 means
// do not wait.
type WaitEvent struct {
	TimeoutMillis int `cbor:"1,keyasint,omitempty"`
}

// Event answers WaitEvent. Slot is the card's slot ID.
type Event struct {
	Serial string `cbor:"1,keyasint,omitempty"`
	Kind   string `cbor:"2,keyasint,omitempty"` // one of the Event* constants
	Slot   uint64 `cbor:"3,keyasint,omitempty"`
}

// ---------------------------------------------------------------------------
// Administration.

// CharRule says whether a character class may, must or must not appear in
// a PIN.
type CharRule uint8

const (
	CharAllowed    CharRule = 0
	CharRequired   CharRule = 1
	CharDisallowed CharRule = 2
)

// PINPolicy constrains the PINs a card accepts.
type PINPolicy struct {
	MinLen  int      `cbor:"1,keyasint,omitempty"`
	MaxLen  int      `cbor:"2,keyasint,omitempty"`
	Upper   CharRule `cbor:"3,keyasint,omitempty"`
	Lower   CharRule `cbor:"4,keyasint,omitempty"`
	Digit   CharRule `cbor:"5,keyasint,omitempty"`
	Special CharRule `cbor:"6,keyasint,omitempty"`
}

// Provision creates a card. An empty PIN means the default PIN (which must
// then be changed); an empty PUK means the service generates one and
// returns it once, in Provisioned. Zero tries mean the defaults.
type Provision struct {
	Label     string        `cbor:"1,keyasint,omitempty"`
	PIN       secret.Secret `cbor:"2,keyasint,omitempty"`
	PUK       secret.Secret `cbor:"3,keyasint,omitempty"`
	PINPolicy PINPolicy     `cbor:"4,keyasint,omitempty"`
	PINTries  int           `cbor:"5,keyasint,omitempty"`
	PUKTries  int           `cbor:"6,keyasint,omitempty"`
	AdminKey  []byte        `cbor:"7,keyasint,omitempty"` // PKIX DER of an ECDSA P-256 key: offline unblock
	NoPUK     bool          `cbor:"8,keyasint,omitempty"` // no PUK: only the admin key unblocks
	// Owner is who the card belongs to; nil means the requesting user.
	Owner *CardOwner `cbor:"9,keyasint,omitempty"`
	// AdminsOnly leaves the card to administrators alone (Owner must be nil).
	AdminsOnly bool `cbor:"10,keyasint,omitempty"`
}

// Provisioned answers Provision.
type Provisioned struct {
	Serial string        `cbor:"1,keyasint,omitempty"`
	PUK    secret.Secret `cbor:"2,keyasint,omitempty"` // only when the service generated it
}

// DestroyCard deletes a card: its keys, NV indices and records.
type DestroyCard struct {
	Serial string `cbor:"1,keyasint,omitempty"`
}

// GetStatus asks for the service's state.
type GetStatus struct{}

// ServiceStatus answers GetStatus.
type ServiceStatus struct {
	Backend           string `cbor:"1,keyasint,omitempty"` // "device", "swtpm" or "sim"
	Simulated         bool   `cbor:"2,keyasint,omitempty"`
	HardwareProtected bool   `cbor:"3,keyasint,omitempty"`
	Manufacturer      string `cbor:"4,keyasint,omitempty"` // TPM manufacturer
	Firmware          string `cbor:"5,keyasint,omitempty"` // TPM firmware version
	Cards             int    `cbor:"6,keyasint,omitempty"`
	Version           string `cbor:"7,keyasint,omitempty"` // service build version
	// TPMDownSince is set (Unix seconds) while the service cannot reach
	// the TPM, with the reason in TPMError.
	TPMDownSince int64  `cbor:"8,keyasint,omitempty"`
	TPMError     string `cbor:"9,keyasint,omitempty"`
	// TPMReconnects counts the times the service reconnected to the TPM.
	TPMReconnects uint64 `cbor:"10,keyasint,omitempty"`
}

// AdminChallenge opens an unblock challenge for a card with an admin key:
// the user reads its text to the administrator. Card users may ask.
type AdminChallenge struct {
	Serial          string `cbor:"1,keyasint,omitempty"`
	ValiditySeconds int    `cbor:"2,keyasint,omitempty"` // 0: the service's default (10 minutes)
}

// Challenge answers AdminChallenge.
type Challenge struct {
	Text    string `cbor:"1,keyasint,omitempty"` // base32 groups with a checksum
	Expires int64  `cbor:"2,keyasint,omitempty"` // Unix seconds
}

// AdminUnblock answers a pending challenge with the administrator's
// response and sets a new PIN, which must then be changed.
type AdminUnblock struct {
	Serial   string        `cbor:"1,keyasint,omitempty"`
	Response string        `cbor:"2,keyasint,omitempty"`
	NewPIN   secret.Secret `cbor:"3,keyasint,omitempty"`
}
