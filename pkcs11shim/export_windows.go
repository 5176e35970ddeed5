//go:build cgo && windows

package main

// The Windows DLL needs the C layer to handle the 1-byte packing of the
// PKCS#11 structures on Windows (cgo cannot reach packed fields); until
// that exists, building it fails here instead of producing a DLL without
// entry points.
var _ = windowsDLLNotImplementedYet
