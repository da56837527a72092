package smtpnet

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/textproto"
	"strings"
	"testing"
	"time"

	"github.com/pop3svc/pop3svc/session/delivery"
	smtpsvc "github.com/pop3svc/pop3svc/session/smtp"
	"github.com/pop3svc/pop3svc/store"
	"github.com/pop3svc/pop3svc/store/memstore"
	"github.com/pop3svc/pop3svc/store/queue"
)

// env is the SMTP service (session/smtp) and the delivery service, the
// queue in a temporary folder and the mailboxes in an in-memory store,
// served by a Server on loopback: the network is what is tested here.
type env struct {
	t    *testing.T
	st   *memstore.Store
	dlv  *delivery.Service
	svc  *smtpsvc.Service
	net  *Server
	smtp string // SMTP address
}

// newEnv starts the service with the protocol's read timeout and the
// network options given.
func newEnv(t *testing.T, readTimeout time.Duration, o Options) *env {
	t.Helper()
	return newEnvWith(t, smtpsvc.Options{Hostname: "mx.test", ReadTimeout: readTimeout}, o)
}

// newEnvWith is newEnv with the protocol's options given.
func newEnvWith(t *testing.T, so smtpsvc.Options, o Options) *env {
	t.Helper()
	root := t.TempDir()
	st, err := memstore.New(memstore.Options{Node: 1})
	if err != nil {
		t.Fatal(err)
	}
	q, err := queue.Open(root)
	if err != nil {
		t.Fatal(err)
	}
	dlv := delivery.New(st, q, delivery.Options{Hostname: "mx.test", RetryMin: 50 * time.Millisecond, RetryMax: 200 * time.Millisecond})
	dlv.Start()
	svc := smtpsvc.New(st, q, dlv.Notify, so)
	srv := New(func(lmtp bool) Protocol { return svc.NewServer(lmtp) }, o)
	if err := srv.Listen([]string{"127.0.0.1:0"}, nil); err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, st: st, dlv: dlv, svc: svc, net: srv, smtp: srv.Addrs()[0].String()}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
		if err := dlv.Stop(ctx); err != nil {
			t.Errorf("Stop: %v", err)
		}
		st.Close()
	})
	return e
}

func (e *env) domain(name string) {
	e.t.Helper()
	if err := e.st.CreateDomain(context.Background(), name); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) mailbox(addr string) {
	e.t.Helper()
	a, err := store.ParseAddress(addr, "")
	if err != nil {
		e.t.Fatal(err)
	}
	if err := e.st.CreateMailbox(context.Background(), a, ""); err != nil {
		e.t.Fatal(err)
	}
}

// messages counts the messages of a mailbox through a store session.
func (e *env) messages(addr string) int {
	e.t.Helper()
	a, err := store.ParseAddress(addr, "")
	if err != nil {
		e.t.Fatal(err)
	}
	sess, err := e.st.OpenSession(context.Background(), a, "test")
	if err != nil {
		e.t.Fatal(err)
	}
	defer sess.Close()
	return len(sess.Messages())
}

// waitIdle waits for the delivery service to empty the queue.
func (e *env) waitIdle() {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := e.dlv.WaitIdle(ctx); err != nil {
		e.t.Fatal(err)
	}
}

// client is a raw SMTP client.
type client struct {
	t    *testing.T
	conn net.Conn
	r    *textproto.Reader
	w    *bufio.Writer
}

func (e *env) dial(addr string) *client {
	e.t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		e.t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(30 * time.Second))
	cl := &client{t: e.t, conn: c, r: textproto.NewReader(bufio.NewReader(c)), w: bufio.NewWriter(c)}
	e.t.Cleanup(func() { c.Close() })
	cl.expect("220")
	return cl
}

// expect reads a reply, checks that its last line starts with prefix and
// returns its lines.
func (c *client) expect(prefix string) string {
	c.t.Helper()
	var lines []string
	for {
		l, err := c.r.ReadLine()
		if err != nil {
			c.t.Fatalf("reading reply after %q: %v", lines, err)
		}
		lines = append(lines, l)
		if len(l) < 4 || l[3] != '-' {
			break
		}
	}
	if last := lines[len(lines)-1]; !strings.HasPrefix(last, prefix) {
		c.t.Fatalf("reply %q, want %q", lines, prefix)
	}
	return strings.Join(lines, "\n")
}

func (c *client) cmd(line, prefix string) string {
	c.t.Helper()
	if _, err := io.WriteString(c.w, line+"\r\n"); err != nil {
		c.t.Fatal(err)
	}
	if err := c.w.Flush(); err != nil {
		c.t.Fatal(err)
	}
	return c.expect(prefix)
}
