package main

import (
	"encoding/hex"
	"fmt"

	"github.com/tpmcard/tpmcard/service/client"
	"github.com/tpmcard/tpmcard/service/piv"
	"github.com/tpmcard/tpmcard/service/wire"
)

func init() {
	register("piv", "enable", "put a card in a PIV smart card reader (vpcd) that any local user can use with its PIN (administrators)", pivEnable)
	register("piv", "disable", "take a card out of its PIV reader (administrators)", pivDisable)
	register("piv", "assign", "put a card key and its certificate in a PIV slot: 9a, 9c, 9d or 9e (administrators)", pivAssign)
	register("piv", "status", "show the cards in PIV readers, their ports and slots (administrators)", pivStatus)
	examples["piv enable"] = "sudo tpmcard piv enable --card SERIAL --any-local-user"
	examples["piv disable"] = "sudo tpmcard piv disable --card SERIAL"
	examples["piv assign"] = "sudo tpmcard piv assign --key KEY-ID --slot 9a"
	examples["piv status"] = "sudo tpmcard piv status"
}

// pivCardView is a card in a PIV reader as the CLI shows it.
type pivCardView struct {
	Serial    string            `json:"serial"`
	Port      int               `json:"port"`
	Connected bool              `json:"connected"`
	Slots     map[string]string `json:"slots"`
}

func pivViews(cards []wire.PIVCard) []pivCardView {
	out := make([]pivCardView, 0, len(cards))
	for _, c := range cards {
		v := pivCardView{Serial: c.Serial, Port: c.Port, Connected: c.Connected, Slots: map[string]string{}}
		for _, s := range c.Slots {
			v.Slots[piv.SlotName(s.Slot)] = hex.EncodeToString(s.KeyID)
		}
		out = append(out, v)
	}
	return out
}

func printPIV(e *env, c common, cards []wire.PIVCard) error {
	views := pivViews(cards)
	if c.json {
		return printJSON(e.stdout, views)
	}
	if len(views) == 0 {
		fmt.Fprintln(e.stdout, "no card is in a PIV reader")
		return nil
	}
	for _, v := range views {
		state := "waiting for vpcd"
		if v.Connected {
			state = "in the reader"
		}
		fmt.Fprintf(e.stdout, "card %s  vpcd port %d  %s\n", v.Serial, v.Port, state)
		for _, s := range piv.Slots {
			id := v.Slots[piv.SlotName(s)]
			if id == "" {
				id = "-"
			}
			fmt.Fprintf(e.stdout, "  slot %s  %s\n", piv.SlotName(s), id)
		}
	}
	return nil
}

func pivEnable(e *env, args []string) error {
	fs := flags(e, "piv enable")
	var c common
	c.add(fs, true, true)
	anyUser := fs.Bool("any-local-user", false, "consent that ANY local user can use the card through the reader with its PIN (pcsc-lite lets every user use every reader, and one user's VERIFY serves all); required")
	port := fs.Int("port", 0, "vpcd's `PORT` for the card (default: the first free one from 35963; each reader.conf.d entry of vpcd gives PORT and PORT+1)")
	fs.Usage = func() {
		fmt.Fprintln(e.stderr, "usage: tpmcard piv enable --card SERIAL --any-local-user [--port PORT]")
		fmt.Fprintln(e.stderr, "The card's PINs must fit PIV's 8 characters: make it with card create --max-pin-len 8 and an 8-character PUK.")
		fs.PrintDefaults()
	}
	if err := parse(fs, args); err != nil {
		return err
	}
	if !*anyUser {
		return fmt.Errorf("%w: any local user can use a card in a PIV reader with its PIN: say so with --any-local-user", errUsage)
	}
	cl, t, err := c.open()
	if err != nil {
		return err
	}
	defer cl.Close()
	cards, err := cl.PIVEnable(t.Serial, *port, true)
	if err != nil {
		return err
	}
	if !c.json {
		fmt.Fprintf(e.stdout, "card %s is enabled for a PIV reader: any local user can use it with its PIN\n", t.Serial)
	}
	return printPIV(e, c, cards)
}

func pivDisable(e *env, args []string) error {
	fs := flags(e, "piv disable")
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
	cards, err := cl.PIVDisable(t.Serial)
	if err != nil {
		return err
	}
	if !c.json {
		fmt.Fprintf(e.stdout, "card %s is out of its PIV reader\n", t.Serial)
	}
	return printPIV(e, c, cards)
}

func pivAssign(e *env, args []string) error {
	fs := flags(e, "piv assign")
	var c common
	c.add(fs, true, true)
	key := fs.String("key", "", "the card key: its `KEY` ID, an ID prefix or its label")
	slotName := fs.String("slot", "", "the PIV `SLOT`: 9a authentication, 9c digital signature (PIN at every use), 9d key management, 9e card authentication")
	clear := fs.Bool("clear", false, "empty the slot instead")
	if err := parse(fs, args); err != nil {
		return err
	}
	slot, err := piv.ParseSlot(*slotName)
	if err != nil {
		return fmt.Errorf("%w: --slot: %q is no PIV key slot: use 9a, 9c, 9d or 9e", errUsage, *slotName)
	}
	var cl *client.Client
	var t wire.TokenInfo
	var id []byte
	switch {
	case *clear && *key != "":
		return fmt.Errorf("%w: --clear and --key exclude each other", errUsage)
	case *clear:
		if cl, t, err = c.open(); err != nil {
			return err
		}
	case *key == "":
		return fmt.Errorf("%w: name the key with --key KEY (or empty the slot with --clear)", errUsage)
	default:
		var k keyView
		if cl, t, k, err = c.openKey(*key); err != nil {
			return err
		}
		if id, err = hex.DecodeString(k.ID); err != nil {
			cl.Close()
			return err
		}
	}
	defer cl.Close()
	cards, err := cl.PIVAssign(t.Serial, slot, id)
	if err != nil {
		return err
	}
	if !c.json {
		if id == nil {
			fmt.Fprintf(e.stdout, "slot %s of card %s is empty\n", piv.SlotName(slot), t.Serial)
		} else {
			fmt.Fprintf(e.stdout, "key %x is in slot %s of card %s\n", id, piv.SlotName(slot), t.Serial)
		}
	}
	return printPIV(e, c, cards)
}

func pivStatus(e *env, args []string) error {
	fs := flags(e, "piv status")
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
	cards, err := cl.PIVStatus()
	if err != nil {
		return err
	}
	return printPIV(e, c, cards)
}
