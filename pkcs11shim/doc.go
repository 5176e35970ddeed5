// Command pkcs11shim is the tpmcard PKCS#11 module, built with
//
//	go build -buildmode=c-shared -o bin/libtpmcard-pkcs11.so ./pkcs11shim
//
// and, as a Windows DLL with mingw-w64 and the p11-kit header of the
// build host (Debian: gcc-mingw-w64-x86-64, libp11-kit-dev),
//
//	CGO_ENABLED=1 GOOS=windows GOARCH=amd64 CC=x86_64-w64-mingw32-gcc \
//		go build -buildmode=c-shared -o bin/tpmcard-pkcs11.dll ./pkcs11shim
//
// It turns the tpmcard service's socket into PKCS#11 v2.40 tokens, one
// slot per card, so that OpenSSH, NSS and p11-kit, GnuTLS, OpenSSL's
// pkcs11 engine and OpenSC tools use a card like a physical one.
//
// # Layers
//
// shim.c defines the C_* entry points and the CK_FUNCTION_LIST (and the
// v3.0 C_GetInterfaceList/C_GetInterface, offering that v2.40 list as
// "PKCS 11"); the functions the module does not implement return
// CKR_FUNCTION_NOT_SUPPORTED there. export.go (cgo) checks every pointer
// (CKR_ARGUMENTS_BAD), converts the C structures and calls the core. It
// reaches the structures' fields only through structs.c, since the
// Windows headers pack them where cgo cannot see (shim.h). The core is the
// module type (module.go, slots.go, sessions.go, objects.go, sign.go,
// keygen.go), which holds the state of one application and has no cgo, so
// that it is tested from Go against the real service. The
// core talks to a Backend, one method per wire request with the
// signatures of service/client. The service chooses every CK_RV (the RV of
// its Error frames, service/server/ckrv.go), names the slots and pads
// CK_SLOT_INFO and CK_TOKEN_INFO (service/server/slots.go); the module
// returns and copies them (docs/wire.md).
//
// # Connection
//
// C_Initialize starts one application: one connection to the socket named
// by TPMCARD_SOCKET (default /run/tpmcard/tpmcard.sock), dialed when first
// needed. If the service goes away, open sessions answer
// CKR_DEVICE_REMOVED, slots show no token (C_GetTokenInfo and
// C_OpenSession: CKR_TOKEN_NOT_PRESENT), and the next call that needs the
// service dials again; sessions of the old connection stay dead, since
// their logins ended with it. Connections are plain blocking descriptors
// kept away from the Go runtime's poller, whose epoll instance a forked
// child would share with its parent.
//
// # Threads and fork
//
// Every entry point may be called from any thread; a first-come,
// first-served mutex serializes the state (CKF_OS_LOCKING_OK is accepted;
// mutex callbacks without it get CKR_CANT_LOCK). C_Sign and C_SignFinal
// let go of it while the TPM signs, so that with several sessions at work
// the next request is already at the service when a signature is done.
//
// C_Initialize records the process id: in a child of fork(2) every call
// answers CKR_CRYPTOKI_NOT_INITIALIZED until the child calls
// C_Initialize, which starts afresh on a connection of its own and leaves
// the parent's alone (PKCS#11 v2.40 §5.4, §6.7.7). The Go runtime,
// though, promises nothing in a forked child (golang/go#15538), which
// keeps only the forking thread and the runtime's record of threads that
// are gone. Now and then the child's first call into the module waits
// forever for a P (a Go logical processor) that one of those threads
// held: 9 times in some 11,500 runs of the C harness here, whether or not
// the parent was busy just before the fork. A fork handler at least keeps
// a garbage collection from being cut in two (shim.c). Fork-and-exec,
// and a module loaded after the fork, are unaffected.
//
// # Secrets and logs
//
// PINs are copied out of C memory into a secret.Secret, sent to the
// service, and wiped when the call returns; the module keeps none. It
// logs only when TPMCARD_PKCS11_DEBUG names a file, one line per
// noteworthy call with handles and return values, never a PIN.
//
// # Limits
//
// C_SignUpdate hashes in the module for the hashing mechanisms and
// collects up to 512 KiB for the others. C_WaitForSlotEvent blocks on a
// connection of its own when the service supports events, and answers
// CKR_FUNCTION_NOT_SUPPORTED until then. C_CreateObject accepts only
// certificates and passes the service's answer on. On Windows the module
// dials the socket path as an AF_UNIX socket; until the service listens
// there (its named pipe is to come), slots show no token.
package main
