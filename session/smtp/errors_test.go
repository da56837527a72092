package smtp

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	gosmtp "github.com/emersion/go-smtp"

	"github.com/pop3svc/pop3svc/store"
)

// TestReply: reply turns every outcome into what go-smtp sends: a queue
// id into "250 2.0.0 OK: queued as ID", an *Error or a store sentinel
// (however wrapped) into its reply, and any other error into 451 4.3.0
// whose text tells nothing while the log has the details.
func TestReply(t *testing.T) {
	var logged bytes.Buffer
	ss := &session{log: slog.New(slog.NewTextHandler(&logged, nil))}
	secret := errors.New("write /srv/mail/.pop3/queue/x: no space left on device")
	for _, c := range []struct {
		id     string
		err    error
		want   string // "code x.y.z text"; "" for nil
		logged bool
	}{
		{"", nil, "", false},
		{"Q123", nil, "250 2.0.0 OK: queued as Q123", false},
		{"", errNoRcpts, "554 5.5.1 No valid recipients", false},
		{"", fmt.Errorf("rcpt: %w", errRelayDenied), "550 5.7.1 Relaying denied: this server accepts mail only for its own domains", false},
		{"", fmt.Errorf("quota: %w", store.ErrNoSuchMailbox), "550 5.1.1 No such mailbox here", false},
		{"", store.ErrInvalidName, "550 5.1.1 No such mailbox here", false},
		{"", store.ErrOverQuota, "552 5.2.2 Mailbox full: the message would exceed the quota", false},
		{"", secret, "451 4.3.0 Temporary local problem, try again later", true},
		{"", fmt.Errorf("cannot queue message: %w", secret), "451 4.3.0 Temporary local problem, try again later", true},
	} {
		logged.Reset()
		got := ss.reply(c.id, c.err)
		if c.want == "" {
			if got != nil {
				t.Errorf("reply(%q, nil) = %v, want nil", c.id, got)
			}
			continue
		}
		var se *gosmtp.SMTPError
		if !errors.As(got, &se) {
			t.Fatalf("reply(%q, %v) = %T, want *SMTPError", c.id, c.err, got)
		}
		line := fmt.Sprintf("%d %d.%d.%d %s", se.Code, se.EnhancedCode[0], se.EnhancedCode[1], se.EnhancedCode[2], se.Message)
		if line != c.want {
			t.Errorf("reply(%q, %v) = %q, want %q", c.id, c.err, line, c.want)
		}
		if strings.Contains(se.Message, "no space") {
			t.Errorf("reply(%v) shows the error's details: %q", c.err, se.Message)
		}
		if has := strings.Contains(logged.String(), "no space left"); has != c.logged {
			t.Errorf("reply(%v): details logged %v, want %v; log %q", c.err, has, c.logged, logged.String())
		}
	}
}

// TestErrorText: an *Error renders as its reply line.
func TestErrorText(t *testing.T) {
	if got, want := errTooBig.Error(), "552 5.3.4 Message size exceeds the fixed maximum message size"; got != want {
		t.Errorf("errTooBig.Error() = %q, want %q", got, want)
	}
}

// TestRepliesBuiltInOnePlace: go-smtp's SMTPError is built only by reply
// (errors.go), so that every command's outcome goes through it.
func TestRepliesBuiltInOnePlace(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") || f == "errors.go" {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, l := range strings.Split(string(b), "\n") {
			if strings.Contains(l, "SMTPError{") {
				t.Errorf("%s:%d builds a reply itself: %s", f, i+1, strings.TrimSpace(l))
			}
		}
	}
}
