// Package moduletest tests the PKCS#11 module the Makefile builds, whatever
// it is built from, through its C ABI only: every consumer is a process of
// its own (a C program from testdata/ compiled with gcc, pkcs11-tool,
// ssh-keygen, ssh, p11tool, p11-kit, OpenSSL's pkcs11 engine, valgrind),
// and the module is never loaded into the test process. The service the
// module talks to is the real one (service/server on the tpmcard manager),
// run in the test process on the in-process TPM simulator or on swtpm.
//
// The module under test:
//
//   - TPMCARD_PKCS11_MODULE names the .so; without it the tests run
//     `make module` in the repository root once and use
//     bin/libtpmcard-pkcs11.so.
//   - TPMCARD_PKCS11_ASAN_MODULE names the same module built with
//     -fsanitize=address,undefined; without it, `make module-asan` and
//     bin/asan/libtpmcard-pkcs11.so. Consumers that are not built with ASan
//     load it with gcc's libasan and libubsan preloaded. Until the Makefile
//     has that target, the tests that need it skip.
//   - TPMCARD_PKCS11_DLL names the Windows DLL; without it, `make dll` and
//     bin/tpmcard-pkcs11.dll.
//
// TestFork runs -fork-children children (2000); BenchmarkFork runs b.N.
// The simulator is a process-wide singleton: no test here runs in
// parallel. The package has no code of its own; its tests are Linux-only.
package moduletest
