package main

import "fmt"

func init() {
	register("pin", "change", "change the PIN (the default PIN must be changed before first use)", pinChange)
	register("pin", "unblock", "unblock a locked card with the PUK and set a new PIN", pinUnblock)
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
	oldPIN, err := sec.get("current PIN", "--pin-stdin", *oldStdin, false)
	if err != nil {
		return err
	}
	defer oldPIN.Wipe()
	newPIN, err := sec.get("new PIN", "--new-pin-stdin", *newStdin, true)
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
		warn(e, "%s", warning)
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
	puk, err := sec.get("PUK", "--puk-stdin", *pukStdin, false)
	if err != nil {
		return err
	}
	defer puk.Wipe()
	newPIN, err := sec.get("new PIN", "--new-pin-stdin", *newStdin, true)
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
