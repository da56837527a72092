package smtp

import (
	"errors"
	"fmt"

	gosmtp "github.com/emersion/go-smtp"

	"github.com/pop3svc/pop3svc/store"
)

// Error is a negative SMTP reply: the reply code (RFC 5321 §4.2), the
// enhanced status code (RFC 3463) and the text. The session's commands
// return an *Error or another error; reply turns either into what the
// client is told.
type Error struct {
	Code     int
	Enhanced [3]int
	Text     string
}

// Error returns the reply line without its CRLF.
func (e *Error) Error() string {
	return fmt.Sprintf("%d %d.%d.%d %s", e.Code, e.Enhanced[0], e.Enhanced[1], e.Enhanced[2], e.Text)
}

// The negative replies (RFC 5321 §4.2, RFC 3463).
var (
	errNoMailbox   = &Error{Code: 550, Enhanced: [3]int{5, 1, 1}, Text: "No such mailbox here"}
	errRelayDenied = &Error{Code: 550, Enhanced: [3]int{5, 7, 1}, Text: "Relaying denied: this server accepts mail only for its own domains"}
	errBadAddress  = &Error{Code: 501, Enhanced: [3]int{5, 1, 3}, Text: "Bad address syntax"}
	errBadSender   = &Error{Code: 501, Enhanced: [3]int{5, 1, 7}, Text: "Bad sender address syntax"}
	errTemp        = &Error{Code: 451, Enhanced: [3]int{4, 3, 0}, Text: "Temporary local problem, try again later"}
	errTooMany     = &Error{Code: 452, Enhanced: [3]int{4, 5, 3}, Text: "Too many recipients"}
	errTooBig      = &Error{Code: 552, Enhanced: [3]int{5, 3, 4}, Text: "Message size exceeds the fixed maximum message size"}
	errOverQuota   = &Error{Code: 552, Enhanced: [3]int{5, 2, 2}, Text: "Mailbox full: the message would exceed the quota"}
	errLongLine    = &Error{Code: 500, Enhanced: [3]int{5, 5, 2}, Text: "Line too long"}
	errNeedUTF8    = &Error{Code: 553, Enhanced: [3]int{5, 6, 7}, Text: "Non-ASCII address without SMTPUTF8 (RFC 6531)"}
	errNoRcpts     = &Error{Code: 554, Enhanced: [3]int{5, 5, 1}, Text: "No valid recipients"}
)

// asError maps any error to the *Error the client is told: an *Error
// (wrapped or not) is itself; the store's sentinels that mean the same
// in every command get their replies; anything else is a local failure,
// errTemp (451 4.3.0), and known is false.
func asError(err error) (e *Error, known bool) {
	switch {
	case errors.As(err, &e):
		return e, true
	case errors.Is(err, store.ErrNoSuchMailbox), errors.Is(err, store.ErrInvalidName):
		return errNoMailbox, true
	case errors.Is(err, store.ErrOverQuota):
		return errOverQuota, true
	}
	return errTemp, false
}

// reply is the one function that turns the outcome of a command into the
// reply go-smtp sends, and the only place that builds go-smtp's
// SMTPError:
//   - no error: the positive reply; with a queue id, "250 2.0.0 OK: queued
//     as ID" (go-smtp takes a positive text of a DATA reply only in an
//     SMTPError), else go-smtp's own positive reply of the command;
//   - an error asError knows: its reply;
//   - any other error: 451 4.3.0, and the details go to the log only.
func (ss *session) reply(queueID string, err error) error {
	if err == nil {
		if queueID == "" {
			return nil
		}
		return &gosmtp.SMTPError{Code: 250, EnhancedCode: gosmtp.EnhancedCode{2, 0, 0}, Message: "OK: queued as " + queueID}
	}
	e, known := asError(err)
	if !known {
		ss.log.Error("command failed", "err", err)
	}
	return &gosmtp.SMTPError{Code: e.Code, EnhancedCode: gosmtp.EnhancedCode(e.Enhanced), Message: e.Text}
}
