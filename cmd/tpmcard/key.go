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

// pickKey finds the key named by hex ID or label, or the only one.
func pickKey(keys []keyView, name string) (keyView, error) {
	var found []keyView
	for _, k := range keys {
		if name == "" || strings.EqualFold(k.ID, name) || k.Label == name {
			found = append(found, k)
		}
	}
	switch {
	case len(found) == 1:
		return found[0], nil
	case len(found) == 0 && name == "":
		return keyView{}, errors.New("the card has no key yet: an administrator generates one with `tpmcard key generate`")
	case len(found) == 0:
		return keyView{}, wire.NewError(wire.KeyNotFound, "no key "+name)
	}
	return keyView{}, fmt.Errorf("%w: the card has %d keys: choose one with --key", errUsage, len(found))
}

func keyGenerate(e *env, args []string) error {
	fs := flags(e, "key generate")
	var c common
	c.add(fs, true, true)
	alg := fs.String("alg", "ecdsa-p256", "ecdsa-p256, ecdsa-p384, rsa-2048 or rsa-3072")
	label := fs.String("label", "", "key label")
	idHex := fs.String("id", "", "key ID in hex (default: SHA-1 of the EC point or RSA modulus, as NSS and OpenSC compute it)")
	if err := parse(fs, args); err != nil {
		return err
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
		fmt.Fprintf(e.stderr, "\rgenerating %s in the TPM: %d%% (%s)", *alg, p.Percent, time.Since(start).Round(time.Second))
	}
	pubHandle, _, err := cl.GenerateKeyPair(sess, *alg, *label, id, progress)
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
	name := fs.String("key", "", "key ID (hex) or label")
	yes := fs.Bool("yes", false, "confirm: the key is destroyed for good")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *name == "" || !*yes {
		return fmt.Errorf("%w: deleting a key needs --key and --yes: it cannot be recovered", errUsage)
	}
	cl, t, k, err := c.openKey(*name)
	if err != nil {
		return err
	}
	defer cl.Close()
	sess, err := cl.OpenSession(t.Serial, true)
	if err != nil {
		return err
	}
	hs, err := cl.FindObjects(sess, wire.Attribute{Type: p11.CKAClass, Value: wire.ULong(p11.CKOPublicKey)},
		wire.Attribute{Type: p11.CKAID, Value: mustHex(k.ID)})
	if err != nil {
		return err
	}
	if len(hs) != 1 {
		return wire.NewError(wire.KeyNotFound, "no key "+k.ID)
	}
	if err := cl.DestroyObject(sess, hs[0]); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "key %s deleted from card %s\n", k.ID, t.Serial)
	return nil
}

func keyExport(e *env, args []string) error {
	fs := flags(e, "key export")
	var c common
	c.add(fs, true, false)
	name := fs.String("key", "", "key ID (hex) or label (may be left out when the card has one key)")
	format := fs.String("format", "pem", "pem (SubjectPublicKeyInfo) or ssh (an authorized_keys line)")
	if err := parse(fs, args); err != nil {
		return err
	}
	cl, t, k, err := c.openKey(*name)
	if err != nil {
		return err
	}
	defer cl.Close()
	switch *format {
	case "pem":
		der, err := x509.MarshalPKIXPublicKey(k.Public)
		if err != nil {
			return err
		}
		return pem.Encode(e.stdout, &pem.Block{Type: "PUBLIC KEY", Bytes: der})
	case "ssh":
		pub, err := ssh.NewPublicKey(k.Public)
		if err != nil {
			return err
		}
		line := bytes.TrimRight(ssh.MarshalAuthorizedKey(pub), "\n")
		// The comment names the card and the key (its hex ID, shortened
		// to 8 digits when longer; a chosen ID may be shorter).
		_, err = fmt.Fprintf(e.stdout, "%s tpmcard-%s-%s\n", line, t.Serial, k.ID[:min(8, len(k.ID))])
		return err
	}
	return fmt.Errorf("%w: --format %q: want pem or ssh", errUsage, *format)
}
