package pop3

import (
	"strings"

	"github.com/pop3svc/pop3svc/session"
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
	return s.login("user", func() (store.Address, error) {
		ctx, cancel := s.ctx()
		defer cancel()
		return s.opts.Auth.Plaintext(ctx, name, arg)
	})
}
