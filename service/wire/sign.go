package wire

// Signing requests of a mechanical PKCS#11 module (docs/wire.md, "Signing
// for the C module"): C_SignInit, C_Sign, C_SignUpdate and C_SignFinal of
// PKCS#11 v2.40 §5.11, and C_SeedRandom of §5.15. The service holds the
// operation, its hash or data, and the length conventions of §5.2; the
// module copies bytes. The older Sign and SignLength stay for the Go client.
const (
	TypeSignInit   Type = 0x25 // C_SignInit
	TypeSignData   Type = 0x26 // C_Sign
	TypeSignUpdate Type = 0x27 // C_SignUpdate
	TypeSignFinal  Type = 0x28 // C_SignFinal
	TypeSeedRandom Type = 0x29 // C_SeedRandom

	TypeSigned Type = 0xa6 // answers SignData and SignFinal
)

// signCatalog joins catalog (messages.go) at package initialization.
var signCatalog = map[Type]entry{
	TypeSignInit:   {"SignInit", mk[SignInit](), TypeAck},
	TypeSignData:   {"SignData", mk[SignData](), TypeSigned},
	TypeSignUpdate: {"SignUpdate", mk[SignUpdate](), TypeAck},
	TypeSignFinal:  {"SignFinal", mk[SignFinal](), TypeSigned},
	TypeSeedRandom: {"SeedRandom", mk[SeedRandom](), TypeAck},
	TypeSigned:     {"Signed", mk[Signed](), 0},
}

func init() { join(signCatalog) }

// SignInit starts a signature in a session with a private key and a
// mechanism. The service checks them here, and keeps the operation until
// SignData or SignFinal ends it. The module does not wait for the reply:
// when SignInit fails, the next SignData, SignUpdate or SignFinal of the
// session that has AfterInit set answers with the same error.
type SignInit struct {
	Session   uint32 `cbor:"1,keyasint,omitempty"`
	Mechanism uint64 `cbor:"2,keyasint,omitempty"` // CKM_*, any CK_MECHANISM_TYPE
	Param     []byte `cbor:"3,keyasint,omitempty"` // pParameter, raw; absent when NULL or empty
	Key       uint64 `cbor:"4,keyasint,omitempty"` // the private key object's handle
}

// SignData is C_Sign: it signs Data in one step and ends the operation,
// unless only the length is asked or the caller's buffer is too short
// (then Signed says so and the operation stays).
type SignData struct {
	Session   uint32 `cbor:"1,keyasint,omitempty"`
	Data      []byte `cbor:"2,keyasint,omitempty"`
	Len       uint64 `cbor:"3,keyasint,omitempty"` // *pulSignatureLen: the size of the caller's buffer
	Length    bool   `cbor:"4,keyasint,omitempty"` // pSignature is NULL: only the length is asked
	AfterInit bool   `cbor:"5,keyasint,omitempty"` // follows a SignInit whose reply the module has not read
}

// SignUpdate is C_SignUpdate: one more part of the data. Any error ends
// the operation.
type SignUpdate struct {
	Session   uint32 `cbor:"1,keyasint,omitempty"`
	Part      []byte `cbor:"2,keyasint,omitempty"`
	AfterInit bool   `cbor:"5,keyasint,omitempty"` // as in SignData
}

// SignFinal is C_SignFinal: it signs the parts given so far (none: the
// empty message), with the length conventions of SignData.
type SignFinal struct {
	Session   uint32 `cbor:"1,keyasint,omitempty"`
	Len       uint64 `cbor:"3,keyasint,omitempty"` // as in SignData
	Length    bool   `cbor:"4,keyasint,omitempty"`
	AfterInit bool   `cbor:"5,keyasint,omitempty"`
}

// Signed answers SignData and SignFinal. RV is the CK_RV the call returns:
// CKR_OK or CKR_BUFFER_TOO_SMALL (p11.CKRBufferTooSmall). Len is the
// signature's length, which becomes *pulSignatureLen either way; Signature
// (Len bytes) is there only with CKR_OK when the caller gave a buffer.
type Signed struct {
	RV        uint64 `cbor:"1,keyasint,omitempty"`
	Len       uint64 `cbor:"2,keyasint,omitempty"`
	Signature []byte `cbor:"3,keyasint,omitempty"`
}

// SeedRandom is C_SeedRandom. The TPM's generator takes no seed from
// here: the service answers CKR_RANDOM_SEED_NOT_SUPPORTED for any session
// it has.
type SeedRandom struct {
	Session uint32 `cbor:"1,keyasint,omitempty"`
	Seed    []byte `cbor:"2,keyasint,omitempty"`
}
