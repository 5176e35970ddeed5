package wire

// Digesting, verification and object editing for a mechanical PKCS#11
// module (docs/wire.md, "Digests, verification and object editing for the
// C module"): C_DigestInit … C_DigestFinal of PKCS#11 v2.40 §5.10,
// C_VerifyInit … C_VerifyFinal of §5.13, C_SetAttributeValue and
// C_CopyObject of §5.7. The service digests and verifies in software and
// holds each operation, its hash or data, and the length conventions of
// §5.2; the module copies bytes.
const (
	TypeDigestInit        Type = 0x30 // C_DigestInit
	TypeDigestData        Type = 0x31 // C_Digest
	TypeDigestUpdate      Type = 0x32 // C_DigestUpdate
	TypeDigestKey         Type = 0x33 // C_DigestKey
	TypeDigestFinal       Type = 0x34 // C_DigestFinal
	TypeVerifyInit        Type = 0x35 // C_VerifyInit
	TypeVerifyData        Type = 0x36 // C_Verify
	TypeVerifyUpdate      Type = 0x37 // C_VerifyUpdate
	TypeVerifyFinal       Type = 0x38 // C_VerifyFinal
	TypeSetAttributeValue Type = 0x39 // C_SetAttributeValue
	TypeCopyObject        Type = 0x3a // C_CopyObject

	TypeDigested Type = 0xb1 // answers DigestData and DigestFinal
)

// p11opsCatalog joins catalog (messages.go) at package initialization.
var p11opsCatalog = map[Type]entry{
	TypeDigestInit:        {"DigestInit", mk[DigestInit](), TypeAck},
	TypeDigestData:        {"DigestData", mk[DigestData](), TypeDigested},
	TypeDigestUpdate:      {"DigestUpdate", mk[DigestUpdate](), TypeAck},
	TypeDigestKey:         {"DigestKey", mk[DigestKey](), TypeAck},
	TypeDigestFinal:       {"DigestFinal", mk[DigestFinal](), TypeDigested},
	TypeVerifyInit:        {"VerifyInit", mk[VerifyInit](), TypeAck},
	TypeVerifyData:        {"VerifyData", mk[VerifyData](), TypeAck},
	TypeVerifyUpdate:      {"VerifyUpdate", mk[VerifyUpdate](), TypeAck},
	TypeVerifyFinal:       {"VerifyFinal", mk[VerifyFinal](), TypeAck},
	TypeSetAttributeValue: {"SetAttributeValue", mk[SetAttributeValue](), TypeAck},
	TypeCopyObject:        {"CopyObject", mk[CopyObject](), TypeObjectCreated},
	TypeDigested:          {"Digested", mk[Digested](), 0},
}

func init() { join(p11opsCatalog) }

// DigestInit starts a digest in a session (CKM_SHA_1, CKM_SHA256,
// CKM_SHA384 or CKM_SHA512, no parameter). A client may send the next step
// without waiting for the reply: when DigestInit fails, the next
// DigestData, DigestUpdate, DigestKey or DigestFinal of the session that
// has AfterInit set answers with the same error, as after SignInit. The C
// module waits (applications probe mechanisms with C_DigestInit).
type DigestInit struct {
	Session   uint32 `cbor:"1,keyasint,omitempty"`
	Mechanism uint64 `cbor:"2,keyasint,omitempty"` // CKM_*, any CK_MECHANISM_TYPE
	Param     []byte `cbor:"3,keyasint,omitempty"` // pParameter, raw; absent when NULL or empty
}

// DigestData is C_Digest: the digest of Data in one step, with the length
// conventions of SignData.
type DigestData struct {
	Session   uint32 `cbor:"1,keyasint,omitempty"`
	Data      []byte `cbor:"2,keyasint,omitempty"`
	Len       uint64 `cbor:"3,keyasint,omitempty"` // *pulDigestLen: the size of the caller's buffer
	Length    bool   `cbor:"4,keyasint,omitempty"` // pDigest is NULL: only the length is asked
	AfterInit bool   `cbor:"5,keyasint,omitempty"` // follows a DigestInit whose reply the module has not read
}

// DigestUpdate is C_DigestUpdate: one more part. Any error ends the
// operation.
type DigestUpdate struct {
	Session   uint32 `cbor:"1,keyasint,omitempty"`
	Part      []byte `cbor:"2,keyasint,omitempty"`
	AfterInit bool   `cbor:"5,keyasint,omitempty"`
}

// DigestKey is C_DigestKey. No key of a card has a value that can be
// digested: the service answers CKR_KEY_INDIGESTIBLE for a key,
// CKR_KEY_HANDLE_INVALID for anything else, and either ends the operation.
type DigestKey struct {
	Session   uint32 `cbor:"1,keyasint,omitempty"`
	Key       uint64 `cbor:"2,keyasint,omitempty"`
	AfterInit bool   `cbor:"5,keyasint,omitempty"`
}

// DigestFinal is C_DigestFinal, with the length conventions of DigestData.
type DigestFinal struct {
	Session   uint32 `cbor:"1,keyasint,omitempty"`
	Len       uint64 `cbor:"3,keyasint,omitempty"`
	Length    bool   `cbor:"4,keyasint,omitempty"`
	AfterInit bool   `cbor:"5,keyasint,omitempty"`
}

// Digested answers DigestData and DigestFinal as Signed answers SignData:
// RV is CKR_OK or CKR_BUFFER_TOO_SMALL, Len the digest's length, Digest
// there only with CKR_OK when the caller gave a buffer.
type Digested struct {
	RV     uint64 `cbor:"1,keyasint,omitempty"`
	Len    uint64 `cbor:"2,keyasint,omitempty"`
	Digest []byte `cbor:"3,keyasint,omitempty"`
}

// VerifyInit starts a verification with a public key object and a
// mechanism. The module does not wait for the reply, as for SignInit.
type VerifyInit struct {
	Session   uint32 `cbor:"1,keyasint,omitempty"`
	Mechanism uint64 `cbor:"2,keyasint,omitempty"`
	Param     []byte `cbor:"3,keyasint,omitempty"`
	Key       uint64 `cbor:"4,keyasint,omitempty"`
}

// VerifyData is C_Verify. It ends the operation, with Ack for a valid
// signature or an Error: CKR_SIGNATURE_INVALID, CKR_SIGNATURE_LEN_RANGE
// (a signature of the wrong length), CKR_DATA_LEN_RANGE … With Parts set
// it only checks that C_Verify may go on (no VerifyUpdate came before) and
// keeps the operation: the module then sends C_Verify's data as
// VerifyUpdate parts and its signature with VerifyFinal.
type VerifyData struct {
	Session   uint32 `cbor:"1,keyasint,omitempty"`
	Data      []byte `cbor:"2,keyasint,omitempty"`
	Signature []byte `cbor:"3,keyasint,omitempty"`
	Parts     bool   `cbor:"4,keyasint,omitempty"`
	AfterInit bool   `cbor:"5,keyasint,omitempty"`
}

// VerifyUpdate is C_VerifyUpdate: one more part. Any error ends the
// operation.
type VerifyUpdate struct {
	Session   uint32 `cbor:"1,keyasint,omitempty"`
	Part      []byte `cbor:"2,keyasint,omitempty"`
	AfterInit bool   `cbor:"5,keyasint,omitempty"`
}

// VerifyFinal is C_VerifyFinal: the signature over the parts so far. It
// ends the operation as VerifyData does.
type VerifyFinal struct {
	Session   uint32 `cbor:"1,keyasint,omitempty"`
	Signature []byte `cbor:"3,keyasint,omitempty"`
	AfterInit bool   `cbor:"5,keyasint,omitempty"`
}

// SetAttributeValue is C_SetAttributeValue: the caller's template as it
// came. The service changes every attribute or none.
type SetAttributeValue struct {
	Session  uint32      `cbor:"1,keyasint,omitempty"`
	Object   uint64      `cbor:"2,keyasint,omitempty"`
	Template []Attribute `cbor:"3,keyasint,omitempty"`
}

// CopyObject is C_CopyObject: a new object like Object with the template's
// attributes changed. The reply is ObjectCreated.
type CopyObject struct {
	Session  uint32      `cbor:"1,keyasint,omitempty"`
	Object   uint64      `cbor:"2,keyasint,omitempty"`
	Template []Attribute `cbor:"3,keyasint,omitempty"`
}
