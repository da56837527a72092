package smtpnet

import (
	"bufio"
	"context"
	"fmt"
	"github.com/pop3svc/pop3svc/cmd/pop3d/pop3dtest"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	smtpsvc "github.com/pop3svc/pop3svc/session/smtp"
)

// sendSlowly starts a transaction and sends a body in pieces, pausing
// between them: it is the slow client of the scenario (pacing its bytes
// against smtp.read_timeout), not a wait for any state.
func sendSlowly(t *testing.T, c *client, pieces int, pause time.Duration) error {
	t.Helper()
	c.cmd("EHLO client.test", "250")
	c.cmd("MAIL FROM:<s@remote.test>", "250")
	c.cmd("RCPT TO:<a@example.com>", "250")
	c.cmd("DATA", "354")
	if _, err := c.w.WriteString("Subject: slow\r\n\r\n"); err != nil {
		return err
	}
	for i := range pieces {
		if _, err := fmt.Fprintf(c.w, "piece %d\r\n", i); err != nil {
			return err
		}
		if err := c.w.Flush(); err != nil {
			return err
		}
		time.Sleep(pause)
	}
	if _, err := c.w.WriteString(".\r\n"); err != nil {
		return err
	}
	return c.w.Flush()
}

// TestSlowDataWithinInactivityLimit: smtp.read_timeout limits silence, not
// the whole transfer: a message that keeps coming for longer than
// read_timeout is accepted. The read timeout (2 s) also bounds each of the
// client's commands, so it leaves a loaded machine room for them.
func TestSlowDataWithinInactivityLimit(t *testing.T) {
	e := newEnv(t, 2*time.Second, Options{DataTimeout: 20 * time.Second})
	e.domain("example.com")
	e.mailbox("a@example.com")
	c := e.dial(e.smtp)
	if err := sendSlowly(t, c, 30, 100*time.Millisecond); err != nil { // 3 s in all
		t.Fatal(err)
	}
	c.expect("250")
	e.waitIdle()
	if n := e.messages("a@example.com"); n != 1 {
		t.Fatalf("%d messages delivered, want 1", n)
	}
}

// TestStalledDataIsCut: silence longer than read_timeout in the middle of
// DATA ends the connection, and nothing is delivered.
func TestStalledDataIsCut(t *testing.T) {
	e := newEnv(t, time.Second, Options{DataTimeout: 10 * time.Second})
	e.domain("example.com")
	e.mailbox("a@example.com")
	c := e.dial(e.smtp)
	_ = sendSlowly(t, c, 1, 3*time.Second)
	assertCut(t, c)
	e.waitIdle()
	if n := e.messages("a@example.com"); n != 0 {
		t.Fatalf("%d messages delivered from a stalled transfer, want 0", n)
	}
}

// TestDribbledDataEnds: a client that keeps sending a little, never
// pausing long enough for read_timeout, is still cut at data_timeout.
func TestDribbledDataEnds(t *testing.T) {
	e := newEnv(t, 2*time.Second, Options{DataTimeout: 900 * time.Millisecond})
	e.domain("example.com")
	e.mailbox("a@example.com")
	c := e.dial(e.smtp)
	_ = sendSlowly(t, c, 15, 150*time.Millisecond) // 2.25 s in all, no pause near 2 s
	assertCut(t, c)
	e.waitIdle()
	if n := e.messages("a@example.com"); n != 0 {
		t.Fatalf("%d messages delivered from a dribbled transfer, want 0", n)
	}
}

// assertCut checks that the server ended the transaction: it answered
// with an error or closed the connection, never 250.
func assertCut(t *testing.T, c *client) {
	t.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	l, err := c.r.ReadLine()
	if err == nil && len(l) >= 3 && l[:3] == "250" {
		t.Fatalf("server accepted the message: %q", l)
	}
	if err != nil && err != io.EOF {
		if ne, ok := err.(interface{ Timeout() bool }); ok && ne.Timeout() {
			t.Fatalf("server neither answered nor closed: %v", err)
		}
	}
}

// TestConnectionLimits: beyond smtp.max_conns_per_ip (and
// smtp.max_connections) a client gets 421 4.7.0 and is closed; a closed
// session frees its place.
func TestConnectionLimits(t *testing.T) {
	e := newEnv(t, 0, Options{MaxConnections: 3, MaxConnsPerIP: 2})
	c1 := e.dial(e.smtp)
	c2 := e.dial(e.smtp)
	refused := func(what string) {
		t.Helper()
		c, err := net.DialTimeout("tcp", e.smtp, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		b, _ := io.ReadAll(c)
		if !strings.HasPrefix(string(b), "421 4.7.0") {
			t.Fatalf("%s: got %q, want 421 4.7.0 and a close", what, b)
		}
	}
	refused("third connection from one address")
	// Another loopback address is a different client: the total (3) still has room.
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}
	c3, err := d.Dial("tcp", e.smtp)
	if err != nil {
		t.Fatal(err)
	}
	defer c3.Close()
	_ = c3.SetReadDeadline(time.Now().Add(5 * time.Second))
	if l, err := bufio.NewReader(c3).ReadString('\n'); err != nil || !strings.HasPrefix(l, "220") {
		t.Fatalf("connection from 127.0.0.2: %q, %v", l, err)
	}
	c1.cmd("QUIT", "221")
	c1.conn.Close()
	_ = c2
	eventuallyTrue(t, func() bool {
		c, err := net.DialTimeout("tcp", e.smtp, 5*time.Second)
		if err != nil {
			return false
		}
		defer c.Close()
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		l, _ := bufio.NewReader(c).ReadString('\n')
		return strings.HasPrefix(l, "220")
	})
}

func eventuallyTrue(t *testing.T, f func() bool) {
	t.Helper()
	pop3dtest.WaitFor(t, 5*time.Second, "the condition", f)
}

// TestCloseRightAfterServe: Close straight after Serve returns, before the
// serving goroutine ran, must still stop the listener (go-smtp's Shutdown
// alone would miss it and the wait would never end).
func TestCloseRightAfterServe(t *testing.T) {
	for range 50 {
		proto := smtpsvc.New(nil, nil, nil, smtpsvc.Options{Hostname: "mx.test"})
		svc := New(func(lmtp bool) Protocol { return proto.NewServer(lmtp) }, Options{})
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		if err := svc.Serve(l, false); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			done <- svc.Close(ctx)
		}()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("Close right after Serve did not return")
		}
	}
}
