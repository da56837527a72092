package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/pop3svc/pop3svc/cmd/internal/config"
	"github.com/pop3svc/pop3svc/engine/smtpnet"
	"github.com/pop3svc/pop3svc/session/delivery"
	"github.com/pop3svc/pop3svc/session/outbound"
	smtpsvc "github.com/pop3svc/pop3svc/session/smtp"
	"github.com/pop3svc/pop3svc/store"
)

// smtpService runs the SMTP and LMTP listeners (session/smtp) and the
// delivery service (session/delivery) over the queue under the mail root.
type smtpService struct {
	rt       *runtime
	delivery *delivery.Service
	smtp     *smtpsvc.Service // the protocol: sessions and backend
	net      *smtpnet.Server  // the listeners, connection limits and deadlines
	sub      *smtpnet.Server  // the submission listeners (STARTTLS and implicit TLS)
	// outbound is the delivery agent of the outbound queue, over transport.
	outbound  *delivery.Service
	transport *outbound.Transport
}

func (s *smtpService) Name() string { return "smtp" }

func smtpOptions(cfg *config.Config, rt *runtime) smtpsvc.Options {
	return smtpsvc.Options{
		Hostname:           cfg.HostName(),
		MaxMessageSize:     int64(cfg.SMTP.MaxMessageSize),
		MaxRecipients:      cfg.SMTP.MaxRecipients,
		MaxLine:            cfg.SMTP.MaxLine,
		ReadTimeout:        cfg.SMTP.ReadTimeout.D(),
		WriteTimeout:       cfg.SMTP.WriteTimeout.D(),
		DomainQuotaDefault: int64(cfg.Quota.DomainDefault),
		TLSConfig:          rt.certs.TLSConfig(),
		Logger:             rt.log.With("service", "smtp"),
	}
}

func smtpNetOptions(cfg *config.Config, rt *runtime) smtpnet.Options {
	return smtpnet.Options{
		MaxConnections:      cfg.SMTP.MaxConnections,
		MaxConnsPerIP:       cfg.SMTP.MaxConnsPerIP,
		DataTimeout:         cfg.SMTP.DataTimeout.D(),
		MaxConnsPerNet:      cfg.SMTP.MaxConnsPerNet,
		MaxConnsPerNet48:    cfg.SMTP.MaxConnsPerNet48,
		TransactionDeadline: cfg.SMTP.TransactionDeadline.D(),
		HandshakeTimeout:    cfg.TLS.HandshakeTimeout.D(),
		Logger:              rt.log.With("service", "smtp"),
	}
}

// submissionOptions are the submission sessions' options: POP3's
// Authenticator in force, the sender policy and limits, the outbound queue.
func submissionOptions(cfg *config.Config, rt *runtime, notify func(string)) smtpsvc.SubmissionOptions {
	aliases := make(map[string][]string)
	for _, a := range cfg.Submission.Aliases {
		user, alias, _ := strings.Cut(a, "=")
		addr, err := store.ParseAddress(user, "")
		if err != nil {
			continue // validated at load; a name no mailbox can have
		}
		i := strings.LastIndexByte(alias, '@')
		aliases[addr.String()] = append(aliases[addr.String()], alias[:i]+"@"+strings.ToLower(alias[i+1:]))
	}
	return smtpsvc.SubmissionOptions{
		Auth:               rt.auth.Load,
		SPARequired:        cfg.Submission.SPARequired,
		Aliases:            aliases,
		MaxMessagesPerHour: cfg.Submission.MaxMessagesPerHour,
		MaxRecipients:      cfg.Submission.MaxRecipients,
		MaxAuthFailures:    cfg.Limits.MaxAuthFailures,
		Outbound:           rt.outbound,
		OutboundNotify:     notify,
	}
}

// transportOptions are the outbound transport's options ([outbound]).
func transportOptions(cfg *config.Config, rt *runtime) outbound.Options {
	ob := cfg.Outbound
	return outbound.Options{
		Hostname:          cfg.HostName(),
		Resolver:          ob.Resolver,
		MXPort:            ob.MXPort,
		Smarthost:         ob.Smarthost,
		SmarthostUser:     ob.SmarthostUser,
		SmarthostPassword: ob.SmarthostPassword,
		SmarthostTLS:      ob.SmarthostTLS,
		MaxPerDestination: ob.MaxPerDestination,
		ConnectTimeout:    ob.ConnectTimeout.D(),
		Timeout:           ob.Timeout.D(),
		Sign:              outbound.NewDKIM(rt.store.Root(), ob.DKIMSelector).Sign,
		Logger:            rt.log.With("service", "outbound"),
	}
}

// outboundOptions are the outbound delivery agent's: the retry schedule of
// [outbound], its reports into the mail queue for the senders' mailboxes.
func (s *smtpService) outboundOptions(cfg *config.Config, rt *runtime) delivery.Options {
	return delivery.Options{
		Hostname:     cfg.HostName(),
		Relay:        cfg.SMTP.Relay,
		RetryFor:     cfg.Outbound.RetryFor.D(),
		RetryMin:     cfg.Outbound.RetryMin.D(),
		RetryMax:     cfg.Outbound.RetryMax.D(),
		QueueScan:    cfg.SMTP.QueueScan.D(),
		Workers:      cfg.Outbound.Workers,
		Logger:       rt.log.With("service", "outbound"),
		Transport:    s.transport,
		Reports:      rt.queue,
		ReportNotify: s.delivery.Notify,
	}
}

func deliveryOptions(cfg *config.Config, rt *runtime) delivery.Options {
	return delivery.Options{
		Hostname:  cfg.HostName(),
		Relay:     cfg.SMTP.Relay,
		RetryFor:  cfg.SMTP.RetryFor.D(),
		QueueScan: cfg.SMTP.QueueScan.D(),
		Logger:    rt.log.With("service", "delivery"),
	}
}

func (s *smtpService) Start(rt *runtime) error {
	s.rt = rt
	s.delivery = delivery.New(rt.store, rt.queue, deliveryOptions(rt.cfg, rt))
	s.delivery.Start()
	s.transport = outbound.New(transportOptions(rt.cfg, rt))
	s.outbound = delivery.New(rt.store, rt.outbound, s.outboundOptions(rt.cfg, rt))
	s.outbound.Start()
	rt.retried = func(queue, id string) {
		if queue == store.QueueOutbound {
			s.outbound.Retry(id)
		} else {
			s.delivery.Retry(id)
		}
	}
	s.smtp = smtpsvc.New(rt.store, rt.queue, s.delivery.Notify, smtpOptions(rt.cfg, rt))
	s.net = smtpnet.New(func(lmtp bool) smtpnet.Protocol { return s.smtp.NewServer(lmtp) }, smtpNetOptions(rt.cfg, rt))
	if err := s.net.Listen(rt.cfg.SMTP.Listen, rt.cfg.SMTP.LMTPListen); err != nil {
		_ = s.outbound.Stop(context.Background())
		_ = s.delivery.Stop(context.Background())
		return fmt.Errorf("smtp: %w", err)
	}
	for _, a := range s.net.Addrs() {
		rt.log.Info("SMTP service listening", "addr", a.String())
	}
	s.smtp.SetSubmission(submissionOptions(rt.cfg, rt, s.outboundNotify))
	s.sub = smtpnet.New(func(bool) smtpnet.Protocol { return s.smtp.NewSubmissionServer() }, smtpNetOptions(rt.cfg, rt))
	if err := s.sub.Listen(rt.cfg.Submission.Listen, nil); err != nil {
		_ = s.net.Close(context.Background())
		_ = s.outbound.Stop(context.Background())
		_ = s.delivery.Stop(context.Background())
		return fmt.Errorf("submission: %w", err)
	}
	n := len(s.sub.Addrs())
	if err := s.sub.ListenTLS(rt.cfg.Submission.ListenTLS, rt.certs.TLSConfig()); err != nil {
		_ = s.sub.Close(context.Background())
		_ = s.net.Close(context.Background())
		_ = s.outbound.Stop(context.Background())
		_ = s.delivery.Stop(context.Background())
		return fmt.Errorf("submission: %w", err)
	}
	for i, a := range s.sub.Addrs() {
		rt.log.Info("submission listening", "addr", a.String(), "tls", i >= n)
	}
	return nil
}

// outboundNotify wakes the outbound delivery agent for a queued message.
func (s *smtpService) outboundNotify(id string) { s.outbound.Notify(id) }

// Reload applies the delivery settings and every SMTP setting but the
// listen addresses (restart keys, reported by the reload itself): new
// connections get the new line length, timeouts and limits.
func (s *smtpService) Reload(cfg *config.Config) error {
	if s.rt == nil {
		return nil
	}
	s.delivery.SetOptions(deliveryOptions(cfg, s.rt))
	s.transport.SetOptions(transportOptions(cfg, s.rt))
	s.outbound.SetOptions(s.outboundOptions(cfg, s.rt))
	s.smtp.SetOptions(smtpOptions(cfg, s.rt))
	s.net.SetOptions(smtpNetOptions(cfg, s.rt))
	s.net.Renew() // go-smtp's own settings reach new connections
	s.smtp.SetSubmission(submissionOptions(cfg, s.rt, s.outboundNotify))
	s.sub.SetOptions(smtpNetOptions(cfg, s.rt))
	s.sub.Renew()
	return nil
}

func (s *smtpService) Stop(ctx context.Context) error {
	var errs []error
	if s.sub != nil {
		errs = append(errs, s.sub.Close(ctx))
	}
	if s.net != nil {
		errs = append(errs, s.net.Close(ctx))
	}
	if s.outbound != nil {
		errs = append(errs, s.outbound.Stop(ctx))
	}
	if s.delivery != nil {
		errs = append(errs, s.delivery.Stop(ctx))
	}
	return errors.Join(errs...)
}
