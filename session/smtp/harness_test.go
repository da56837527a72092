package smtp

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"strings"
	"testing"
	"time"

	"github.com/pop3svc/pop3svc/session/delivery"
	"github.com/pop3svc/pop3svc/store"
	"github.com/pop3svc/pop3svc/store/credential"
	"github.com/pop3svc/pop3svc/store/memstore"
	"github.com/pop3svc/pop3svc/store/queue"
)

// env is a running SMTP + LMTP service and delivery service: the queue in
// a temporary folder, the mailboxes in an in-memory store (what happens on
// disk to a delivered message is the file store's tests' concern; the
// crash tests here run on the file store).
type env struct {
	t    testing.TB
	root string // the queue's folder
	st   *memstore.Store
	q    *queue.Queue
	dlv  *delivery.Service
	svc  *Service
	smtp string // SMTP address
	lmtp string // LMTP address
}

type envOpts struct {
	smtp     Options
	delivery delivery.Options
	root     string
}

// cheapArgon keeps password checks fast in tests.
var cheapArgon = credential.Argon2Params{Time: 1, MemoryKiB: 64, Threads: 1, KeyLen: 32}

func newEnv(t testing.TB, o envOpts) *env {
	t.Helper()
	root := o.root
	if root == "" {
		root = t.TempDir()
	}
	st, err := memstore.New(memstore.Options{Node: 1, Argon2: cheapArgon})
	if err != nil {
		t.Fatal(err)
	}
	q, err := queue.Open(root)
	if err != nil {
		t.Fatal(err)
	}
	if o.delivery.RetryMin == 0 {
		o.delivery.RetryMin = 50 * time.Millisecond
		o.delivery.RetryMax = 200 * time.Millisecond
	}
	if o.delivery.Hostname == "" {
		o.delivery.Hostname = "mx.test"
	}
	if o.smtp.Hostname == "" {
		o.smtp.Hostname = "mx.test"
	}
	dlv := delivery.New(st, q, o.delivery)
	dlv.Start()
	svc := New(st, q, dlv.Notify, o.smtp)
	l1 := serve(t, svc, false)
	l2 := serve(t, svc, true)
	e := &env{t: t, root: root, st: st, q: q, dlv: dlv, svc: svc, smtp: l1, lmtp: l2}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := dlv.Stop(ctx); err != nil {
			t.Errorf("Stop: %v", err)
		}
		st.Close()
	})
	return e
}

// serve serves the protocol on a loopback listener until the test ends
// and returns its address. The listeners, limits and deadlines of the
// running service are engine/smtpnet's, tested there.
func serve(t testing.TB, svc *Service, lmtp bool) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := svc.NewServer(lmtp)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		l.Close() // in case Serve had not registered it yet
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return l.Addr().String()
}

func (e *env) domain(name string) {
	e.t.Helper()
	if err := e.st.CreateDomain(context.Background(), name); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) mailbox(addr string, quota int64) store.Address {
	e.t.Helper()
	a, err := store.ParseAddress(addr, "")
	if err != nil {
		e.t.Fatal(err)
	}
	if err := e.st.CreateMailbox(context.Background(), a, ""); err != nil {
		e.t.Fatal(err)
	}
	if quota > 0 {
		if err := e.st.SetQuota(context.Background(), a, quota); err != nil {
			e.t.Fatal(err)
		}
	}
	return a
}

// messages reads every message of a mailbox through a store session.
func (e *env) messages(addr string) [][]byte {
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
	var out [][]byte
	for i := range sess.Messages() {
		rc, err := sess.Open(i)
		if err != nil {
			e.t.Fatal(err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			e.t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
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

// client is a raw SMTP client for transcript tests.
type client struct {
	t    testing.TB
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

func (c *client) send(line string) {
	c.t.Helper()
	if _, err := c.w.WriteString(line + "\r\n"); err != nil {
		c.t.Fatal(err)
	}
	if err := c.w.Flush(); err != nil {
		c.t.Fatal(err)
	}
}

// reply reads one (possibly multi-line) reply and returns its lines joined by "\n".
func (c *client) reply() string {
	c.t.Helper()
	var lines []string
	for {
		l, err := c.r.ReadLine()
		if err != nil {
			c.t.Fatalf("reading reply after %q: %v", lines, err)
		}
		lines = append(lines, l)
		if len(l) < 4 || l[3] != '-' {
			return strings.Join(lines, "\n")
		}
	}
}

// expect reads a reply and checks that its last line starts with prefix.
func (c *client) expect(prefix string) string {
	c.t.Helper()
	r := c.reply()
	last := r[strings.LastIndexByte(r, '\n')+1:]
	if !strings.HasPrefix(last, prefix) {
		c.t.Fatalf("reply %q, want %q", r, prefix)
	}
	return r
}

func (c *client) cmd(line, prefix string) string {
	c.t.Helper()
	c.send(line)
	return c.expect(prefix)
}

// data sends a message body, dot-stuffed, and the end-of-data line.
func (c *client) data(body string) {
	c.t.Helper()
	var b strings.Builder
	for _, l := range strings.SplitAfter(body, "\n") {
		if strings.HasPrefix(l, ".") {
			b.WriteByte('.')
		}
		b.WriteString(l)
	}
	if !strings.HasSuffix(body, "\n") && body != "" {
		b.WriteString("\r\n")
	}
	b.WriteString(".\r\n")
	if _, err := c.w.WriteString(b.String()); err != nil {
		c.t.Fatal(err)
	}
	if err := c.w.Flush(); err != nil {
		c.t.Fatal(err)
	}
}

// stripCopyHeaders removes the delivery service's Return-Path and queue
// marker, and the Received header the SMTP service added.
func stripCopyHeaders(t *testing.T, msg []byte) []byte {
	t.Helper()
	for _, prefix := range []string{"Return-Path: ", delivery.MarkerHeader + ": "} {
		if !bytes.HasPrefix(msg, []byte(prefix)) {
			t.Fatalf("copy does not start with %q: %.80q", prefix, msg)
		}
		msg = msg[bytes.Index(msg, []byte("\r\n"))+2:]
	}
	if !bytes.HasPrefix(msg, []byte("Received: ")) {
		t.Fatalf("copy has no Received header: %.80q", msg)
	}
	// Received is folded: continuation lines start with white space.
	for {
		i := bytes.Index(msg, []byte("\r\n"))
		msg = msg[i+2:]
		if len(msg) == 0 || (msg[0] != '\t' && msg[0] != ' ') {
			return msg
		}
	}
}

func mustEqual[T comparable](t *testing.T, what string, got, want T) {
	t.Helper()
	if got != want {
		t.Fatalf("%s = %v, want %v", what, got, want)
	}
}

var _ = fmt.Sprintf
