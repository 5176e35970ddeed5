package main

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/tpmcard/tpmcard/tpmcard/backend"
)

// systemdUnit is the hardened unit the service installs under: the TPM
// device and the state and runtime directories are all it may touch. exe
// empty means the kardianos template variable for the installed binary.
func systemdUnit(cfg Config, exe string, args []string) string {
	execStart := "{{Path | cmdEscape}}{{range Arguments}} {{. | cmd}}{{end}}"
	if exe != "" {
		execStart = unitQuote(exe) + " service run"
		for _, a := range args {
			execStart += " " + unitQuote(a)
		}
	}
	spec, _ := backend.Parse(cfg.TPM)
	var b strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&b, format+"\n", a...) }
	w("[Unit]")
	w("Description=tpmcard virtual smart card service")
	w("Documentation=https://github.com/tpmcard/tpmcard")
	w("")
	w("[Service]")
	w("ExecStart=%s", execStart)
	w("Restart=on-failure")
	w("RestartSec=5")
	// systemd makes the runtime and state directories when they are its
	// own (under /run and /var/lib); others must exist.
	if d, ok := strings.CutPrefix(filepath.Dir(cfg.Socket), "/run/"); ok {
		w("RuntimeDirectory=%s", d)
		w("RuntimeDirectoryMode=0755")
	}
	if d, ok := strings.CutPrefix(cfg.StateDir, "/var/lib/"); ok {
		w("StateDirectory=%s", d)
		w("StateDirectoryMode=0700")
	}
	w("ProtectSystem=strict")
	w("ReadWritePaths=%s %s", cfg.StateDir, filepath.Dir(cfg.Socket))
	w("ProtectHome=true")
	w("PrivateTmp=true")
	w("NoNewPrivileges=true")
	w("ProtectKernelTunables=true")
	w("ProtectKernelModules=true")
	w("ProtectControlGroups=true")
	w("RestrictNamespaces=true")
	w("RestrictRealtime=true")
	w("LockPersonality=true")
	w("MemoryDenyWriteExecute=true")
	w("SystemCallArchitectures=native")
	w("CapabilityBoundingSet=")
	switch spec.Kind {
	case backend.Device:
		// spec.Path is the device backend.Parse names (the kernel's
		// resource manager unless --tpm device:PATH says otherwise).
		w("DevicePolicy=closed")
		if spec.Path != "" {
			w("DeviceAllow=%s rw", spec.Path)
		}
		w("PrivateNetwork=true")
		w("RestrictAddressFamilies=AF_UNIX")
	case backend.SWTPM:
		w("PrivateDevices=true")
		w("RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6")
	default:
		w("PrivateDevices=true")
		w("PrivateNetwork=true")
		w("RestrictAddressFamilies=AF_UNIX")
	}
	w("")
	w("[Install]")
	w("WantedBy=multi-user.target")
	return b.String()
}

// unitQuote quotes a word of ExecStart (systemd.service(5), "Command
// lines"): as it is when it needs no quoting, else in double quotes with
// backslash escapes; % is doubled, since systemd expands specifiers.
func unitQuote(s string) string {
	s = strings.ReplaceAll(s, "%", "%%")
	if s != "" && !strings.ContainsAny(s, " \t\n\"'\\;$") {
		return s
	}
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`, "\t", `\t`, "$", "$$")
	return `"` + r.Replace(s) + `"`
}
