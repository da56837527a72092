package main

import (
	"fmt"
	"net"
	"net/smtp"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	gosmtp "github.com/emersion/go-smtp"

	"github.com/pop3svc/pop3svc/cmd/pop3d/pop3dtest"
)

// The reload tests of [submission] and [outbound]: each key is changed on
// a running pop3d with a reload through the admin API (runLiveCases) and
// observed on a new submission session or on the next delivery of a
// message submitted after the reload.

// TestReloadAppliesSubmissionKeys changes the submission policy on a
// running pop3d and observes each change on a new submission session.
func TestReloadAppliesSubmissionKeys(t *testing.T) {
	t.Parallel()
	in := startSubmission(t, "", "sparequired = false\nmax_recipients = 3\nmax_messages_per_hour = 100", "")
	runLiveCases(t, in, submissionReloadCases(), func(int) string { return "127.0.0.1" })
}

func submissionReloadCases() []liveCase {
	authed := func(t *testing.T, in *pop3dtest.Server, user string) *smtp.Client {
		c := smtpClient(t, in.Submission)
		startTLS(t, c)
		if err := c.Auth(plainAuth{user, alicePass}); err != nil {
			t.Fatalf("AUTH as %s: %v", user, err)
		}
		return c
	}
	return []liveCase{
		{key: "submission.sparequired", value: "true", want: "no PLAIN", probe: func(t *testing.T, in *pop3dtest.Server, _ string) string {
			c := smtpClient(t, in.Submission)
			defer c.Quit()
			if _, mechs := c.Extension("AUTH"); strings.Contains(mechs, "PLAIN") {
				return "PLAIN offered"
			}
			return "no PLAIN"
		}},
		{key: "submission.aliases", value: "alice@example.org=sales@example.org", want: "sent as sales", probe: func(t *testing.T, in *pop3dtest.Server, _ string) string {
			c := authed(t, in, "alice@example.org")
			defer c.Quit()
			err := send(c, "sales@example.org", []string{"bob@example.org"}, "From: sales@example.org\r\nSubject: alias\r\n\r\nbody\r\n")
			if err != nil {
				return fmt.Sprintf("refused %d", code(err))
			}
			return "sent as sales"
		}},
		{key: "submission.max_recipients", value: "2", want: "2 accepted", probe: func(t *testing.T, in *pop3dtest.Server, _ string) string {
			c := authed(t, in, "alice@example.org")
			defer c.Quit()
			if err := c.Mail("alice@example.org"); err != nil {
				t.Fatal(err)
			}
			n := 0
			for range 3 {
				if err := c.Rcpt("bob@example.org"); err != nil {
					if code(err) != 452 {
						t.Fatalf("RCPT %d: %v, want 250 or 452", n+1, err)
					}
					break
				}
				n++
			}
			return fmt.Sprintf("%d accepted", n)
		}},
		// Each probe submits one message as rate@: at 100 an hour it goes;
		// at 1 an hour the one before it used the hour up.
		{key: "submission.max_messages_per_hour", value: "1", want: "450", probe: func(t *testing.T, in *pop3dtest.Server, _ string) string {
			c := authed(t, in, "rate@example.org")
			defer c.Quit()
			if err := send(c, "rate@example.org", []string{"bob@example.org"}, "From: rate@example.org\r\nSubject: rate\r\n\r\nbody\r\n"); err != nil {
				return strconv.Itoa(code(err))
			}
			return "sent"
		}},
	}
}

// outboundEnv is what the outbound reload cases deliver to: two DNS
// servers, mail servers of the test on 127.0.0.2-8 (all on one port, the
// sender's outbound.mx_port, and one more on another port), and a second
// pop3d as smarthost.
type outboundEnv struct {
	z1, z2             string // the two resolvers
	port, otherPort    int
	a, b, c, flaky     *receiver
	hold               *receiver
	held               atomic.Int32
	release            chan struct{}
	releaseOnce        sync.Once
	remote             *pop3dtest.Server
	mu                 sync.Mutex
	refusals           map[string]int // RCPTs refused so far, per address
	seq                atomic.Int32
	blackhole, silence string // mail servers that never answer
}

// Domains of the outbound cases:
//   - route.test: its MX is 127.0.0.2 (a) in z1's answers, 127.0.0.3 (b) in z2's;
//   - hold.test: 127.0.0.4, which holds each message at the end of DATA;
//   - flaky.test: 127.0.0.5, which refuses a recipient "r<N>-..." N times
//     with 451, and "never-..." always;
//   - slow.test: first 127.0.0.6, which accepts and never says a word,
//     then a;
//   - hole.test: first 127.0.0.7, whose connections are never taken, then a.
func startOutboundEnv(t *testing.T) *outboundEnv {
	t.Helper()
	e := &outboundEnv{release: make(chan struct{}), refusals: map[string]int{}}
	e.a = startReceiver(t, "127.0.0.2", nil, nil)
	e.port = port(t, e.a.addr)
	at := func(ip string) string { return net.JoinHostPort(ip, strconv.Itoa(e.port)) }
	e.b = startReceiverAt(t, at("127.0.0.3"), nil, nil)
	e.c = startReceiver(t, "127.0.0.2", nil, nil)
	e.otherPort = port(t, e.c.addr)
	e.hold = startReceiverAt(t, at("127.0.0.4"), nil, func([]byte) error {
		e.held.Add(1)
		defer e.held.Add(-1)
		<-e.release
		return nil
	})
	t.Cleanup(e.letGo)
	e.flaky = startReceiverAt(t, at("127.0.0.5"), func(_ int, rcpt string) error {
		local, _, _ := strings.Cut(rcpt, "@")
		e.mu.Lock()
		defer e.mu.Unlock()
		n := -1 // always
		if f, _, ok := strings.Cut(local, "-"); ok && strings.HasPrefix(f, "r") {
			n, _ = strconv.Atoi(f[1:])
		}
		if n >= 0 && e.refusals[rcpt] >= n {
			return nil
		}
		e.refusals[rcpt]++
		return &gosmtp.SMTPError{Code: 451, EnhancedCode: gosmtp.EnhancedCode{4, 3, 0}, Message: "not now"}
	}, nil)
	e.silence = at("127.0.0.6")
	l, err := net.Listen("tcp", e.silence)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c) // held open, silent, until the test ends
		}
	}()
	e.blackhole = at("127.0.0.7")
	listenBlackhole(t, e.blackhole)

	var zs [2]*dnsZone
	zs[0], e.z1 = startDNS(t)
	zs[1], e.z2 = startDNS(t)
	for i, z := range zs {
		z.setMX("route.test", 10, "mx.route.test")
		z.setA("mx.route.test", []string{"127.0.0.2", "127.0.0.3"}[i])
		z.setMX("hold.test", 10, "mx.hold.test")
		z.setA("mx.hold.test", "127.0.0.4")
		z.setMX("flaky.test", 10, "mx.flaky.test")
		z.setA("mx.flaky.test", "127.0.0.5")
		z.setMX("slow.test", 10, "mx1.slow.test")
		z.setMX("slow.test", 20, "mx2.slow.test")
		z.setA("mx1.slow.test", "127.0.0.6")
		z.setA("mx2.slow.test", "127.0.0.2")
		z.setMX("hole.test", 10, "mx1.hole.test")
		z.setMX("hole.test", 20, "mx2.hole.test")
		z.setA("mx1.hole.test", "127.0.0.7")
		z.setA("mx2.hole.test", "127.0.0.2")
	}

	// The smarthost: carol may send as alice there; dave reads what came.
	e.remote = pop3dtest.Start(t, pop3dtest.Config{
		Top: "logging = 4",
		Auth: fastHash + `fail_delay = "20ms"
penalty = "0s"
penalty_max = "0s"
ban_after = 1000`,
		Submission:      true,
		SubmissionTable: `aliases = ["carol@remote.test=alice@example.org"]`,
		Setup: [][]string{
			{"add", "remote.test"}, {"add", "carol@remote.test", "-password", bobPass},
			{"add", "implicit.test"}, {"add", "dave@implicit.test", "-password", bobPass},
		},
	})
	return e
}

// startReceiverAt is startReceiver on a given address.
// letGo lets the messages held at hold.test's server go.
func (e *outboundEnv) letGo() { e.releaseOnce.Do(func() { close(e.release) }) }

func startReceiverAt(t testing.TB, addr string, answer func(n int, rcpt string) error, dataHook func([]byte) error) *receiver {
	t.Helper()
	r := &receiver{answer: answer, dataHook: dataHook}
	srv := gosmtp.NewServer(r)
	srv.Domain = "receiver.test"
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	r.addr = l.Addr().String()
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { srv.Close() })
	return r
}

// listenBlackhole listens on addr with no room in the accept queue and
// fills it: the kernel drops further connection attempts, which hang
// until the client gives up.
func listenBlackhole(t *testing.T, addr string) {
	t.Helper()
	ap, err := net.ResolveTCPAddr("tcp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	sa := &syscall.SockaddrInet4{Port: ap.Port}
	copy(sa.Addr[:], ap.IP.To4())
	if err := syscall.Bind(fd, sa); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	for i := 0; ; i++ {
		c, err := net.DialTimeout("tcp", addr, 300*time.Millisecond)
		if err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				return // full: attempts hang
			}
			t.Fatalf("filling the accept queue of %s: %v", addr, err)
		}
		t.Cleanup(func() { c.Close() })
		if i == 16 {
			t.Fatalf("the accept queue of %s does not fill", addr)
		}
	}
}

// TestReloadAppliesOutboundKeys changes the [outbound] keys on a running
// pop3d and observes each on the delivery of a message submitted after
// the reload. The keys whose old value makes a delivery wait an hour
// (timeouts, the retry schedule) are looked at after the change only:
// delivered within the probe's deadline, which the old value could not be.
func TestReloadAppliesOutboundKeys(t *testing.T) {
	t.Parallel()
	e := startOutboundEnv(t)
	in := pop3dtest.Start(t, pop3dtest.Config{
		Top: "logging = 4",
		Auth: fastHash + `fail_delay = "20ms"
penalty = "0s"
penalty_max = "0s"`,
		Submission: true,
		Setup:      submissionSetup(),
		Tables: fmt.Sprintf(`[outbound]
resolver = %q
mx_port = %d
connect_timeout = "1h"
timeout = "1h"
max_per_destination = 1
retry_min = "200ms"
retry_max = "500ms"
`, e.z1, e.port),
	})
	in.Ctl(t, "", "dkim", "add", "example.org")
	runLiveCases(t, in, outboundReloadCases(e), func(int) string { return "127.0.0.1" })
}

func outboundReloadCases(e *outboundEnv) []liveCase {
	// probeTo submits one message to rcpt and says where it went: the
	// name of the receiver that got it, "smarthost" when dave has it at
	// the smarthost, "deferred" when the delivery was put off. With
	// retried, a deferral is no answer: the probe waits for the message.
	probeTo := func(rcpt string, retried bool) func(t *testing.T, in *pop3dtest.Server, _ string) string {
		return func(t *testing.T, in *pop3dtest.Server, _ string) string {
			token := fmt.Sprintf("probe-%d", e.seq.Add(1))
			id := submitID(t, in, rcpt, token)
			deferred := regexp.MustCompile(`msg="delivery deferred".*queue_id=` + regexp.QuoteMeta(id) + `\b|queue_id=` + regexp.QuoteMeta(id) + `\b.*msg="delivery deferred"`)
			var got string
			pop3dtest.WaitFor(t, 60*time.Second, "the message "+id+" to "+rcpt+" delivered or deferred", func() bool {
				for name, r := range map[string]*receiver{"a": e.a, "b": e.b, "c": e.c, "flaky": e.flaky} {
					if r.has(token) {
						got = name
						return true
					}
				}
				switch {
				case strings.HasSuffix(rcpt, "@implicit.test") && mailboxHas(t, e.remote, rcpt, bobPass, token):
					got = "smarthost"
				case !retried && deferred.MatchString(in.Log()):
					got = "deferred"
				}
				return got != ""
			})
			return got
		}
	}
	at := func(rcpt string) func(t *testing.T, in *pop3dtest.Server, _ string) string {
		return probeTo(rcpt, false)
	}
	counter := func(prefix, domain string) func(t *testing.T, in *pop3dtest.Server, ip string) string {
		return func(t *testing.T, in *pop3dtest.Server, ip string) string {
			return probeTo(fmt.Sprintf("%s-%d@%s", prefix, e.seq.Add(1), domain), true)(t, in, ip)
		}
	}
	toRoute := at("x@route.test")
	toDave := at("dave@implicit.test")
	remoteTLS := e.remote.SubmissionTLS
	return []liveCase{
		{key: "outbound.resolver", value: e.z2, want: "b", probe: toRoute},
		{key: "outbound.mx_port", value: strconv.Itoa(e.otherPort), want: "c", probe: toRoute},
		{key: "outbound.smarthost", value: e.b.addr, want: "b", probe: toRoute},
		// The smarthost is the second pop3d's implicit-TLS submission
		// port, where carol may send as alice.
		{key: "outbound.smarthost_tls", value: "tls", want: "smarthost", prep: [][2]string{
			{"outbound.timeout", "5s"}, // a plaintext greeting awaited from a TLS port
			{"outbound.smarthost", remoteTLS}, {"outbound.smarthost_user", "carol@remote.test"}, {"outbound.smarthost_password", bobPass},
		}, probe: toDave},
		{key: "outbound.smarthost_user", value: "carol@remote.test", want: "smarthost", prep: [][2]string{
			{"outbound.smarthost", remoteTLS}, {"outbound.smarthost_tls", "tls"}, {"outbound.smarthost_user", "nobody@remote.test"}, {"outbound.smarthost_password", bobPass},
		}, probe: toDave},
		{key: "outbound.smarthost_password", value: bobPass, want: "smarthost", prep: [][2]string{
			{"outbound.smarthost", remoteTLS}, {"outbound.smarthost_tls", "tls"}, {"outbound.smarthost_user", "carol@remote.test"}, {"outbound.smarthost_password", "wrong"},
		}, probe: toDave},
		{key: "outbound.dkim_selector", value: "second", want: "s=second", probe: func(t *testing.T, in *pop3dtest.Server, ip string) string {
			token := fmt.Sprintf("probe-%d", e.seq.Add(1))
			submitID(t, in, "x@route.test", token)
			var msg string
			pop3dtest.WaitFor(t, 60*time.Second, "the signed message at a", func() bool {
				msg = e.a.find(token)
				return msg != ""
			})
			m := regexp.MustCompile(`(?s)DKIM-Signature:.*?\bs=([a-z0-9]+)`).FindStringSubmatch(msg)
			if m == nil {
				t.Fatalf("no DKIM selector in:\n%s", msg)
			}
			return "s=" + m[1]
		}},
		// Two messages to hold.test, whose server holds each at the end of
		// DATA: with one conversation per destination only the first gets
		// there until it is let go; the old value is looked at by the
		// after-direction only, since its proof is that nothing happened.
		{key: "outbound.max_per_destination", value: "2", noBefore: true, want: "2 at once", probe: func(t *testing.T, in *pop3dtest.Server, _ string) string {
			submitID(t, in, fmt.Sprintf("h-%d@hold.test", e.seq.Add(1)), "held")
			submitID(t, in, fmt.Sprintf("h-%d@hold.test", e.seq.Add(1)), "held")
			defer e.letGo()
			if pop3dtest.Eventually(60*time.Second, func() bool { return e.held.Load() == 2 }) {
				return "2 at once"
			}
			return fmt.Sprintf("%d at once", e.held.Load())
		}},
		// The next attempt after a 451 comes an hour later with the old
		// value, 200ms later with the new.
		{key: "outbound.retry_min", value: "200ms", noBefore: true, want: "flaky", prep: [][2]string{
			{"outbound.retry_max", "2h"}, {"outbound.retry_min", "1h"},
		}, probe: counter("r1", "flaky.test")},
		// Refused 12 times: with backoff from 200ms doubling up to an hour
		// the 13th attempt comes after 13 minutes; with a cap of 200ms
		// after a few seconds.
		{key: "outbound.retry_max", value: "200ms", noBefore: true, want: "flaky", prep: [][2]string{
			{"outbound.retry_max", "1h"},
		}, probe: counter("r12", "flaky.test")},
		// Always refused: past a second of retries alice gets the report.
		{key: "outbound.retry_for", value: "1s", noBefore: true, want: "report", probe: func(t *testing.T, in *pop3dtest.Server, _ string) string {
			token := fmt.Sprintf("probe-%d", e.seq.Add(1))
			submitID(t, in, fmt.Sprintf("never-%d@flaky.test", e.seq.Add(1)), token)
			if pop3dtest.Eventually(60*time.Second, func() bool {
				return mailboxHas(t, in, "alice@example.org", alicePass, token, "Status: 5.4.7")
			}) {
				return "report"
			}
			return "no report"
		}},
		// The first server of slow.test never greets; an hour's timeout
		// waits for it, two seconds' go on to the next one, a.
		{key: "outbound.timeout", value: "2s", noBefore: true, want: "a", probe: at("x@slow.test")},
		// The first server of hole.test never takes the connection.
		{key: "outbound.connect_timeout", value: "500ms", noBefore: true, want: "a", probe: at("x@hole.test")},
	}
}

func (r *receiver) find(token string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, m := range r.msgs {
		if strings.Contains(string(m), token) {
			return string(m)
		}
	}
	return ""
}

func (r *receiver) has(token string) bool { return r.find(token) != "" }

// submitID submits a message with body to rcpt as alice and returns its
// queue ID.
func submitID(t *testing.T, in *pop3dtest.Server, rcpt, body string) string {
	t.Helper()
	c := smtpClient(t, in.Submission)
	defer c.Quit()
	startTLS(t, c)
	if err := c.Auth(plainAuth{"alice@example.org", alicePass}); err != nil {
		t.Fatal(err)
	}
	if err := c.Mail("alice@example.org"); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt(rcpt); err != nil {
		t.Fatal(err)
	}
	if code, m := raw(t, c, "DATA"); code != 354 {
		t.Fatalf("DATA: %d %s", code, m)
	}
	msg := "From: Alice <alice@example.org>\r\nTo: " + rcpt + "\r\nSubject: outbound " + body + "\r\n\r\n" + body + "\r\n.\r\n"
	if err := c.Text.PrintfLine("%s", strings.TrimSuffix(msg, "\r\n")); err != nil {
		t.Fatal(err)
	}
	_, m, err := c.Text.ReadResponse(250)
	if err != nil {
		t.Fatalf("end of DATA: %v", err)
	}
	_, id, ok := strings.Cut(m, "queued as ")
	if !ok {
		t.Fatalf("end of DATA: %q, no queue ID", m)
	}
	return strings.TrimSpace(id)
}

// mailboxHas reports whether a message of addr's mailbox holds every one
// of want.
func mailboxHas(t *testing.T, in *pop3dtest.Server, addr, pass string, want ...string) bool {
	t.Helper()
	p := pop3dtest.DialRaw(t, in.POP3, "")
	defer p.Close()
	p.Expect("+OK")
	p.Send("USER " + addr + "\r\n")
	p.Expect("+OK")
	p.Send("PASS " + pass + "\r\n")
	p.Expect("+OK")
	p.Send("STAT\r\n")
	var n, size int
	fmt.Sscanf(p.Expect("+OK"), "+OK %d %d", &n, &size)
	found := false
	for i := 1; i <= n && !found; i++ {
		p.Send(fmt.Sprintf("RETR %d\r\n", i))
		p.Expect("+OK")
		m := strings.Join(p.Multi(), "\r\n")
		found = true
		for _, w := range want {
			found = found && strings.Contains(m, w)
		}
	}
	p.Send("QUIT\r\n")
	p.Expect("+OK")
	return found
}
