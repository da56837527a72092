package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/dkim"
	"github.com/emersion/go-smtp"
	"github.com/miekg/dns"

	"github.com/pop3svc/pop3svc/cmd/pop3d/pop3dtest"
	"github.com/pop3svc/pop3svc/store"
)

// The outbound tests run a DNS server of their own (miekg/dns) that
// pop3d asks through outbound.resolver, and receiving mail servers: a
// second pop3d, or an SMTP server in the test whose answers the test
// chooses.

// dnsZone answers MX and A queries for the names the test sets; other
// names do not exist (NXDOMAIN), other types of a known name have no data.
type dnsZone struct {
	mu  sync.Mutex
	mx  map[string][]*dns.MX
	a   map[string]net.IP
	srv *dns.Server
}

func startDNS(t testing.TB) (*dnsZone, string) {
	t.Helper()
	z := &dnsZone{mx: map[string][]*dns.MX{}, a: map[string]net.IP{}}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	z.srv = &dns.Server{PacketConn: pc, Handler: z, NotifyStartedFunc: func() { close(started) }}
	go func() { _ = z.srv.ActivateAndServe() }()
	<-started
	t.Cleanup(func() { _ = z.srv.Shutdown() })
	return z, pc.LocalAddr().String()
}

// setMX gives domain MX records; host "." with preference 0 is a null MX.
func (z *dnsZone) setMX(domain string, pref uint16, host string) {
	z.mu.Lock()
	defer z.mu.Unlock()
	z.mx[dns.Fqdn(domain)] = append(z.mx[dns.Fqdn(domain)], &dns.MX{
		Hdr:        dns.RR_Header{Name: dns.Fqdn(domain), Rrtype: dns.TypeMX, Class: dns.ClassINET, Ttl: 60},
		Preference: pref, Mx: dns.Fqdn(host),
	})
}

func (z *dnsZone) setA(name string, ip string) {
	z.mu.Lock()
	defer z.mu.Unlock()
	z.a[dns.Fqdn(name)] = net.ParseIP(ip).To4()
}

func (z *dnsZone) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(r)
	m.Authoritative = true
	z.mu.Lock()
	defer z.mu.Unlock()
	for _, q := range r.Question {
		name := strings.ToLower(q.Name)
		_, hasMX := z.mx[name]
		_, hasA := z.a[name]
		if !hasMX && !hasA {
			m.Rcode = dns.RcodeNameError
			continue
		}
		switch q.Qtype {
		case dns.TypeMX:
			for _, mx := range z.mx[name] {
				m.Answer = append(m.Answer, mx)
			}
		case dns.TypeA:
			if ip, ok := z.a[name]; ok {
				m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60}, A: ip})
			}
		}
	}
	_ = w.WriteMsg(m)
}

// receiver is an SMTP server of the test: answer decides the reply to
// each RCPT (nil accepts), data is called with each message accepted.
type receiver struct {
	mu       sync.Mutex
	answer   func(n int, rcpt string) error // n counts RCPTs from 1
	dataHook func(msg []byte) error
	rcpts    int
	msgs     [][]byte
	addr     string
}

func startReceiver(t testing.TB, host string, answer func(n int, rcpt string) error, dataHook func([]byte) error) *receiver {
	t.Helper()
	r := &receiver{answer: answer, dataHook: dataHook}
	srv := smtp.NewServer(r)
	srv.Domain = "receiver.test"
	srv.AllowInsecureAuth = true
	l, err := net.Listen("tcp", host+":0")
	if err != nil {
		t.Fatal(err)
	}
	r.addr = l.Addr().String()
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { srv.Close() })
	return r
}

func (r *receiver) NewSession(*smtp.Conn) (smtp.Session, error) { return &rsession{r: r}, nil }

func (r *receiver) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.msgs)
}

type rsession struct{ r *receiver }

func (s *rsession) Reset()        {}
func (s *rsession) Logout() error { return nil }
func (s *rsession) Mail(string, *smtp.MailOptions) error {
	return nil
}
func (s *rsession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.r.mu.Lock()
	s.r.rcpts++
	n, f := s.r.rcpts, s.r.answer
	s.r.mu.Unlock()
	if f != nil {
		return f(n, to)
	}
	return nil
}
func (s *rsession) Data(rd io.Reader) error {
	b, err := io.ReadAll(rd)
	if err != nil {
		return err
	}
	s.r.mu.Lock()
	s.r.msgs = append(s.r.msgs, b)
	hook := s.r.dataHook
	s.r.mu.Unlock()
	if hook != nil {
		return hook(b)
	}
	return nil
}

// startSender runs pop3d with alice and bob of example.org, submission,
// and outbound delivery through the test's DNS server to mail servers on
// mxPort. root, when set, is the mail root (a restart on the same store).
func startSender(t testing.TB, resolver string, mxPort int, root string, setup bool) *pop3dtest.Server {
	t.Helper()
	return startSenderWith(t, resolver, mxPort, root, setup, pop3dtest.Config{}, `retry_min = "200ms"
retry_max = "500ms"`)
}

// startSenderWith is startSender with base's AdminListen and further
// [outbound] lines.
func startSenderWith(t testing.TB, resolver string, mxPort int, root string, setup bool, base pop3dtest.Config, outbound string) *pop3dtest.Server {
	t.Helper()
	c := pop3dtest.Config{
		Top: "logging = 4",
		Auth: fastHash + `fail_delay = "20ms"
penalty = "0s"
penalty_max = "0s"`,
		SMTP:            true,
		Submission:      true,
		SubmissionTable: base.SubmissionTable,
		MailRoot:        root,
		AdminListen:     base.AdminListen,
		Tables: fmt.Sprintf(`[outbound]
resolver = %q
mx_port = %d
connect_timeout = "5s"
timeout = "30s"
%s
`, resolver, mxPort, outbound),
	}
	if setup {
		c.Setup = submissionSetup()
	}
	return pop3dtest.Start(t, c)
}

// submit sends one message as alice through the submission port.
func submit(t testing.TB, in *pop3dtest.Server, to []string, body string) {
	t.Helper()
	c := smtpClient(t, in.Submission)
	startTLS(t, c)
	if err := c.Auth(plainAuth{"alice@example.org", alicePass}); err != nil {
		t.Fatal(err)
	}
	msg := "From: Alice <alice@example.org>\r\nTo: " + strings.Join(to, ", ") + "\r\nSubject: outbound\r\n\r\n" + body + "\r\n"
	if err := send(c, "alice@example.org", to, msg); err != nil {
		t.Fatalf("submitting to %v: %v", to, err)
	}
	_ = c.Quit()
}

func port(t testing.TB, addr string) int {
	_, p, _ := net.SplitHostPort(addr)
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestOutboundToSecondPop3d delivers through MX look-up to a second pop3d
// serving remote.test, and through the implicit MX (an A record only) to
// implicit.test on it, where carol and dave read the messages by POP3; a
// local recipient of the same message gets it locally; a null MX domain
// gets a report into alice's mailbox.
func TestOutboundToSecondPop3d(t *testing.T) {
	t.Parallel()
	remote := pop3dtest.Start(t, pop3dtest.Config{
		Top:  "logging = 4",
		Auth: fastHash,
		SMTP: true,
		Setup: [][]string{
			{"add", "remote.test"}, {"add", "carol@remote.test", "-password", bobPass},
			{"add", "implicit.test"}, {"add", "dave@implicit.test", "-password", bobPass},
		},
	})
	z, resolver := startDNS(t)
	z.setMX("remote.test", 10, "mx.remote.test")
	z.setA("mx.remote.test", "127.0.0.1")
	z.setA("implicit.test", "127.0.0.1")
	z.setMX("nullmx.test", 0, ".")
	in := startSender(t, resolver, port(t, remote.SMTP[0]), "", true)

	submit(t, in, []string{"carol@remote.test", "bob@example.org"}, "to carol over MX and to bob here")
	submit(t, in, []string{"dave@implicit.test"}, "to dave through the implicit MX")
	submit(t, in, []string{"nobody@nullmx.test"}, "to a domain that takes no mail")

	carol := popMessages(t, remote, "carol@remote.test", bobPass, 1)
	if !strings.Contains(carol[0], "to carol over MX and to bob here") || !strings.Contains(carol[0], "From: Alice <alice@example.org>") {
		t.Errorf("carol's copy:\n%s", carol[0])
	}
	// The second pop3d offers STARTTLS: the copy came over TLS
	// (opportunistic, RFC 7435), which its Received header records.
	if !strings.Contains(carol[0], "with ESMTPS\r\n") && !strings.Contains(carol[0], "with ESMTPS;") && !strings.Contains(carol[0], "with ESMTPS\r\n\tfor") {
		t.Errorf("carol's copy did not come over STARTTLS:\n%s", carol[0])
	}
	dave := popMessages(t, remote, "dave@implicit.test", bobPass, 1)
	if !strings.Contains(dave[0], "to dave through the implicit MX") {
		t.Errorf("dave's copy:\n%s", dave[0])
	}
	bob := popMessages(t, in, "bob@example.org", bobPass, 1)
	if !strings.Contains(bob[0], "to carol over MX and to bob here") {
		t.Errorf("bob's copy:\n%s", bob[0])
	}
	dsn := popMessages(t, in, "alice@example.org", alicePass, 1)
	for _, want := range []string{"multipart/report; report-type=delivery-status", "Final-Recipient: rfc822; nobody@nullmx.test", "Status: 5.1.10", "Action: failed"} {
		if !strings.Contains(dsn[0], want) {
			t.Errorf("the report lacks %q:\n%s", want, dsn[0])
		}
	}
}

// TestOutboundRetriesTemporaryFailure: the receiver answers 451 to the
// first RCPT and accepts the next attempt's.
func TestOutboundRetriesTemporaryFailure(t *testing.T) {
	t.Parallel()
	r := startReceiver(t, "127.0.0.1", func(n int, _ string) error {
		if n == 1 {
			return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try again later"}
		}
		return nil
	}, nil)
	z, resolver := startDNS(t)
	z.setMX("flaky.test", 10, "mx.flaky.test")
	z.setA("mx.flaky.test", "127.0.0.1")
	in := startSender(t, resolver, port(t, r.addr), "", true)
	submit(t, in, []string{"someone@flaky.test"}, "retried after a 451")
	if !pop3dtest.Eventually(30*time.Second, func() bool { return !(r.count() == 0) }) {
		t.Fatalf("the receiver got nothing after 30s:\n%s", in.Log())
	}
	r.mu.Lock()
	n, msg := r.rcpts, string(r.msgs[0])
	r.mu.Unlock()
	if n != 2 || !strings.Contains(msg, "retried after a 451") {
		t.Errorf("receiver saw %d RCPTs (want 2: refused, then accepted); message:\n%s", n, msg)
	}
	waitOutLog(t, in, `msg="delivery deferred"`)
}

// TestOutboundPermanentFailureReport: the receiver answers 550 5.1.1; the
// report (RFC 3464) reaches alice's mailbox.
func TestOutboundPermanentFailureReport(t *testing.T) {
	t.Parallel()
	r := startReceiver(t, "127.0.0.1", func(int, string) error {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user here"}
	}, nil)
	z, resolver := startDNS(t)
	z.setMX("strict.test", 10, "mx.strict.test")
	z.setA("mx.strict.test", "127.0.0.1")
	in := startSender(t, resolver, port(t, r.addr), "", true)
	submit(t, in, []string{"ghost@strict.test"}, "to nobody")
	dsn := popMessages(t, in, "alice@example.org", alicePass, 1)
	for _, want := range []string{"Final-Recipient: rfc822; ghost@strict.test", "Status: 5.1.1", "Action: failed", "no such user here", "Subject: outbound"} {
		if !strings.Contains(dsn[0], want) {
			t.Errorf("the report lacks %q:\n%s", want, dsn[0])
		}
	}
	if r.count() != 0 {
		t.Errorf("the receiver took %d messages after refusing every recipient", r.count())
	}
}

func waitOutLog(t testing.TB, in *pop3dtest.Server, s string) {
	t.Helper()
	if !pop3dtest.Eventually(30*time.Second, func() bool { return strings.Contains(in.Log(), s) }) {
		t.Fatalf("pop3d did not log %s within 30s:\n%s", s, in.Log())
	}
}

// TestOutboundKill9DuringDelivery kills pop3d with SIGKILL while the
// receiver holds the end of DATA; the receiver has the whole message but
// pop3d never hears its 250. The restarted pop3d sends it again: no loss,
// one duplicate, counted in smtp_outbound_possible_duplicates_total.
func TestOutboundKill9DuringDelivery(t *testing.T) {
	t.Parallel()
	hold := make(chan struct{})
	held := make(chan struct{}, 1)
	var once sync.Once
	r := startReceiver(t, "127.0.0.1", nil, func([]byte) error {
		once.Do(func() {
			held <- struct{}{}
			<-hold
		})
		return nil
	})
	z, resolver := startDNS(t)
	z.setMX("far.test", 10, "mx.far.test")
	z.setA("mx.far.test", "127.0.0.1")
	root := filepath.Join(t.TempDir(), "mailroot")
	if err := os.MkdirAll(root, 0o700); err != nil {
		t.Fatal(err)
	}
	in := startSender(t, resolver, port(t, r.addr), root, true)
	submit(t, in, []string{"someone@far.test"}, "sent across a crash")
	select {
	case <-held:
	case <-time.After(60 * time.Second):
		t.Fatalf("the message did not reach the receiver:\n%s", in.Log())
	}
	if err := in.Cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	if _, ok := in.Wait(30 * time.Second); !ok {
		t.Fatal("pop3d did not die of SIGKILL")
	}
	close(hold)

	again := startSender(t, resolver, port(t, r.addr), root, false)
	if !pop3dtest.Eventually(60*time.Second, func() bool { return !(r.count() < 2) }) {
		t.Fatalf("the restarted pop3d did not send the message again (receiver has %d):\n%s", r.count(), again.Log())
	}
	waitOutLog(t, again, `msg=delivered`)
	if n := metric(t, again, "smtp_outbound_possible_duplicates_total"); n != 1 {
		t.Errorf("smtp_outbound_possible_duplicates_total = %v, want 1", n)
	}
	// Delivered once more, then the entry is gone: no third copy. The
	// queue is empty when pop3ctl lists nothing for it.
	live := 0
	if !pop3dtest.Eventually(30*time.Second, func() bool {
		entries, _ := os.ReadDir(filepath.Join(root, ".pop3", "outbound"))
		live = 0
		for _, e := range entries {
			if strings.HasSuffix(e.Name(), ".env") {
				live++
			}
		}
		return live == 0
	}) {
		t.Fatalf("the outbound queue still holds %d entries", live)
	}
	if n := r.count(); n != 2 {
		t.Errorf("the receiver got %d copies, want 2 (the one before the crash and one after)", n)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, m := range r.msgs {
		if !strings.Contains(string(m), "sent across a crash") {
			t.Errorf("copy %d:\n%s", i+1, m)
		}
	}
}

// freeAdmin returns a loopback address with a port free now, for an admin
// listener pop3ctl can find.
func freeAdmin(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := l.Addr().String()
	l.Close()
	return a
}

// TestOutboundQueueCtl lists, shows, retries and deletes outbound entries
// with pop3ctl while the receiver answers 451 and the backoff is an hour.
func TestOutboundQueueCtl(t *testing.T) {
	t.Parallel()
	var accept atomic.Bool
	r := startReceiver(t, "127.0.0.1", func(int, string) error {
		if accept.Load() {
			return nil
		}
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "busy"}
	}, nil)
	z, resolver := startDNS(t)
	z.setMX("slow.test", 10, "mx.slow.test")
	z.setA("mx.slow.test", "127.0.0.1")
	in := startSenderWith(t, resolver, port(t, r.addr), "", true, pop3dtest.Config{AdminListen: freeAdmin(t)}, `retry_min = "1h"
retry_max = "2h"`)
	submit(t, in, []string{"x@slow.test"}, "queued, then retried by hand")
	waitOutLog(t, in, `msg="delivery deferred"`)

	var list struct {
		Entries []store.QueueItem `json:"entries"`
	}
	if err := json.Unmarshal([]byte(in.Ctl(t, "", "-json", "queue", "list", "outbound")), &list); err != nil {
		t.Fatal(err)
	}
	if len(list.Entries) != 1 {
		t.Fatalf("queue list outbound: %d entries, want 1: %+v", len(list.Entries), list.Entries)
	}
	e := list.Entries[0]
	if e.Queue != "outbound" || e.From != "alice@example.org" || e.Attempts != 1 || e.NextAttempt == nil ||
		len(e.Rcpts) != 1 || e.Rcpts[0].Addr != "x@slow.test" || e.Rcpts[0].State != "pending" {
		t.Errorf("queue list outbound: %+v", e)
	}
	if out := in.Ctl(t, "", "queue", "show", e.ID); !strings.Contains(out, "deferred 1 time(s)") || !strings.Contains(out, "x@slow.test pending") {
		t.Errorf("queue show:\n%s", out)
	}
	if out := in.Ctl(t, "", "queue", "list"); !strings.Contains(out, e.ID) || !strings.Contains(out, "outbound") {
		t.Errorf("queue list:\n%s", out)
	}

	accept.Store(true)
	in.Ctl(t, "", "queue", "retry", e.ID)
	if !pop3dtest.Eventually(30*time.Second, func() bool { return !(r.count() == 0) }) {
		t.Fatalf("queue retry did not send the message within 30s (the backoff is an hour):\n%s", in.Log())
	}

	accept.Store(false)
	submit(t, in, []string{"y@slow.test"}, "queued, then deleted")
	var id string
	first := e.ID // sent, and maybe still listed for a moment
	if !pop3dtest.Eventually(30*time.Second, func() bool {
		list.Entries = nil
		if err := json.Unmarshal([]byte(in.Ctl(t, "", "-json", "queue", "list", "outbound")), &list); err != nil {
			t.Fatal(err)
		}
		for _, e := range list.Entries {
			if e.Attempts > 0 && e.ID != first {
				id = e.ID
			}
		}
		return id != ""
	}) {
		t.Fatalf("the second message was not deferred within 30s: %+v", list.Entries)
	}
	in.Ctl(t, "", "queue", "delete", id)
	if out := in.Ctl(t, "", "-json", "queue", "list", "outbound"); strings.Contains(out, id) {
		t.Errorf("queue list after delete still shows %s:\n%s", id, out)
	}
	if _, err := in.TryCtl("", "queue", "show", id); err == nil {
		t.Errorf("queue show of a deleted entry succeeded")
	}
	if n := metric(t, in, `smtp_outbound_deliveries_total{result="delivered"}`); n != 1 {
		t.Errorf(`smtp_outbound_deliveries_total{result="delivered"} = %v, want 1`, n)
	}
	if n := metric(t, in, `smtp_outbound_deliveries_total{result="deferred"}`); n < 2 {
		t.Errorf(`smtp_outbound_deliveries_total{result="deferred"} = %v, want at least 2`, n)
	}
}

// TestOutboundExpiry: a receiver that only ever answers 451; past
// outbound.retry_for the message fails with 5.4.7 and alice gets the report.
func TestOutboundExpiry(t *testing.T) {
	t.Parallel()
	r := startReceiver(t, "127.0.0.1", func(int, string) error {
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "never today"}
	}, nil)
	z, resolver := startDNS(t)
	z.setMX("never.test", 10, "mx.never.test")
	z.setA("mx.never.test", "127.0.0.1")
	in := startSenderWith(t, resolver, port(t, r.addr), "", true, pop3dtest.Config{}, `retry_min = "200ms"
retry_max = "300ms"
retry_for = "2s"`)
	submit(t, in, []string{"z@never.test"}, "never delivered")
	dsn := popMessages(t, in, "alice@example.org", alicePass, 1)
	for _, want := range []string{"Final-Recipient: rfc822; z@never.test", "Status: 5.4.7", "delivery time expired", "never today"} {
		if !strings.Contains(dsn[0], want) {
			t.Errorf("the report lacks %q:\n%s", want, dsn[0])
		}
	}
}

// TestOutboundSmarthost sends through a smarthost: the second pop3d's
// implicit-TLS submission port, with AUTH as carol, who may send as
// alice@example.org there (an alias); dave reads the message by POP3.
func TestOutboundSmarthost(t *testing.T) {
	t.Parallel()
	remote := pop3dtest.Start(t, pop3dtest.Config{
		Top:             "logging = 4",
		Auth:            fastHash,
		Submission:      true,
		SubmissionTable: `aliases = ["carol@remote.test=alice@example.org"]`,
		Setup: [][]string{
			{"add", "remote.test"}, {"add", "carol@remote.test", "-password", bobPass},
			{"add", "implicit.test"}, {"add", "dave@implicit.test", "-password", bobPass},
		},
	})
	in := pop3dtest.Start(t, pop3dtest.Config{
		Top:        "logging = 4",
		Auth:       fastHash,
		Submission: true,
		Setup:      submissionSetup(),
		Tables: fmt.Sprintf(`[outbound]
smarthost = %q
smarthost_tls = "tls"
smarthost_user = "carol@remote.test"
smarthost_password = %q
retry_min = "200ms"
retry_max = "500ms"
`, remote.SubmissionTLS, bobPass),
	})
	submit(t, in, []string{"dave@implicit.test"}, "through the smarthost")
	dave := popMessages(t, remote, "dave@implicit.test", bobPass, 1)
	if !strings.Contains(dave[0], "through the smarthost") || !strings.Contains(dave[0], "with ESMTPSA") {
		t.Errorf("dave's copy did not come through the smarthost with AUTH over TLS:\n%s", dave[0])
	}
	// The remote stores dave's copy as soon as it has queued it, before
	// its 250: the sender removes its entry a moment after.
	if !pop3dtest.Eventually(30*time.Second, func() bool {
		return !strings.Contains(in.Ctl(t, "", "queue", "list", "outbound"), "alice@example.org")
	}) {
		t.Errorf("the outbound queue still holds the message 30s after dave got it")
	}
}

// TestOutboundDKIM makes example.org's key with pop3ctl dkim add and
// checks the signature of the message the receiver gets against the
// record pop3ctl printed.
func TestOutboundDKIM(t *testing.T) {
	t.Parallel()
	r := startReceiver(t, "127.0.0.1", nil, nil)
	z, resolver := startDNS(t)
	z.setMX("signed.test", 10, "mx.signed.test")
	z.setA("mx.signed.test", "127.0.0.1")
	in := startSender(t, resolver, port(t, r.addr), "", true)
	var rec struct {
		Name, TXT, Record string
		Created           bool
	}
	if err := json.Unmarshal([]byte(in.Ctl(t, "", "-json", "dkim", "add", "example.org")), &rec); err != nil {
		t.Fatal(err)
	}
	if rec.Name != "pop3d._domainkey.example.org" || !strings.HasPrefix(rec.TXT, "v=DKIM1; k=rsa; p=") || !rec.Created ||
		!strings.HasPrefix(rec.Record, "pop3d._domainkey.example.org. IN TXT (") {
		t.Fatalf("dkim add: %+v", rec)
	}
	if out := in.Ctl(t, "", "-json", "dkim", "add", "example.org"); !strings.Contains(out, `"created": false`) || !strings.Contains(out, rec.TXT) {
		t.Errorf("a second dkim add did not print the same key's record:\n%s", out)
	}
	if out, err := in.TryCtl("", "dkim", "add", "not-served.test"); err == nil {
		t.Errorf("dkim add for a domain not served succeeded:\n%s", out)
	}

	submit(t, in, []string{"x@signed.test"}, "a signed message")
	if !pop3dtest.Eventually(30*time.Second, func() bool { return !(r.count() == 0) }) {
		t.Fatalf("the receiver got nothing within 30s:\n%s", in.Log())
	}
	r.mu.Lock()
	msg := r.msgs[0]
	r.mu.Unlock()
	vs, err := dkim.VerifyWithOptions(bytes.NewReader(msg), &dkim.VerifyOptions{
		LookupTXT: func(name string) ([]string, error) {
			if name != rec.Name {
				return nil, fmt.Errorf("no TXT record for %s", name)
			}
			return []string{rec.TXT}, nil
		},
	})
	if err != nil || len(vs) != 1 || vs[0].Err != nil || vs[0].Domain != "example.org" {
		t.Fatalf("DKIM verification: %v %+v\n%s", err, vs, msg)
	}
	// A change to a signed header breaks the signature: it covers them.
	bad := bytes.Replace(msg, []byte("Subject: outbound"), []byte("Subject: altered"), 1)
	vs, _ = dkim.VerifyWithOptions(bytes.NewReader(bad), &dkim.VerifyOptions{
		LookupTXT: func(string) ([]string, error) { return []string{rec.TXT}, nil },
	})
	if len(vs) != 1 || vs[0].Err == nil {
		t.Errorf("the signature still verifies after the Subject changed")
	}
}
