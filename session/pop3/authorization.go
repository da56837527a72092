package pop3

import (
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/pop3svc/pop3svc/session"
	"github.com/pop3svc/pop3svc/session/auth"
	"github.com/pop3svc/pop3svc/store"
)

// handleAuthorization runs a command in the AUTHORIZATION state (RFC 1939
// section 4). wasUser is true when the previous command was a successful USER.
func (s *Session) handleAuthorization(cmd, arg string, wasUser bool) session.Reply {
	switch cmd {
	case "CAPA":
		if arg != "" {
			return s.bad(replySyntax)
		}
		return s.capabilities()
	case "NOOP":
		// RFC 1939 lists NOOP for TRANSACTION only; answering it here is
		// harmless and helps clients that probe the link.
		return line(okPrefix)
	case "QUIT":
		r := line(okPrefix + " " + greetingText(s.opts.Greeting) + " signing off")
		r.Close = true
		s.state = stateUpdate
		return r
	case "STLS":
		return s.stls(arg)
	case "USER":
		return s.userCmd(arg)
	case "PASS":
		return s.passCmd(arg, wasUser)
	case "APOP":
		return s.apopCmd(arg)
	case "AUTH":
		return s.authCmd(arg)
	case "STAT", "LIST", "RETR", "DELE", "RSET", "TOP", "UIDL":
		return s.bad(replyWrongState)
	}
	return s.bad(replyUnknown)
}

// stls answers STLS (RFC 2595 section 4): only before any USER, once, and
// only when TLS is configured. The engine performs the handshake.
func (s *Session) stls(arg string) session.Reply {
	if arg != "" {
		return s.bad(replySyntax)
	}
	if !s.opts.TLSAvailable || s.tls || s.usedUSER {
		return s.bad(replyNoSTLS)
	}
	r := line(replySTLS)
	r.StartTLS = true
	return r
}

// userCmd answers USER. It always succeeds for any syntactically present
// name, so that USER reveals nothing about which mailboxes exist.
func (s *Session) userCmd(arg string) session.Reply {
	if !s.plaintextAllowed() {
		return s.bad(replyPlainRefused)
	}
	name := strings.TrimSpace(arg)
	if name == "" || strings.ContainsRune(name, ' ') {
		return s.bad(replySyntax)
	}
	s.user = name
	s.userSeen = true
	s.usedUSER = true
	return line(okPrefix + " send PASS")
}

// passCmd answers PASS (RFC 1939 section 7). The password is the rest of
// the line after "PASS ", spaces included.
func (s *Session) passCmd(arg string, wasUser bool) session.Reply {
	if !s.plaintextAllowed() {
		return s.bad(replyPlainRefused)
	}
	if !wasUser {
		return s.bad(replyNoUser)
	}
	name := s.user
	s.user = ""
	return s.login("user", func() (store.Address, error) {
		ctx, cancel := s.ctx()
		defer cancel()
		return s.opts.Auth.Plaintext(ctx, name, arg)
	})
}

// apopCmd answers APOP name digest (RFC 1939 section 7).
func (s *Session) apopCmd(arg string) session.Reply {
	if !s.apopAvailable() || s.timestamp == "" {
		return s.bad(replyNoAPOP)
	}
	f := strings.Fields(arg)
	if len(f) != 2 || len(f[1]) != 32 {
		return s.bad(replySyntax)
	}
	name, digest := f[0], f[1]
	return s.login("apop", func() (store.Address, error) {
		ctx, cancel := s.ctx()
		defer cancel()
		return s.opts.Auth.APOP(ctx, name, s.timestamp, digest)
	})
}

// authCmd answers AUTH (RFC 5034). Without an argument it lists the
// mechanisms, one per line, as older clients expect.
func (s *Session) authCmd(arg string) session.Reply {
	if s.opts.Auth == nil {
		return s.bad(replyNoMech)
	}
	f := strings.Fields(arg)
	if len(f) == 0 {
		var b strings.Builder
		b.WriteString("+OK list of SASL mechanisms follows\r\n")
		for _, m := range s.opts.Auth.Mechanisms(s.tls, s.opts.SPARequired) {
			b.WriteString(m + "\r\n")
		}
		b.WriteString(".\r\n")
		return session.Reply{Out: []byte(b.String())}
	}
	if len(f) > 2 {
		return s.bad(replySyntax)
	}
	mech, ok := s.opts.Auth.NewMechanism(f[0], s.tls, s.opts.SPARequired)
	if !ok {
		return s.bad(replyNoMech)
	}
	x := &saslExchange{name: strings.ToLower(f[0]), mech: mech}
	var initial []byte // nil: no initial response
	if len(f) == 2 {
		// RFC 5034 section 4: "=" is an empty initial response.
		if f[1] == "=" {
			initial = []byte{}
		} else {
			b, err := base64.StdEncoding.DecodeString(f[1])
			if err != nil {
				countAuth(x.name, "fail")
				return s.bad(replyAuthBadLine)
			}
			initial = b
		}
	}
	return s.saslStep(x, initial)
}

// saslContinue takes a continuation line of a SASL exchange in progress.
func (s *Session) saslContinue(l []byte) session.Reply {
	x := s.sasl
	if len(l) == 1 && l[0] == '*' {
		// RFC 5034 section 4: the client cancels the exchange.
		s.sasl = nil
		countAuth(x.name, "fail")
		return line(replyAuthCancelled)
	}
	max := s.opts.MaxAuthLine
	if max <= 0 {
		max = DefaultMaxAuthLine
	}
	b, err := base64.StdEncoding.DecodeString(string(l))
	if len(l) > max || err != nil {
		s.sasl = nil
		countAuth(x.name, "fail")
		return s.bad(replyAuthBadLine)
	}
	return s.saslStep(x, b)
}

// saslStep feeds one response to the mechanism and sends the next
// challenge or ends the exchange with a login.
func (s *Session) saslStep(x *saslExchange, resp []byte) session.Reply {
	var (
		challenge []byte
		done      bool
		err       error
	)
	if s.opts.Auth.Banned(s.ip) {
		done, err = true, fmt.Errorf("%w: address banned", auth.ErrAuthFailed)
	} else {
		ctx, cancel := s.ctx()
		challenge, done, err = x.mech.Next(ctx, resp)
		cancel()
	}
	if !done {
		s.sasl = x
		return line("+ " + base64.StdEncoding.EncodeToString(challenge))
	}
	s.sasl = nil
	return s.login(x.name, func() (store.Address, error) {
		if err != nil {
			return store.Address{}, err
		}
		return x.mech.Address(), nil
	})
}

// login finishes a login attempt: verify checks the credentials; on
// success the mailbox is opened. A banned address is refused with the
// bad-credentials reply without verifying anything.
func (s *Session) login(mech string, verify func() (store.Address, error)) session.Reply {
	if s.opts.Auth == nil || s.opts.Store == nil {
		countAuth(mech, "temp")
		return line(replyAuthUnavail)
	}
	// SASL exchanges consult the guard in saslStep, before each step.
	if (mech == "user" || mech == "apop") && s.opts.Auth.Banned(s.ip) {
		s.log.Info("login refused: address banned", "mech", mech)
		return s.loginFailed(mech, auth.ErrAuthFailed)
	}
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
		text := errorLine(err)
		result := "temp"
		if text == replyLocked {
			result = "fail"
		}
		countAuth(mech, result)
		s.log.Warn("cannot open the mailbox", "user", addr.String(), "mech", mech, "err", err)
		return line(text)
	}
	s.mu.Lock()
	closed := s.closed
	if !closed {
		s.mbox = mbox
	}
	s.mu.Unlock()
	if closed {
		mbox.Close()
		return line(replySessionIsOver)
	}
	s.opts.Auth.Success(s.ip)
	countAuth(mech, "ok")
	s.addr = addr
	s.msgs = mbox.Messages()
	s.deleted = make([]bool, len(s.msgs))
	s.live = len(s.msgs)
	s.liveSize = 0
	for _, m := range s.msgs {
		s.liveSize += m.Size
	}
	s.state = stateTransaction
	s.lastRefresh = s.now()
	s.log = s.log.With("user", addr.String())
	s.log.Info("login", "mech", mech, "messages", s.live, "octets", s.liveSize)
	r := line(fmt.Sprintf("%s maildrop has %d messages (%d octets)", okPrefix, s.live, s.liveSize))
	r.Authenticated = true
	return r
}

// loginFailed answers a failed login. Bad credentials of every kind get
// the same reply and the same delay; failures of the authentication service
// get [SYS/TEMP] at once.
func (s *Session) loginFailed(mech string, err error) session.Reply {
	if !errors.Is(err, auth.ErrAuthFailed) {
		countAuth(mech, "temp")
		s.log.Error("authentication failed to run", "mech", mech, "err", err)
		return line(errorLine(err))
	}
	countAuth(mech, "fail")
	s.authFail++
	s.log.Info("login failed", "mech", mech, "failures", s.authFail)
	r := line(replyBadCreds)
	r.Delay = s.opts.Auth.Failure(s.ip)
	if s.opts.MaxAuthFailures > 0 && s.authFail >= s.opts.MaxAuthFailures {
		r.Close = true
	}
	return r
}
