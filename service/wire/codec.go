package wire

import (
	"bytes"
	"fmt"
	"reflect"

	"github.com/fxamacker/cbor/v2"
)

// Decoder limits. Messages are flat: a map of scalars, byte strings and at
// most a list of small maps, so these leave ample room.
const (
	maxNestedLevels  = 16
	maxArrayElements = 4096
	maxMapPairs      = 256
)

// cborMajorMap is the CBOR major type of a map (RFC 8949 §3.1).
const cborMajorMap = 5

// encMode and decMode are built once and shared; both are safe for
// concurrent use.
var (
	encMode = mustEncMode()
	decMode = mustDecMode()
)

func mustEncMode() cbor.UserBufferEncMode {
	opts := cbor.CoreDetEncOptions()
	opts.IndefLength = cbor.IndefLengthForbidden
	// secret.Secret implements encoding.TextMarshaler (redacting) and
	// json.Marshaler (redacting). Neither may be used on the wire: the
	// bytes must go out as a CBOR byte string. Pin that here rather than
	// rely on defaults.
	opts.TextMarshaler = cbor.TextMarshalerNone
	opts.JSONMarshalerTranscoder = nil
	em, err := opts.UserBufferEncMode()
	if err != nil {
		panic(fmt.Sprintf("wire: building CBOR encode mode: %v", err))
	}
	return em
}

func mustDecMode() cbor.DecMode {
	dm, err := cbor.DecOptions{
		DupMapKey:        cbor.DupMapKeyEnforcedAPF,
		IndefLength:      cbor.IndefLengthForbidden,
		TagsMd:           cbor.TagsForbidden,
		MaxNestedLevels:  maxNestedLevels,
		MaxArrayElements: maxArrayElements,
		MaxMapPairs:      maxMapPairs,
		UTF8:             cbor.UTF8RejectInvalid,
		TextUnmarshaler:  cbor.TextUnmarshalerNone,
		// Unknown keys are skipped (forward compatibility): no
		// ExtraDecErrorUnknownField.
		ExtraReturnErrors: cbor.ExtraDecErrorNone,
	}.DecMode()
	if err != nil {
		panic(fmt.Sprintf("wire: building CBOR decode mode: %v", err))
	}
	return dm
}

// Marshal encodes v in the package's deterministic CBOR encoding.
func Marshal(v any) ([]byte, error) {
	b, err := encMode.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("wire: encoding %T: %w", v, err)
	}
	return b, nil
}

// marshalTo appends the encoding of v to buf.
func marshalTo(buf *bytes.Buffer, v any) error {
	if err := encMode.MarshalToBuffer(v, buf); err != nil {
		return fmt.Errorf("wire: encoding %T: %w", v, err)
	}
	return nil
}

// Unmarshal decodes exactly one CBOR data item from b into v, strictly:
// duplicate map keys, indefinite lengths, tags, invalid UTF-8, excessive
// nesting or size, and trailing bytes are errors. Map keys that v does not
// know are ignored. When v points to a struct (every message does), the
// item must be a map: null or undefined, which the CBOR library would
// accept as "leave unchanged", are refused.
func Unmarshal(b []byte, v any) error {
	if rv := reflect.ValueOf(v); rv.Kind() == reflect.Pointer && rv.Type().Elem().Kind() == reflect.Struct {
		if len(b) == 0 || b[0]>>5 != cborMajorMap {
			return fmt.Errorf("wire: decoding %T: body is not a CBOR map", v)
		}
	}
	if err := decMode.Unmarshal(b, v); err != nil {
		return fmt.Errorf("wire: decoding %T: %w", v, err)
	}
	return nil
}
