package main

import (
	"fmt"
	"strings"

	"github.com/tpmcard/tpmcard/tpmcard"
	"github.com/tpmcard/tpmcard/tpmcard/backend"
)

func init() {
	register("tpm", "info", "describe a TPM: maker, firmware, and the algorithms cards can use (talks to the TPM directly)", tpmInfo)
}

func tpmInfo(e *env, args []string) error {
	fs := flags(e, "tpm info")
	spec := fs.String("tpm", string(backend.Device), tpmUsage)
	js := fs.Bool("json", false, "print JSON")
	if err := parse(fs, args); err != nil {
		return err
	}
	sp, _, err := parseTPM(*spec)
	if err != nil {
		return err
	}
	tpm, err := backend.Open(sp)
	if err != nil {
		return err
	}
	defer tpm.Close()
	caps, err := backend.Probe(tpm)
	if err != nil {
		return fmt.Errorf("probing the TPM: %w", err)
	}
	var algs []string
	for _, a := range tpmcard.Algorithms() {
		ok := false
		switch a {
		case tpmcard.ECDSAP256:
			ok = caps.SupportsCurve("P-256")
		case tpmcard.ECDSAP384:
			ok = caps.SupportsCurve("P-384")
		default:
			ok = caps.SupportsRSA(a.Bits())
		}
		if ok {
			algs = append(algs, string(a))
		}
	}
	if !sp.HardwareProtected() {
		defer fmt.Fprintln(e.stderr, "tpmcard: WARNING: software TPM: keys are NOT hardware-protected")
	}
	if *js {
		return printJSON(e.stdout, struct {
			Backend           string   `json:"backend"`
			HardwareProtected bool     `json:"hardware_protected"`
			Manufacturer      string   `json:"manufacturer"`
			Vendor            string   `json:"vendor"`
			Firmware          string   `json:"firmware"`
			CardAlgorithms    []string `json:"card_algorithms"`
			Curves            []string `json:"curves"`
			RSAKeySizes       []int    `json:"rsa_key_sizes"`
			Hashes            []string `json:"hashes"`
		}{sp.String(), sp.HardwareProtected(), caps.Manufacturer, caps.VendorString, caps.FirmwareVersion,
			algs, caps.Curves, caps.RSAKeySizes, caps.Hashes})
	}
	fmt.Fprintf(e.stdout, "TPM        %s\nbackend    %s\nkeys       %s\ncurves     %s\nRSA        %v\nhashes     %s\n",
		caps, sp, strings.Join(algs, ", "), strings.Join(caps.Curves, ", "), caps.RSAKeySizes, strings.Join(caps.Hashes, ", "))
	return nil
}
