package pop3

import (
	"bytes"
	"strings"

	"github.com/pop3svc/pop3svc/session"
)

// capa answers CAPA (RFC 2449 section 5), in any state.
func (s *Session) capa(arg string) session.Reply {
	if arg != "" {
		return s.bad(errSyntax)
	}
	var b bytes.Buffer
	b.WriteString("+OK capability list follows\r\nTOP\r\nUIDL\r\n")
	if s.plaintextAllowed() {
		b.WriteString("USER\r\n")
	}
	if mechs := s.mechanisms(); len(mechs) > 0 {
		b.WriteString("SASL " + strings.Join(mechs, " ") + "\r\n")
	}
	b.WriteString("RESP-CODES\r\nAUTH-RESP-CODE\r\nPIPELINING\r\n")
	if s.state == stateAuthorization {
		// RFC 6856 section 2: "USER" says USER and PASS take UTF-8 too;
		// not where USER itself is refused (sparequired without TLS).
		if s.plaintextAllowed() {
			b.WriteString("UTF8 USER\r\n")
		} else {
			b.WriteString("UTF8\r\n")
		}
	}
	b.WriteString("LANG\r\n")
	b.WriteString(s.policyLines())
	if s.opts.TLSAvailable && !s.tls && s.state == stateAuthorization {
		b.WriteString("STLS\r\n")
	}
	b.WriteString(".\r\n")
	return session.Reply{Out: b.Bytes()}
}
