package main_test

import (
	"strings"
	"testing"
)

// pop3ctl expire edits pop3.expire_domains and pop3.expire_mailboxes and
// shows the retention in force for a domain or mailbox.
func TestExpireVerb(t *testing.T) {
	e := newEnv(t, "")
	show := func(name string) string {
		t.Helper()
		return strings.TrimSpace(e.ok("", "expire", name))
	}
	if got := show("alice@example.test"); got != "alice@example.test none (EXPIRE not advertised)" {
		t.Fatalf("before any retention: %q", got)
	}
	e.ok("", "set", "pop3.expire", "30")
	e.ok("", "expire", "Example.TEST", "7")
	e.ok("", "expire", "alice@example.test", "never")
	if got := show("alice@example.test"); got != "alice@example.test NEVER" {
		t.Fatalf("mailbox override: %q", got)
	}
	if got := show("bob@example.test"); got != "bob@example.test 7" {
		t.Fatalf("domain retention: %q", got)
	}
	if got := show("carol@other.test"); got != "carol@other.test 30" {
		t.Fatalf("server retention: %q", got)
	}
	e.ok("", "expire", "alice@example.test", "0")
	if got := strings.TrimSpace(e.ok("", "get", "pop3.expire_mailboxes")); got != "alice@example.test=0" {
		t.Fatalf("a second override replaces the first: %q", got)
	}
	e.ok("", "expire", "alice@example.test", "default")
	if got := show("alice@example.test"); got != "alice@example.test 7" {
		t.Fatalf("after default: %q", got)
	}
	if got := strings.TrimSpace(e.ok("", "get", "pop3.expire_domains")); got != "example.test=7" {
		t.Fatalf("pop3.expire_domains: %q", got)
	}
	e.refused("days", "expire", "alice@example.test", "soon")
	e.refused("", "expire", "../x", "3")
}
