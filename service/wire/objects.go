package wire

import "reflect"

// Object and key generation requests of a mechanical PKCS#11 module
// (docs/wire.md, "Objects and key generation"). The service holds the
// search state and the PKCS#11 rules; the module copies bytes. The older
// FindObjects, GetAttributes and GenerateKeyPair stay for the Go client and
// the CLI.
const (
	TypeFindObjectsInit          Type = 0x20 // C_FindObjectsInit
	TypeFindObjectsNext          Type = 0x21 // C_FindObjects
	TypeFindObjectsFinal         Type = 0x22 // C_FindObjectsFinal
	TypeGetAttributeValue        Type = 0x23 // C_GetAttributeValue
	TypeGenerateKeyPairTemplates Type = 0x24 // C_GenerateKeyPair
	TypeGetObjectSize            Type = 0x2a // C_GetObjectSize

	TypeFoundObjects     Type = 0xa1 // answers FindObjectsNext
	TypeAttributeValue   Type = 0xa3 // answers GetAttributeValue
	TypeGeneratedKeyPair Type = 0xa4 // answers GenerateKeyPairTemplates
	TypeObjectSize       Type = 0xaa // answers GetObjectSize
)

// objectCatalog joins catalog (messages.go) at package initialization.
var objectCatalog = map[Type]entry{
	TypeFindObjectsInit:          {"FindObjectsInit", mk[FindObjectsInit](), TypeAck},
	TypeFindObjectsNext:          {"FindObjectsNext", mk[FindObjectsNext](), TypeFoundObjects},
	TypeFindObjectsFinal:         {"FindObjectsFinal", mk[FindObjectsFinal](), TypeAck},
	TypeGetAttributeValue:        {"GetAttributeValue", mk[GetAttributeValue](), TypeAttributeValue},
	TypeGenerateKeyPairTemplates: {"GenerateKeyPairTemplates", mk[GenerateKeyPairTemplates](), TypeGeneratedKeyPair},
	TypeFoundObjects:             {"FoundObjects", mk[FoundObjects](), 0},
	TypeAttributeValue:           {"AttributeValue", mk[AttributeValue](), 0},
	TypeGeneratedKeyPair:         {"GeneratedKeyPair", mk[GeneratedKeyPair](), 0},
	TypeGetObjectSize:            {"GetObjectSize", mk[GetObjectSize](), TypeObjectSize},
	TypeObjectSize:               {"ObjectSize", mk[ObjectSize](), 0},
}

func init() { join(objectCatalog) }

// join adds the entries of a catalog kept with its messages to catalog.
func join(entries map[Type]entry) {
	for t, e := range entries {
		if _, dup := catalog[t]; dup {
			panic("wire: type " + t.String() + " defined twice")
		}
		catalog[t] = e
		typeOf[reflect.TypeOf(e.new()).Elem()] = t
	}
}

// Bounds of one request.
const (
	MaxFindObjects      = 1024 // handles in one FindObjectsNext reply
	MaxAttributeQueries = 1024 // attributes in one GetAttributeValue
)

// FindObjectsInit starts a search in a session (PKCS#11 v2.40 §5.8): the
// service notes every object matching the template. A second search in
// the same session is OperationActive until FindObjectsFinal.
type FindObjectsInit struct {
	Session  uint32      `cbor:"1,keyasint,omitempty"`
	Template []Attribute `cbor:"2,keyasint,omitempty"` // as the caller gave it; empty matches every object
}

// FindObjectsNext asks for the next handles of the session's search, at
// most Max (and at most MaxFindObjects); none once all were returned.
// Without a search it fails with OperationNotInitialized.
type FindObjectsNext struct {
	Session uint32 `cbor:"1,keyasint,omitempty"`
	Max     uint64 `cbor:"2,keyasint,omitempty"` // ulMaxObjectCount
}

// FoundObjects answers FindObjectsNext.
type FoundObjects struct {
	Handles []uint64 `cbor:"1,keyasint,omitempty"`
}

// FindObjectsFinal ends the session's search (OperationNotInitialized
// without one).
type FindObjectsFinal struct {
	Session uint32 `cbor:"1,keyasint,omitempty"`
}

// GetAttributeValue is C_GetAttributeValue (PKCS#11 v2.40 §5.7): one query
// per CK_ATTRIBUTE of the caller's template, in order.
type GetAttributeValue struct {
	Session    uint32           `cbor:"1,keyasint,omitempty"`
	Object     uint64           `cbor:"2,keyasint,omitempty"`
	Attributes []AttributeQuery `cbor:"3,keyasint,omitempty"`
}

// AttributeQuery is one CK_ATTRIBUTE to fill.
type AttributeQuery struct {
	Type   uint64 `cbor:"1,keyasint,omitempty"` // CKA_*, any CK_ULONG
	Len    uint64 `cbor:"2,keyasint,omitempty"` // ulValueLen: the size of the caller's buffer
	Length bool   `cbor:"3,keyasint,omitempty"` // pValue is NULL: only the length is asked
}

// AttributeValue answers GetAttributeValue. RV is the CK_RV the call
// returns (p11.CKR*): CKR_OK, or CKR_ATTRIBUTE_SENSITIVE,
// CKR_ATTRIBUTE_TYPE_INVALID, CKR_BUFFER_TOO_SMALL when one applies to some
// attribute (§5.7 lets the
// module return any of them; the service returns the first of those in that
// order that applies). Values has one answer per query, in order, whatever
// RV is.
type AttributeValue struct {
	RV     uint64            `cbor:"1,keyasint,omitempty"`
	Values []AttributeAnswer `cbor:"2,keyasint,omitempty"`
}

// AttributeAnswer is one attribute's outcome. With RV CKR_OK, ulValueLen
// becomes Len and, unless the query asked only the length, Value (Len
// bytes, at most the query's Len) goes into pValue. Otherwise ulValueLen
// becomes CK_UNAVAILABLE_INFORMATION, and RV says why:
// CKR_ATTRIBUTE_SENSITIVE (§5.7 case 1), CKR_ATTRIBUTE_TYPE_INVALID (case 2)
// or CKR_BUFFER_TOO_SMALL (case 5).
type AttributeAnswer struct {
	RV    uint64 `cbor:"1,keyasint,omitempty"`
	Len   uint64 `cbor:"2,keyasint,omitempty"`
	Value []byte `cbor:"3,keyasint,omitempty"` // attribute values byte for byte (CK_ULONG as in ulong.go)
}

// GenerateKeyPairTemplates is C_GenerateKeyPair with the caller's
// mechanism and templates as they came (PKCS#11 v2.40 §5.14): the service
// checks them (mechanism, an empty parameter, token, sensitive and
// unextractable keys, the curve or modulus size, exponent 65537, key type)
// and takes CKA_LABEL and CKA_ID from either template, the private one
// first. The reply is GeneratedKeyPair, or an error whose status (and CK_RV)
// is that of the check that failed. The service may send Progress frames
// first.
type GenerateKeyPairTemplates struct {
	Session   uint32      `cbor:"1,keyasint,omitempty"`
	Mechanism uint64      `cbor:"2,keyasint,omitempty"` // CKM_*; CKM_RSA_PKCS_KEY_PAIR_GEN is 0
	Param     []byte      `cbor:"3,keyasint,omitempty"` // pParameter, raw
	Public    []Attribute `cbor:"4,keyasint,omitempty"`
	Private   []Attribute `cbor:"5,keyasint,omitempty"`
}

// GeneratedKeyPair answers GenerateKeyPairTemplates with the two object
// handles.
type GeneratedKeyPair struct {
	Public  uint64 `cbor:"1,keyasint,omitempty"`
	Private uint64 `cbor:"2,keyasint,omitempty"`
}

// GetObjectSize asks the size of an object (C_GetObjectSize, §5.7). The
// service checks the session and the object as for GetAttributeValue; an
// object's size on this card has no meaning, so the answer is always
// CK_UNAVAILABLE_INFORMATION.
type GetObjectSize struct {
	Session uint32 `cbor:"1,keyasint,omitempty"`
	Object  uint64 `cbor:"2,keyasint,omitempty"`
}

// ObjectSize is the size of an object in bytes: 2^64-1 for
// CK_UNAVAILABLE_INFORMATION, which a 32-bit CK_ULONG truncates to all ones.
type ObjectSize struct {
	Size uint64 `cbor:"1,keyasint,omitempty"`
}
