package smtp

import (
	"bytes"
	"strings"
	"testing"
)

// With CHUNKING, go-smtp runs Data in a goroutine of its own while it goes
// on reading commands: an RSET after a BDAT that is not the last calls
// Reset while Data may still be reading the transaction (go test -race),
// and the aborted transaction must queue nothing. (Each transaction is on
// a connection of its own: go-smtp v0.25 itself races when a new BDAT
// transaction follows on the same connection; see session.waitData.)
func TestBDATThenRSETDoesNotRace(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.domain("example.com")
	e.mailbox("a@example.com", 0)
	e.mailbox("b@example.com", 0)
	for i := 0; i < 20; i++ {
		c := e.dial(e.smtp)
		c.cmd("EHLO client.test", "250")
		c.cmd("MAIL FROM:<x@remote.test>", "250")
		c.cmd("RCPT TO:<a@example.com>", "250")
		c.cmd("BDAT 0", "250")
		c.cmd("RSET", "250")
		c.cmd("QUIT", "221")
	}
	c := e.dial(e.smtp)
	c.cmd("EHLO client.test", "250")
	c.cmd("MAIL FROM:<y@remote.test>", "250")
	c.cmd("RCPT TO:<b@example.com>", "250")
	body := "Subject: kept\r\n\r\nbody\r\n"
	c.send("BDAT " + itoa(len(body)) + " LAST\r\n" + strings.TrimSuffix(body, "\r\n"))
	c.expect("250")
	c.cmd("QUIT", "221")
	e.waitIdle()
	if n := len(e.messages("a@example.com")); n != 0 {
		t.Errorf("a got %d messages from aborted transactions", n)
	}
	msgs := e.messages("b@example.com")
	if len(msgs) != 1 || !bytes.Contains(msgs[0], []byte("Return-Path: <y@remote.test>")) {
		t.Fatalf("b got %q, want one copy from y@remote.test", msgs)
	}
}

func itoa(n int) string {
	var b []byte
	for {
		b = append([]byte{byte('0' + n%10)}, b...)
		n /= 10
		if n == 0 {
			return string(b)
		}
	}
}

// RFC 5321 §4.5.1: postmaster is a case-insensitive local part, and
// domains are case-insensitive: a mixed-case recipient reaches the
// canonical (lower-case) mailbox of the store, once per mailbox.
func TestPostmasterMixedCase(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.domain("example.com")
	e.mailbox("postmaster@example.com", 0)
	c := e.dial(e.smtp)
	c.cmd("EHLO client.test", "250")
	c.cmd("MAIL FROM:<x@remote.test>", "250")
	c.cmd("RCPT TO:<PostMaster@EXAMPLE.com>", "250")
	c.cmd("RCPT TO:<postmaster@example.com.>", "250")
	c.cmd("DATA", "354")
	c.data("Subject: to the postmaster\r\n\r\nhello\r\n")
	c.expect("250")
	c.cmd("QUIT", "221")
	e.waitIdle()
	msgs := e.messages("postmaster@example.com")
	if len(msgs) != 1 {
		t.Fatalf("postmaster got %d messages, want 1", len(msgs))
	}
	if !bytes.Contains(msgs[0], []byte("\tfor <postmaster@example.com>")) {
		t.Errorf("Received lacks the canonical recipient: %.300q", msgs[0])
	}
}

// RFC 6531 §3.4: a non-ASCII address in a transaction that did not ask for
// SMTPUTF8 is refused (553 5.6.7), so that no 8-bit octets reach the
// Return-Path of a message that is not declared internationalised; with
// SMTPUTF8 it is accepted, but never as invalid UTF-8.
func TestNonASCIIAddressNeedsSMTPUTF8(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.domain("example.com")
	e.mailbox("a@example.com", 0)
	e.mailbox("jörg@example.com", 0)
	c := e.dial(e.smtp)
	c.cmd("EHLO client.test", "250")
	c.cmd("MAIL FROM:<jürgen@remote.test>", "553 5.6.7")
	c.cmd("MAIL FROM:<x@remote.test>", "250")
	c.cmd("RCPT TO:<jörg@example.com>", "553 5.6.7")
	c.cmd("RSET", "250")
	c.cmd("MAIL FROM:<j\xffrgen@remote.test> SMTPUTF8", "501")
	c.cmd("MAIL FROM:<jürgen@remote.test> SMTPUTF8", "250")
	c.cmd("RCPT TO:<JÖRG@example.com>", "250")
	c.cmd("DATA", "354")
	c.data("Subject: utf8\r\n\r\nhello\r\n")
	c.expect("250")
	c.cmd("QUIT", "221")
	e.waitIdle()
	msgs := e.messages("jörg@example.com")
	if len(msgs) != 1 || !bytes.HasPrefix(msgs[0], []byte("Return-Path: <jürgen@remote.test>\r\n")) {
		t.Fatalf("jörg got %q", msgs)
	}
}
