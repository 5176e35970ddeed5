// Package tpmtest gives tests real TPMs: the in-process reference simulator
// and swtpm processes. There is no fake.
//
// [Sim] opens the go-tpm-tools simulator, which is a process-wide singleton:
// one open at a time per test binary, so a test that uses it must not call
// t.Parallel, and must not open it twice; a second open fails the test at
// once instead of waiting. Separate packages run in separate processes, so
// `go test ./...` needs no -p 1 for it. Without cgo, Sim skips.
//
// [StartSWTPM] runs `swtpm socket --tpm2` on free loopback ports with its
// state in a temporary directory, and stops it when the test ends. swtpm
// serves one connection at a time: a second connection waits until the first
// is closed, so close one [SWTPM.TPM] before asking for the next. swtpm has no
// resource manager: transient objects and sessions outlive a connection until
// flushed.
//
// Without swtpm installed, swtpm tests skip, unless the environment sets
// TPMCARD_REQUIRE_SWTPM=1 (as CI does): then they fail.
package tpmtest
