package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/pop3svc/pop3svc/cmd/internal/config"
	"github.com/pop3svc/pop3svc/engine"
	"github.com/pop3svc/pop3svc/engine/certs"
	"github.com/pop3svc/pop3svc/store"
)

// runtime is what every service of pop3d shares.
type runtime struct {
	cfgPath string         // the config file, "" for the embedded defaults
	cfg     *config.Config // the configuration in force: replaced on reload before the services' Reload
	store   store.Store
	queue   store.Queue // the mail queue and Badmail of the mail root
	log     *slog.Logger

	level   *slog.LevelVar // the log level; follows the logging setting on reload
	started time.Time
	reload  func() error   // reread the configuration and reload every service (SIGHUP, POST /api/reload)
	pop3    *engine.Server // the POP3 engine once started (status)
	certs   *certs.Manager // the TLS certificate of STLS, POP3S and SMTP STARTTLS; follows [tls] on reload
}

// service is one part of pop3d: the POP3 service, the SMTP service and
// delivery service, the admin listener. Each registers itself from an init
// function in its own file of this package, so that parts can be added
// without touching main.
type service interface {
	Name() string
	// Start begins serving; it must not block.
	Start(rt *runtime) error
	// Reload applies a changed configuration (SIGHUP) without dropping sessions.
	Reload(cfg *config.Config) error
	// Stop drains and stops, within ctx's deadline.
	Stop(ctx context.Context) error
}

// services are started in registration order and stopped in reverse.
var services []func() service

func register(f func() service) { services = append(services, f) }
