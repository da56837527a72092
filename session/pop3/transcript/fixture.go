package transcript

import (
	"context"
	"fmt"
	"strings"

	"github.com/pop3svc/pop3svc/store"
)

// The standard fixture that the transcripts in session/pop3/testdata
// assume. Messages are delivered in this order, so their numbers are fixed.
const (
	FixtureDomain = "example.com"
	// alice@example.com, password with spaces, holds the FixtureMessages.
	AliceUser     = "alice@example.com"
	AlicePassword = "tanstaaf with spaces"
	// bob@example.com has an empty mailbox.
	BobUser     = "bob@example.com"
	BobPassword = "bobpass"
	// carol@example.com is locked by the administrator.
	CarolUser     = "carol@example.com"
	CarolPassword = "carolpass"
	// dave@example.com has no password-file credentials.
	DaveUser = "dave@example.com"
)

// FixtureMessages are alice's messages, CRLF line endings.
var FixtureMessages = []string{
	// 1: 118 octets; has lines that begin with '.'.
	"From: bob@example.com\r\nTo: alice@example.com\r\nSubject: first\r\n\r\nHello Alice.\r\n.leading dot\r\n..two dots\r\n.\r\nlast line\r\n",
	// 2: 59 octets: a header, five body lines.
	"Subject: second\r\n\r\nline 1\r\nline 2\r\nline 3\r\nline 4\r\nline 5\r\n",
	// 3: 18 octets: no body.
	"Subject: third\r\n\r\n",
}

// Fixture creates the standard domain, mailboxes and messages in st.
func Fixture(ctx context.Context, st store.Store) error {
	if err := st.CreateDomain(ctx, FixtureDomain); err != nil {
		return fmt.Errorf("fixture: %w", err)
	}
	for _, u := range []struct{ user, pass string }{
		{AliceUser, AlicePassword}, {BobUser, BobPassword}, {CarolUser, CarolPassword}, {DaveUser, ""},
	} {
		a, err := store.ParseAddress(u.user, "")
		if err != nil {
			return fmt.Errorf("fixture: %w", err)
		}
		if err := st.CreateMailbox(ctx, a, u.pass); err != nil {
			return fmt.Errorf("fixture: create %s: %w", a, err)
		}
	}
	alice, _ := store.ParseAddress(AliceUser, "")
	for i, m := range FixtureMessages {
		if _, err := st.Deliver(ctx, alice, strings.NewReader(m)); err != nil {
			return fmt.Errorf("fixture: deliver message %d: %w", i+1, err)
		}
	}
	carol, _ := store.ParseAddress(CarolUser, "")
	if err := st.LockMailbox(ctx, carol); err != nil {
		return fmt.Errorf("fixture: lock %s: %w", carol, err)
	}
	return nil
}
