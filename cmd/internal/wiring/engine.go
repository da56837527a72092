package wiring

import (
	"github.com/pop3svc/pop3svc/cmd/internal/config"
	"github.com/pop3svc/pop3svc/engine"
	"github.com/pop3svc/pop3svc/engine/certs"
)

// EngineConfig is the engine's share of the configuration: the [pop3]
// listeners, pools and timeouts and the [limits] it enforces.
func EngineConfig(cfg *config.Config) *engine.Config {
	p, l := cfg.POP3, cfg.Limits
	return &engine.Config{
		Listen:           p.Listen,
		ListenBacklog:    p.ListenBacklog,
		SocketMin:        p.SocketMin,
		SocketThreshold:  p.SocketThreshold,
		SocketMax:        p.SocketMax,
		SocketBacklog:    p.SocketBacklog,
		BacklogWait:      p.BacklogWait.D(),
		ThreadCount:      p.ThreadCount,
		TaskQueue:        p.TaskQueue,
		LoginTimeout:     p.LoginTimeout.D(),
		LoginDeadline:    p.LoginDeadline.D(),
		IdleTimeout:      p.IdleTimeout.D(),
		ShedAt:           p.ShedAt,
		MaxLine:          l.MaxLine,
		MaxAuthLine:      l.MaxAuthLine,
		MaxConnsPerIP:    l.MaxConnsPerIP,
		MaxInbound:       l.MaxInbound,
		MaxPipelined:     l.MaxPipelined,
		PreloginPerIP:    l.PreloginPerIP,
		PreloginPerNet:   l.PreloginPerNet,
		PreloginPerNet48: l.PreloginPerNet48,
		BacklogMaxInput:  l.BacklogMaxInput,
		OutboundHighMark: l.OutboundHighMark,
		OutboundLowMark:  l.OutboundLowMark,
	}
}

// CertOptions reads the [tls] table and the mail root.
func CertOptions(cfg *config.Config) certs.Options {
	return certs.Options{
		CertFile:   cfg.TLS.Cert,
		KeyFile:    cfg.TLS.Key,
		MailRoot:   cfg.MailRoot,
		MinVersion: cfg.TLS.MinVersion,
	}
}
