package wire

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

var dumpSamples = flag.String("dump-samples", "", "write each sample message's encoding to `dir`/<type in hex>.cbor (for pkcs11shim/c/ctest)")

// TestDumpSamples writes the encoding of every sample message when run
// with -dump-samples, so that the C codec of the PKCS#11 module can be
// checked against this package's, byte for byte. Without the flag it does
// nothing.
func TestDumpSamples(t *testing.T) {
	if *dumpSamples == "" {
		t.Skip("run with -dump-samples dir")
	}
	s := samples()
	for _, typ := range Types() {
		body, err := Marshal(s[typ])
		if err != nil {
			t.Fatal(err)
		}
		name := filepath.Join(*dumpSamples, fmt.Sprintf("%02x.cbor", uint8(typ)))
		if err := os.WriteFile(name, body, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}
