package pop3

import (
	"strings"
	"time"

	"github.com/pop3svc/pop3svc/session"
	"github.com/pop3svc/pop3svc/session/auth"
	"github.com/pop3svc/pop3svc/store"
)

// userCmd answers USER. It always succeeds for any syntactically present
// name, so that USER reveals nothing about which mailboxes exist.
func (s *Session) userCmd(arg string) session.Reply {
	if !s.plaintextAllowed() {
		return s.bad(errPlainRefused)
	}
	name := strings.TrimSpace(arg)
	if name == "" || strings.ContainsRune(name, ' ') {
		return s.bad(errSyntax)
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
		return s.bad(errPlainRefused)
	}
	if !wasUser {
		return s.bad(errNoUser)
	}
	name := s.user
	s.user = ""
	return s.passwordLogin("user", auth.PasswordCheck{Name: name, Password: arg})
}

// passwordLogin finishes a login with a plaintext password (USER/PASS,
// PLAIN, LOGIN). Without an auth queue the password is checked here.
// With one, cheap checks come first, on this worker: a banned address is
// refused and a remembered success logs in, with no hash; then the
// address's penalty may make the attempt wait its turn (or refuse it), and
// only then is the hash queued. A full queue answers [SYS/TEMP] at once.
// The command holds no worker while it waits for or runs the hash; the
// login finishes on a worker once the hash is done.
func (s *Session) passwordLogin(mech string, pc auth.PasswordCheck) session.Reply {
	s.tryUser = pc.Name
	a := s.opts.Auth
	if a == nil || a.Queue == nil {
		return s.login(mech, func() (store.Address, error) {
			ctx, cancel := s.ctx()
			defer cancel()
			if a == nil {
				return store.Address{}, auth.ErrUnavailable
			}
			addr, pad, err := a.Check(ctx, pc)
			s.pad = pad
			return addr, err
		})
	}
	if s.opts.Store == nil {
		return s.login(mech, nil)
	}
	if a.Banned(s.ip) {
		return s.loginRefused(mech, "banned")
	}
	ctx, cancel := s.ctx()
	addr, ok, cost := a.Quick(ctx, pc)
	cancel()
	if ok {
		return s.login(mech, func() (store.Address, error) { return addr, nil })
	}
	wait, admitted := a.Admit(s.ip)
	if !admitted {
		return s.loginRefused(mech, "throttled")
	}
	q := a.Queue
	standing := a.Standing(s.ip)
	return session.Reply{Pending: func(resume func(func() session.Reply)) {
		var (
			addr store.Address
			pad  time.Duration
			err  = error(auth.ErrUnavailable)
		)
		// The answer goes out once the check's slot is free (Done).
		done := func() {
			resume(func() session.Reply {
				return s.login(mech, func() (store.Address, error) {
					s.pad = pad
					return addr, err
				})
			})
		}
		check := func(low bool) {
			ctx, cancel := s.ctx()
			defer cancel()
			if low {
				ctx = store.WithLowPriority(ctx)
			}
			addr, pad, err = a.Check(ctx, pc)
		}
		refuse := func() {
			resume(func() session.Reply {
				s.log.Warn("login refused", "user", s.tryUser, "mech", mech, "result", "refused", "reason", "auth_queue_full")
				return s.loginFailed(mech, auth.ErrQueueFull)
			})
		}
		submit := func() {
			if qerr := q.Enqueue(auth.Check{Cost: cost, Net: auth.Network(s.ip), Standing: standing, Run: check, Done: done, Refused: refuse}); qerr != nil {
				refuse()
			}
		}
		if wait > 0 {
			time.AfterFunc(wait, submit)
			return
		}
		submit()
	}}
}
