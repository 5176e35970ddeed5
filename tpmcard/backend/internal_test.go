package backend

import (
	"testing"

	"github.com/google/go-tpm/tpm2"
)

func TestASCII(t *testing.T) {
	tests := []struct {
		name string
		in   []uint32
		want string
	}{
		{"ok/ibm-padded", []uint32{0x49424d00}, "IBM"},
		{"ok/four", []uint32{0x4d534654}, "MSFT"},
		{"ok/spaces", []uint32{0x53572020, 0x2054504d, 0, 0}, "SW   TPM"},
		{"ok/unprintable-dropped", []uint32{0x01414207}, "AB"},
		{"ok/empty", []uint32{0}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ascii(tt.in...); got != tt.want {
				t.Errorf("ascii(%#x) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestCurveNames(t *testing.T) {
	c := &Capabilities{curveIDs: []tpm2.TPMECCCurve{tpm2.TPMECCNistP256, tpm2.TPMECCNistP384, tpm2.TPMECCBNP256, 0x7777}}
	for _, name := range []string{"P-256", "p256", "secp256r1", "prime256v1", "NIST P-256", "P_384", "secp384r1", "bn-p256", "curve-0x7777"} {
		if !c.SupportsCurve(name) {
			t.Errorf("ok/%s: SupportsCurve = false", name)
		}
	}
	for _, name := range []string{"P-521", "secp521r1", "", "p"} {
		if c.SupportsCurve(name) {
			t.Errorf("fail/%s: SupportsCurve = true", name)
		}
	}
}
