package main

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/tpmcard/tpmcard/service/client"
	"github.com/tpmcard/tpmcard/service/p11"
	"github.com/tpmcard/tpmcard/service/wire"
	"github.com/tpmcard/tpmcard/tpmcard"
	"golang.org/x/crypto/ssh"
)

func init() {
	register("key", "generate", "generate a key in the TPM (administrators)", keyGenerate)
	register("key", "list", "list a card's keys", keyList)
	register("key", "delete", "delete a key (administrators)", keyDelete)
	register("key", "export", "print a key's public half (PEM or OpenSSH)", keyExport)
}

// keyView is a key as the CLI shows it.
type keyView struct {
	ID        string           `json:"id"`
	Label     string           `json:"label"`
	Algorithm string           `json:"algorithm"`
	Public    crypto.PublicKey `json:"-"`
	handle    uint64
}

func algorithmOf(pub crypto.PublicKey) string {
	switch p := pub.(type) {
	case *ecdsa.PublicKey:
		return "ecdsa-" + strings.ToLower(strings.ReplaceAll(p.Curve.Params().Name, "-", ""))
	case *rsa.PublicKey:
		return fmt.Sprintf("rsa-%d", p.N.BitLen())
	}
	return fmt.Sprintf("%T", pub)
}

// listKeys reads every public key object of a card; it needs no login.
func listKeys(cl *client.Client, serial string) ([]keyView, error) {
	sess, err := cl.OpenSession(serial, false)
	if err != nil {
		return nil, err
	}
	defer cl.CloseSession(sess)
	hs, err := cl.FindObjects(sess, wire.Attribute{Type: p11.CKAClass, Value: wire.ULong(p11.CKOPublicKey)})
	if err != nil {
		return nil, err
	}
	var keys []keyView
	for _, h := range hs {
		vals, err := cl.GetAttributes(sess, h, p11.CKAID, p11.CKALabel, p11.CKAPublicKeyInfo)
		if err != nil {
			return nil, err
		}
		for _, v := range vals {
			if v.Status != wire.OK {
				return nil, fmt.Errorf("reading key attribute %#x: %v", v.Type, v.Status)
			}
		}
		pub, err := x509.ParsePKIXPublicKey(vals[2].Value)
		if err != nil {
			return nil, fmt.Errorf("reading a public key: %w", err)
		}
		keys = append(keys, keyView{ID: hex.EncodeToString(vals[0].Value), Label: string(vals[1].Value),
			Algorithm: algorithmOf(pub), Public: pub, handle: h})
	}
	return keys, nil
}

// pickKey finds the key that name names: the key whose ID (hex, any
// case) or label it is; else the one key whose ID it begins; with no name,
// the card's only key.
func pickKey(keys []keyView, name string) (keyView, error) {
	if name == "" {
		switch len(keys) {
		case 1:
			return keys[0], nil
		case 0:
			return keyView{}, errors.New("the card has no key yet: an administrator generates one with `tpmcard key generate`")
		}
		return keyView{}, fmt.Errorf("%w: the card has %d keys: choose one with --key (its ID, an ID prefix or its label; `tpmcard key list` shows them)", errUsage, len(keys))
	}
	var exact, prefix []keyView
	id := strings.ToLower(name)
	for _, k := range keys {
		switch {
		case k.ID == id || k.Label == name:
			exact = append(exact, k)
		case strings.HasPrefix(k.ID, id):
			prefix = append(prefix, k)
		}
	}
	found := exact
	if len(found) == 0 {
		found = prefix
	}
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		return keyView{}, fmt.Errorf("the card has no key %q: `tpmcard key list` shows its keys (--key takes an ID, an ID prefix or a label)", name)
	}
	ids := make([]string, len(found))
	for i, k := range found {
		ids[i] = k.ID
	}
	return keyView{}, fmt.Errorf("%w: --key %q names %d keys (%s): give the whole ID", errUsage, name, len(found), strings.Join(ids, ", "))
}

func keyGenerate(e *env, args []string) error {
	fs := flags(e, "key generate")
	var c common
	c.add(fs, true, true)
	algName := fs.String("alg", string(tpmcard.ECDSAP256), "key algorithm: "+algorithms()+" (p256, p384, ec and rsa name them too)")
	label := fs.String("label", "", "key label")
	idHex := fs.String("id", "", "the key's ID in `HEX` (default: SHA-1 of the EC point or RSA modulus, as NSS and OpenSC compute it)")
	pinPolicy := fs.String("pin-policy", "once", "when the key needs the PIN: once per login, or always, for every signature (PKCS#11 CKA_ALWAYS_AUTHENTICATE)")
	if err := parse(fs, args); err != nil {
		return err
	}
	alg, err := parseAlg(*algName)
	if err != nil {
		return err
	}
	if *pinPolicy != "once" && *pinPolicy != "always" {
		return fmt.Errorf("%w: --pin-policy is once or always, not %q", errUsage, *pinPolicy)
	}
	id, err := hex.DecodeString(*idHex)
	if err != nil {
		return fmt.Errorf("%w: --id is not hex: %v", errUsage, err)
	}
	if len(id) == 0 {
		id = nil
	}
	cl, t, err := c.open()
	if err != nil {
		return err
	}
	defer cl.Close()
	sess, err := cl.OpenSession(t.Serial, true)
	if err != nil {
		return err
	}
	start := time.Now()
	progress := func(p wire.Progress) {
		fmt.Fprintf(e.stderr, "\rgenerating %s in the TPM: %d%% (%s)", alg, p.Percent, time.Since(start).Round(time.Second))
	}
	pubHandle, _, err := cl.GenerateKeyPairPolicy(sess, string(alg), *label, id, *pinPolicy, progress)
	if time.Since(start) > time.Second {
		fmt.Fprintln(e.stderr)
	}
	if err != nil {
		return err
	}
	vals, err := cl.GetAttributes(sess, pubHandle, p11.CKAID)
	if err != nil {
		return err
	}
	keys, err := listKeys(cl, t.Serial)
	if err != nil {
		return err
	}
	for _, k := range keys {
		if len(vals) == 1 && hex.EncodeToString(vals[0].Value) == k.ID {
			if c.json {
				return printJSON(e.stdout, k)
			}
			fmt.Fprintf(e.stdout, "key %s (%s, %s) generated on card %s\n", k.ID, k.Algorithm, k.Label, t.Serial)
			return nil
		}
	}
	return errors.New("the new key does not show in the card's key list")
}

func keyList(e *env, args []string) error {
	fs := flags(e, "key list")
	var c common
	c.add(fs, true, true)
	if err := parse(fs, args); err != nil {
		return err
	}
	cl, t, err := c.open()
	if err != nil {
		return err
	}
	defer cl.Close()
	keys, err := listKeys(cl, t.Serial)
	if err != nil {
		return err
	}
	if c.json {
		if keys == nil {
			keys = []keyView{}
		}
		return printJSON(e.stdout, keys)
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tALGORITHM\tLABEL")
	for _, k := range keys {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", k.ID, k.Algorithm, k.Label)
	}
	return tw.Flush()
}

func keyDelete(e *env, args []string) error {
	fs := flags(e, "key delete")
	var c common
	c.add(fs, true, false)
	var name string
	keyFlag(fs, &name, "")
	yes := fs.Bool("yes", false, "confirm: the key is destroyed for good")
	if err := parse(fs, args); err != nil {
		return err
	}
	if name == "" || !*yes {
		return fmt.Errorf("%w: deleting a key needs --key and --yes: it cannot be recovered", errUsage)
	}
	cl, t, k, err := c.openKey(name)
	if err != nil {
		return err
	}
	defer cl.Close()
	// Both halves and the certificate: one DestroyObject would destroy
	// the public key object alone.
	if err := cl.DeleteKey(t.Serial, mustHex(k.ID)); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "key %s deleted from card %s\n", k.ID, t.Serial)
	return nil
}

func keyExport(e *env, args []string) error {
	fs := flags(e, "key export")
	var c common
	c.add(fs, true, false)
	var name string
	keyFlag(fs, &name, oneKey)
	formatName := fs.String("format", formatPEM, "pem (SubjectPublicKeyInfo) or ssh (an OpenSSH authorized_keys line; openssh names it too)")
	out := fs.String("out", "-", "the `FILE` to write it to, - for standard output")
	if err := parse(fs, args); err != nil {
		return err
	}
	format, err := parseKeyFormat(*formatName)
	if err != nil {
		return err
	}
	cl, t, k, err := c.openKey(name)
	if err != nil {
		return err
	}
	defer cl.Close()
	var b []byte
	switch format {
	case formatPEM:
		der, err := x509.MarshalPKIXPublicKey(k.Public)
		if err != nil {
			return err
		}
		b = pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	case formatSSH:
		pub, err := ssh.NewPublicKey(k.Public)
		if err != nil {
			return err
		}
		// The comment names the card and the key (its hex ID, shortened
		// to 8 digits when longer; a chosen ID may be shorter).
		b = fmt.Appendf(bytes.TrimRight(ssh.MarshalAuthorizedKey(pub), "\n"), " tpmcard-%s-%s\n", t.Serial, k.ID[:min(8, len(k.ID))])
	}
	return writeOut(e, *out, "", b, true)
}
