// Package pop3 is the POP3 protocol state machine: the AUTHORIZATION,
// TRANSACTION and UPDATE states of RFC 1939, with the extensions of RFC 2449
// (CAPA, RESP-CODES, PIPELINING, EXPIRE, LOGIN-DELAY, AUTH-RESP-CODE),
// RFC 5034 (SASL: PLAIN, LOGIN, CRAM-MD5 and mechanisms from other
// packages), RFC 3206 (response codes) and RFC 2595 (STLS, the command; the
// engine does the handshake). It has no sockets: the engine hands it lines
// and writes the replies (see package session).
//
// Mailboxes are reached only through store.Store; credentials through
// auth.Authenticator.
package pop3

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pop3svc/pop3svc/session"
	"github.com/pop3svc/pop3svc/session/auth"
	"github.com/pop3svc/pop3svc/store"
)

type state int

// The session states of RFC 1939 section 3, plus the end of the session.
const (
	stateAuthorization state = iota
	stateTransaction
	stateUpdate // QUIT was received; the session is over
)

func (s state) String() string {
	switch s {
	case stateAuthorization:
		return "AUTHORIZATION"
	case stateTransaction:
		return "TRANSACTION"
	}
	return "UPDATE"
}

// Session is one POP3 session. It implements session.Session.
type Session struct {
	opts *Options
	ci   session.ConnInfo
	ip   string
	log  *slog.Logger

	state     state
	tls       bool
	utf8      bool                    // the client sent UTF8 (RFC 6856 section 2)
	lang      string                  // the language of reply texts (LANG); "": English
	cb        *session.ChannelBinding // the TLS channel binding, once the handshake is done
	timestamp string                  // APOP timestamp of the greeting; "" when APOP is off

	user     string // the name given by USER, for PASS
	tryUser  string // the name of the login attempt in progress, for the log
	refusal  string // why loginFailed answers a login refused unchecked (banned, throttled)
	userSeen bool   // the previous command was a successful USER
	usedUSER bool   // USER was given at least once (no STLS afterwards)
	sasl     *saslExchange
	badCmds  int
	authFail int
	pad      time.Duration // added to a failed password check's delay (auth.Authenticator.Check)

	addr    store.Address
	mbox    store.MailboxSession
	msgs    []store.MessageInfo
	deleted []bool
	// retrieved marks the messages RETR sent in this session (EXPIRE).
	retrieved []bool
	live      int   // messages not marked deleted
	liveSize  int64 // their octets

	// nextRenew is when the mailbox lock's lease is next due for renewal
	// (unix nanoseconds; 0: no mailbox open; MaxInt64: a renewal runs).
	nextRenew atomic.Int64
	// lost: a renewal found the mailbox lock taken over by another
	// session; nothing more is served and QUIT deletes nothing.
	lost     atomic.Bool
	renewLog *slog.Logger // guarded by mu

	mu     sync.Mutex // guards body and closed against Close from another goroutine
	body   *messageBody
	closed bool
	// loggedIn: the session counts in pop3_sessions_logged_in, from
	// login until Close.
	loggedIn bool
}

type saslExchange struct {
	name string // lower-case, the mech label
	mech auth.Mechanism
}

var _ session.Session = (*Session)(nil)

// New returns a session for a new connection.
func New(opts *Options, ci session.ConnInfo) *Session {
	logger := opts.Logger
	if logger == nil {
		logger = slog.Default()
	}
	ip := ci.Remote
	if h, _, err := net.SplitHostPort(ci.Remote); err == nil {
		ip = h
	}
	return &Session{
		opts: opts,
		ci:   ci,
		ip:   ip,
		tls:  ci.TLS,
		log:  logger.With("proto", "pop3", "conn", ci.ID, "remote", ci.Remote),
	}
}

// NewFactory returns a session.Factory making sessions with opts.
func NewFactory(opts *Options) session.Factory {
	return func(ci session.ConnInfo) session.Session { return New(opts, ci) }
}

func (s *Session) now() time.Time {
	if s.opts.Now != nil {
		return s.opts.Now()
	}
	return time.Now()
}

func (s *Session) ctx() (context.Context, context.CancelFunc) {
	d := s.opts.OpTimeout
	if d <= 0 {
		d = DefaultOpTimeout
	}
	return context.WithTimeout(context.Background(), d)
}

// apopAvailable reports whether APOP digests can be verified: APOP is on
// and the method keeps the password secret.
func (s *Session) apopAvailable() bool {
	return s.opts.APOP && s.opts.Auth != nil && s.opts.Auth.Method.Challenge()
}

func (s *Session) plaintextAllowed() bool {
	return auth.PlaintextAllowed(s.tls, s.opts.SPARequired)
}

func greetingText(g string) string {
	if g == "" {
		g = DefaultGreeting
	}
	// The greeting is one line whatever the configuration says.
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, g)
}

// Greeting returns "+OK <greeting>", followed by the APOP timestamp
// "<pid.clock.random@hostname>" (RFC 1939 section 7) when APOP is available.
func (s *Session) Greeting() session.Reply {
	text := okPrefix + " " + greetingText(s.opts.Greeting)
	if s.apopAvailable() {
		var rnd [8]byte
		r := s.opts.Rand
		if r == nil {
			r = rand.Reader
		}
		if _, err := io.ReadFull(r, rnd[:]); err != nil {
			s.log.Error("cannot make the APOP timestamp", "err", err)
		} else {
			host := s.opts.Hostname
			if host == "" {
				host, _ = os.Hostname()
			}
			if host == "" {
				host = "localhost"
			}
			s.timestamp = fmt.Sprintf("<%d.%d.%s@%s>", os.Getpid(), s.now().UnixNano(), hex.EncodeToString(rnd[:]), host)
			text += " " + s.timestamp
		}
	}
	s.log.Debug("session start", "tls", s.tls)
	return line(text)
}

// splitCommand returns the upper-cased keyword and the rest of the line
// after the first space.
func splitCommand(l []byte) (cmd string, arg string) {
	kw, rest, _ := bytes.Cut(l, []byte{' '})
	if len(kw) > 4 { // RFC 1939: keywords are three or four characters
		return otherCommand, string(rest)
	}
	return strings.ToUpper(string(kw)), string(rest)
}

// Inline reports whether Handle(line) does no disk I/O and no slow crypto:
// PASS, APOP, AUTH exchanges, RETR, TOP and QUIT after login go to a worker.
func (s *Session) Inline(l []byte) bool {
	if s.sasl != nil {
		return false
	}
	cmd, arg := splitCommand(l)
	if inlineCommand(cmd) {
		return true
	}
	switch cmd {
	case "AUTH":
		return strings.TrimSpace(arg) == "" // the bare listing of mechanisms
	case "QUIT":
		return s.state != stateTransaction // no update state to commit
	}
	return false
}

// inlineCommand reports whether cmd never needs a worker.
func inlineCommand(cmd string) bool {
	switch cmd {
	case "PASS", "APOP", "AUTH", "RETR", "TOP", "QUIT":
		return false
	}
	return true
}

var _ session.Renewer = (*Session)(nil)

func (s *Session) renewInterval() time.Duration {
	if s.opts.RenewInterval > 0 {
		return s.opts.RenewInterval
	}
	return store.DefaultLockLease / 3
}

// RenewDue implements session.Renewer: true once per renewal period while
// a mailbox is open; the engine then calls Renew on a worker.
func (s *Session) RenewDue(now time.Time) bool {
	next := s.nextRenew.Load()
	if next == 0 || next == math.MaxInt64 || now.UnixNano() < next {
		return false
	}
	return s.nextRenew.CompareAndSwap(next, math.MaxInt64)
}

// Renew implements session.Renewer: it renews the mailbox lock's lease
// (store.MailboxSession.Refresh, which is safe concurrently with the
// session's commands and streams). A lock found taken over marks the
// session lost.
func (s *Session) Renew() {
	s.mu.Lock()
	mb, closed, log := s.mbox, s.closed, s.renewLog
	s.mu.Unlock()
	if mb == nil || closed {
		return
	}
	err := mb.Refresh()
	switch {
	case err == nil:
	case errors.Is(err, store.ErrLockLost):
		if !s.lost.Swap(true) {
			log.Warn("the mailbox lock was taken over by another session; serving no more messages", "err", err)
		}
	case errors.Is(err, store.ErrSessionClosed):
		return
	default:
		log.Warn("cannot renew the mailbox lock", "err", err)
	}
	s.nextRenew.CompareAndSwap(math.MaxInt64, s.now().Add(s.renewInterval()).UnixNano())
}

// LineLimit implements session.LineLimiter: during a SASL exchange the
// continuation lines may be up to MaxAuthLine octets (RFC 5034 section 4
// lets servers accept longer lines than commands); 0 otherwise.
func (s *Session) LineLimit() int {
	if s.sasl == nil {
		return 0
	}
	if s.opts.MaxAuthLine > 0 {
		return s.opts.MaxAuthLine
	}
	return DefaultMaxAuthLine
}

// Handle processes one command line.
func (s *Session) Handle(l []byte) (r session.Reply) {
	start := time.Now()
	cmd := "AUTH"
	if s.sasl == nil {
		cmd, _ = splitCommand(l)
	}
	defer func() {
		if p := recover(); p != nil {
			sessionPanics.Inc()
			s.log.Error("panic in POP3 session", "panic", p, "state", s.state.String())
			r = errorReply(errInternal)
			r.Close = true
		}
		countCommand(cmd, isOK(r), time.Since(start))
	}()
	if s.sasl != nil {
		return s.localize(s.saslContinue(l))
	}
	_, arg := splitCommand(l)
	wasUser := s.userSeen
	s.userSeen = false
	switch s.state {
	case stateAuthorization:
		return s.localize(s.handleAuthorization(cmd, arg, wasUser))
	case stateTransaction:
		return s.localize(s.handleTransaction(cmd, arg))
	}
	r = errorReply(errSessionIsOver)
	r.Close = true
	return r
}

// Refused abandons a SASL exchange in progress when the engine answered
// the client's line with "server busy" (session.Refuser): after that -ERR
// the client starts over with a command (RFC 5034 section 4).
func (s *Session) Refused() {
	if x := s.sasl; x != nil {
		s.sasl = nil
		countAuth(x.name, "temp")
	}
}

// LineTooLong answers a line longer than the engine's limit.
func (s *Session) LineTooLong() session.Reply {
	countCommand(otherCommand, false, 0)
	if x := s.sasl; x != nil {
		s.sasl = nil
		countAuth(x.name, "fail")
		return s.bad(errAuthBadLine)
	}
	s.userSeen = false
	return s.localize(s.bad(errLineTooLong))
}

// bad answers a bad command with err; before login, MaxBadCommands of
// them end the connection.
func (s *Session) bad(err *Error) session.Reply {
	if s.state != stateAuthorization {
		return errorReply(err)
	}
	s.badCmds++
	if s.opts.MaxBadCommands > 0 && s.badCmds >= s.opts.MaxBadCommands {
		s.log.Info("too many bad commands, closing", "count", s.badCmds)
		r := errorReply(errTooManyBad)
		r.Close = true
		return r
	}
	return errorReply(err)
}

// SetTLS records that the link is now encrypted (after STLS).
func (s *Session) SetTLS() { s.tls = true }

var _ session.ChannelBinder = (*Session)(nil)

// SetChannelBinding keeps the TLS channel binding for SCRAM-SHA-256-PLUS.
func (s *Session) SetChannelBinding(cb session.ChannelBinding) { s.cb = &cb }

// mechanisms lists the SASL mechanisms offered on this link.
func (s *Session) mechanisms() []string {
	if s.opts.Auth == nil {
		return nil
	}
	return s.opts.Auth.AllMechanisms(s.tls, s.opts.SPARequired, s.cb)
}

// Close ends the session: an open message stream is closed and the mailbox
// released without deleting anything. Safe to call more than once.
func (s *Session) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	body := s.body
	s.body = nil
	mb := s.mbox
	s.mbox = nil
	loggedIn := s.loggedIn
	s.loggedIn = false
	s.mu.Unlock()
	s.nextRenew.Store(0)
	if body != nil {
		body.Close()
	}
	if mb != nil {
		if err := mb.Close(); errors.Is(err, store.ErrLockLost) {
			s.log.Info("the mailbox lock had been taken over by another session", "err", err)
		} else if err != nil {
			s.log.Warn("cannot release the mailbox", "err", err)
		}
	}
	if loggedIn {
		// Counted down once the mailbox is released: a scrape that reads
		// 0 means no session holds a mailbox lock.
		sessionsLoggedIn.Dec()
	}
	s.log.Debug("session end", "state", s.state.String())
}

var _ session.LineLimiter = (*Session)(nil)
