//go:build cgo

// Package p11signer opens a private key on a PKCS#11 token (an HSM, a
// hardware token, another tpmcard) as a crypto.Signer: the administrator's
// key for offline unblock responses need never exist as a file.
package p11signer

import (
	"crypto"
	"errors"
	"fmt"
	"io"

	"github.com/ThalesGroup/crypto11"
	"github.com/tpmcard/tpmcard/tpmcard/secret"
)

// Open logs in to the token labelled token in the PKCS#11 module at
// module and returns its key pair labelled key. Close the returned closer
// when done signing.
func Open(module, token, key string, pin secret.Secret) (crypto.Signer, io.Closer, error) {
	if module == "" || token == "" || key == "" {
		return nil, nil, errors.New("a PKCS#11 key needs the module path, the token label and the key label")
	}
	// crypto11 takes the PIN as a string; it is used for C_Login only.
	ctx, err := crypto11.Configure(&crypto11.Config{Path: module, TokenLabel: token, Pin: string(pin)})
	if err != nil {
		return nil, nil, fmt.Errorf("opening token %q in %s: %w", token, module, err)
	}
	s, err := ctx.FindKeyPair(nil, []byte(key))
	if err != nil {
		ctx.Close()
		return nil, nil, fmt.Errorf("finding key %q: %w", key, err)
	}
	if s == nil {
		ctx.Close()
		return nil, nil, fmt.Errorf("token %q has no key pair labelled %q", token, key)
	}
	return s, ctx, nil
}
