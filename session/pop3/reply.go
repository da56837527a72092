package pop3

import (
	"errors"
	"strconv"

	"github.com/pop3svc/pop3svc/session"
	"github.com/pop3svc/pop3svc/session/auth"
	"github.com/pop3svc/pop3svc/store"
)

// Status indicators and response codes (RFC 1939 section 3, RFC 2449
// section 8, RFC 3206).
const (
	okPrefix  = "+OK"
	errPrefix = "-ERR"

	codeInUse   = "[IN-USE]"
	codeAuth    = "[AUTH]"
	codeSysTemp = "[SYS/TEMP]"
	codeSysPerm = "[SYS/PERM]"
)

// Fixed reply lines. Bad credentials of any kind (unknown user, wrong
// password, invalid name, banned address) always get replyBadCreds, byte for
// byte.
const (
	replyBadCreds       = errPrefix + " " + codeAuth + " invalid user name or password"
	replyInUse          = errPrefix + " " + codeInUse + " mailbox is in use by another session"
	replyLocked         = errPrefix + " " + codeSysPerm + " mailbox is locked by the administrator"
	replyTemp           = errPrefix + " " + codeSysTemp + " temporary server failure, try again later"
	replyAuthUnavail    = errPrefix + " " + codeSysTemp + " authentication service unavailable, try again later"
	replyNoSuchMessage  = "-ERR no such message"
	replyUnknown        = "-ERR unknown command"
	replyWrongState     = "-ERR command not valid in this state"
	replySyntax         = "-ERR syntax error"
	replyTooManyBad     = "-ERR too many bad commands, closing connection"
	replyLineTooLong    = "-ERR line too long"
	replyNoUser         = "-ERR USER first"
	replyPlainRefused   = errPrefix + " " + codeAuth + " plaintext authentication requires TLS"
	replyNoAPOP         = "-ERR APOP not available"
	replyNoMech         = "-ERR unsupported authentication mechanism"
	replyAuthCancelled  = "-ERR authentication cancelled"
	replyAuthBadLine    = "-ERR authentication exchange failed: invalid response"
	replyNoSTLS         = "-ERR STLS not available"
	replySTLS           = "+OK Begin TLS negotiation"
	replyUpdateFailed   = errPrefix + " " + codeSysTemp + " some deleted messages not removed"
	replySessionIsOver  = "-ERR session is over"
	replyInternalFailed = errPrefix + " " + codeSysTemp + " internal error, closing connection"
)

// errorLine maps any error to a -ERR line: the one place where store and
// authentication errors become response codes. Details never reach the
// client; the caller logs them.
func errorLine(err error) string {
	switch {
	case errors.Is(err, store.ErrMailboxInUse):
		return replyInUse
	case errors.Is(err, store.ErrMailboxLocked), errors.Is(err, store.ErrDomainLocked):
		return replyLocked
	case errors.Is(err, auth.ErrUnavailable):
		return replyAuthUnavail
	case errors.Is(err, store.ErrAuthFailed), errors.Is(err, store.ErrNoSuchMailbox),
		errors.Is(err, store.ErrNoSuchDomain), errors.Is(err, store.ErrInvalidName),
		errors.Is(err, store.ErrNoSecret):
		return replyBadCreds
	case errors.Is(err, store.ErrNoSuchMessage):
		return replyNoSuchMessage
	}
	return replyTemp
}

// line returns a single-line reply.
func line(s string) session.Reply {
	b := make([]byte, 0, len(s)+2)
	b = append(b, s...)
	b = append(b, '\r', '\n')
	return session.Reply{Out: b}
}

func isOK(r session.Reply) bool { return len(r.Out) > 0 && r.Out[0] == '+' }

func appendUint(b []byte, n int64) []byte { return strconv.AppendInt(b, n, 10) }
