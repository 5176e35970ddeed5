package main

import (
	"crypto"
	"fmt"
	"strconv"
	"strings"

	"github.com/tpmcard/tpmcard/tpmcard"
	"github.com/tpmcard/tpmcard/tpmcard/backend"
)

// The values flags take, and the other names people type for them. Each
// parser returns the canonical value, which is what help, output and the
// service use.

// algAliases name the key algorithms as OpenSSL, OpenSSH, pkcs11-tool and
// PIV tools do.
var algAliases = map[string]tpmcard.Algorithm{
	"p256": tpmcard.ECDSAP256, "p-256": tpmcard.ECDSAP256, "ec": tpmcard.ECDSAP256, "ecc": tpmcard.ECDSAP256,
	"ecdsa": tpmcard.ECDSAP256, "ec-p256": tpmcard.ECDSAP256, "ecdsa-p-256": tpmcard.ECDSAP256, "nistp256": tpmcard.ECDSAP256,
	"secp256r1": tpmcard.ECDSAP256, "prime256v1": tpmcard.ECDSAP256, "ec:prime256v1": tpmcard.ECDSAP256,
	"p384": tpmcard.ECDSAP384, "p-384": tpmcard.ECDSAP384, "ec-p384": tpmcard.ECDSAP384, "ecdsa-p-384": tpmcard.ECDSAP384,
	"nistp384": tpmcard.ECDSAP384, "secp384r1": tpmcard.ECDSAP384, "ec:secp384r1": tpmcard.ECDSAP384,
	"rsa": tpmcard.RSA2048, "rsa2048": tpmcard.RSA2048, "rsa:2048": tpmcard.RSA2048,
	"rsa3072": tpmcard.RSA3072, "rsa:3072": tpmcard.RSA3072,
}

// algorithms is the help text's list of algorithms.
func algorithms() string {
	var names []string
	for _, a := range tpmcard.Algorithms() {
		names = append(names, string(a))
	}
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
}

// parseAlg reads --alg.
func parseAlg(s string) (tpmcard.Algorithm, error) {
	if a, ok := algAliases[strings.ToLower(strings.TrimSpace(s))]; ok {
		return a, nil
	}
	a, err := tpmcard.ParseAlgorithm(s)
	if err != nil {
		return "", fmt.Errorf("%w: --alg %q: want %s (or p256, p384, ec, rsa)", errUsage, s, algorithms())
	}
	return a, nil
}

// parseHash reads --hash: sha256, SHA-256, sha2-256, 256 …
func parseHash(s string) (crypto.Hash, error) {
	n := strings.NewReplacer("-", "", "_", "").Replace(strings.ToLower(strings.TrimSpace(s)))
	for _, h := range []crypto.Hash{crypto.SHA256, crypto.SHA384, crypto.SHA512} {
		bits := strconv.Itoa(8 * h.Size())
		if n == "sha"+bits || n == "sha2"+bits || n == bits {
			return h, nil
		}
	}
	return 0, fmt.Errorf("%w: --hash %q: want sha256, sha384 or sha512", errUsage, s)
}

// Key formats of key export.
const (
	formatPEM = "pem"
	formatSSH = "ssh"
)

// parseKeyFormat reads key export --format.
func parseKeyFormat(s string) (string, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "pem", "spki", "pkix":
		return formatPEM, nil
	case "ssh", "openssh", "authorized_keys", "authorized-keys":
		return formatSSH, nil
	}
	return "", fmt.Errorf("%w: --format %q: want pem or ssh (openssh)", errUsage, s)
}

// tpmUsage is the help text of --tpm.
const tpmUsage = "TPM backend: device, device:PATH, swtpm:HOST:PORT or sim (the in-process simulator, also called simulator)"

// parseTPM reads --tpm (and the config's "tpm") into the backend's own
// spelling: "simulator" is "sim".
func parseTPM(s string) (backend.Spec, string, error) {
	v := strings.TrimSpace(s)
	if strings.EqualFold(v, "simulator") || strings.EqualFold(v, "sim") {
		v = string(backend.Sim)
	}
	sp, err := backend.Parse(v)
	if err != nil {
		return sp, v, fmt.Errorf("%w: %v", errUsage, err)
	}
	return sp, v, nil
}
