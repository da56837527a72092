package pop3

import (
	"errors"
	"fmt"
	"os"

	"github.com/pop3svc/pop3svc/session"
	"github.com/pop3svc/pop3svc/session/auth"
	"github.com/pop3svc/pop3svc/store"
)

// login finishes a login attempt: verify checks the credentials; on
// success the mailbox is opened. A banned address is refused with the
// bad-credentials reply without verifying anything.
func (s *Session) login(mech string, verify func() (store.Address, error)) session.Reply {
	if s.opts.Auth == nil || s.opts.Store == nil {
		countAuth(mech, "temp")
		return errorReply(errAuthUnavail)
	}
	// SASL exchanges consult the guard in saslStep, before each step.
	if (mech == "user" || mech == "apop") && s.opts.Auth.Banned(s.ip) {
		return s.loginRefused(mech, "banned")
	}
	s.pad = 0
	addr, err := verify()
	if err != nil {
		return s.loginFailed(mech, err)
	}
	owner := fmt.Sprintf("pop3d node %d pid %d conn %d from %s", s.opts.Node, os.Getpid(), s.ci.ID, s.ci.Remote)
	ctx, cancel := s.ctx()
	mbox, err := s.opts.Store.OpenSession(ctx, addr, owner)
	cancel()
	if err != nil {
		if errors.Is(err, store.ErrNoSuchMailbox) || errors.Is(err, store.ErrNoSuchDomain) || errors.Is(err, store.ErrAuthFailed) {
			// A verified user without a mailbox (system or directory
			// accounts) is told nothing more than a wrong password.
			return s.loginFailed(mech, fmt.Errorf("%w: %w", auth.ErrAuthFailed, err))
		}
		result := "temp"
		if e, _ := asError(err); e == errLocked {
			result = "fail" // the administrator's lock refuses the user, not the service
		}
		countAuth(mech, result)
		s.log.Warn("login refused", "user", addr.String(), "mech", mech, "result", "refused", "reason", "mailbox", "err", err)
		return errorReply(err)
	}
	if e := s.checkLoginDelay(addr, mbox); e != nil {
		mbox.Close()
		countAuth(mech, "delay")
		s.log.Info("login refused: too soon after the last one", "user", addr.String(), "mech", mech)
		return errorReply(e)
	}
	s.mu.Lock()
	closed := s.closed
	if !closed {
		s.mbox = mbox
		s.loggedIn = true
		sessionsLoggedIn.Inc()
		s.renewLog = s.log.With("user", addr.String())
	}
	s.mu.Unlock()
	if closed {
		mbox.Close()
		return errorReply(errSessionIsOver)
	}
	s.opts.Auth.Success(s.ip)
	countAuth(mech, "ok")
	s.addr = addr
	s.msgs = mbox.Messages()
	s.deleted = make([]bool, len(s.msgs))
	s.retrieved = make([]bool, len(s.msgs))
	s.live = len(s.msgs)
	s.liveSize = 0
	for _, m := range s.msgs {
		s.liveSize += m.Size
	}
	s.state = stateTransaction
	s.nextRenew.Store(s.now().Add(s.renewInterval()).UnixNano())
	s.log = s.log.With("user", addr.String())
	s.tryUser = ""
	s.log.Info("login", "mech", mech, "result", "ok", "messages", s.live, "octets", s.liveSize)
	r := line(fmt.Sprintf("%s maildrop has %d messages (%d octets)", okPrefix, s.live, s.liveSize))
	r.Authenticated = true
	return r
}

// loginRefused answers a login refused before any check (a banned or
// throttled address) as a failed one, with its own log line.
func (s *Session) loginRefused(mech, reason string) session.Reply {
	s.refusal = reason
	defer func() { s.refusal = "" }()
	return s.loginFailed(mech, auth.ErrAuthFailed)
}

// loginFailed answers a failed login. Bad credentials of every kind get
// the same reply and the same delay; failures of the authentication service
// get [SYS/TEMP] at once.
func (s *Session) loginFailed(mech string, err error) session.Reply {
	if errors.Is(err, auth.ErrQueueFull) {
		// Expected under a login flood, thousands a second: no error
		// line each. The address's next check waits its turn (see
		// Authenticator.Busy), so a client that retries at once is paced
		// without being closed.
		countAuth(mech, "busy")
		s.opts.Auth.Busy(s.ip)
		s.log.Info("login refused: the auth queue is full", "mech", mech)
		return errorReply(err)
	}
	if !errors.Is(err, auth.ErrAuthFailed) {
		countAuth(mech, "temp")
		s.log.Error("authentication failed to run", "user", s.tryUser, "mech", mech, "result", "temp", "err", err)
		return errorReply(err)
	}
	countAuth(mech, "fail")
	s.authFail++
	r := errorReply(errBadCreds)
	wait := s.opts.Auth.Failure(s.ip)
	r.Delay = wait + s.pad
	s.pad = 0
	// wait: the fixed delay plus this address's penalty; delay: what the
	// reply waits, wait and the pad that evens out check times.
	if s.refusal != "" {
		s.log.Info("login refused", "user", s.tryUser, "mech", mech, "result", "refused", "reason", s.refusal, "failures", s.authFail, "wait", wait, "delay", r.Delay)
	} else {
		s.log.Info("login failed", "user", s.tryUser, "mech", mech, "result", "fail", "failures", s.authFail, "wait", wait, "delay", r.Delay)
	}
	if s.opts.MaxAuthFailures > 0 && s.authFail >= s.opts.MaxAuthFailures {
		r.Close = true
	}
	return r
}
