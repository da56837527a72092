package main

import (
	"context"

	"github.com/pop3svc/pop3svc/cmd/internal/config"
	"github.com/pop3svc/pop3svc/cmd/pop3d/internal/console"
)

// consoleService makes the browser console (package console), which the
// admin service mounts, and keeps the configuration it sees current
// across reloads (admin.console among it).
type consoleService struct {
	console *console.Console
	stop    context.CancelFunc
	done    chan struct{}
}

func (s *consoleService) Name() string { return "console" }

func (s *consoleService) Start(rt *runtime) error {
	s.console = console.New(console.Options{
		ConfigPath: rt.cfgPath,
		Store:      rt.store,
		Queue:      rt.queue,
		Outbound:   rt.outbound,
		Log:        rt.log,
		Started:    rt.started,
		Reload:     rt.reload,
		Status:     rt.pop3Status,
	}, rt.cfg)
	// The charts' samples: one every console.HistoryInterval.
	ctx, cancel := context.WithCancel(context.Background())
	s.stop, s.done = cancel, make(chan struct{})
	go func() {
		defer close(s.done)
		s.console.Run(ctx)
	}()
	return nil
}

func (s *consoleService) Reload(cfg *config.Config) error {
	s.console.SetConfig(cfg)
	return nil
}

func (s *consoleService) Stop(ctx context.Context) error {
	if s.stop == nil {
		return nil
	}
	s.stop()
	select {
	case <-s.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
