package pop3

import (
	"fmt"

	"github.com/pop3svc/pop3svc/session"
)

// dele answers DELE msg (RFC 1939 section 5): the message is marked, and
// removed only in the UPDATE state.
func (s *Session) dele(arg string) session.Reply {
	i, r, ok := s.messageArg(arg)
	if !ok {
		return r
	}
	s.deleted[i] = true
	s.live--
	s.liveSize -= s.msgs[i].Size
	return line(fmt.Sprintf("%s message %d deleted", okPrefix, i+1))
}

// rset answers RSET (RFC 1939 section 5): every mark is removed.
func (s *Session) rset(arg string) session.Reply {
	if arg != "" {
		return errorReply(errSyntax)
	}
	for i := range s.deleted {
		s.deleted[i] = false
	}
	s.live = len(s.msgs)
	s.liveSize = 0
	for _, m := range s.msgs {
		s.liveSize += m.Size
	}
	return line(fmt.Sprintf("%s maildrop has %d messages (%d octets)", okPrefix, s.live, s.liveSize))
}
