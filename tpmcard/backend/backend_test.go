package backend_test

import (
	"crypto"
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"
	"github.com/tpmcard/tpmcard/tpmcard/backend"
	"github.com/tpmcard/tpmcard/tpmcard/tpmtest"
)

func TestParse(t *testing.T) {
	defaultPath := ""
	if runtime.GOOS == "linux" {
		defaultPath = "/dev/tpmrm0"
	}
	tests := []struct {
		name string
		in   string
		want backend.Spec
		err  string // substring of the error; empty for ok cases
	}{
		{"ok/device", "device", backend.Spec{Kind: backend.Device, Path: defaultPath}, ""},
		{"ok/device-path", "device:/dev/tpm0", backend.Spec{Kind: backend.Device, Path: "/dev/tpm0"}, ""},
		{"ok/swtpm", "swtpm", backend.Spec{Kind: backend.SWTPM, Addr: "127.0.0.1:2321"}, ""},
		{"ok/swtpm-port", "swtpm:2400", backend.Spec{Kind: backend.SWTPM, Addr: "127.0.0.1:2400"}, ""},
		{"ok/swtpm-host-port", "swtpm:tpm.example:2400", backend.Spec{Kind: backend.SWTPM, Addr: "tpm.example:2400"}, ""},
		{"ok/swtpm-ipv6", "swtpm:[::1]:2400", backend.Spec{Kind: backend.SWTPM, Addr: "[::1]:2400"}, ""},
		{"ok/sim", "sim", backend.Spec{Kind: backend.Sim}, ""},
		{"ok/spaces", " sim\n", backend.Spec{Kind: backend.Sim}, ""},
		{"fail/empty", "", backend.Spec{}, "use device, swtpm:HOST:PORT or sim"},
		{"fail/unknown", "tpm2", backend.Spec{}, `unknown TPM backend "tpm2": use device, swtpm:HOST:PORT or sim`},
		{"fail/uppercase", "SIM", backend.Spec{}, "unknown TPM backend"},
		{"fail/device-empty-path", "device:", backend.Spec{}, "missing device path"},
		{"fail/swtpm-empty", "swtpm:", backend.Spec{}, "bad port"},
		{"fail/swtpm-port-text", "swtpm:abc", backend.Spec{}, "bad port"},
		{"fail/swtpm-port-zero", "swtpm:0", backend.Spec{}, "bad port"},
		{"fail/swtpm-port-no-platform", "swtpm:65535", backend.Spec{}, "platform port"},
		{"fail/swtpm-empty-host", "swtpm::2321", backend.Spec{}, "empty host"},
		{"fail/swtpm-empty-port", "swtpm:localhost:", backend.Spec{}, "bad port"},
		{"fail/swtpm-ipv6-bare", "swtpm:::1:2321", backend.Spec{}, "HOST:PORT"},
		{"fail/sim-arg", "sim:1", backend.Spec{}, "sim takes no argument"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := backend.Parse(tt.in)
			if tt.err != "" {
				if err == nil {
					t.Fatalf("Parse(%q) = %+v, want an error", tt.in, got)
				}
				if !strings.Contains(err.Error(), tt.err) {
					t.Errorf("Parse(%q) error %q, want it to contain %q", tt.in, err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.in, err)
			}
			if got != tt.want {
				t.Errorf("Parse(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
			back, err := backend.Parse(got.String())
			if err != nil || back != got {
				t.Errorf("Parse(%q.String() = %q) = %+v, %v; want %+v", tt.in, got.String(), back, err, got)
			}
		})
	}
}

func TestSpecString(t *testing.T) {
	tests := []struct {
		spec backend.Spec
		want string
	}{
		{backend.Spec{Kind: backend.Device}, "device"},
		{backend.Spec{Kind: backend.Device, Path: "/dev/tpm0"}, "device:/dev/tpm0"},
		{backend.Spec{Kind: backend.SWTPM}, "swtpm:127.0.0.1:2321"},
		{backend.Spec{Kind: backend.SWTPM, Addr: "[::1]:2400"}, "swtpm:[::1]:2400"},
		{backend.Spec{Kind: backend.Sim}, "sim"},
	}
	for _, tt := range tests {
		if got := tt.spec.String(); got != tt.want {
			t.Errorf("%+v.String() = %q, want %q", tt.spec, got, tt.want)
		}
	}
}

func TestSpecProtection(t *testing.T) {
	tests := []struct {
		kind                backend.Kind
		simulated, hardware bool
	}{
		{backend.Device, false, true},
		{backend.SWTPM, false, false},
		{backend.Sim, true, false},
	}
	for _, tt := range tests {
		s := backend.Spec{Kind: tt.kind}
		if s.Simulated() != tt.simulated || s.HardwareProtected() != tt.hardware {
			t.Errorf("%s: Simulated %v HardwareProtected %v, want %v %v",
				tt.kind, s.Simulated(), s.HardwareProtected(), tt.simulated, tt.hardware)
		}
	}
}

func TestOpenUnknownKind(t *testing.T) {
	if _, err := backend.Open(backend.Spec{}); err == nil || !strings.Contains(err.Error(), "unknown TPM backend") {
		t.Errorf("Open(Spec{}) error = %v, want unknown TPM backend", err)
	}
}

var fourParts = regexp.MustCompile(`^\d+\.\d+\.\d+\.\d+$`)

// checkTPM probes tpm and checks what every TPM tpmcard uses must have.
func checkTPM(t *testing.T, tpm transport.TPM) *backend.Capabilities {
	t.Helper()
	c, err := backend.Probe(tpm)
	if err != nil {
		t.Fatalf("Probe: %v", err)
	}
	t.Logf("%s", c)
	t.Logf("manufacturer %q vendor %q type %#x firmware %s spec %s level %d rev %d (%d day %d)",
		c.Manufacturer, c.VendorString, c.VendorTPMType, c.FirmwareVersion, c.SpecFamily, c.SpecLevel,
		c.SpecRevision, c.SpecYear, c.SpecDayOfYear)
	t.Logf("curves %v RSA %v hashes %v", c.Curves, c.RSAKeySizes, c.Hashes)
	t.Logf("NV: index max %d, buffer max %d, indices %d, counters max %d avail %d, persistent avail %d",
		c.NVIndexMax, c.NVBufferMax, c.NVIndices, c.NVCountersMax, c.NVCountersAvail, c.PersistentAvail)
	t.Logf("limits: transient min %d avail %d, loaded sessions min %d avail %d, active sessions max %d, command %d, response %d, input buffer %d",
		c.TransientMin, c.TransientAvail, c.LoadedMin, c.LoadedAvail, c.ActiveSessionsMax,
		c.MaxCommandSize, c.MaxResponseSize, c.InputBuffer)
	t.Logf("DA: ownerAuthSet %v lockoutAuthSet %v inLockout %v counter %d maxAuthFail %d interval %ds recovery %ds",
		c.OwnerAuthSet, c.LockoutAuthSet, c.InLockout, c.LockoutCounter, c.MaxAuthFail, c.LockoutInterval, c.LockoutRecovery)

	if c.Manufacturer == "" {
		t.Errorf("empty manufacturer")
	}
	if c.SpecFamily != "2.0" {
		t.Errorf("spec family %q, want 2.0", c.SpecFamily)
	}
	if !fourParts.MatchString(c.FirmwareVersion) {
		t.Errorf("firmware version %q, want a.b.c.d", c.FirmwareVersion)
	}
	for _, name := range []string{"P-256", "p256", "secp256r1", "NIST P-256"} {
		if !c.SupportsCurve(name) {
			t.Errorf("SupportsCurve(%q) = false", name)
		}
	}
	if c.SupportsCurve("P-255") {
		t.Errorf("SupportsCurve(P-255) = true")
	}
	if !c.SupportsRSA(2048) {
		t.Errorf("SupportsRSA(2048) = false")
	}
	if c.SupportsRSA(1000) {
		t.Errorf("SupportsRSA(1000) = true")
	}
	if !c.SupportsHash(crypto.SHA256) || !c.SupportsAlg(tpm2.TPMAlgECC) || !c.SupportsAlg(tpm2.TPMAlgAES) {
		t.Errorf("SHA-256, ECC or AES missing: %v", c.Algorithms)
	}
	if c.SupportsHash(crypto.MD5) {
		t.Errorf("SupportsHash(MD5) = true")
	}
	if c.NVIndexMax < 8 || c.MaxCommandSize == 0 || c.ActiveSessionsMax == 0 || c.TransientMin < 3 || c.LoadedMin < 3 {
		t.Errorf("implausible limits: %+v", c)
	}
	if _, ok := c.Properties[tpm2.TPMPTLockoutCounter]; !ok || len(c.Properties) < 40 {
		t.Errorf("fixed and variable properties not all read: %d of them", len(c.Properties))
	}

	rnd, err := tpm2.GetRandom{BytesRequested: 32}.Execute(tpm)
	if err != nil {
		t.Fatalf("GetRandom: %v", err)
	}
	if len(rnd.RandomBytes.Buffer) != 32 {
		t.Errorf("GetRandom: %d bytes, want 32", len(rnd.RandomBytes.Buffer))
	}
	return c
}

func TestOpenProbe(t *testing.T) {
	t.Run("sim", func(t *testing.T) {
		spec, err := backend.Parse("sim")
		if err != nil {
			t.Fatal(err)
		}
		tpm, err := backend.Open(spec)
		if errors.Is(err, backend.ErrSimUnavailable) {
			t.Skip("in-process TPM simulator needs cgo")
		}
		if err != nil {
			t.Fatalf("Open(sim): %v", err)
		}
		defer tpm.Close()
		checkTPM(t, tpm)
	})
	t.Run("swtpm", func(t *testing.T) {
		s := tpmtest.StartSWTPM(t)
		spec, err := backend.Parse(s.Spec())
		if err != nil {
			t.Fatal(err)
		}
		// swtpm is already started (--flags startup-clear): Open accepts
		// TPM_RC_INITIALIZE, each time.
		for range 2 {
			tpm, err := backend.Open(spec)
			if err != nil {
				t.Fatalf("Open(%s): %v", spec, err)
			}
			checkTPM(t, tpm)
			if err := tpm.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
		}
	})
}

func TestOpenSimBusy(t *testing.T) {
	first, err := backend.Open(backend.Spec{Kind: backend.Sim})
	if errors.Is(err, backend.ErrSimUnavailable) {
		t.Skip("in-process TPM simulator needs cgo")
	}
	if err != nil {
		t.Fatal(err)
	}
	if second, err := backend.Open(backend.Spec{Kind: backend.Sim}); !errors.Is(err, backend.ErrSimBusy) {
		if second != nil {
			second.Close()
		}
		t.Errorf("second Open(sim) error = %v, want ErrSimBusy", err)
	}
	if err := first.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := first.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	again, err := backend.OpenSimFixedSeedInsecure(7)
	if err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	if err := again.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestOpenDeviceMissing(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("device paths are Linux only")
	}
	path := filepath.Join(t.TempDir(), "tpmrm0")
	tpm, err := backend.Open(backend.Spec{Kind: backend.Device, Path: path})
	if err == nil {
		tpm.Close()
		t.Fatal("Open of a missing device succeeded")
	}
	if !errors.Is(err, backend.ErrNoTPM) || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("error %v is not ErrNoTPM and fs.ErrNotExist", err)
	}
	for _, want := range []string{"no TPM at " + path, "--tpm sim", "--tpm swtpm:HOST:PORT", "NOT hardware-protected"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
}

func TestOpenDefaultDeviceMissing(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("device paths are Linux only")
	}
	if _, err := os.Stat("/dev/tpmrm0"); err == nil {
		t.Skip("this machine has /dev/tpmrm0")
	}
	spec, err := backend.Parse("device")
	if err != nil {
		t.Fatal(err)
	}
	_, err = backend.Open(spec)
	if !errors.Is(err, backend.ErrNoTPM) || !strings.Contains(err.Error(), "no TPM at /dev/tpmrm0") {
		t.Errorf("Open(device) error = %v, want no TPM at /dev/tpmrm0", err)
	}
	t.Logf("%v", err)
}

func TestOpenDeviceNotDevice(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("device paths are Linux only")
	}
	path := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := backend.Open(backend.Spec{Kind: backend.Device, Path: path})
	if err == nil || errors.Is(err, backend.ErrNoTPM) || !strings.Contains(err.Error(), "not a TPM character device") {
		t.Errorf("Open of a regular file: error = %v, want not a TPM character device", err)
	}
}

func TestOpenSWTPMNotListening(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	_, err = backend.Open(backend.Spec{Kind: backend.SWTPM, Addr: addr})
	if err == nil || !strings.Contains(err.Error(), "opening swtpm at "+addr) {
		t.Errorf("Open of a closed port: error = %v, want opening swtpm at %s", err, addr)
	}
}
