package wiring

import (
	"github.com/pop3svc/pop3svc/cmd/internal/config"
	"github.com/pop3svc/pop3svc/engine"
	"github.com/pop3svc/pop3svc/engine/certs"
	"syscall"
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
		RefuseDelay:      p.RefuseDelay.D(),
		RefuseHold:       RefuseHold(cfg, fdLimit()),
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

// FDReserve is what RefuseHold leaves of the file descriptor limit beyond
// the connections the pools may hold: mail files, listeners, the admin
// listener, hash workers' pipes, outbound connections.
const FDReserve = 1000

// RefuseHold is pop3.refuse_hold, or when it is 0, what the file
// descriptor limit (limit) leaves after POP3's socketmax and socketbacklog,
// SMTP's max_connections and FDReserve: connections held for a delayed
// refusal are cheap (a descriptor and a few hundred octets), so they may
// use every descriptor nothing else needs.
func RefuseHold(cfg *config.Config, limit uint64) int {
	if cfg.POP3.RefuseHold > 0 {
		return cfg.POP3.RefuseHold
	}
	used := uint64(cfg.POP3.SocketMax) + uint64(cfg.POP3.SocketBacklog) + uint64(cfg.SMTP.MaxConnections) + FDReserve
	if limit <= used {
		return 0
	}
	return int(min(limit-used, uint64(config.MaxSocketMax)))
}

// fdLimit is the process's file descriptor limit (Go raises the soft one
// to the hard one at start).
func fdLimit() uint64 {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return 0
	}
	return r.Cur
}
