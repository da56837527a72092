package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/pop3svc/pop3svc/cmd/internal/config"
	"github.com/pop3svc/pop3svc/engine/smtpnet"
	"github.com/pop3svc/pop3svc/session/delivery"
	smtpsvc "github.com/pop3svc/pop3svc/session/smtp"
)

// smtpService runs the SMTP and LMTP listeners (session/smtp) and the
// delivery service (session/delivery) over the queue under the mail root.
type smtpService struct {
	rt       *runtime
	delivery *delivery.Service
	smtp     *smtpsvc.Service // the protocol: sessions and backend
	net      *smtpnet.Server  // the listeners, connection limits and deadlines
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
	s.smtp = smtpsvc.New(rt.store, rt.queue, s.delivery.Notify, smtpOptions(rt.cfg, rt))
	s.net = smtpnet.New(func(lmtp bool) smtpnet.Protocol { return s.smtp.NewServer(lmtp) }, smtpNetOptions(rt.cfg, rt))
	if err := s.net.Listen(rt.cfg.SMTP.Listen, rt.cfg.SMTP.LMTPListen); err != nil {
		_ = s.delivery.Stop(context.Background())
		return fmt.Errorf("smtp: %w", err)
	}
	for _, a := range s.net.Addrs() {
		rt.log.Info("SMTP service listening", "addr", a.String())
	}
	return nil
}

// Reload applies the delivery settings and every SMTP setting but the
// listen addresses (restart keys, reported by the reload itself): new
// connections get the new line length, timeouts and limits.
func (s *smtpService) Reload(cfg *config.Config) error {
	if s.rt == nil {
		return nil
	}
	s.delivery.SetOptions(deliveryOptions(cfg, s.rt))
	s.smtp.SetOptions(smtpOptions(cfg, s.rt))
	s.net.SetOptions(smtpNetOptions(cfg, s.rt))
	s.net.Renew() // go-smtp's own settings reach new connections
	return nil
}

func (s *smtpService) Stop(ctx context.Context) error {
	var errs []error
	if s.net != nil {
		errs = append(errs, s.net.Close(ctx))
	}
	if s.delivery != nil {
		errs = append(errs, s.delivery.Stop(ctx))
	}
	return errors.Join(errs...)
}
