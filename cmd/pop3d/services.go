package main

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/pop3svc/pop3svc/cmd/internal/config"
	"github.com/pop3svc/pop3svc/engine"
	"github.com/pop3svc/pop3svc/engine/certs"
	"github.com/pop3svc/pop3svc/session/auth"
	"github.com/pop3svc/pop3svc/store"
)

// runtime is what every service of pop3d shares.
type runtime struct {
	cfgPath string         // the config file, "" for the embedded defaults
	cfg     *config.Config // the configuration in force: replaced on reload before the services' Reload
	store   store.Store
	queue   store.Queue // the mail queue and Badmail of the mail root
	// outbound is the queue of submitted mail for other domains.
	outbound store.Queue
	// auth is POP3's Authenticator in force, which submission's AUTH
	// shares (methods, guard, auth queue); nil before POP3 started.
	auth atomic.Pointer[auth.Authenticator]
	// retried tells the delivery service of a queue that an entry is due
	// now (set by the SMTP service; nil before it started).
	retried func(queue, id string)
	log     *slog.Logger

	level   *slog.LevelVar // the log level; follows the logging setting on reload
	started time.Time
	// reload rereads the configuration and applies every live key to every
	// part (SIGHUP, POST /api/reload, the console). It returns the restart
	// keys whose change it could not apply (see config.RestartNotice), and
	// an error when the file was refused (nothing applied) or a part could
	// not apply its share.
	reload func() (restart []string, err error)
	pop3   atomic.Pointer[engine.Server] // the POP3 engine once started (status); the admin listener reads it from its own goroutines
	certs  *certs.Manager                // the TLS certificate of STLS, POP3S and SMTP STARTTLS; follows [tls] on reload
}

// pop3Status is the POP3 engine's status, nil before it started.
func (rt *runtime) pop3Status() *engine.Status {
	srv := rt.pop3.Load()
	if srv == nil {
		return nil
	}
	st := srv.Status()
	return &st
}

// service is one part of pop3d: the POP3 service, the SMTP and delivery
// services, the browser console, the admin listener.
type service interface {
	Name() string
	// Start begins serving; it must not block.
	Start(rt *runtime) error
	// Reload applies a changed configuration (SIGHUP) without dropping sessions.
	Reload(cfg *config.Config) error
	// Stop drains and stops, within ctx's deadline.
	Stop(ctx context.Context) error
}

// newServices lists the services in their start order; they stop in the
// reverse order. The mail services come first, so that the admin listener
// opens on a service that is up (its status shows the POP3 engine), and
// closes first on the way down.
func newServices() []service {
	con := &consoleService{}
	return []service{
		&pop3Service{},
		&smtpService{},
		con,
		&adminService{console: con},
	}
}
