// Package ctest tests the C foundation of the PKCS#11 module in
// pkcs11shim/c from Go, without cgo: it builds the C code and its test
// driver with gcc under AddressSanitizer and UndefinedBehaviorSanitizer and
// runs them. It checks the C codec against service/wire byte for byte on
// every sample message, refuses malformed input, talks to the real service
// (tpmcard service run --tpm sim), forks children off a connected parent,
// and runs the libFuzzer targets (clang) for the decoder and the frame
// reader. TPMCARD_CFUZZ_RUNS sets the fuzzers' iteration count.
//
// The package has no code of its own; its tests are Linux-only.
package ctest
