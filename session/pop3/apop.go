package pop3

import (
	"strings"

	"github.com/pop3svc/pop3svc/session"
	"github.com/pop3svc/pop3svc/store"
)

// apopCmd answers APOP name digest (RFC 1939 section 7).
func (s *Session) apopCmd(arg string) session.Reply {
	if !s.apopAvailable() || s.timestamp == "" {
		return s.bad(errNoAPOP)
	}
	f := strings.Fields(arg)
	if len(f) != 2 || len(f[1]) != 32 {
		return s.bad(errSyntax)
	}
	name, digest := f[0], f[1]
	s.tryUser = name
	return s.login("apop", func() (store.Address, error) {
		ctx, cancel := s.ctx()
		defer cancel()
		return s.opts.Auth.APOP(ctx, name, s.timestamp, digest)
	})
}
