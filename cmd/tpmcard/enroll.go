package main

import (
	"fmt"
	"io"

	"github.com/tpmcard/tpmcard/tpmcard"
)

func init() {
	register("", "enroll", "generate a key if needed and write its request; --import finishes", enroll)
}

// enroll: the common case in one step.
func enroll(e *env, args []string) error {
	fs := flags(e, "enroll")
	var r requestCmd
	r.add(fs)
	algName := fs.String("alg", string(tpmcard.ECDSAP256), "algorithm of the key generated when the card has none: "+algorithms())
	imp := fs.String("import", "", "finish an enrollment: install the issued certificate in this `FILE` (PEM or DER)")
	chain := fs.String("chain", "", "with --import: a `FILE` of the issuing CA's certificates, to check the certificate against")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *imp != "" {
		ia := importArgs{c: r.c, file: *imp, chain: *chain, template: r.rf.template}
		return ia.run(e)
	}
	alg, err := parseAlg(*algName)
	if err != nil {
		return err
	}
	cl, t, err := r.c.open()
	if err != nil {
		return err
	}
	defer cl.Close()
	keys, err := listKeys(cl, t.Serial)
	if err != nil {
		return err
	}
	if len(keys) == 0 {
		// Check the flags before generating; run warns again, so quietly.
		quiet := *e
		quiet.stderr = io.Discard
		if _, err := r.rf.build(&quiet, nil); err != nil {
			return err
		}
		sess, err := cl.OpenSession(t.Serial, true)
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stderr, "generating a %s key in the TPM\n", alg)
		_, _, err = cl.GenerateKeyPair(sess, string(alg), "enrollment", nil, nil)
		cl.CloseSession(sess)
		if err != nil {
			return err
		}
		if keys, err = listKeys(cl, t.Serial); err != nil {
			return err
		}
	}
	k, err := pickKey(keys, r.key)
	if err != nil {
		return err
	}
	return r.run(e, cl, t, k)
}
