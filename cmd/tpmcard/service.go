package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	iofs "io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/kardianos/service"
	"github.com/rs/zerolog"
	"github.com/tpmcard/tpmcard/service/client"
	"github.com/tpmcard/tpmcard/service/server"
	"github.com/tpmcard/tpmcard/service/wire"
	"github.com/tpmcard/tpmcard/tpmcard"
	"github.com/tpmcard/tpmcard/tpmcard/backend"
	"golang.org/x/term"
)

func init() {
	register("service", "run", "run the service in the foreground", serviceRun)
	register("service", "install", "install the service (systemd on Linux, a Windows service, launchd)", serviceControl("install"))
	register("service", "uninstall", "remove the installed service", serviceControl("uninstall"))
	register("service", "start", "start the installed service", serviceControl("start"))
	register("service", "stop", "stop the installed service", serviceControl("stop"))
	register("service", "status", "say whether the service runs, and on which TPM", serviceStatus)
	register("service", "unit", "print the systemd unit that install writes", serviceUnit)
}

// DefaultConfigFile is read when it exists; flags override it.
const DefaultConfigFile = "/etc/tpmcard/config.json"

// Config is the service's configuration: the config file, then flags.
type Config struct {
	TPM        string `json:"tpm"`         // device, device:PATH, swtpm:HOST:PORT or sim
	StateDir   string `json:"state_dir"`   // card records
	Socket     string `json:"socket"`      // where clients connect
	CardGroup  string `json:"card_group"`  // who may use cards; empty: everyone
	AdminGroup string `json:"admin_group"` // who may provision and manage keys, besides root
	OwnerAuth  string `json:"owner_auth_file"`
	LogLevel   string `json:"log_level"`  // debug, info, warn, error
	LogFormat  string `json:"log_format"` // json (default; journald-friendly) or console
	MaxConns   int    `json:"max_connections"`
	// MaxConnsPerUser bounds one uid's connections; admins have no bound.
	MaxConnsPerUser int `json:"max_connections_per_user"`
	// IdleTimeout closes connections without a session after that long
	// ("2m"; "never"; empty: the default).
	IdleTimeout string `json:"idle_timeout"`

	// flags are the flags given on the command line, paths made
	// absolute: what an installed service runs with, besides its config.
	flags []string
}

func defaultConfig() Config {
	return Config{TPM: string(backend.Device), StateDir: tpmcard.DefaultStateDir, Socket: client.DefaultSocket, LogLevel: "info", LogFormat: "json"}
}

// loadConfig reads the config file (optional when it is the default one)
// and then applies the flags the user set.
func loadConfig(e *env, name string, args []string) (Config, string, error) {
	cfg, def := defaultConfig(), defaultConfig()
	fs := flags(e, name)
	file := fs.String("config", DefaultConfigFile, "config file (JSON); flags override it")
	var f Config
	fs.StringVar(&f.TPM, "tpm", "", tpmUsage+" (default "+def.TPM+")")
	fs.StringVar(&f.StateDir, "state-dir", "", "state directory (default "+def.StateDir+")")
	fs.StringVar(&f.Socket, "socket", "", "socket path (default "+def.Socket+")")
	fs.StringVar(&f.CardGroup, "card-group", "", "group allowed to use cards (default: everyone)")
	fs.StringVar(&f.AdminGroup, "admin-group", "", "group allowed to administer cards, besides root")
	fs.StringVar(&f.OwnerAuth, "owner-auth-file", "", "file holding the TPM owner password (default: empty password)")
	fs.StringVar(&f.LogLevel, "log-level", "", "debug, info, warn or error (default "+def.LogLevel+")")
	fs.StringVar(&f.LogFormat, "log-format", "", "json or console (default "+def.LogFormat+")")
	fs.IntVar(&f.MaxConns, "max-connections", 0, fmt.Sprintf("most simultaneous clients; an eighth of them is kept for administrators (default %d)", server.DefaultMaxConns))
	fs.IntVar(&f.MaxConnsPerUser, "max-connections-per-user", 0, fmt.Sprintf("most simultaneous clients of one user, administrators excepted (default %d)", server.DefaultMaxConnsPerUser))
	fs.StringVar(&f.IdleTimeout, "idle-timeout", "", fmt.Sprintf("close a connection that holds no session after this long without a request, or never (default %v)", server.DefaultIdleTimeout))
	if err := parse(fs, args); err != nil {
		return cfg, "", err
	}
	b, err := os.ReadFile(*file)
	switch {
	case errors.Is(err, iofs.ErrNotExist) && *file == DefaultConfigFile:
	case err != nil:
		return cfg, "", fmt.Errorf("reading config: %w", err)
	case len(strings.TrimSpace(string(b))) == 0: // an empty file sets nothing
	default:
		dec := json.NewDecoder(strings.NewReader(string(b)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&cfg); err != nil {
			return cfg, "", fmt.Errorf("reading config %s: %w", *file, err)
		}
	}
	fs.Visit(func(fl *flag.Flag) {
		switch fl.Name {
		case "tpm":
			cfg.TPM = f.TPM
		case "state-dir":
			cfg.StateDir = f.StateDir
		case "socket":
			cfg.Socket = f.Socket
		case "card-group":
			cfg.CardGroup = f.CardGroup
		case "admin-group":
			cfg.AdminGroup = f.AdminGroup
		case "owner-auth-file":
			cfg.OwnerAuth = f.OwnerAuth
		case "log-level":
			cfg.LogLevel = f.LogLevel
		case "log-format":
			cfg.LogFormat = f.LogFormat
		case "max-connections":
			cfg.MaxConns = f.MaxConns
		case "max-connections-per-user":
			cfg.MaxConnsPerUser = f.MaxConnsPerUser
		case "idle-timeout":
			cfg.IdleTimeout = f.IdleTimeout
		}
		if fl.Name == "config" {
			return
		}
		v := fl.Value.String()
		if p := pathOf(&cfg, fl.Name); p != nil {
			if abs, err := filepath.Abs(v); err == nil {
				v, *p = abs, abs
			}
		}
		cfg.flags = append(cfg.flags, "--"+fl.Name+"="+v)
	})
	if _, err := cfg.idleTimeout(); err != nil {
		return cfg, "", err
	}
	if cfg.MaxConns < 0 || cfg.MaxConnsPerUser < 0 {
		return cfg, "", fmt.Errorf("%w: connection limits must not be negative", errUsage)
	}
	if _, cfg.TPM, err = parseTPM(cfg.TPM); err != nil {
		return cfg, "", err
	}
	if _, err := zerolog.ParseLevel(cfg.LogLevel); err != nil || cfg.LogLevel == "" {
		return cfg, "", fmt.Errorf("%w: log level %q: want debug, info, warn or error", errUsage, cfg.LogLevel)
	}
	if cfg.LogFormat != "json" && cfg.LogFormat != "console" {
		return cfg, "", fmt.Errorf("%w: log format %q: want json or console", errUsage, cfg.LogFormat)
	}
	return cfg, *file, nil
}

// pathOf is the Config field of a flag that names a path, nil for other
// flags: a relative path on the command line is made absolute, in the
// configuration and in the flags an installed service runs with.
func pathOf(cfg *Config, flag string) *string {
	switch flag {
	case "state-dir":
		return &cfg.StateDir
	case "socket":
		return &cfg.Socket
	case "owner-auth-file":
		return &cfg.OwnerAuth
	}
	return nil
}

// idleTimeout reads IdleTimeout for server.Config: 0 is the default, a
// negative value never.
func (c Config) idleTimeout() (time.Duration, error) {
	switch c.IdleTimeout {
	case "":
		return 0, nil
	case "never":
		return -1, nil
	}
	d, err := time.ParseDuration(c.IdleTimeout)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("%w: idle timeout %q: want a duration such as 2m, or never", errUsage, c.IdleTimeout)
	}
	return d, nil
}

func newLogger(w io.Writer, cfg Config) zerolog.Logger {
	lvl, _ := zerolog.ParseLevel(cfg.LogLevel)
	if cfg.LogFormat == "console" {
		f, ok := w.(*os.File)
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: time.RFC3339, NoColor: !ok || !term.IsTerminal(int(f.Fd()))}
	}
	return zerolog.New(w).Level(lvl).With().Timestamp().Logger()
}

// program is the service as kardianos/service runs it: Start returns once
// the TPM is open and the socket listens; Stop shuts down gracefully.
type program struct {
	cfg Config
	log zerolog.Logger

	tpm io.Closer
	m   *tpmcard.Manager
	srv *server.Server
}

func (p *program) Start(service.Service) error {
	spec, err := backend.Parse(p.cfg.TPM)
	if err != nil {
		return err
	}
	var ownerAuth []byte
	if p.cfg.OwnerAuth != "" {
		b, err := os.ReadFile(p.cfg.OwnerAuth)
		if err != nil {
			return fmt.Errorf("reading the owner password: %w", err)
		}
		ownerAuth = []byte(strings.TrimRight(string(b), "\r\n"))
	}
	// A link, not a bare connection: when the TPM goes away (swtpm
	// restarted, a device error) it reopens it, and the Manager starts over.
	tpm, err := backend.OpenLink(spec)
	if err != nil {
		return err
	}
	caps, err := backend.Probe(tpm)
	if err != nil {
		tpm.Close()
		return fmt.Errorf("probing the TPM: %w", err)
	}
	// The server ends every login when the Manager loses the TPM; it is
	// made after the Manager, which takes the hook first.
	var srvRef atomic.Pointer[server.Server]
	onLost := func() {
		if s := srvRef.Load(); s != nil {
			s.TPMLost()
		}
	}
	opts := []tpmcard.Option{tpmcard.WithStateDir(p.cfg.StateDir), tpmcard.WithOwnerAuth(ownerAuth), tpmcard.WithTPMLost(onLost)}
	if withoutResourceManager(spec) {
		opts = append(opts, tpmcard.WithFlushLeftovers())
	}
	m, err := tpmcard.Open(tpm, opts...)
	for i := range ownerAuth {
		ownerAuth[i] = 0
	}
	if err != nil {
		tpm.Close()
		return err
	}
	if l := m.Leftovers(); l.Objects > 0 || l.Sessions > 0 {
		p.log.Info().Str("event", "cleanup").Int("objects", l.Objects).Int("sessions", l.Sessions).Str("tpm", spec.String()).
			Msg(leftoversMessage(l))
	}
	if n := m.StaleFilesRemoved(); n > 0 {
		p.log.Info().Str("event", "cleanup").Int("files", n).Str("state_dir", p.cfg.StateDir).
			Msg("removed temporary files that writes cut short by a killed service left in the state directory")
	}
	idle, _ := p.cfg.idleTimeout() // checked by loadConfig
	srv, err := server.New(server.Config{
		Socket: p.cfg.Socket, Manager: m, Backend: string(spec.Kind), Simulated: !spec.HardwareProtected(),
		CardGroup: p.cfg.CardGroup, AdminGroup: p.cfg.AdminGroup, Logger: p.log, MaxConns: p.cfg.MaxConns,
		MaxConnsPerUser: p.cfg.MaxConnsPerUser, IdleTimeout: idle,
		Random: m, Version: version, TPMManufacturer: caps.Manufacturer, TPMFirmware: caps.FirmwareVersion,
		TPMState: linkState(tpm),
		PIVState: filepath.Join(p.cfg.StateDir, "piv.json"), // beside the card records, never in them
	})
	srvRef.Store(srv)
	if err == nil {
		err = srv.Start(context.Background())
	}
	if err != nil {
		m.Close()
		tpm.Close()
		return err
	}
	p.tpm, p.m, p.srv = tpm, m, srv
	ev := p.log.Info()
	if !spec.HardwareProtected() {
		ev = p.log.Warn().Bool("simulated", true)
	}
	ev.Str("event", "start").Str("tpm", spec.String()).Str("manufacturer", caps.Manufacturer).
		Str("firmware", caps.FirmwareVersion).Str("socket", p.cfg.Socket).Str("state_dir", p.cfg.StateDir).
		Str("version", version).Msg(startMessage(spec))
	return nil
}

// withoutResourceManager reports whether nothing flushes what a killed
// service left in the TPM, so that the service flushes it at start: swtpm,
// and a Linux TPM opened as /dev/tpmN rather than through the kernel's
// resource manager (/dev/tpmrmN). Windows' TBS manages its TPM, and the
// simulator dies with the service.
func withoutResourceManager(spec backend.Spec) bool {
	switch spec.Kind {
	case backend.SWTPM:
		return true
	case backend.Device:
		return spec.Path != "" && !strings.HasPrefix(filepath.Base(spec.Path), "tpmrm")
	}
	return false
}

func leftoversMessage(l tpmcard.Leftovers) string {
	n := func(k int, one, many string) string {
		if k == 1 {
			return "1 " + one
		}
		return fmt.Sprintf("%d %s", k, many)
	}
	return "flushed " + n(l.Objects, "transient object", "transient objects") + " and " +
		n(l.Sessions, "session", "sessions") + " left in the TPM by an earlier run"
}

// linkState reports a Link's state to the server; other TPMs (the
// in-process simulator) are always reachable.
func linkState(t any) func() server.TPMState {
	l, ok := t.(*backend.Link)
	if !ok {
		return nil
	}
	return func() server.TPMState {
		s := l.State()
		return server.TPMState{Up: s.Up, DownSince: s.DownSince, Err: s.Err, Reconnects: s.Reconnects}
	}
}

func startMessage(spec backend.Spec) string {
	if spec.HardwareProtected() {
		return "tpmcard service started"
	}
	return "tpmcard service started on a SOFTWARE TPM: keys are NOT hardware-protected"
}

func (p *program) Stop(service.Service) error {
	if p.srv == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := p.srv.Stop(ctx)
	p.m.Close()
	p.tpm.Close()
	p.log.Info().Str("event", "stop").Msg("tpmcard service stopped")
	return err
}

// runArgs are the arguments of the installed service's `service run`: the
// config file unless it is the default one, and the flags given to install
// (or unit), so that the service runs as they say.
func runArgs(cfg Config, configFile string) ([]string, error) {
	var args []string
	if configFile != DefaultConfigFile {
		abs, err := filepath.Abs(configFile)
		if err != nil {
			return nil, err
		}
		args = append(args, "--config="+abs)
	}
	return append(args, cfg.flags...), nil
}

func newService(p *program, configFile string) (service.Service, error) {
	flags, err := runArgs(p.cfg, configFile)
	if err != nil {
		return nil, err
	}
	args := append([]string{"service", "run"}, flags...)
	sc := &service.Config{
		Name:        "tpmcard",
		DisplayName: "tpmcard virtual smart card",
		Description: "Virtual smart cards in the TPM, served to PKCS#11 and CLI clients",
		Arguments:   args,
		Option:      service.KeyValue{},
	}
	if service.ChosenSystem() != nil && strings.HasPrefix(service.ChosenSystem().String(), "linux-systemd") {
		sc.Option["SystemdScript"] = systemdUnit(p.cfg, "", nil)
	}
	return service.New(p, sc)
}

func serviceRun(e *env, args []string) error {
	cfg, file, err := loadConfig(e, "service run", args)
	if err != nil {
		return err
	}
	p := &program{cfg: cfg, log: newLogger(e.stderr, cfg)}
	if service.Interactive() {
		// In the foreground: run until SIGINT or SIGTERM.
		if err := p.Start(nil); err != nil {
			return err
		}
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
		<-sig
		return p.Stop(nil)
	}
	s, err := newService(p, file)
	if err != nil {
		return err
	}
	return s.Run()
}

func serviceControl(action string) func(e *env, args []string) error {
	return func(e *env, args []string) error {
		cfg, file, err := loadConfig(e, "service "+action, args)
		if err != nil {
			return err
		}
		s, err := newService(&program{cfg: cfg}, file)
		if err != nil {
			return err
		}
		if err := service.Control(s, action); err != nil {
			return fmt.Errorf("service %s: %w", action, err)
		}
		fmt.Fprintf(e.stdout, "service %s: done\n", action)
		return nil
	}
}

func serviceStatus(e *env, args []string) error {
	fs := flags(e, "service status")
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
	st, err := cl.Status()
	if err != nil {
		return err
	}
	if !st.HardwareProtected {
		defer softwareTPM(e)
	}
	if c.json {
		return printJSON(e.stdout, statusViewOf(st, c.socket))
	}
	fmt.Fprintf(e.stdout, "service   running (version %s) at %s\nTPM       %s, manufacturer %q, firmware %s\n",
		st.Version, c.socket, st.Backend, st.Manufacturer, st.Firmware)
	if st.TPMDownSince != 0 {
		fmt.Fprintf(e.stdout, "          UNREACHABLE since %s (%s): reconnecting; logins ended\n",
			time.Unix(st.TPMDownSince, 0).Format(time.RFC3339), st.TPMError)
	} else if st.TPMReconnects > 0 {
		fmt.Fprintf(e.stdout, "          reachable (reconnected %d times since the service started)\n", st.TPMReconnects)
	}
	fmt.Fprintf(e.stdout, "cards     %d\n", st.Cards)
	return nil
}

func serviceUnit(e *env, args []string) error {
	cfg, file, err := loadConfig(e, "service unit", args)
	if err != nil {
		return err
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	run, err := runArgs(cfg, file)
	if err != nil {
		return err
	}
	_, err = io.WriteString(e.stdout, systemdUnit(cfg, exe, run))
	return err
}

// statusView is service status --json.
type statusView struct {
	State             string     `json:"state"` // "running", or "tpm_unreachable" while the TPM is away
	Version           string     `json:"version"`
	Socket            string     `json:"socket"`
	Backend           string     `json:"backend"`
	Simulated         bool       `json:"simulated"`
	HardwareProtected bool       `json:"hardware_protected"`
	Manufacturer      string     `json:"manufacturer"`
	Firmware          string     `json:"firmware"`
	Cards             int        `json:"cards"`
	TPMDownSince      *time.Time `json:"tpm_down_since,omitempty"`
	TPMError          string     `json:"tpm_error,omitempty"`
	TPMReconnects     uint64     `json:"tpm_reconnects"`
}

func statusViewOf(st *wire.ServiceStatus, socket string) statusView {
	v := statusView{
		State: "running", Version: st.Version, Socket: socket, Backend: st.Backend, Simulated: st.Simulated,
		HardwareProtected: st.HardwareProtected, Manufacturer: st.Manufacturer, Firmware: st.Firmware,
		Cards: st.Cards, TPMError: st.TPMError, TPMReconnects: st.TPMReconnects,
	}
	if st.TPMDownSince != 0 {
		t := time.Unix(st.TPMDownSince, 0).UTC()
		v.State, v.TPMDownSince = "tpm_unreachable", &t
	}
	return v
}
