package main

import (
	"io"
	"net"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	gosmtp "github.com/emersion/go-smtp"

	"github.com/pop3svc/pop3svc/cmd/pop3d/pop3dtest"
	"github.com/pop3svc/pop3svc/store"
	"github.com/pop3svc/pop3svc/store/queue"
)

// deliveryEnv is what the delivery cases need: the mail queue of the
// running pop3d (entries put there are found by its queue scan, as files
// another program drops), an SMTP relay that takes reports, and a port
// nobody listens on.
type deliveryEnv struct {
	q     *queue.Queue
	relay *relaySink
	down  string
}

// TestReloadAppliesDeliveryKeys changes the delivery service's keys on a
// running pop3d and watches what it does with a message put in its queue
// afterwards.
func TestReloadAppliesDeliveryKeys(t *testing.T) {
	c := reloadConfig(t, "", mailbox(0, 0))
	c.SMTPTable = `queue_scan = "1s"`
	in := pop3dtest.Start(t, c)
	q, err := queue.Open(filepath.Join(in.Dir, "mailroot"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(q.Release)
	env := &deliveryEnv{q: q, relay: newRelaySink(t), down: freeLoopbackAddr(t)}
	runLiveCases(t, in, deliveryCases(env), func(i int) string { return "127.0.0.1" })
}

func deliveryCases(env *deliveryEnv) []liveCase {
	relay := ""
	if env.relay != nil {
		relay = env.relay.addr
	}
	return []liveCase{
		// A message from a remote sender to a mailbox that does not
		// exist: its report goes to the relay, or, without one, the
		// message goes to Badmail.
		{key: "smtp.relay", value: relay, want: "relayed", probe: func(t *testing.T, in *pop3dtest.Server, ip string) string {
			return bounced(t, in, env, time.Now())
		}},
		// A message received an hour ago whose report the relay (down)
		// cannot take: retried while retry_for is longer, to Badmail
		// once it is shorter.
		{key: "smtp.retry_for", value: "30m", prep: [][2]string{{"smtp.relay", env.down}}, want: "badmail", probe: func(t *testing.T, in *pop3dtest.Server, ip string) string {
			return bounced(t, in, env, time.Now().Add(-time.Hour))
		}},
		// Entries another program puts in the queue wait for the next
		// scan: with a scan every hour, one put there after the reload
		// (whose own scan comes first) would wait past the probe's 20s.
		{key: "smtp.queue_scan", value: "1s", prep: [][2]string{{"smtp.queue_scan", "1h"}}, noBefore: true, want: "delivered", probe: func(t *testing.T, in *pop3dtest.Server, ip string) string {
			n := metric(t, in, `smtp_deliveries_total{result="delivered"}`)
			enqueue(t, env, testAddr.String(), time.Now())
			if pop3dtest.Eventually(20*time.Second, func() bool { return metric(t, in, `smtp_deliveries_total{result="delivered"}`) > n }) {
				return "delivered"
			}
			return "still queued"
		}},
	}
}

func enqueue(t *testing.T, env *deliveryEnv, rcpt string, received time.Time) {
	t.Helper()
	_, err := env.q.Enqueue(store.Envelope{From: "bob@remote.test", Rcpts: []string{rcpt}, Received: received},
		strings.NewReader("From: bob@remote.test\r\nTo: "+rcpt+"\r\nSubject: reload\r\n\r\nhello\r\n"))
	if err != nil {
		t.Fatal(err)
	}
}

// bounced queues a message from a remote sender to a mailbox that does
// not exist and reports what became of it: "relayed" (its report went to
// the relay), "deferred" (the report waits for a retry) or "badmail".
func bounced(t *testing.T, in *pop3dtest.Server, env *deliveryEnv, received time.Time) string {
	relayed, deferred, badmail := env.relay.n.Load(), metric(t, in, `smtp_deliveries_total{result="deferred"}`), metric(t, in, "smtp_badmail_total")
	enqueue(t, env, "nobody@"+testAddr.Domain, received)
	var got string
	pop3dtest.WaitFor(t, 60*time.Second, "the delivery service to bounce the message", func() bool {
		switch {
		case env.relay.n.Load() > relayed:
			got = "relayed"
		case metric(t, in, "smtp_badmail_total") > badmail:
			got = "badmail"
		case metric(t, in, `smtp_deliveries_total{result="deferred"}`) > deferred:
			got = "deferred"
		}
		return got != ""
	})
	return got
}

// relaySink is an SMTP server (go-smtp) that takes every message and
// counts them.
type relaySink struct {
	addr string
	n    atomic.Int64
}

func newRelaySink(t *testing.T) *relaySink {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &relaySink{addr: l.Addr().String()}
	srv := gosmtp.NewServer(r)
	srv.Domain = "relay.test"
	srv.AllowInsecureAuth = true
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(l) }()
	t.Cleanup(func() { srv.Close(); <-done })
	return r
}

func (r *relaySink) NewSession(*gosmtp.Conn) (gosmtp.Session, error) { return &sinkSession{r: r}, nil }

type sinkSession struct{ r *relaySink }

func (s *sinkSession) Reset()                                           {}
func (s *sinkSession) Logout() error                                    { return nil }
func (s *sinkSession) Mail(from string, opts *gosmtp.MailOptions) error { return nil }
func (s *sinkSession) Rcpt(to string, opts *gosmtp.RcptOptions) error   { return nil }
func (s *sinkSession) Data(r io.Reader) error {
	if _, err := io.Copy(io.Discard, r); err != nil {
		return err
	}
	s.r.n.Add(1)
	return nil
}
