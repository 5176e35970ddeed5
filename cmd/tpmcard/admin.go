package main

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"os"
	"time"

	"filippo.io/age"
	"filippo.io/age/armor"
	"github.com/tpmcard/tpmcard/pkcs11shim/p11signer"
	"github.com/tpmcard/tpmcard/tpmcard"
	"github.com/tpmcard/tpmcard/tpmcard/adminkey"
)

func init() {
	register("admin", "keygen", "make an administrator's key pair for offline unblocks (keep the private key off user machines)", adminKeygen)
	register("admin", "challenge", "start an offline unblock: print the challenge to read to the administrator", adminChallenge)
	register("admin", "respond", "answer a challenge with the admin key (offline, on the administrator's machine)", adminRespond)
	register("admin", "unblock", "finish an offline unblock with the administrator's response and set a new PIN", adminUnblock)
}

func adminKeygen(e *env, args []string) error {
	fs := flags(e, "admin keygen")
	out := fs.String("out", "", "the private key `FILE` to write (0600; refuses to overwrite)")
	pubOut := fs.String("pub", "", "the public key `FILE` to write (default: the --out name with .pub)")
	encrypt := fs.Bool("encrypt", false, "encrypt the private key with a passphrase (age, scrypt)")
	passStdin := fs.Bool("passphrase-stdin", false, "read the passphrase from standard input")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *out == "" {
		return fmt.Errorf("%w: --out FILE is required", errUsage)
	}
	if *pubOut == "" {
		*pubOut = *out + ".pub"
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	private := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	defer clear(private)
	clear(der)
	if *encrypt {
		pass, err := newSecrets(e).get("passphrase", "--passphrase-stdin", *passStdin, !*passStdin)
		if err != nil {
			return err
		}
		defer pass.Wipe()
		r, err := age.NewScryptRecipient(string(pass))
		if err != nil {
			return err
		}
		var buf bytes.Buffer
		aw := armor.NewWriter(&buf)
		w, err := age.Encrypt(aw, r)
		if err != nil {
			return err
		}
		if _, err := w.Write(private); err != nil {
			return err
		}
		if err := w.Close(); err != nil {
			return err
		}
		if err := aw.Close(); err != nil {
			return err
		}
		private = buf.Bytes()
	}
	pubDER, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return err
	}
	if err := writeNew(*out, private, 0o600); err != nil {
		return err
	}
	if err := writeNew(*pubOut, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "admin key written to %s, public key to %s\n  provision cards with `tpmcard card create --admin-key %s`; keep %s offline\n", *out, *pubOut, *pubOut, *out)
	return nil
}

// writeNew writes a file that must not exist yet.
func writeNew(path string, b []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// loadAdminPublic reads an admin public key file (PEM or DER).
func loadAdminPublic(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if blk, _ := pem.Decode(b); blk != nil {
		b = blk.Bytes
	}
	pub, err := x509.ParsePKIXPublicKey(b)
	if ek, ok := pub.(*ecdsa.PublicKey); err != nil || !ok || ek.Curve != elliptic.P256() {
		return nil, fmt.Errorf("%s is not an ECDSA P-256 public key: make one with `tpmcard admin keygen`", path)
	}
	return b, nil
}

// loadAdminKey reads the admin private key, decrypting it when it is an
// age file.
func loadAdminKey(e *env, path string, passStdin bool) (*ecdsa.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	defer clear(b)
	if bytes.HasPrefix(bytes.TrimSpace(b), []byte(armor.Header)) {
		pass, err := newSecrets(e).get("passphrase of "+path, "--passphrase-stdin", passStdin, false)
		if err != nil {
			return nil, err
		}
		defer pass.Wipe()
		id, err := age.NewScryptIdentity(string(pass))
		if err != nil {
			return nil, err
		}
		r, err := age.Decrypt(armor.NewReader(bytes.NewReader(b)), id)
		if err != nil {
			return nil, fmt.Errorf("decrypting %s: %w (wrong passphrase?)", path, err)
		}
		if b, err = io.ReadAll(r); err != nil {
			return nil, err
		}
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, fmt.Errorf("%s holds no PEM private key", path)
	}
	defer clear(blk.Bytes)
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		if k, err = x509.ParseECPrivateKey(blk.Bytes); err != nil {
			return nil, fmt.Errorf("reading %s: %w", path, err)
		}
	}
	ek, ok := k.(*ecdsa.PrivateKey)
	if !ok || ek.Curve != elliptic.P256() {
		return nil, fmt.Errorf("%s is not an ECDSA P-256 key", path)
	}
	return ek, nil
}

func adminChallenge(e *env, args []string) error {
	fs := flags(e, "admin challenge")
	var c common
	c.add(fs, true, true)
	validity := fs.Duration("validity", tpmcard.DefaultChallengeValidity, fmt.Sprintf("how long the administrator may take to answer (at most %v)", adminkey.MaxValidity))
	if err := parse(fs, args); err != nil {
		return err
	}
	cl, t, err := c.open()
	if err != nil {
		return err
	}
	defer cl.Close()
	ch, err := cl.AdminChallenge(t.Serial, *validity)
	if err != nil {
		return err
	}
	if c.json {
		return printJSON(e.stdout, struct {
			Serial    string    `json:"serial"`
			Challenge string    `json:"challenge"`
			Expires   time.Time `json:"expires"`
		}{t.Serial, ch.Text, time.Unix(ch.Expires, 0).UTC()})
	}
	fmt.Fprintf(e.stdout, "challenge for card %s (valid until %s):\n\n  %s\n\nread it to your administrator, then type their answer into `tpmcard admin unblock --response ...`\n",
		t.Serial, time.Unix(ch.Expires, 0).Format("15:04:05"), ch.Text)
	return nil
}

func adminRespond(e *env, args []string) error {
	fs := flags(e, "admin respond")
	keyFile := fs.String("admin-key", "", "the admin private key `FILE` (made by tpmcard admin keygen)")
	text := fs.String("challenge", "", "the challenge `TEXT` the user read out")
	passStdin := fs.Bool("passphrase-stdin", false, "read the key's passphrase from standard input")
	module := fs.String("pkcs11-module", "", "take the admin key from the PKCS#11 module at `PATH` (an HSM or hardware token) instead of a file")
	token := fs.String("pkcs11-token", "", "the `LABEL` of the token holding the admin key")
	keyLabel := fs.String("pkcs11-key", "", "the `LABEL` of the admin key on the token")
	pinStdin := fs.Bool("pin-stdin", false, "read the token's PIN from standard input")
	if err := parse(fs, args); err != nil {
		return err
	}
	if (*keyFile == "") == (*module == "") || *text == "" {
		return fmt.Errorf("%w: --challenge TEXT and one of --admin-key FILE or --pkcs11-module PATH are required", errUsage)
	}
	c, err := adminkey.ParseChallenge(*text)
	if err != nil {
		return err
	}
	var key crypto.Signer
	if *module != "" {
		pin, err := newSecrets(e).get("token PIN", "--pin-stdin", *pinStdin, false)
		if err != nil {
			return err
		}
		defer pin.Wipe()
		signer, closer, err := p11signer.Open(*module, *token, *keyLabel, pin)
		if err != nil {
			return err
		}
		defer closer.Close()
		key = signer
	} else if key, err = loadAdminKey(e, *keyFile, *passStdin); err != nil {
		return err
	}
	resp, err := adminkey.Respond(key, c)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stderr, "response to the %s challenge of card %s, PIN index %x, resetting it to %d tries (the card's TPM checks it; it works once, within %v of the challenge):\n",
		c.Op, c.Serial, c.PINName(), c.PINLimit, c.Validity)
	fmt.Fprintln(e.stdout, resp)
	return nil
}

func adminUnblock(e *env, args []string) error {
	fs := flags(e, "admin unblock")
	var c common
	c.add(fs, true, false)
	response := fs.String("response", "", "the administrator's response `TEXT`")
	newStdin := fs.Bool("new-pin-stdin", false, "read the new PIN from standard input")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *response == "" {
		return fmt.Errorf("%w: --response TEXT is required", errUsage)
	}
	newPIN, err := newSecrets(e).get("new PIN", "--new-pin-stdin", *newStdin, true)
	if err != nil {
		return err
	}
	defer newPIN.Wipe()
	cl, t, err := c.open()
	if err != nil {
		return err
	}
	defer cl.Close()
	if err := cl.AdminUnblock(t.Serial, *response, newPIN); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "card %s unblocked: the new PIN must be changed with `tpmcard pin change` before the card signs\n", t.Serial)
	return nil
}
