// Package piv presents tpmcard cards as PIV card applications (NIST SP
// 800-73-4) in a virtual smart card reader: the vsmartcard project's vpcd
// driver for pcsc-lite, which the card side reaches over a TCP socket.
//
// The package has three layers. apdu.go parses command APDUs and shapes
// responses (ISO/IEC 7816-4 §5.1, §5.3.3 command chaining, §7.6.1 GET
// RESPONSE). Applet (applet.go) is the PIV card application: it answers
// SELECT, GET DATA, VERIFY, CHANGE REFERENCE DATA, RESET RETRY COUNTER and
// GENERAL AUTHENTICATE (SP 800-73-4 Part 2 §3) by calling a Card, which the
// service backs with the same card core and login state as its socket API:
// every PIN check is the TPM's. Link (vpcd.go) carries APDUs between vpcd
// and an Applet. State (state.go) is which cards are PIV cards and which
// keys sit in which slots; it lives in the service's state directory.
//
// Keys and certificates are managed with tpmcard's own tools: the card
// answers GENERATE ASYMMETRIC KEY PAIR, PUT DATA and the management key's
// authentication with "security status not satisfied" (6982).
package piv
