// Command pop3d is the mail service: the POP3 service, the SMTP and
// delivery services and the admin listener, in one process.
//
//	pop3d [-config FILE]          run (SIGHUP reloads the file, SIGTERM/SIGINT drain and stop)
//	pop3d -check [-config FILE]   validate the configuration and what the start would check, exit 0/1
//	pop3d -demo [-config FILE]    run, creating the demo mailbox when the store is empty (make run)
//	pop3d -version                print the version
//
// Without -config: $POP3D_CONFIG, else ./pop3d.toml if present, else the
// embedded defaults.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/pop3svc/pop3svc/cmd/internal/config"
	"github.com/pop3svc/pop3svc/cmd/internal/sdnotify"
	"github.com/pop3svc/pop3svc/cmd/internal/version"
	"github.com/pop3svc/pop3svc/cmd/internal/wiring"
	"github.com/pop3svc/pop3svc/engine/certs"
	"github.com/pop3svc/pop3svc/store/credential"
	"github.com/pop3svc/pop3svc/store/filestore"
	"github.com/pop3svc/pop3svc/store/queue"
)

// stopTimeout bounds the drain of every service at SIGTERM/SIGINT.
const stopTimeout = 10 * time.Second

func main() {
	// A password hash worker (auth.hash_processes) is this program too.
	if nice, ok := os.LookupEnv(credential.WorkerEnv); ok {
		os.Exit(credential.WorkerMain(nice))
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs, f := newFlags()
	fs.SetOutput(stderr)
	cfgFlag, check, demo, showVersion := f.config, f.check, f.demo, f.version
	fs.Usage = func() { usage(fs) }
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *showVersion {
		fmt.Fprintln(stdout, version.Line("pop3d"))
		return 0
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "pop3d: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	cfg, path, err := config.LoadDefault(*cfgFlag)
	if *check {
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		if errs := startChecks(cfg); len(errs) > 0 {
			for _, e := range errs {
				fmt.Fprintln(stderr, e)
			}
			return 1
		}
		name := path
		if name == "" {
			name = "built-in defaults"
		}
		fmt.Fprintf(stdout, "configuration OK (%s)\n", name)
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "pop3d: %v\n", err)
		return 1
	}
	if path != "" {
		// Absolute, so that pop3ctl can tell whether it edits this file
		// (GET /api/status shows it).
		if abs, err := filepath.Abs(path); err == nil {
			path = abs
		}
	}

	level := new(slog.LevelVar)
	level.Set(logLevel(cfg.Logging))
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	slog.SetDefault(log)

	lim := storeLimits(cfg)
	st, err := filestore.Open(cfg.MailRoot, filestore.Options{
		Node:               cfg.Node,
		DomainQuotaDefault: lim.DomainQuotaDefault,
		MaxMessageSize:     lim.MaxMessageSize,
		AuthCacheTTL:       lim.AuthCacheTTL,
		LockLease:          cfg.LockLease.D(),
		Hash:               lim.Hash,
		HashProcesses:      lim.HashProcesses,
		Logger:             log.With("service", "store"),
	})
	if err != nil {
		log.Error("cannot open the mail store", "err", err)
		return 1
	}
	q, err := queue.Open(st.Root())
	if err != nil {
		log.Error("cannot open the mail queue", "err", err)
		_ = st.Close()
		return 1
	}
	oq, err := queue.OpenOutbound(st.Root())
	if err != nil {
		log.Error("cannot open the outbound queue", "err", err)
		_ = st.Close()
		return 1
	}
	notify := sdnotify.FromEnv()
	rt := &runtime{cfgPath: path, cfg: cfg, store: st, queue: q, outbound: oq, log: log, level: level, started: time.Now()}
	copts := wiring.CertOptions(cfg)
	copts.Log = log.With("service", "tls")
	if rt.certs, err = certs.New(copts); err != nil {
		log.Error("cannot load the TLS certificate", "err", err)
		_ = st.Close()
		return 1
	}

	var started []service
	var mu sync.Mutex // serialises reloads (SIGHUP and the admin API)
	startCfg := cfg   // the restart keys keep these values until a restart
	rt.reload = func() ([]string, error) {
		mu.Lock()
		defer mu.Unlock()
		var ncfg *config.Config
		var err error
		if path == "" {
			ncfg, err = config.LoadEmbedded()
		} else {
			ncfg, err = config.Load(path)
		}
		if err != nil {
			log.Error("reload refused: the configuration has errors; the running one stays", "err", err)
			return nil, err
		}
		restart := config.RestartChanges(startCfg, ncfg)
		level.Set(logLevel(ncfg.Logging))
		var errs []error
		// lock_lease takes a restart (reported in restart): the store
		// judges locks by the lease it opened with, so new sessions renew
		// by that one too.
		ncfg.LockLease = startCfg.LockLease
		copts := wiring.CertOptions(ncfg)
		copts.Log = log.With("service", "tls")
		if err := rt.certs.Apply(copts); err != nil {
			log.Warn("reload: the TLS certificate was not changed", "err", err)
			errs = append(errs, err)
		}
		if err := st.SetLimits(storeLimits(ncfg)); err != nil {
			log.Warn("reload: the store's limits were not changed", "err", err)
			errs = append(errs, err)
		}
		rt.cfg = ncfg
		for _, s := range started {
			if err := s.Reload(ncfg); err != nil {
				log.Warn("reload incomplete", "service", s.Name(), "err", err)
				errs = append(errs, err)
			}
		}
		if len(restart) > 0 {
			log.Warn(config.RestartNotice(restart), "keys", strings.Join(restart, ","))
		}
		log.Info("configuration reloaded", "file", path)
		return restart, errors.Join(errs...)
	}

	// Every reload (SIGHUP, the admin API) is reported to systemd.
	reload := rt.reload
	rt.reload = func() ([]string, error) {
		if err := notify.Reloading(); err != nil {
			log.Warn("cannot tell systemd about the reload", "err", err)
		}
		restart, err := reload()
		if err := notify.Ready("serving"); err != nil {
			log.Warn("cannot tell systemd about the reload", "err", err)
		}
		return restart, err
	}

	// Crash leftovers (temporary files, locks of dead sessions, unfinished
	// commits) are cleaned at start and every hour.
	cleanCtx, stopClean := context.WithCancel(context.Background())
	cleanDone := make(chan struct{})
	go func() { defer close(cleanDone); st.Run(cleanCtx, filestore.DefaultCleanInterval) }()

	stopAll := func() {
		stopClean()
		<-cleanDone
		ctx, cancel := context.WithTimeout(context.Background(), stopTimeout)
		defer cancel()
		for i := len(started) - 1; i >= 0; i-- {
			if err := started[i].Stop(ctx); err != nil {
				log.Warn("stop", "service", started[i].Name(), "err", err)
			}
		}
		if err := st.Close(); err != nil {
			log.Warn("closing the mail store", "err", err)
		}
	}

	// Signals are caught before the services start, so that an early
	// SIGTERM still drains.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)

	mu.Lock()
	for _, s := range newServices() {
		if err := s.Start(rt); err != nil {
			mu.Unlock()
			log.Error("cannot start", "service", s.Name(), "err", err)
			stopAll()
			return 1
		}
		started = append(started, s)
	}
	mu.Unlock()

	if *demo {
		if err := bootstrap(rt, stdout); err != nil {
			log.Warn("cannot create the demo mailbox", "err", err)
		}
	}
	log.Info("pop3d ready", "config", path, "version", version.String())
	if err := notify.Ready("serving"); err != nil {
		log.Warn("cannot tell systemd the service is ready", "err", err)
	}

	for sig := range sigs {
		if sig == syscall.SIGHUP {
			_, _ = rt.reload()
			continue
		}
		log.Info("stopping", "signal", sig.String())
		_ = notify.Stopping()
		break
	}
	stopAll()
	log.Info("stopped")
	return 0
}

// flags are pop3d's command-line flags.
type flags struct {
	config               *string
	check, demo, version *bool
}

// newFlags is pop3d's flag set: run parses it, --help and pop3d(8) list it.
func newFlags() (*flag.FlagSet, flags) {
	fs := flag.NewFlagSet("pop3d", flag.ContinueOnError)
	var f flags
	f.config = fs.String("config", "", "configuration file (default: $POP3D_CONFIG, else ./pop3d.toml if present, else built-in defaults)")
	f.check = fs.Bool("check", false, "validate the configuration and what the start checks (authentication method in this build, certificate files, listen addresses), print every problem and exit (0: valid, 1: not)")
	f.demo = fs.Bool("demo", false, "when the store has no domain, create the domain "+demoDomain+" with the mailbox "+demoMailbox+"@"+demoDomain+" and a welcome message, and print the command that reads it (make run passes it; a package never does)")
	f.version = fs.Bool("version", false, "print the version and exit")
	return fs, f
}

// usage is pop3d --help: every flag, the signals, the files.
func usage(fs *flag.FlagSet) {
	w := fs.Output()
	fmt.Fprint(w, `Usage:
  pop3d [-config FILE] [-demo]     run the service (POP3, SMTP/LMTP, delivery, admin API)
  pop3d -check [-config FILE]      validate the configuration and exit 0 (valid) or 1
  pop3d -version                   print the version

Flags:
`)
	fs.PrintDefaults()
	fmt.Fprint(w, `
Signals: SIGHUP reloads the configuration file; SIGTERM and SIGINT drain and stop.
Without -config: $POP3D_CONFIG, else ./pop3d.toml if present, else the built-in defaults.
See pop3d(8) and pop3d.toml(5).
`)
}

// logLevel maps the seed's logging levels (0 none .. 3 max, 4 debug).
func logLevel(n int) slog.Level {
	switch {
	case n <= 0:
		return slog.LevelError + 100 // nothing
	case n == 1:
		return slog.LevelError
	case n == 2:
		return slog.LevelWarn
	case n == 3:
		return slog.LevelInfo
	default:
		return slog.LevelDebug
	}
}

// storeLimits are the store's settings of cfg, at start and on reload.
func storeLimits(cfg *config.Config) filestore.Limits {
	return filestore.Limits{
		DomainQuotaDefault: int64(cfg.Quota.DomainDefault),
		MaxMessageSize:     int64(cfg.SMTP.MaxMessageSize),
		AuthCacheTTL:       authCacheTTL(cfg.Auth.CacheTTL.D()),
		Hash:               wiring.HashParams(cfg.Auth),
		HashProcesses:      wiring.HashProcesses(cfg.Auth),
	}
}

// authCacheTTL maps auth.cache_ttl onto the store's option: 0 turns the
// cache off.
func authCacheTTL(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}
