package pop3

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pop3svc/pop3svc/session/auth"
	"github.com/pop3svc/pop3svc/store"
)

// TestErrorReply: every error becomes exactly one -ERR line; errors of the
// store and the authentication module get their response codes however
// deeply wrapped, and any other error is a temporary failure whose text
// the client never sees.
func TestErrorReply(t *testing.T) {
	secret := errors.New("open /srv/mail/x: input/output error")
	for _, c := range []struct {
		err   error
		want  string
		known bool
	}{
		{errSyntax, "-ERR syntax error", true},
		{fmt.Errorf("context: %w", errNoSuchMessage), "-ERR no such message", true},
		{fmt.Errorf("open: %w", store.ErrMailboxInUse), "-ERR [IN-USE] mailbox is in use by another session", true},
		{store.ErrMailboxLocked, "-ERR [SYS/PERM] mailbox is locked by the administrator", true},
		{fmt.Errorf("a: %w", store.ErrDomainLocked), "-ERR [SYS/PERM] mailbox is locked by the administrator", true},
		{fmt.Errorf("ldap: %w", auth.ErrUnavailable), "-ERR [SYS/TEMP] authentication service unavailable, try again later", true},
		{store.ErrAuthFailed, "-ERR [AUTH] invalid user name or password", true},
		{store.ErrNoSuchMailbox, "-ERR [AUTH] invalid user name or password", true},
		{store.ErrNoSuchDomain, "-ERR [AUTH] invalid user name or password", true},
		{store.ErrInvalidName, "-ERR [AUTH] invalid user name or password", true},
		{store.ErrNoSecret, "-ERR [AUTH] invalid user name or password", true},
		{store.ErrNoSuchMessage, "-ERR no such message", true},
		{secret, "-ERR [SYS/TEMP] temporary server failure, try again later", false},
		{fmt.Errorf("retr: %w", secret), "-ERR [SYS/TEMP] temporary server failure, try again later", false},
	} {
		e, known := asError(c.err)
		if e.Error() != c.want || known != c.known {
			t.Errorf("asError(%v) = %q, %v; want %q, %v", c.err, e.Error(), known, c.want, c.known)
		}
		r := errorReply(c.err)
		if got := string(r.Out); got != c.want+"\r\n" {
			t.Errorf("errorReply(%v) = %q, want %q", c.err, got, c.want+"\r\n")
		}
		if strings.Contains(string(r.Out), "input/output") {
			t.Errorf("errorReply(%v) shows the error's details: %q", c.err, r.Out)
		}
		if r.Close || r.Body != nil || r.StartTLS || r.Authenticated {
			t.Errorf("errorReply(%v) = %+v: only the caller decides anything but the line", c.err, r)
		}
	}
}

// TestErrorText: an *Error renders as "-ERR", the code in brackets when
// there is one, and its text.
func TestErrorText(t *testing.T) {
	for _, c := range []struct {
		e    *Error
		want string
	}{
		{&Error{Text: "no such message"}, "-ERR no such message"},
		{&Error{Code: codeSysTemp, Text: "x"}, "-ERR [SYS/TEMP] x"},
	} {
		if got := c.e.Error(); got != c.want {
			t.Errorf("(%+v).Error() = %q, want %q", *c.e, got, c.want)
		}
	}
}

// TestNegativeRepliesInOnePlace: the -ERR prefix is spelled only in
// errors.go (and reply.go, which defines it), so that every negative reply
// goes through Error and errorReply.
func TestNegativeRepliesInOnePlace(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") || f == "errors.go" || f == "reply.go" {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, l := range strings.Split(string(b), "\n") {
			if strings.Contains(l, `"-ERR`) || strings.Contains(l, "errPrefix") {
				t.Errorf("%s:%d writes a negative reply itself: %s", f, i+1, strings.TrimSpace(l))
			}
		}
	}
}
