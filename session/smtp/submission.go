package smtp

import (
	"crypto/tls"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"
	gosasl "github.com/emersion/go-sasl"
	gosmtp "github.com/emersion/go-smtp"

	sess "github.com/pop3svc/pop3svc/session"
	"github.com/pop3svc/pop3svc/session/auth"
	"github.com/pop3svc/pop3svc/store"
)

// Mail submission (RFC 6409) for the service's own users: the same
// protocol as the SMTP service, on listeners of its own, where a client
// must authenticate (SMTP AUTH, RFC 4954) before MAIL, may send only as
// its own address or a configured alias, and may send to any domain.
//
// Authentication uses POP3's Authenticator: the same methods, the same
// brute-force guard (a failure here counts towards the address's penalty
// and ban there) and the same auth queue for password hashes. Mechanisms
// offered are those POP3 offers over SASL: PLAIN and LOGIN (only over TLS
// when submission.sparequired is on, as auth.sparequired does for POP3),
// OAUTHBEARER and XOAUTH2 wherever PLAIN is, with [oauth]; CRAM-MD5 and
// NTLM only when the method keeps the secrets they need (the password
// file): a system (PAM) or directory method can verify only a plaintext
// password, so CRAM-MD5 is neither offered nor accepted with it.
// SCRAM-SHA-256 when auth.scram offers it to POP3, and SCRAM-SHA-256-PLUS
// over TLS, bound to the channel as POP3's are.

// SubmissionOptions configure the submission listeners' sessions.
type SubmissionOptions struct {
	// Auth returns the Authenticator in force (POP3's, rebuilt on reload);
	// nil or a nil result: AUTH answers 454 4.7.0.
	Auth func() *auth.Authenticator
	// SPARequired refuses PLAIN and LOGIN on a link without TLS.
	SPARequired bool
	// Aliases are the further addresses each user may send as, keyed by
	// the user's canonical address (see store.Address.String), each
	// canonical too (lower-case domain).
	Aliases map[string][]string
	// MaxMessagesPerHour bounds the messages one user submits in any
	// hour (0: no limit); MaxRecipients the recipients of one message.
	MaxMessagesPerHour int
	MaxRecipients      int
	// MaxAuthFailures closes the connection after this many failed AUTH
	// commands (0: no limit).
	MaxAuthFailures int
	// Outbound is the queue of mail for other domains and OutboundNotify
	// wakes its delivery agent; nil: only local recipients are accepted.
	Outbound       store.Queue
	OutboundNotify func(id string)
}

// The submission replies (RFC 4954 §6, RFC 3463).
var (
	errAuthNeeded   = &Error{Code: 530, Enhanced: [3]int{5, 7, 0}, Text: "Authentication required"}
	errAuthFailed   = &Error{Code: 535, Enhanced: [3]int{5, 7, 8}, Text: "Authentication credentials invalid"}
	errAuthTemp     = &Error{Code: 454, Enhanced: [3]int{4, 7, 0}, Text: "Temporary authentication failure"}
	errEncryptFirst = &Error{Code: 538, Enhanced: [3]int{5, 7, 11}, Text: "Encryption required for requested authentication mechanism"}
	errNoMechanism  = &Error{Code: 504, Enhanced: [3]int{5, 5, 4}, Text: "Unrecognized authentication type"}
	errNotYourAddr  = &Error{Code: 553, Enhanced: [3]int{5, 7, 1}, Text: "Sender address not owned by the authenticated user"}
	errNotYourFrom  = &Error{Code: 553, Enhanced: [3]int{5, 7, 1}, Text: "From: header address not owned by the authenticated user"}
	errRateLimit    = &Error{Code: 450, Enhanced: [3]int{4, 7, 1}, Text: "Too many messages this hour, try again later"}
	errBadHeader    = &Error{Code: 554, Enhanced: [3]int{5, 6, 0}, Text: "Message header cannot be parsed"}
	errNoFrom       = &Error{Code: 554, Enhanced: [3]int{5, 6, 0}, Text: "Message has no From: header"}
)

var (
	mSubmitted      = metrics.GetOrCreateCounter(`smtp_submission_messages_total`)
	mSubmitRefused  = metrics.GetOrCreateCounter(`smtp_submission_refused_total{reason="sender"}`)
	mSubmitFromHdr  = metrics.GetOrCreateCounter(`smtp_submission_refused_total{reason="from_header"}`)
	mSubmitRate     = metrics.GetOrCreateCounter(`smtp_submission_refused_total{reason="rate"}`)
	mSubmitNoAuth   = metrics.GetOrCreateCounter(`smtp_submission_refused_total{reason="no_auth"}`)
	mSubmitRemote   = metrics.GetOrCreateCounter(`smtp_submission_rcpt_total{kind="remote"}`)
	mSubmitLocal    = metrics.GetOrCreateCounter(`smtp_submission_rcpt_total{kind="local"}`)
	mSMTPAuthOK     = metrics.GetOrCreateCounter(`smtp_auth_total{result="ok"}`)
	mSMTPAuthFail   = metrics.GetOrCreateCounter(`smtp_auth_total{result="fail"}`)
	mSMTPAuthTemp   = metrics.GetOrCreateCounter(`smtp_auth_total{result="temp"}`)
	mSMTPAuthRefuse = metrics.GetOrCreateCounter(`smtp_auth_total{result="refused"}`)
)

// SetSubmission applies changed submission options; open sessions see
// them at their next command.
func (s *Service) SetSubmission(o SubmissionOptions) {
	if o.OutboundNotify == nil {
		o.OutboundNotify = func(string) {}
	}
	s.sub.Store(&o)
}

func (s *Service) subOpts() *SubmissionOptions {
	if o := s.sub.Load(); o != nil {
		return o
	}
	return &SubmissionOptions{OutboundNotify: func(string) {}}
}

// NewSubmissionServer makes a go-smtp server for one submission listener
// (STARTTLS offered when Options.TLSConfig is set; an implicit-TLS
// listener hands it connections already under TLS).
func (s *Service) NewSubmissionServer() *gosmtp.Server {
	srv := s.NewServer(false)
	srv.Backend = &backend{s: s, submission: true}
	// Whether AUTH may run without TLS is decided per mechanism (see
	// AuthMechanisms), not by go-smtp's all-or-nothing switch.
	srv.AllowInsecureAuth = true
	return srv
}

// rateLimiter counts each user's submitted messages over the last hour.
type rateLimiter struct {
	mu   sync.Mutex
	sent map[string][]time.Time
}

// allow reports whether user may submit one more message now and, when
// record is set and it may, counts it.
func (r *rateLimiter) allow(user string, max int, now time.Time, record bool) bool {
	if max <= 0 {
		return true
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.sent == nil {
		r.sent = make(map[string][]time.Time)
	}
	l := r.sent[user]
	cut := 0
	for cut < len(l) && now.Sub(l[cut]) >= time.Hour {
		cut++
	}
	l = l[cut:]
	if len(l) >= max {
		r.sent[user] = l
		return false
	}
	if record {
		l = append(l, now)
	}
	if len(l) == 0 {
		delete(r.sent, user)
	} else {
		r.sent[user] = l
	}
	return true
}

// tlsOn reports whether the session runs under TLS.
func (ss *session) tlsOn() bool {
	_, ok := ss.conn.TLSConnectionState()
	return ok
}

func (ss *session) authenticator() *auth.Authenticator {
	if f := ss.s.subOpts().Auth; f != nil {
		return f()
	}
	return nil
}

// AuthMechanisms lists what EHLO offers: nothing on the SMTP listeners;
// on submission ones, the Authenticator's mechanisms for this link.
func (ss *session) AuthMechanisms() []string {
	if !ss.submission {
		return nil
	}
	a := ss.authenticator()
	if a == nil {
		return nil
	}
	return a.AllMechanisms(ss.tlsOn(), ss.s.subOpts().SPARequired, ss.channelBinding())
}

// channelBinding is the link's TLS channel binding for SCRAM-SHA-256-PLUS
// (tls-exporter, and tls-server-end-point with the certificate the TLS
// configuration serves); nil without TLS.
func (ss *session) channelBinding() *sess.ChannelBinding {
	tc, ok := ss.conn.Conn().(*tls.Conn)
	if !ok {
		return nil
	}
	st := tc.ConnectionState()
	if !st.HandshakeComplete {
		return nil
	}
	cb := sess.ChannelBindingOf(st, sess.ServerCertificate(ss.s.o().TLSConfig, st))
	return &cb
}

// Auth starts a SASL exchange (RFC 4954 §4).
func (ss *session) Auth(mech string) (gosasl.Server, error) {
	if !ss.submission {
		return nil, ss.reply("", errNoMechanism)
	}
	a := ss.authenticator()
	if a == nil {
		mSMTPAuthTemp.Inc()
		return nil, ss.reply("", errAuthTemp)
	}
	spa := ss.s.subOpts().SPARequired
	m, ok := a.Start(mech, ss.tlsOn(), spa, ss.channelBinding())
	if !ok {
		_, plain := a.NewMechanism(mech, true, false)
		if plain || (strings.EqualFold(mech, auth.MechSCRAMSHA256Plus) && !ss.tlsOn() && len(a.SCRAMMechanisms(nil)) > 0) {
			// Offered over TLS only (RFC 4954 §4: 538); -PLUS needs a
			// TLS channel to bind to.
			mSMTPAuthRefuse.Inc()
			return nil, ss.reply("", errEncryptFirst)
		}
		mSMTPAuthRefuse.Inc()
		return nil, ss.reply("", errNoMechanism)
	}
	return &saslServer{ss: ss, a: a, m: m, mech: strings.ToUpper(mech)}, nil
}

// saslServer runs one auth.Mechanism under go-smtp's AUTH command.
type saslServer struct {
	ss   *session
	a    *auth.Authenticator
	m    auth.Mechanism
	mech string
}

func (x *saslServer) Next(resp []byte) ([]byte, bool, error) {
	ss, a := x.ss, x.a
	ip := ss.ip()
	if a.Banned(ip) {
		ss.log.Info("AUTH refused: address banned", "mech", x.mech)
		return nil, true, ss.authFailed(a, x.mech, auth.ErrAuthFailed, 0)
	}
	ctx, cancel := ss.ctx()
	ch, done, err := x.m.Next(ctx, resp)
	cancel()
	if !done {
		return ch, false, nil
	}
	var addr store.Address
	var pad time.Duration
	if err == nil {
		if d, ok := x.m.(auth.Deferrer); ok && d.Deferred() != nil {
			addr, pad, err = ss.checkPassword(a, *d.Deferred())
		} else {
			addr = x.m.Address()
		}
	}
	if err != nil {
		return nil, true, ss.authFailed(a, x.mech, err, pad)
	}
	a.Success(ip)
	mSMTPAuthOK.Inc()
	ss.mu.Lock()
	ss.user = addr
	ss.authed = true
	ss.mu.Unlock()
	ss.log = ss.log.With("user", addr.String())
	ss.log.Info("authenticated", "mech", x.mech)
	return nil, true, nil
}

// checkPassword checks a plaintext password the way POP3 does: a
// remembered success costs no hash; otherwise the guard may make the
// attempt wait or refuse it, and the hash runs in the auth queue.
func (ss *session) checkPassword(a *auth.Authenticator, pc auth.PasswordCheck) (store.Address, time.Duration, error) {
	ip := ss.ip()
	if a.Queue == nil {
		ctx, cancel := ss.ctx()
		defer cancel()
		return a.Check(ctx, pc)
	}
	ctx, cancel := ss.ctx()
	addr, ok, cost := a.Quick(ctx, pc)
	cancel()
	if ok {
		return addr, 0, nil
	}
	wait, admitted := a.Admit(ip)
	if !admitted {
		ss.log.Info("AUTH refused before the hash: address banned or throttled")
		return store.Address{}, 0, auth.ErrAuthFailed
	}
	if wait > 0 {
		t := time.NewTimer(wait)
		<-t.C
	}
	type result struct {
		addr store.Address
		pad  time.Duration
		err  error
	}
	standing := auth.Unknown
	if a.Suspect(ip) {
		standing = auth.Suspect
	}
	// The answer goes out once the check's slot is free (Done), so that
	// a client retrying at once finds it free.
	ch := make(chan result, 1)
	r := result{err: auth.ErrUnavailable}
	err := a.Queue.Enqueue(auth.Check{Cost: cost, Standing: standing,
		Run: func(low bool) {
			ctx, cancel := ss.ctx()
			defer cancel()
			if low {
				ctx = store.WithLowPriority(ctx)
			}
			r.addr, r.pad, r.err = a.Check(ctx, pc)
		},
		Done: func() { ch <- r },
	})
	if err != nil {
		return store.Address{}, 0, err
	}
	r = <-ch
	return r.addr, r.pad, r.err
}

// authFailed answers a failed AUTH: bad credentials of every kind get 535
// after the guard's delay; a failure of the authentication service 454 at
// once. After submission's MaxAuthFailures failures the connection ends.
func (ss *session) authFailed(a *auth.Authenticator, mech string, err error, pad time.Duration) error {
	if !errors.Is(err, auth.ErrAuthFailed) {
		mSMTPAuthTemp.Inc()
		ss.log.Warn("authentication failed to run", "mech", mech, "err", err)
		return ss.reply("", errAuthTemp)
	}
	mSMTPAuthFail.Inc()
	ss.mu.Lock()
	ss.authFails++
	n := ss.authFails
	ss.mu.Unlock()
	delay := a.Failure(ss.ip()) + pad
	ss.log.Info("AUTH failed", "mech", mech, "failures", n, "delay", delay)
	if delay > 0 {
		t := time.NewTimer(delay)
		<-t.C
	}
	if max := ss.s.subOpts().MaxAuthFailures; max > 0 && n >= max {
		_ = ss.conn.Close()
	}
	return ss.reply("", errAuthFailed)
}

// ip is the client's address without the port.
func (ss *session) ip() string {
	if i := strings.LastIndexByte(ss.remote, ':'); i >= 0 {
		return strings.Trim(ss.remote[:i], "[]")
	}
	return ss.remote
}

// mayUse reports whether the authenticated user may use addr as a sender
// (MAIL FROM or From:): their own address or one of their aliases.
func (ss *session) mayUse(addr string) bool {
	ss.mu.Lock()
	user := ss.user
	ss.mu.Unlock()
	i := strings.LastIndexByte(addr, '@')
	if i <= 0 || i == len(addr)-1 {
		return false
	}
	canon := addr[:i] + "@" + strings.ToLower(addr[i+1:])
	if a, err := store.ParseAddress(addr, ""); err == nil && a == user {
		return true
	}
	for _, al := range ss.s.subOpts().Aliases[user.String()] {
		if strings.EqualFold(al, canon) {
			return true
		}
	}
	return false
}

// safeAddress reports whether an envelope address may reach a header
// (Received, Return-Path) and the queue: no control characters, spaces,
// angle brackets, commas or semicolons, so that no header can be
// smuggled in through it.
func safeAddress(p string) bool {
	if !cleanPath(p) {
		return false
	}
	return !strings.ContainsAny(p, " \t<>,;\"\\")
}

// submissionMail is MAIL FROM on a submission listener.
func (ss *session) submissionMail(from string) error {
	ss.mu.Lock()
	authed, user := ss.authed, ss.user
	ss.mu.Unlock()
	if !authed {
		mSubmitNoAuth.Inc()
		return errAuthNeeded
	}
	if from == "" || !safeAddress(from) || !ss.mayUse(from) {
		mSubmitRefused.Inc()
		ss.log.Warn("sender refused: not the user's address", "from", sanitize(from))
		return errNotYourAddr
	}
	o := ss.s.subOpts()
	if !ss.s.rate.allow(user.String(), o.MaxMessagesPerHour, time.Now(), false) {
		mSubmitRate.Inc()
		ss.log.Warn("message refused: hourly limit reached", "limit", o.MaxMessagesPerHour)
		return errRateLimit
	}
	return nil
}

// submissionRcpt is RCPT TO on a submission listener: a served domain's
// mailbox is a local recipient, any other domain a remote one, queued for
// outbound delivery.
func (ss *session) submissionRcpt(to string) error {
	o := ss.s.subOpts()
	ss.mu.Lock()
	authed, n := ss.authed, len(ss.rcpts)
	ss.mu.Unlock()
	if !authed {
		return errAuthNeeded
	}
	if n >= o.MaxRecipients && o.MaxRecipients > 0 {
		mRcptLimit.Inc()
		return errTooMany
	}
	if !safeAddress(to) {
		mRcptUnknown.Inc()
		return errBadAddress
	}
	i := strings.LastIndexByte(to, '@')
	if i <= 0 || i == len(to)-1 {
		mRcptUnknown.Inc()
		return errBadAddress
	}
	err := ss.rcpt(to)
	var e *Error
	if !errors.As(err, &e) || e != errRelayDenied {
		if err == nil {
			mSubmitLocal.Inc()
		}
		return err
	}
	// Not a served domain: a remote recipient.
	if o.Outbound == nil {
		ss.log.Warn("remote recipient refused: no outbound delivery", "rcpt", sanitize(to))
		return errRelayDenied
	}
	domain := strings.ToLower(strings.TrimSuffix(to[i+1:], "."))
	if _, err := store.CanonicalDomain(domain); err != nil {
		return errBadAddress
	}
	mSubmitRemote.Inc()
	ss.mu.Lock()
	ss.rcpts = append(ss.rcpts, rcpt{raw: to, remote: to[:i] + "@" + domain})
	ss.mu.Unlock()
	return nil
}

// submissionDone counts a submitted message against the user's hourly limit.
func (ss *session) submissionDone() {
	ss.mu.Lock()
	user := ss.user
	ss.mu.Unlock()
	ss.s.rate.allow(user.String(), ss.s.subOpts().MaxMessagesPerHour, time.Now(), true)
	mSubmitted.Inc()
}
