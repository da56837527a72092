package main

import (
	"context"

	"github.com/pop3svc/pop3svc/cmd/internal/config"
	"github.com/pop3svc/pop3svc/cmd/pop3d/internal/admin"
	"github.com/pop3svc/pop3svc/store"
)

// adminService runs the admin listener (package admin) with the browser
// console mounted, when admin.listen is set.
type adminService struct {
	rt      *runtime
	console *consoleService // started before this service
	srv     *admin.Server
}

func (a *adminService) Name() string { return "admin" }

func (a *adminService) Start(rt *runtime) error {
	a.rt = rt
	if rt.cfg.Admin.Listen == "" {
		return nil
	}
	srv, err := admin.Start(admin.Options{
		Listen:     rt.cfg.Admin.Listen,
		Pprof:      rt.cfg.Admin.Pprof,
		Console:    a.console.console,
		Reload:     rt.reload,
		ConfigFile: rt.cfgPath,
		Started:    rt.started,
		Status:     rt.pop3Status,
		Queues:     map[string]store.Queue{store.QueueInbound: rt.queue, store.QueueOutbound: rt.outbound},
		Retried:    rt.retried,
		Log:        rt.log,
	})
	if err != nil {
		return err
	}
	a.srv = srv
	return nil
}

// Reload applies admin.pprof; admin.listen is a restart key, which the
// reload reports itself (config.RestartChanges).
func (a *adminService) Reload(cfg *config.Config) error {
	if a.srv != nil {
		a.srv.SetPprof(cfg.Admin.Pprof)
	}
	return nil
}

func (a *adminService) Stop(ctx context.Context) error {
	if a.srv == nil {
		return nil
	}
	return a.srv.Shutdown(ctx)
}
