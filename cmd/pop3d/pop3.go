package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/pop3svc/pop3svc/cmd/internal/config"
	"github.com/pop3svc/pop3svc/cmd/internal/wiring"
	"github.com/pop3svc/pop3svc/engine"
	"github.com/pop3svc/pop3svc/session"
	"github.com/pop3svc/pop3svc/session/auth"
	"github.com/pop3svc/pop3svc/session/auth/guard"
	"github.com/pop3svc/pop3svc/session/pop3"
)

// pop3Service is the POP3 service: the network engine serving
// session/pop3 sessions.
type pop3Service struct {
	rt    *runtime
	srv   *engine.Server
	guard *guard.Guard // kept across reloads, so penalties and bans survive them
	auth  authMethods  // the authentication method of each configuration
	// handshake is tls.handshake_timeout, read for each new TLS session.
	handshake atomic.Int64
	tls       *tls.Config         // follows the certificate manager
	queue     *auth.HashQueue     // the auth queue, kept across reloads
	built     *auth.Authenticator // made by the last factory call
}

func (p *pop3Service) Name() string { return "pop3" }

// factory builds the session options of one configuration: a new
// Authenticator with the method authMethods builds and the service's
// brute-force guard.
func (p *pop3Service) factory(cfg *config.Config, g *guard.Guard) (session.Factory, error) {
	method, extra, err := p.auth.build(cfg)
	if err != nil {
		return nil, err
	}
	host := cfg.HostName()
	a := &auth.Authenticator{
		Method:        method,
		Store:         p.rt.store,
		DefaultDomain: cfg.DefaultDomain,
		Guard:         g,
		FailDelay:     cfg.Auth.FailDelay.D(),
		Hostname:      host,
		Extra:         extra,
		Queue:         p.queue,
		HashCost:      wiring.HashParams(cfg.Auth).Memory(),
	}
	p.built = a
	opts := &pop3.Options{
		Store:           p.rt.store,
		Auth:            a,
		Greeting:        cfg.Greeting,
		Hostname:        host,
		APOP:            method.Challenge() && cfg.Auth.APOP,
		SPARequired:     cfg.Auth.SPARequired,
		TLSAvailable:    cfg.POP3.STLS, // the certificate manager always has a pair (self-signed when none is configured)
		MaxBadCommands:  cfg.Limits.MaxBadCommands,
		MaxAuthFailures: cfg.Limits.MaxAuthFailures,
		MaxAuthLine:     cfg.Limits.MaxAuthLine,
		ExpireDays:      cfg.POP3.ExpireDays,
		LoginDelay:      cfg.POP3.LoginDelay,
		Node:            cfg.Node,
		RenewInterval:   cfg.LockLease.D() / 3,
		Logger:          p.rt.log.With("service", "pop3"),
	}
	return pop3.NewFactory(opts), nil
}

// newTransport makes the TLS transport of a new implicit-TLS or STLS
// session with the handshake timeout in force.
func (p *pop3Service) newTransport(ci session.ConnInfo, implicit bool) (engine.Transport, error) {
	return engine.TLSTransports(p.tls, time.Duration(p.handshake.Load()))(ci, implicit)
}

func (p *pop3Service) Start(rt *runtime) error {
	p.rt = rt
	p.auth.store = rt.store
	p.handshake.Store(int64(rt.cfg.TLS.HandshakeTimeout.D()))
	p.tls = rt.certs.TLSConfig()
	g := guard.New(wiring.GuardOptions(rt.cfg.Auth))
	p.queue = auth.NewHashQueue(wiring.QueueOptions(rt.cfg.Auth))
	f, err := p.factory(rt.cfg, g)
	if err != nil {
		g.Close()
		p.auth.close()
		return fmt.Errorf("pop3: %w", err)
	}
	srv, err := engine.New(engine.Options{
		Config:       wiring.EngineConfig(rt.cfg),
		Factory:      f,
		Logger:       rt.log.With("service", "pop3"),
		NewTransport: p.newTransport,
		TLSListen:    rt.cfg.POP3.ListenTLS,
	})
	if err != nil {
		g.Close()
		p.auth.close()
		return fmt.Errorf("pop3: %w", err)
	}
	if err := srv.Start(); err != nil {
		g.Close()
		p.auth.close()
		return fmt.Errorf("pop3: %w", err)
	}
	p.srv, p.guard = srv, g
	rt.pop3.Store(srv)
	rt.auth.Store(p.built)
	return nil
}

func (p *pop3Service) Reload(cfg *config.Config) error {
	if p.srv == nil {
		return nil
	}
	p.guard.SetOptions(wiring.GuardOptions(cfg.Auth))
	p.handshake.Store(int64(cfg.TLS.HandshakeTimeout.D()))
	p.queue.SetOptions(wiring.QueueOptions(cfg.Auth))
	f, err := p.factory(cfg, p.guard)
	if err != nil {
		return fmt.Errorf("pop3: %w", err)
	}
	if err := p.srv.Reload(wiring.EngineConfig(cfg), f); err != nil {
		return fmt.Errorf("pop3: %w", err)
	}
	p.rt.auth.Store(p.built)
	return nil
}

func (p *pop3Service) Stop(ctx context.Context) error {
	if p.srv == nil {
		return nil
	}
	err := p.srv.Shutdown(ctx)
	p.guard.Close()
	p.auth.close()
	return err
}
