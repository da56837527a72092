package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"github.com/pop3svc/pop3svc/cmd/internal/config"
	"github.com/pop3svc/pop3svc/cmd/internal/wiring"
	"github.com/pop3svc/pop3svc/engine"
	"github.com/pop3svc/pop3svc/session"
	"github.com/pop3svc/pop3svc/session/auth"
	"github.com/pop3svc/pop3svc/session/auth/guard"
	"github.com/pop3svc/pop3svc/session/pop3"
	"github.com/pop3svc/pop3svc/store"
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
	// policy is the EXPIRE and LOGIN-DELAY policy of the configuration in
	// force, for the sweeper; sweepEvery is pop3.expire_sweep (0: no
	// sweep); sweepWake tells the sweeper either changed.
	policy     atomic.Pointer[pop3.Policy]
	sweepEvery atomic.Int64
	sweepWake  chan struct{}
	stopSweep  context.CancelFunc
	sweepDone  chan struct{}
	// scramReady: every mailbox with a password has SCRAM keys (auth.scram
	// = "auto"); checked by scramCheck.
	scramReady atomic.Bool
	scramDone  chan struct{}
}

// scramCheckEvery is how often auth.scram = "auto" looks for mailboxes
// without SCRAM keys.
const scramCheckEvery = 10 * time.Minute

// scramCheck runs checkSCRAM every scramCheckEvery until ctx ends.
func (p *pop3Service) scramCheck(ctx context.Context) {
	defer close(p.scramDone)
	for {
		t := time.NewTimer(scramCheckEvery)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		p.checkSCRAM(ctx)
	}
}

// checkSCRAM sets scramReady: true when no mailbox with a password lacks
// SCRAM keys (auth.scram = "auto").
func (p *pop3Service) checkSCRAM(ctx context.Context) {
	log := p.rt.log.With("service", "pop3")
	missing, err := missingSCRAM(ctx, p.rt.store)
	switch {
	case ctx.Err() != nil:
	case err != nil:
		log.Warn("cannot check the mailboxes' SCRAM keys", "err", err)
	case missing == 0:
		if !p.scramReady.Swap(true) {
			log.Info("SCRAM-SHA-256 offered: every mailbox with a password has SCRAM keys")
		}
	default:
		p.scramReady.Store(false)
		log.Info("SCRAM-SHA-256 not offered yet: mailboxes without SCRAM keys gain them at their next password change or plaintext login", "mailboxes", missing)
	}
}

// missingSCRAM counts the mailboxes with a password-file password but no
// SCRAM keys.
func missingSCRAM(ctx context.Context, st store.Store) (int, error) {
	domains, err := st.ListDomains(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, d := range domains {
		boxes, err := st.ListMailboxes(ctx, d.Name)
		if errors.Is(err, store.ErrNoSuchDomain) {
			continue
		}
		if err != nil {
			return 0, err
		}
		for _, mb := range boxes {
			if !mb.HasPassword {
				continue
			}
			_, err := st.Secret(ctx, mb.Address, store.SecretSCRAMSHA256)
			switch {
			case errors.Is(err, store.ErrNoSecret):
				n++
			case errors.Is(err, store.ErrNoSuchMailbox), errors.Is(err, store.ErrNoSuchDomain), errors.Is(err, store.ErrAuthFailed):
			case err != nil:
				return 0, err
			}
		}
	}
	return n, nil
}

// policyOf builds the session policy of the [pop3] expire and login_delay keys.
func policyOf(cfg *config.Config) (*pop3.Policy, error) {
	c := cfg.POP3
	p := &pop3.Policy{LoginDelay: c.LoginDelay}
	if c.Expire != "" {
		r, err := pop3.ParseRetention(c.Expire)
		if err != nil {
			return nil, fmt.Errorf("pop3.expire: %w", err)
		}
		p.Expire = &r
	}
	var err error
	if p.ExpireDomains, err = pop3.ParseRetentions(c.ExpireDomains, false); err != nil {
		return nil, fmt.Errorf("pop3.expire_domains: %w", err)
	}
	if p.ExpireMailboxes, err = pop3.ParseRetentions(c.ExpireMailboxes, true); err != nil {
		return nil, fmt.Errorf("pop3.expire_mailboxes: %w", err)
	}
	if p.LoginDelayDomains, err = pop3.ParseDelays(c.LoginDelayDomains); err != nil {
		return nil, fmt.Errorf("pop3.login_delay_domains: %w", err)
	}
	return p, nil
}

// sweep deletes expired messages of mailboxes not in use every
// pop3.expire_sweep (pop3.SweepExpired), until ctx ends.
func (p *pop3Service) sweep(ctx context.Context, owner string) {
	defer close(p.sweepDone)
	log := p.rt.log.With("service", "pop3")
	for {
		every := time.Duration(p.sweepEvery.Load())
		var tick <-chan time.Time
		var t *time.Timer
		if every > 0 {
			t = time.NewTimer(every)
			tick = t.C
		}
		woken := false
		select {
		case <-ctx.Done():
		case <-p.sweepWake:
			woken = true // the period changed: start it over
		case <-tick:
		}
		if t != nil {
			t.Stop()
		}
		if ctx.Err() != nil {
			return
		}
		if woken {
			continue
		}
		rep, err := pop3.SweepExpired(ctx, p.rt.store, p.policy.Load(), time.Now(), owner, log)
		if err != nil && ctx.Err() == nil {
			log.Warn("expire sweep failed", "err", err)
		} else if rep.Expired > 0 {
			log.Info("expire sweep", "mailboxes", rep.Mailboxes, "expired", rep.Expired, "skipped", rep.Skipped)
		}
	}
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
	policy, err := policyOf(cfg)
	if err != nil {
		return nil, err
	}
	p.policy.Store(policy)
	p.sweepEvery.Store(int64(cfg.POP3.ExpireSweep.D()))
	select {
	case p.sweepWake <- struct{}{}:
	default:
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
		NoReversible:  !cfg.Auth.ReversibleSecrets,
	}
	if o := cfg.OAuth; o.Issuer != "" {
		a.OAuth = &auth.OAuth{Issuer: o.Issuer, Audience: o.Audience, Claim: o.Claim,
			JWKSFile: o.JWKSFile, JWKSURL: o.JWKSURL, Leeway: time.Minute,
			IntrospectionURL: o.IntrospectionURL, ClientID: o.ClientID, ClientSecret: o.ClientSecret,
			MaxIntrospections:  o.MaxIntrospections,
			IntrospectionCache: o.IntrospectionCache.D(), IntrospectionCacheEntries: o.IntrospectionCacheEntries}
	}
	switch cfg.Auth.SCRAM {
	case "on":
		a.SCRAM = func() bool { return true }
	case "auto":
		a.SCRAM = p.scramReady.Load
	}
	p.built = a
	opts := &pop3.Options{
		Store:           p.rt.store,
		Auth:            a,
		Greeting:        cfg.Greeting,
		Hostname:        host,
		APOP:            method.Challenge() && cfg.Auth.APOP && cfg.Auth.ReversibleSecrets,
		SPARequired:     cfg.Auth.SPARequired,
		TLSAvailable:    cfg.POP3.STLS, // the certificate manager always has a pair (self-signed when none is configured)
		MaxBadCommands:  cfg.Limits.MaxBadCommands,
		MaxAuthFailures: cfg.Limits.MaxAuthFailures,
		MaxAuthLine:     cfg.Limits.MaxAuthLine,
		Policy:          policy,
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
	p.sweepWake = make(chan struct{}, 1)
	p.checkSCRAM(context.Background()) // before the first client: CAPA is the same for all
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
	ctx, cancel := context.WithCancel(context.Background())
	p.stopSweep, p.sweepDone, p.scramDone = cancel, make(chan struct{}), make(chan struct{})
	// The node is a restart key: read once here, not from rt.cfg, which a
	// reload replaces.
	go p.sweep(ctx, fmt.Sprintf("pop3d node %d pid %d expire sweep", rt.cfg.Node, os.Getpid()))
	go p.scramCheck(ctx)
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
	p.stopSweep()
	<-p.sweepDone
	<-p.scramDone
	err := p.srv.Shutdown(ctx)
	p.guard.Close()
	p.auth.close()
	return err
}
