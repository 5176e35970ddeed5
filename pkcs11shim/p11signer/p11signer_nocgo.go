//go:build !cgo

package p11signer

import (
	"crypto"
	"errors"
	"io"

	"github.com/tpmcard/tpmcard/tpmcard/secret"
)

// Open needs cgo to load a PKCS#11 module; this build has none.
func Open(module, token, key string, pin secret.Secret) (crypto.Signer, io.Closer, error) {
	return nil, nil, errors.New("PKCS#11 keys need a build with cgo")
}
