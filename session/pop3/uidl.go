package pop3

import (
	"fmt"

	"github.com/pop3svc/pop3svc/session"
)

// uidl answers UIDL [msg] (RFC 1939 section 7) with each message's UID
// in the store: its 26-digit name, or the UIDL an imported message kept
// from its old server (store.Importer).
func (s *Session) uidl(arg string) session.Reply {
	if arg != "" {
		i, r, ok := s.messageArg(arg)
		if !ok {
			return r
		}
		return line(fmt.Sprintf("%s %d %s", okPrefix, i+1, s.msgs[i].UID))
	}
	b := make([]byte, 0, 8+s.live*36)
	b = append(b, okPrefix+"\r\n"...)
	for i, m := range s.msgs {
		if s.deleted[i] {
			continue
		}
		b = appendUint(b, int64(i+1))
		b = append(b, ' ')
		b = append(b, m.UID...)
		b = append(b, '\r', '\n')
	}
	b = append(b, ".\r\n"...)
	return session.Reply{Out: b}
}
