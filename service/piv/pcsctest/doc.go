// Package pcsctest tests the PIV card application through real smart
// card software: a private pcscd with vsmartcard's vpcd driver, the
// service's reader connected to it, and OpenSC, pkcs11-tool, openssl and
// yubico-piv-tool as clients. It has only tests.
package pcsctest
