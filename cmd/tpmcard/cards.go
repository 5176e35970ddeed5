package main

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/tpmcard/tpmcard/service/client"
	"github.com/tpmcard/tpmcard/service/p11"
	"github.com/tpmcard/tpmcard/service/wire"
	"golang.org/x/crypto/ssh"
)

func init() {
	register("card", "create", "provision a new card (administrators)", cardCreate)
	register("card", "list", "list the cards", cardList)
	register("card", "status", "show a card's state and keys", cardStatus)
	register("card", "destroy", "destroy a card and its keys (administrators)", cardDestroy)
	register("pin", "change", "change the PIN (the default PIN must be changed before first use)", pinChange)
	register("pin", "unblock", "unblock a locked card with the PUK and set a new PIN", pinUnblock)
	register("key", "generate", "generate a key in the TPM (administrators)", keyGenerate)
	register("key", "list", "list a card's keys", keyList)
	register("key", "delete", "delete a key (administrators)", keyDelete)
	register("key", "export", "print a key's public half (PEM or OpenSSH)", keyExport)
	register("", "sign", "sign data from a file or standard input with a card key", sign)
}

// common holds the flags most commands share.
type common struct {
	socket string
	card   string
	json   bool
}

func (c *common) add(fs *flag.FlagSet, card, js bool) {
	fs.StringVar(&c.socket, "socket", client.SocketPath(), "the service's socket")
	if card {
		fs.StringVar(&c.card, "card", "", "card serial or label (may be left out when there is one card)")
	}
	if js {
		fs.BoolVar(&c.json, "json", false, "print JSON")
	}
}

func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %w", errShown, err) // the flag package printed it
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	return nil
}

func (c *common) dial() (*client.Client, error) { return client.Dial(c.socket) }

// open dials the service and picks the card the flags name.
func (c *common) open() (*client.Client, wire.TokenInfo, error) {
	cl, err := c.dial()
	if err != nil {
		return nil, wire.TokenInfo{}, err
	}
	t, err := c.pick(cl)
	if err != nil {
		cl.Close()
		return nil, wire.TokenInfo{}, err
	}
	return cl, t, nil
}

// openKey is open, then the card's key named by hex ID or label (or its
// only key).
func (c *common) openKey(name string) (*client.Client, wire.TokenInfo, keyView, error) {
	cl, t, err := c.open()
	if err != nil {
		return nil, wire.TokenInfo{}, keyView{}, err
	}
	keys, err := listKeys(cl, t.Serial)
	if err == nil {
		var k keyView
		if k, err = pickKey(keys, name); err == nil {
			return cl, t, k, nil
		}
	}
	cl.Close()
	return nil, wire.TokenInfo{}, keyView{}, err
}

// pick finds the card the user named, or the only one.
func (c *common) pick(cl *client.Client) (wire.TokenInfo, error) {
	cards, err := cl.ListCards()
	if err != nil {
		return wire.TokenInfo{}, err
	}
	var found []wire.TokenInfo
	for _, t := range cards {
		if c.card == "" || t.Serial == c.card || t.Label == c.card {
			found = append(found, t)
		}
	}
	switch {
	case len(found) == 1:
		return found[0], nil
	case len(found) == 0 && c.card == "":
		return wire.TokenInfo{}, errors.New("there is no card yet: an administrator creates one with `tpmcard card create`")
	case len(found) == 0:
		return wire.TokenInfo{}, wire.NewError(wire.CardNotFound, "no card "+c.card)
	}
	return wire.TokenInfo{}, fmt.Errorf("%w: there are %d cards: choose one with --card", errUsage, len(found))
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func parseRule(s string) (wire.CharRule, error) {
	switch s {
	case "allowed":
		return 0, nil
	case "required":
		return 1, nil
	case "disallowed":
		return 2, nil
	}
	return 0, fmt.Errorf("%w: %q is not allowed, required or disallowed", errUsage, s)
}

func cardCreate(e *env, args []string) error {
	fs := flags(e, "card create")
	var c common
	c.add(fs, false, true)
	label := fs.String("label", "", "card label (at most 32 bytes)")
	pinStdin := fs.Bool("pin-stdin", false, "read the PIN from standard input instead of using the default "+defaultPIN+" (which must be changed on first use)")
	pukStdin := fs.Bool("puk-stdin", false, "read the PUK from standard input instead of generating one")
	pinTries := fs.Int("pin-tries", 0, "wrong PINs before the TPM locks the card (default 5)")
	pukTries := fs.Int("puk-tries", 0, "wrong PUKs before the card can no longer be unblocked (default 3)")
	minLen := fs.Int("min-pin-len", 0, "shortest PIN (default 8, never below 4)")
	maxLen := fs.Int("max-pin-len", 0, "longest PIN (default 127)")
	adminKey := fs.String("admin-key", "", "admin public key file: the holder of its private key can unblock the card offline (see `tpmcard admin keygen`)")
	noPUK := fs.Bool("no-puk", false, "no PUK: only the admin key unblocks the card (needs --admin-key)")
	ownerSpec := fs.String("owner", "", "USER[:GROUP] (names or numbers) the card belongs to: only they and administrators see and use it (default: the user who ran sudo, else you)")
	adminsOnly := fs.Bool("admins-only", false, "a card no user owns: only administrators see and use it")
	var rules [4]string
	for i, n := range []string{"upper", "lower", "digit", "special"} {
		fs.StringVar(&rules[i], n, "allowed", n+" characters in PINs: allowed, required or disallowed")
	}
	if err := parse(fs, args); err != nil {
		return err
	}
	p := wire.Provision{Label: *label, PINTries: *pinTries, PUKTries: *pukTries,
		PINPolicy: wire.PINPolicy{MinLen: *minLen, MaxLen: *maxLen}}
	var err error
	for i, r := range []*wire.CharRule{&p.PINPolicy.Upper, &p.PINPolicy.Lower, &p.PINPolicy.Digit, &p.PINPolicy.Special} {
		if *r, err = parseRule(rules[i]); err != nil {
			return err
		}
	}
	if *adminKey != "" {
		if p.AdminKey, err = loadAdminPublic(*adminKey); err != nil {
			return err
		}
	}
	if *noPUK && (*adminKey == "" || *pukStdin) {
		return fmt.Errorf("%w: --no-puk needs --admin-key and no --puk-stdin", errUsage)
	}
	p.NoPUK = *noPUK
	if p.Owner, err = ownerFor(*ownerSpec, *adminsOnly); err != nil {
		return err
	}
	p.AdminsOnly = *adminsOnly
	sec := newSecrets(e)
	if *pinStdin {
		if p.PIN, err = sec.get("PIN", true, false); err != nil {
			return err
		}
		defer p.PIN.Wipe()
	}
	if *pukStdin {
		if p.PUK, err = sec.get("PUK", true, false); err != nil {
			return err
		}
		defer p.PUK.Wipe()
	}
	cl, err := c.dial()
	if err != nil {
		return err
	}
	defer cl.Close()
	out, err := cl.Provision(p)
	if err != nil {
		return err
	}
	defer out.PUK.Wipe()
	if c.json {
		return printJSON(e.stdout, struct {
			Serial string `json:"serial"`
			PUK    string `json:"puk,omitempty"`
		}{out.Serial, string(out.PUK)})
	}
	owner := "you"
	switch {
	case p.AdminsOnly:
		owner = "administrators only"
	case p.Owner != nil:
		owner = ownerViewOf(p.Owner).String()
	}
	fmt.Fprintf(e.stdout, "card %s created; it belongs to %s\n", out.Serial, owner)
	if !*pinStdin {
		fmt.Fprintf(e.stdout, "PIN: %s (the default: it must be changed with `tpmcard pin change` before the card signs)\n", defaultPIN)
	}
	if len(out.PUK) > 0 {
		fmt.Fprintf(e.stdout, "PUK: %s\n  write it down now and keep it safe: it unblocks the card and is shown only this once\n", string(out.PUK))
	}
	if *adminKey != "" {
		fmt.Fprintf(e.stdout, "admin key: %s can unblock the card offline (`tpmcard admin challenge`)\n", *adminKey)
	}
	return nil
}

const defaultPIN = "12345678"

// cardView is the JSON and table form of a card.
type cardView struct {
	Serial        string     `json:"serial"`
	Label         string     `json:"label"`
	PINTriesLeft  int        `json:"pin_tries_left"`
	PINTries      int        `json:"pin_tries"`
	PUKTriesLeft  int        `json:"puk_tries_left"`
	PUKTries      int        `json:"puk_tries"`
	PINLocked     bool       `json:"pin_locked"`
	PUKLocked     bool       `json:"puk_locked"`
	PINMustChange bool       `json:"pin_must_change"`
	MinPINLength  int        `json:"min_pin_length"`
	MaxPINLength  int        `json:"max_pin_length"`
	Simulated     bool       `json:"simulated"`
	HasPUK        bool       `json:"has_puk"`
	HasAdminKey   bool       `json:"has_admin_key"`
	Owner         *ownerView `json:"owner"` // null: administrators only
	// State is "ready", or why the card cannot be used: "lost",
	// "altered", "outdated", "destroy incomplete", "unknown".
	State string `json:"state"`
	// Damage is State for a card that cannot be used, "" for a ready one.
	Damage string    `json:"-"`
	Keys   []keyView `json:"keys,omitempty"`
}

func viewOf(t wire.TokenInfo) cardView {
	return cardView{
		Serial: t.Serial, Label: t.Label,
		PINTriesLeft: t.PINTriesLeft, PINTries: t.PINTriesMax, PUKTriesLeft: t.PUKTriesLeft, PUKTries: t.PUKTriesMax,
		PINLocked: t.Flags&wire.FlagUserPINLocked != 0, PUKLocked: t.Flags&wire.FlagSOPINLocked != 0,
		PINMustChange: t.Flags&wire.FlagUserPINToBeChanged != 0,
		MinPINLength:  t.MinPINLen, MaxPINLength: t.MaxPINLen, Simulated: t.Simulated,
		HasPUK: t.HasPUK, HasAdminKey: t.HasAdminKey, Owner: ownerViewOf(t.Owner),
		State: t.State.String(), Damage: damageOf(t.State),
	}
}

func damageOf(s wire.CardState) string {
	if !s.Damaged() {
		return ""
	}
	return s.String()
}

// advice says what to do with a damaged card.
func (v cardView) advice() string {
	switch v.Damage {
	case "lost":
		return "its TPM objects are gone (TPM cleared, or the state directory came from another machine): destroy it (`tpmcard card destroy`) and create a new one"
	case "altered":
		return "its TPM objects no longer match its record (someone with TPM access changed them): do not trust it; destroy it and create a new one"
	case "outdated":
		return "made by an earlier tpmcard, whose PIN policy whoever holds the TPM owner authorization can forge: move its certificates elsewhere, destroy it and create a new card"
	case "destroy incomplete":
		return "an earlier destroy did not finish: run `tpmcard card destroy` again to finish it"
	case "unknown":
		return "the TPM did not answer (`tpmcard service status`): try again in a moment"
	}
	return ""
}

// countersUnknown: the service could not read the card's counters.
func (v cardView) countersUnknown() bool { return v.Damage != "" && v.Damage != "outdated" }

// tries is "left/limit", or "-/limit" when the TPM's counter is unknown.
func tries(left, limit int, unknown bool) string {
	if unknown {
		return fmt.Sprintf("-/%d", limit)
	}
	return fmt.Sprintf("%d/%d", left, limit)
}

func (v cardView) state() string {
	switch {
	case v.Damage != "":
		return v.Damage
	case v.PINLocked && (v.PUKLocked || !v.HasPUK) && !v.HasAdminKey:
		return "blocked"
	case v.PINLocked:
		return "locked"
	case v.PINMustChange:
		return "PIN must change"
	}
	return "ready"
}

func cardList(e *env, args []string) error {
	fs := flags(e, "card list")
	var c common
	c.add(fs, false, true)
	if err := parse(fs, args); err != nil {
		return err
	}
	cl, err := c.dial()
	if err != nil {
		return err
	}
	defer cl.Close()
	cards, err := cl.ListCards()
	if err != nil {
		return err
	}
	views := make([]cardView, 0, len(cards))
	for _, t := range cards {
		views = append(views, viewOf(t))
	}
	if c.json {
		return printJSON(e.stdout, views)
	}
	if len(views) == 0 {
		fmt.Fprintln(e.stdout, "no cards: an administrator creates one with `tpmcard card create`")
		return nil
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SERIAL\tLABEL\tPIN TRIES\tPUK TRIES\tSTATE\tOWNER")
	for _, v := range views {
		unknown := v.countersUnknown()
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", v.Serial, v.Label, tries(v.PINTriesLeft, v.PINTries, unknown),
			tries(v.PUKTriesLeft, v.PUKTries, unknown), v.state(), v.Owner)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(views) > 0 && views[0].Simulated {
		fmt.Fprintln(e.stdout, "WARNING: the service runs on a software TPM: keys are NOT hardware-protected")
	}
	return nil
}

func cardStatus(e *env, args []string) error {
	fs := flags(e, "card status")
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
	v := viewOf(t)
	if v.Keys, err = listKeys(cl, t.Serial); err != nil {
		return err
	}
	if c.json {
		return printJSON(e.stdout, v)
	}
	fmt.Fprintf(e.stdout, "card      %s (%s)\nstate     %s\n", v.Serial, v.Label, v.state())
	if a := v.advice(); a != "" {
		fmt.Fprintf(e.stdout, "          %s\n", a)
	}
	if v.countersUnknown() {
		fmt.Fprintf(e.stdout, "PIN       %d tries, %d to %d characters (the TPM's counter cannot be read)\n", v.PINTries, v.MinPINLength, v.MaxPINLength)
	} else {
		fmt.Fprintf(e.stdout, "PIN       %d of %d tries left, %d to %d characters\n", v.PINTriesLeft, v.PINTries, v.MinPINLength, v.MaxPINLength)
	}
	if v.HasPUK && v.countersUnknown() {
		fmt.Fprintf(e.stdout, "PUK       %d tries\n", v.PUKTries)
	} else if v.HasPUK {
		fmt.Fprintf(e.stdout, "PUK       %d of %d tries left\n", v.PUKTriesLeft, v.PUKTries)
	} else {
		fmt.Fprintln(e.stdout, "PUK       none")
	}
	if v.HasAdminKey {
		fmt.Fprintln(e.stdout, "unblock   also by the administrator's key, offline (`tpmcard admin challenge`)")
	}
	fmt.Fprintf(e.stdout, "owner     %s\n", v.Owner)
	for _, k := range v.Keys {
		fmt.Fprintf(e.stdout, "key       %s  %s  %s\n", k.ID, k.Algorithm, k.Label)
	}
	if v.Simulated {
		fmt.Fprintln(e.stdout, "WARNING: the service runs on a software TPM: keys are NOT hardware-protected")
	}
	return nil
}

func cardDestroy(e *env, args []string) error {
	fs := flags(e, "card destroy")
	var c common
	c.add(fs, true, false)
	yes := fs.Bool("yes", false, "confirm: the card's keys are destroyed for good")
	if err := parse(fs, args); err != nil {
		return err
	}
	if c.card == "" || !*yes {
		return fmt.Errorf("%w: destroying a card needs --card SERIAL and --yes: its keys cannot be recovered", errUsage)
	}
	cl, t, err := c.open()
	if err != nil {
		return err
	}
	defer cl.Close()
	if err := cl.DestroyCard(t.Serial); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "card %s destroyed\n", t.Serial)
	return nil
}

func pinChange(e *env, args []string) error {
	fs := flags(e, "pin change")
	var c common
	c.add(fs, true, false)
	oldStdin := fs.Bool("pin-stdin", false, "read the current PIN from the first line of standard input")
	newStdin := fs.Bool("new-pin-stdin", false, "read the new PIN from the next line of standard input")
	if err := parse(fs, args); err != nil {
		return err
	}
	sec := newSecrets(e)
	oldPIN, err := sec.get("current PIN", *oldStdin, false)
	if err != nil {
		return err
	}
	defer oldPIN.Wipe()
	newPIN, err := sec.get("new PIN", *newStdin, true)
	if err != nil {
		return err
	}
	defer newPIN.Wipe()
	cl, t, err := c.open()
	if err != nil {
		return err
	}
	defer cl.Close()
	sess, err := cl.OpenSession(t.Serial, true)
	if err != nil {
		return err
	}
	warning, err := cl.SetPINWarn(sess, oldPIN, newPIN)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "PIN of card %s changed\n", t.Serial)
	if warning != "" {
		fmt.Fprintln(e.stderr, "tpmcard: warning: "+warning)
	}
	return nil
}

func pinUnblock(e *env, args []string) error {
	fs := flags(e, "pin unblock")
	var c common
	c.add(fs, true, false)
	pukStdin := fs.Bool("puk-stdin", false, "read the PUK from the first line of standard input")
	newStdin := fs.Bool("new-pin-stdin", false, "read the new PIN from the next line of standard input")
	if err := parse(fs, args); err != nil {
		return err
	}
	sec := newSecrets(e)
	puk, err := sec.get("PUK", *pukStdin, false)
	if err != nil {
		return err
	}
	defer puk.Wipe()
	newPIN, err := sec.get("new PIN", *newStdin, true)
	if err != nil {
		return err
	}
	defer newPIN.Wipe()
	cl, t, err := c.open()
	if err != nil {
		return err
	}
	defer cl.Close()
	if err := cl.Unblock(t.Serial, puk, newPIN); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "card %s unblocked: the new PIN must be changed with `tpmcard pin change` before the card signs\n", t.Serial)
	return nil
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

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
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

func sign(e *env, args []string) error {
	fs := flags(e, "sign")
	var c common
	c.add(fs, true, false)
	name := fs.String("key", "", "key ID (hex) or label (may be left out when the card has one key)")
	in := fs.String("in", "-", "file to sign, - for standard input")
	out := fs.String("out", "-", "where to write the signature (ECDSA: ASN.1 DER; RSA: raw), - for standard output")
	hashName := fs.String("hash", "sha256", "sha256, sha384 or sha512")
	pss := fs.Bool("pss", false, "RSA keys: sign with PSS instead of PKCS#1 v1.5")
	pinStdin := fs.Bool("pin-stdin", false, "read the PIN from the first line of standard input (the data then follows, or comes from --in)")
	if err := parse(fs, args); err != nil {
		return err
	}
	h, ok := map[string]crypto.Hash{"sha256": crypto.SHA256, "sha384": crypto.SHA384, "sha512": crypto.SHA512}[*hashName]
	if !ok {
		return fmt.Errorf("%w: --hash %q: want sha256, sha384 or sha512", errUsage, *hashName)
	}
	sec := newSecrets(e)
	pin, err := sec.get("PIN", *pinStdin, false)
	if err != nil {
		return err
	}
	defer pin.Wipe()
	var data []byte
	if *in == "-" {
		r := io.Reader(e.stdin)
		if sec.in != nil {
			r = sec.in // what follows the PIN line
		}
		data, err = io.ReadAll(r)
	} else {
		data, err = os.ReadFile(*in)
	}
	if err != nil {
		return fmt.Errorf("reading the data to sign: %w", err)
	}
	cl, t, k, err := c.openKey(*name)
	if err != nil {
		return err
	}
	defer cl.Close()
	sess, err := cl.OpenSession(t.Serial, false)
	if err != nil {
		return err
	}
	if err := cl.Login(sess, wire.UserNormal, pin); err != nil {
		return err
	}
	s, err := cl.Signer(t.Serial, mustHex(k.ID))
	if err != nil {
		return err
	}
	defer s.Close()
	hh := h.New()
	hh.Write(data)
	var opts crypto.SignerOpts = h
	if *pss {
		opts = &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: h}
	}
	sig, err := s.Sign(nil, hh.Sum(nil), opts)
	if err != nil {
		return err
	}
	if *out == "-" {
		_, err = e.stdout.Write(sig)
		return err
	}
	return os.WriteFile(*out, sig, 0o644)
}
