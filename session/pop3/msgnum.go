package pop3

import (
	"strconv"
	"strings"

	"github.com/pop3svc/pop3svc/session"
)

// maxMsgNumDigits bounds a message number argument: more digits than this
// cannot name a message (and must not overflow).
const maxMsgNumDigits = 10

// parseNumber reads a strict decimal number: digits only, at most
// maxMsgNumDigits of them.
func parseNumber(a string) (int, bool) {
	if a == "" || len(a) > maxMsgNumDigits {
		return 0, false
	}
	for i := 0; i < len(a); i++ {
		if a[i] < '0' || a[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(a, 10, 64)
	if err != nil {
		return 0, false
	}
	return int(n), true
}

// message parses a message-number argument and returns its 0-based index.
// Numbers out of range and messages marked deleted are "no such message"
// (RFC 1939 section 5).
func (s *Session) message(a string) (int, session.Reply, bool) {
	n, ok := parseNumber(a)
	if !ok {
		return 0, errorReply(errSyntax), false
	}
	if n < 1 || n > len(s.msgs) || s.deleted[n-1] {
		return 0, errorReply(errNoSuchMessage), false
	}
	return n - 1, session.Reply{}, true
}

// oneArg splits arg into exactly one word.
func oneArg(arg string) (string, bool) {
	f := strings.Fields(arg)
	if len(f) != 1 {
		return "", false
	}
	return f[0], true
}

// messageArg parses a command's one message-number argument: the index of
// a live message, or the reply to send when there is none.
func (s *Session) messageArg(arg string) (int, session.Reply, bool) {
	a, ok := oneArg(arg)
	if !ok {
		return 0, errorReply(errSyntax), false
	}
	return s.message(a)
}
