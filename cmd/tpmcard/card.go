package main

import (
	"fmt"
	"text/tabwriter"

	"github.com/tpmcard/tpmcard/service/wire"
	"github.com/tpmcard/tpmcard/tpmcard"
)

func init() {
	register("card", "create", "provision a new card (administrators)", cardCreate)
	register("card", "list", "list the cards", cardList)
	register("card", "status", "show a card's state and keys", cardStatus)
	register("card", "destroy", "destroy a card and its keys (administrators)", cardDestroy)
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
	label := fs.String("label", "", "card label, at most 32 bytes (default: \"tpmcard\" and the serial's first 8 digits)")
	pinStdin := fs.Bool("pin-stdin", false, "read the PIN from the first line of standard input, instead of the default PIN "+tpmcard.DefaultPIN+" (which must be changed on first use)")
	pukStdin := fs.Bool("puk-stdin", false, "read the PUK from the next line of standard input (after the PIN's, with --pin-stdin), instead of generating one")
	pinTries := fs.Int("pin-tries", tpmcard.DefaultPINTries, "wrong PINs before the TPM locks the card")
	pukTries := fs.Int("puk-tries", tpmcard.DefaultPUKTries, "wrong PUKs before the card can no longer be unblocked")
	minLen := fs.Int("min-pin-len", tpmcard.DefaultPINPolicy().MinLength, fmt.Sprintf("shortest PIN (never below %d)", tpmcard.MinPINLength))
	maxLen := fs.Int("max-pin-len", tpmcard.DefaultPINPolicy().MaxLength, fmt.Sprintf("longest PIN (at most %d)", tpmcard.MaxPINLength))
	adminKey := fs.String("admin-key", "", "admin public key `FILE` (made by tpmcard admin keygen): the holder of its private key can unblock the card offline")
	noPUK := fs.Bool("no-puk", false, "no PUK: only the admin key unblocks the card (needs --admin-key)")
	ownerSpec := fs.String("owner", "", "the `USER[:GROUP]` (names or numbers) the card belongs to: only they and administrators see and use it (default: the user who ran sudo, else you)")
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
		if p.PIN, err = sec.get("PIN", "--pin-stdin", true, false); err != nil {
			return err
		}
		defer p.PIN.Wipe()
	}
	if *pukStdin {
		if p.PUK, err = sec.get("PUK", "--puk-stdin", true, false); err != nil {
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
		fmt.Fprintf(e.stdout, "PIN: %s (the default: it must be changed with `tpmcard pin change` before the card signs)\n", tpmcard.DefaultPIN)
	}
	if len(out.PUK) > 0 {
		fmt.Fprintf(e.stdout, "PUK: %s\n  write it down now and keep it safe: it unblocks the card and is shown only this once\n", string(out.PUK))
	}
	if *adminKey != "" {
		fmt.Fprintf(e.stdout, "admin key: %s can unblock the card offline (`tpmcard admin challenge`)\n", *adminKey)
	}
	return nil
}

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
	// State is what the table's STATE column says: "ready", "PIN must
	// change", "locked" (the PUK or the admin key unblocks it),
	// "blocked" (nothing can), or the damage that keeps the card from
	// being used: "lost", "altered", "outdated", "destroy incomplete",
	// "unknown".
	State string `json:"state"`
	// Damage is State for a card that cannot be used, "" for a ready one.
	Damage string    `json:"-"`
	Keys   []keyView `json:"keys,omitempty"`
}

func viewOf(t wire.TokenInfo) cardView {
	v := cardView{
		Serial: t.Serial, Label: t.Label,
		PINTriesLeft: t.PINTriesLeft, PINTries: t.PINTriesMax, PUKTriesLeft: t.PUKTriesLeft, PUKTries: t.PUKTriesMax,
		// A card without a PUK has no SO PIN to lock: PKCS#11 shows
		// it locked (no SO login can succeed), the CLI says it has none.
		PINLocked: t.Flags&wire.FlagUserPINLocked != 0, PUKLocked: t.HasPUK && t.Flags&wire.FlagSOPINLocked != 0,
		PINMustChange: t.Flags&wire.FlagUserPINToBeChanged != 0,
		MinPINLength:  t.MinPINLen, MaxPINLength: t.MaxPINLen, Simulated: t.Simulated,
		HasPUK: t.HasPUK, HasAdminKey: t.HasAdminKey, Owner: ownerViewOf(t.Owner),
		Damage: damageOf(t.State),
	}
	v.State = v.state()
	return v
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
	if len(views) > 0 && views[0].Simulated {
		defer softwareTPM(e)
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
			tries(v.PUKTriesLeft, v.PUKTries, unknown), v.State, v.Owner)
	}
	return tw.Flush()
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
	if v.Simulated {
		defer softwareTPM(e)
	}
	if c.json {
		return printJSON(e.stdout, v)
	}
	fmt.Fprintf(e.stdout, "card      %s (%s)\nstate     %s\n", v.Serial, v.Label, v.State)
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
