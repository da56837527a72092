// Package smtp is the SMTP service: it receives mail for the served
// domains over SMTP (RFC 5321) and LMTP (RFC 2033), on
// github.com/emersion/go-smtp, and leaves each accepted message in the
// queue (store.Queue) for the delivery service (session/delivery).
//
// Extensions offered in EHLO/LHLO: PIPELINING (RFC 2920), 8BITMIME
// (RFC 6152), ENHANCEDSTATUSCODES (RFC 2034, codes from RFC 3463), SIZE
// (RFC 1870), SMTPUTF8 (RFC 6531), CHUNKING (RFC 3030) and LIMITS
// RCPTMAX (RFC 9422).
//
// Policy:
//   - RCPT is accepted only for an existing mailbox of a served domain (a
//     domain of the store, so a domain added with pop3ctl is served at
//     once): an unknown mailbox gets 550 5.1.1, any other domain 550 5.7.1
//     (never an open relay), a store failure 451 4.3.0. An administrator's
//     lock does not refuse mail: the seed's lock does not interfere with
//     delivery, and the copy is there when the mailbox is unlocked.
//   - A message over max_message_size gets 552 5.3.4; a message for a single
//     recipient that would exceed that mailbox's quota 552 5.2.2. With
//     several recipients the message is accepted and the delivery service
//     sends the sender a report for the ones over quota. Over LMTP each
//     recipient gets its own reply, 552 5.2.2 for those over quota.
//   - More than max_recipients RCPTs get 452 4.5.3 (RFC 5321 §4.5.3.1.10).
//   - A Received header (RFC 5321 §4.4) is prepended and bare LF line
//     endings become CRLF; the delivery service adds the Return-Path.
//   - The message is in the queue, fsynced, before 250 is sent.
//
// Metrics: smtp_messages_received_total, smtp_rcpt_total{result="ok|unknown|relay|limit|error"},
// smtp_data_total{result="ok|too_big|over_quota|error"}.
package smtp

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	gosmtp "github.com/emersion/go-smtp"

	"github.com/pop3svc/pop3svc/store"
)

// Defaults of Options.
const (
	DefaultMaxMessageSize = 50 << 20
	DefaultMaxRecipients  = 100
	// DefaultMaxLine is the longest line, CRLF included, in commands and
	// in message data. RFC 5321 §4.5.3.1.6 sets 1000 as the minimum a
	// server must accept; real mail exceeds it now and then.
	DefaultMaxLine = 2000
	// DefaultReadTimeout / DefaultWriteTimeout: RFC 5321 §4.5.3.2.7
	// asks a server to wait at least 5 minutes for the next command.
	DefaultReadTimeout  = 5 * time.Minute
	DefaultWriteTimeout = 5 * time.Minute
	// DefaultStoreTimeout bounds each store lookup made for a command.
	DefaultStoreTimeout = 30 * time.Second
	// maxPath is the longest reverse- or forward-path accepted
	// (RFC 5321 §4.5.3.1.3: 256 octets).
	maxPath = 256
)

var (
	mReceived     = metrics.GetOrCreateCounter(`smtp_messages_received_total`)
	mRcptOK       = metrics.GetOrCreateCounter(`smtp_rcpt_total{result="ok"}`)
	mRcptUnknown  = metrics.GetOrCreateCounter(`smtp_rcpt_total{result="unknown"}`)
	mRcptRelay    = metrics.GetOrCreateCounter(`smtp_rcpt_total{result="relay"}`)
	mRcptLimit    = metrics.GetOrCreateCounter(`smtp_rcpt_total{result="limit"}`)
	mRcptError    = metrics.GetOrCreateCounter(`smtp_rcpt_total{result="error"}`)
	mDataOK       = metrics.GetOrCreateCounter(`smtp_data_total{result="ok"}`)
	mDataTooBig   = metrics.GetOrCreateCounter(`smtp_data_total{result="too_big"}`)
	mDataOverQ    = metrics.GetOrCreateCounter(`smtp_data_total{result="over_quota"}`)
	mDataError    = metrics.GetOrCreateCounter(`smtp_data_total{result="error"}`)
	mSessionsOpen = metrics.GetOrCreateCounter(`smtp_sessions_total`)
)

// Options configure the service.
type Options struct {
	Hostname           string        // greeting and Received; empty: the host name
	MaxMessageSize     int64         // octets; 0: DefaultMaxMessageSize
	MaxRecipients      int           // per message; 0: DefaultMaxRecipients
	MaxLine            int           // octets, CRLF included; 0: DefaultMaxLine
	ReadTimeout        time.Duration // longest silence from the client; 0: DefaultReadTimeout
	WriteTimeout       time.Duration // 0: DefaultWriteTimeout
	StoreTimeout       time.Duration // 0: DefaultStoreTimeout
	DomainQuotaDefault int64         // quota of a mailbox without one, for the DATA-time check; 0: none
	// TLSConfig enables STARTTLS (RFC 3207) on the SMTP listeners; nil: not offered.
	// LMTP never offers it: it is for hand-over on the same host.
	TLSConfig *tls.Config
	Logger    *slog.Logger // nil: discard
}

func (o Options) withDefaults() Options {
	if o.Hostname == "" {
		o.Hostname, _ = os.Hostname()
		if o.Hostname == "" {
			o.Hostname = "localhost"
		}
	}
	if o.MaxMessageSize <= 0 {
		o.MaxMessageSize = DefaultMaxMessageSize
	}
	if o.MaxRecipients <= 0 {
		o.MaxRecipients = DefaultMaxRecipients
	}
	if o.MaxLine <= 0 {
		o.MaxLine = DefaultMaxLine
	}
	if o.ReadTimeout <= 0 {
		o.ReadTimeout = DefaultReadTimeout
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = DefaultWriteTimeout
	}
	if o.StoreTimeout <= 0 {
		o.StoreTimeout = DefaultStoreTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// Service runs the SMTP and LMTP listeners.
type Service struct {
	st     store.Store
	q      store.Queue
	notify func(id string)
	opts   atomic.Pointer[Options]
	sub    atomic.Pointer[SubmissionOptions]
	rate   rateLimiter // submitted messages per user and hour

	connSeq atomic.Uint64
}

// New makes the service. notify is called with the id of each queued
// message (the delivery service's Notify); it must not block.
func New(st store.Store, q store.Queue, notify func(id string), opts Options) *Service {
	if notify == nil {
		notify = func(string) {}
	}
	s := &Service{st: st, q: q, notify: notify}
	o := opts.withDefaults()
	s.opts.Store(&o)
	return s
}

// SetOptions applies changed options. The size and recipient limits, the
// quota default and the host name reach open sessions at their next
// command; go-smtp's own settings (MaxLine, the timeouts, the SIZE it
// announces) only servers made afterwards by NewServer: engine/smtpnet's
// Renew makes those for the connections it accepts from then on.
func (s *Service) SetOptions(opts Options) {
	o := opts.withDefaults()
	s.opts.Store(&o)
}

func (s *Service) o() *Options { return s.opts.Load() }

type errorLog struct{ l *slog.Logger }

func (e errorLog) Printf(format string, v ...any) {
	e.l.Debug(strings.TrimSpace(fmt.Sprintf(format, v...)))
}
func (e errorLog) Println(v ...any) { e.l.Debug(strings.TrimSpace(fmt.Sprintln(v...))) }

// NewServer makes a go-smtp server, SMTP or LMTP, with the current
// options, to serve one listener. The listeners, connection limits and
// deadlines around it are the network engine's (engine/smtpnet).
func (s *Service) NewServer(lmtp bool) *gosmtp.Server {
	o := s.o()
	srv := gosmtp.NewServer(&backend{s: s, lmtp: lmtp})
	srv.LMTP = lmtp
	srv.Domain = o.Hostname
	srv.MaxMessageBytes = o.MaxMessageSize
	srv.MaxRecipients = o.MaxRecipients
	srv.MaxLineLength = o.MaxLine
	srv.ReadTimeout = o.ReadTimeout
	srv.WriteTimeout = o.WriteTimeout
	srv.EnableSMTPUTF8 = true
	if !lmtp && o.TLSConfig != nil {
		srv.TLSConfig = o.TLSConfig
	}
	srv.ErrorLog = errorLog{o.Logger}
	return srv
}

type backend struct {
	s          *Service
	lmtp       bool
	submission bool
}

func (b *backend) NewSession(c *gosmtp.Conn) (gosmtp.Session, error) {
	mSessionsOpen.Inc()
	s := b.s
	id := s.connSeq.Add(1)
	remote := ""
	if c.Conn() != nil && c.Conn().RemoteAddr() != nil {
		remote = c.Conn().RemoteAddr().String()
	}
	return &session{
		s:          s,
		conn:       c,
		net:        markerOf(c.Conn()),
		lmtp:       b.lmtp,
		submission: b.submission,
		remote:     remote,
		log:        s.o().Logger.With("conn", id, "remote", remote, "lmtp", b.lmtp, "submission", b.submission),
	}, nil
}

// transactionMarker is implemented by network connections that bound the
// time before the first mail transaction (engine/smtpnet): an accepted
// MAIL FROM lifts the bound.
type transactionMarker interface{ TransactionStarted() }

// markerOf finds the transactionMarker under a session's connection (under
// crypto/tls after STARTTLS).
func markerOf(c net.Conn) transactionMarker {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	m, _ := c.(transactionMarker)
	return m
}
