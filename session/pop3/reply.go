package pop3

import (
	"strconv"

	"github.com/pop3svc/pop3svc/session"
)

// Status indicators (RFC 1939 section 3).
const (
	okPrefix  = "+OK"
	errPrefix = "-ERR"
)

// replySTLS is the positive answer to STLS (RFC 2595 section 4).
const replySTLS = okPrefix + " Begin TLS negotiation"

// line returns a single-line reply.
func line(s string) session.Reply {
	b := make([]byte, 0, len(s)+2)
	b = append(b, s...)
	b = append(b, '\r', '\n')
	return session.Reply{Out: b}
}

func isOK(r session.Reply) bool { return len(r.Out) > 0 && r.Out[0] == '+' }

func appendUint(b []byte, n int64) []byte { return strconv.AppendInt(b, n, 10) }
