package pop3

import "github.com/pop3svc/pop3svc/session"

// stls answers STLS (RFC 2595 section 4): only before any USER, once, and
// only when TLS is configured. The engine performs the handshake.
func (s *Session) stls(arg string) session.Reply {
	if arg != "" {
		return s.bad(errSyntax)
	}
	if !s.opts.TLSAvailable || s.tls || s.usedUSER {
		return s.bad(errNoSTLS)
	}
	r := line(replySTLS)
	r.StartTLS = true
	return r
}
