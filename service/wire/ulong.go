package wire

import (
	"encoding/binary"
	"runtime"
	"strconv"
)

// ULongSize is the size in bytes of a PKCS#11 CK_ULONG on this platform:
// C's unsigned long, 4 bytes on Windows (LLP64) and on 32-bit systems, 8 on
// 64-bit Unix (LP64).
//
// Attribute values (CK_ULONG attributes such as CKA_CLASS) and mechanism
// parameters (CK_RSA_PKCS_PSS_PARAMS) travel in the in-memory encoding the
// PKCS#11 module hands over and receives: CK_ULONG-sized, in host byte
// order. Service and module always run on the same machine, so the module
// copies them through unchanged.
var ULongSize = func() int {
	if runtime.GOOS == "windows" {
		return 4
	}
	return strconv.IntSize / 8
}()

// ULong encodes v as a CK_ULONG in host byte order. v is truncated to 32
// bits where CK_ULONG has 4 bytes.
func ULong(v uint64) []byte {
	b := make([]byte, ULongSize)
	if ULongSize == 4 {
		binary.NativeEndian.PutUint32(b, uint32(v))
	} else {
		binary.NativeEndian.PutUint64(b, v)
	}
	return b
}

// ParseULong decodes a CK_ULONG written by ULong. ok is false when b is not
// exactly ULongSize bytes long.
func ParseULong(b []byte) (v uint64, ok bool) {
	switch {
	case len(b) != ULongSize:
		return 0, false
	case ULongSize == 4:
		return uint64(binary.NativeEndian.Uint32(b)), true
	}
	return binary.NativeEndian.Uint64(b), true
}

// Bool encodes a CK_BBOOL: one byte, CK_TRUE (1) or CK_FALSE (0).
func Bool(v bool) []byte {
	if v {
		return []byte{1}
	}
	return []byte{0}
}

// ParseBool decodes a CK_BBOOL; any non-zero byte is true. ok is false when b
// is not exactly one byte long.
func ParseBool(b []byte) (v, ok bool) {
	if len(b) != 1 {
		return false, false
	}
	return b[0] != 0, true
}
