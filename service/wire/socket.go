package wire

// DefaultSocket is where the service listens and its clients dial unless
// told otherwise: the service's --socket, a client's SocketEnv. The C
// module's copy (pkcs11shim/c/tc_conn.h) is held to it by a test.
const DefaultSocket = "/run/tpmcard/tpmcard.sock"

// SocketEnv names the environment variable through which clients (the
// CLI, the Go client library, the PKCS#11 module) dial another socket.
const SocketEnv = "TPMCARD_SOCKET"
