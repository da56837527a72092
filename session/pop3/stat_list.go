package pop3

import (
	"fmt"

	"github.com/pop3svc/pop3svc/session"
)

// stat answers STAT (RFC 1939 section 5): the messages not marked deleted
// and their octets.
func (s *Session) stat(arg string) session.Reply {
	if arg != "" {
		return errorReply(errSyntax)
	}
	return line(fmt.Sprintf("%s %d %d", okPrefix, s.live, s.liveSize))
}

// list answers LIST [msg] (RFC 1939 section 5).
func (s *Session) list(arg string) session.Reply {
	if arg != "" {
		i, r, ok := s.messageArg(arg)
		if !ok {
			return r
		}
		return line(fmt.Sprintf("%s %d %d", okPrefix, i+1, s.msgs[i].Size))
	}
	b := make([]byte, 0, 48+s.live*16)
	b = append(b, okPrefix+" "...)
	b = appendUint(b, int64(s.live))
	b = append(b, " messages ("...)
	b = appendUint(b, s.liveSize)
	b = append(b, " octets)\r\n"...)
	for i, m := range s.msgs {
		if s.deleted[i] {
			continue
		}
		b = appendUint(b, int64(i+1))
		b = append(b, ' ')
		b = appendUint(b, m.Size)
		b = append(b, '\r', '\n')
	}
	b = append(b, ".\r\n"...)
	return session.Reply{Out: b}
}
