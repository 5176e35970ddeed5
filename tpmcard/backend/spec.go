package backend

import (
	"fmt"
	"net"
	"strconv"
	"strings"
)

// Kind names a kind of TPM backend.
type Kind string

// The backend kinds.
const (
	// Device is the TPM of this computer.
	Device Kind = "device"
	// SWTPM is a software TPM reached over the reference simulator's TCP protocol.
	SWTPM Kind = "swtpm"
	// Sim is the in-process reference simulator.
	Sim Kind = "sim"
)

// DefaultSWTPMAddr is the command address of a software TPM when none is given.
const DefaultSWTPMAddr = "127.0.0.1:2321"

// Spec says which TPM to open.
type Spec struct {
	Kind Kind
	// Path is the device file for Device; empty means the OS default
	// (/dev/tpmrm0 on Linux; Windows has no path, it uses TBS).
	Path string
	// Addr is the command address HOST:PORT for SWTPM; the platform channel
	// is on PORT+1. Empty means DefaultSWTPMAddr.
	Addr string
}

// Parse reads a backend value: device, device:PATH, swtpm, swtpm:PORT,
// swtpm:HOST:PORT or sim.
func Parse(s string) (Spec, error) {
	kind, rest, hasArg := strings.Cut(strings.TrimSpace(s), ":")
	switch Kind(kind) {
	case Device:
		if !hasArg {
			return Spec{Kind: Device, Path: defaultDevicePath}, nil
		}
		if rest == "" {
			return Spec{}, fmt.Errorf("TPM backend %q: missing device path after \"device:\"", s)
		}
		return Spec{Kind: Device, Path: rest}, nil
	case SWTPM:
		if !hasArg {
			return Spec{Kind: SWTPM, Addr: DefaultSWTPMAddr}, nil
		}
		addr, err := parseSWTPMAddr(rest)
		if err != nil {
			return Spec{}, fmt.Errorf("TPM backend %q: %w", s, err)
		}
		return Spec{Kind: SWTPM, Addr: addr}, nil
	case Sim:
		if hasArg {
			return Spec{}, fmt.Errorf("TPM backend %q: sim takes no argument", s)
		}
		return Spec{Kind: Sim}, nil
	}
	return Spec{}, fmt.Errorf("unknown TPM backend %q: use device, swtpm:HOST:PORT or sim", s)
}

// parseSWTPMAddr reads PORT or HOST:PORT ([IPv6]:PORT) into HOST:PORT.
func parseSWTPMAddr(s string) (string, error) {
	host, port := "127.0.0.1", s
	if strings.Contains(s, ":") {
		var err error
		host, port, err = net.SplitHostPort(s)
		if err != nil {
			return "", fmt.Errorf("want HOST:PORT or PORT: %w", err)
		}
		if host == "" {
			return "", fmt.Errorf("empty host in %q", s)
		}
	}
	if _, err := commandPort(port); err != nil {
		return "", err
	}
	return net.JoinHostPort(host, port), nil
}

// commandPort checks a command port; the platform port after it must fit too.
func commandPort(port string) (int, error) {
	p, err := strconv.Atoi(port)
	if err != nil || p < 1 || p > 65534 {
		return 0, fmt.Errorf("bad port %q: want 1-65534 (the platform port is PORT+1)", port)
	}
	return p, nil
}

// String returns the value that Parse reads back into s.
func (s Spec) String() string {
	switch s.Kind {
	case Device:
		if s.Path == "" {
			return string(Device)
		}
		return string(Device) + ":" + s.Path
	case SWTPM:
		if s.Addr == "" {
			return string(SWTPM) + ":" + DefaultSWTPMAddr
		}
		return string(SWTPM) + ":" + s.Addr
	}
	return string(s.Kind)
}

// Simulated reports whether s is the in-process simulator.
func (s Spec) Simulated() bool { return s.Kind == Sim }

// HardwareProtected reports whether keys in the TPM that s names are
// protected by hardware: false for swtpm and sim, whose state is a file or
// process memory.
func (s Spec) HardwareProtected() bool { return s.Kind == Device }
