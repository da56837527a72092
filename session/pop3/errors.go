package pop3

import (
	"errors"
	"strings"

	"github.com/pop3svc/pop3svc/session"
	"github.com/pop3svc/pop3svc/session/auth"
	"github.com/pop3svc/pop3svc/store"
)

// Response codes (RFC 2449 section 8, RFC 3206), without their brackets.
const (
	codeInUse   = "IN-USE"
	codeAuth    = "AUTH"
	codeSysTemp = "SYS/TEMP"
	codeSysPerm = "SYS/PERM"
	codeDelay   = "LOGIN-DELAY"
)

// Error is a negative POP3 reply: "-ERR", the response code in brackets
// when there is one, and the text. Every -ERR the service sends is an
// *Error, turned into its line by errorReply.
type Error struct {
	Code string // response code without brackets (codeAuth, ...); "" for none
	Text string
}

// Error returns the reply line without its CRLF.
func (e *Error) Error() string {
	if e.Code == "" {
		return errPrefix + " " + e.Text
	}
	return errPrefix + " [" + e.Code + "] " + e.Text
}

// The negative replies. Bad credentials of any kind (unknown user, wrong
// password, invalid name, banned address) always get errBadCreds, byte for
// byte.
var (
	errBadCreds       = &Error{Code: codeAuth, Text: "invalid user name or password"}
	errPlainRefused   = &Error{Code: codeAuth, Text: "plaintext authentication requires TLS"}
	errLoginDelay     = &Error{Code: codeDelay, Text: "too soon after the last login, try again later"}
	errInUse          = &Error{Code: codeInUse, Text: "mailbox is in use by another session"}
	errLockLost       = &Error{Code: codeInUse, Text: "mailbox lock lost to another session; no message deleted"}
	errLocked         = &Error{Code: codeSysPerm, Text: "mailbox is locked by the administrator"}
	errTemp           = &Error{Code: codeSysTemp, Text: "temporary server failure, try again later"}
	errAuthUnavail    = &Error{Code: codeSysTemp, Text: "authentication service unavailable, try again later"}
	errAuthBusy       = &Error{Code: codeSysTemp, Text: "too many logins in progress, try again later"}
	errUpdateFailed   = &Error{Code: codeSysTemp, Text: "some deleted messages not removed"}
	errInternal       = &Error{Code: codeSysTemp, Text: "internal error, closing connection"}
	errNoSuchMessage  = &Error{Text: "no such message"}
	errUnknownCommand = &Error{Text: "unknown command"}
	errWrongState     = &Error{Text: "command not valid in this state"}
	errSyntax         = &Error{Text: "syntax error"}
	errTooManyBad     = &Error{Text: "too many bad commands, closing connection"}
	errLineTooLong    = &Error{Text: "line too long"}
	errNoUser         = &Error{Text: "USER first"}
	errNoAPOP         = &Error{Text: "APOP not available"}
	errNoMech         = &Error{Text: "unsupported authentication mechanism"}
	errAuthCancelled  = &Error{Text: "authentication cancelled"}
	errAuthBadLine    = &Error{Text: "authentication exchange failed: invalid response"}
	errNoSTLS         = &Error{Text: "STLS not available"}
	errSessionIsOver  = &Error{Text: "session is over"}
	errNoLanguage     = &Error{Text: "no such language"}
)

// asError maps any error to the *Error the client is told: an *Error
// (wrapped or not) is itself; the store's and the authentication
// module's sentinel errors get their response codes; anything else is a
// server failure, errTemp, whose details the client never sees (the
// caller logs them). known is false in that last case.
func asError(err error) (e *Error, known bool) {
	switch {
	case errors.As(err, &e):
		return e, true
	case errors.Is(err, store.ErrLockLost):
		return errLockLost, true
	case errors.Is(err, store.ErrMailboxInUse):
		return errInUse, true
	case errors.Is(err, store.ErrMailboxLocked), errors.Is(err, store.ErrDomainLocked):
		return errLocked, true
	case errors.Is(err, auth.ErrQueueFull):
		return errAuthBusy, true
	case errors.Is(err, auth.ErrUnavailable):
		return errAuthUnavail, true
	case errors.Is(err, store.ErrAuthFailed), errors.Is(err, store.ErrNoSuchMailbox),
		errors.Is(err, store.ErrNoSuchDomain), errors.Is(err, store.ErrInvalidName),
		errors.Is(err, store.ErrNoSecret):
		return errBadCreds, true
	case errors.Is(err, store.ErrNoSuchMessage):
		return errNoSuchMessage, true
	}
	return errTemp, false
}

// isErrLine reports whether l is a negative reply line; errText is its
// text after the status indicator (LANG translates it).
func isErrLine(l string) bool { return strings.HasPrefix(l, errPrefix+" ") }

func errText(l string) string { return strings.TrimPrefix(l, errPrefix+" ") }

// errorReply is the one function that turns an error into a reply: the
// -ERR line of asError(err). Only the caller decides whether the
// connection closes after it.
func errorReply(err error) session.Reply {
	e, _ := asError(err)
	return line(e.Error())
}
