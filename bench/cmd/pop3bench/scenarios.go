package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"mime"
	"net"
	"net/mail"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pop3svc/pop3svc/bench/corpus"
	"github.com/pop3svc/pop3svc/bench/pop3c"
	"github.com/pop3svc/pop3svc/bench/report"
)

// target is the server under test as the scenarios see it.
type target struct {
	Addr     string      // POP3 (or POP3S when TLS is set) host:port
	SMTP     string      // SMTP host:port
	TLS      *tls.Config // non-nil: implicit TLS
	Spec     corpus.Spec // users, domain and password
	Timeout  time.Duration
	Dele     bool // sessions: DELE every message before QUIT (empties the mailboxes)
	Progress *progress
	seq      atomic.Uint64 // spreads sessions over loopback source addresses
}

func (t *target) login(mbox string) string { return mbox + "@" + t.Spec.Domain }

// tally collects the outcome of many sessions from many goroutines.
type tally struct {
	mu        sync.Mutex
	lat       []time.Duration
	dialLat   []time.Duration // connect and greeting of each successful session
	loginLat  []time.Duration // its login
	sessions  atomic.Int64
	messages  atomic.Int64
	bytes     atomic.Int64
	errors    atomic.Int64
	firstErr  error
	firstOnce sync.Once
}

func (t *tally) fail(err error) {
	t.errors.Add(1)
	t.firstOnce.Do(func() { t.firstErr = err })
}

func (t *tally) fill(r *report.Run, secs float64) {
	r.Seconds = secs
	r.Sessions = t.sessions.Load()
	r.Messages = t.messages.Load()
	r.Bytes = t.bytes.Load()
	r.Errors = t.errors.Load()
	if t.firstErr != nil {
		r.FirstError = t.firstErr.Error()
	}
	if secs > 0 {
		r.SessionsPerSec = float64(r.Sessions) / secs
		r.MessagesPerSec = float64(r.Messages) / secs
		r.MBPerSec = float64(r.Bytes) / secs / 1e6
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if n := len(t.lat); n > 0 {
		sort.Slice(t.lat, func(i, j int) bool { return t.lat[i] < t.lat[j] })
		q := func(p float64) float64 {
			k := int(p*float64(n)+0.5) - 1
			k = max(0, min(n-1, k))
			return float64(t.lat[k]) / 1e6
		}
		r.P50Ms, r.P99Ms, r.MaxMs = q(0.50), q(0.99), float64(t.lat[n-1])/1e6
	}
}

// session runs one full POP3 session: USER/PASS, STAT, UIDL, LIST, RETR of
// every message with its octets checked against LIST, optional DELE, QUIT.
func (t *target) session(ctx context.Context, user string, tl *tally) error {
	return t.sessionFrom(ctx, user, fmt.Sprintf("127.0.0.%d", 1+t.seq.Add(1)%IdleSourceIPs), tl)
}

// sessionFrom is session from the source address local.
func (t *target) sessionFrom(ctx context.Context, user, local string, tl *tally) error {
	start := time.Now()
	c, err := pop3c.Dial(ctx, t.Addr, pop3c.Options{TLS: t.TLS, Timeout: t.Timeout, Local: local})
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer c.Close()
	dialed := time.Now()
	if err := c.Login(user, t.Spec.Password); err != nil {
		return fmt.Errorf("%s: %w", user, err)
	}
	loggedIn := time.Now()
	n, total, err := c.Stat()
	if err != nil {
		return fmt.Errorf("STAT: %w", err)
	}
	uids, err := c.UIDL()
	if err != nil {
		return fmt.Errorf("UIDL: %w", err)
	}
	list, err := c.List()
	if err != nil {
		return fmt.Errorf("LIST: %w", err)
	}
	if len(list) != n || len(uids) != n {
		return fmt.Errorf("%s: STAT says %d messages, LIST %d, UIDL %d", user, n, len(list), len(uids))
	}
	var sum int64
	for _, e := range list {
		sum += e.Size
	}
	if sum != total {
		return fmt.Errorf("%s: STAT says %d octets, LIST sums to %d", user, total, sum)
	}
	for _, e := range list {
		got, err := c.Retr(e.N)
		if err != nil {
			return fmt.Errorf("RETR %d: %w", e.N, err)
		}
		if got != e.Size {
			return fmt.Errorf("%s: RETR %d gave %d octets, LIST said %d", user, e.N, got, e.Size)
		}
		tl.messages.Add(1)
		tl.bytes.Add(got)
		t.Progress.add(got)
	}
	if t.Dele {
		for _, e := range list {
			if err := c.Dele(e.N); err != nil {
				return fmt.Errorf("DELE %d: %w", e.N, err)
			}
		}
	}
	if err := c.Quit(); err != nil {
		return fmt.Errorf("QUIT: %w", err)
	}
	d := time.Since(start)
	tl.sessions.Add(1)
	tl.mu.Lock()
	tl.lat = append(tl.lat, d)
	tl.dialLat = append(tl.dialLat, dialed.Sub(start))
	tl.loginLat = append(tl.loginLat, loggedIn.Sub(dialed))
	tl.mu.Unlock()
	return nil
}

// runSessions runs conc clients for dur; client k uses the users k, k+conc,
// k+2·conc … round robin, so no two clients want the same mailbox at once.
func (t *target) runSessions(ctx context.Context, conc int, dur time.Duration) (report.Run, error) {
	if conc < 1 {
		return report.Run{}, fmt.Errorf("concurrency %d, want at least 1", conc)
	}
	if t.Spec.Users < conc {
		return report.Run{}, fmt.Errorf("%d clients need at least %d mailboxes, the corpus has %d", conc, conc, t.Spec.Users)
	}
	var tl tally
	ctx, cancel := context.WithTimeout(ctx, dur)
	defer cancel()
	var wg sync.WaitGroup
	start := time.Now()
	for k := 0; k < conc; k++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for u := k; ctx.Err() == nil; {
				if err := t.session(context.WithoutCancel(ctx), t.login(corpus.User(u)), &tl); err != nil {
					tl.fail(err)
					time.Sleep(10 * time.Millisecond) // do not spin on a refusing server
				}
				if u += conc; u >= t.Spec.Users {
					u = k
				}
			}
		}()
	}
	wg.Wait()
	var r report.Run
	r.Scenario, r.Concurrency = "sessions", conc
	if t.TLS != nil {
		r.Scenario = "sessions-tls"
	}
	tl.fill(&r, time.Since(start).Seconds())
	return r, nil
}

// Names of the RETR scenarios: the text message (BigTextMsg, one line in
// six dot-stuffed) and the attachment message (BigAttachmentMsg, base64,
// nothing to stuff), each over plain TCP and over TLS.
const (
	ScenarioRetr       = "retr"
	ScenarioRetrTLS    = "retr-tls"
	ScenarioRetrAtt    = "retr-att"
	ScenarioRetrAttTLS = "retr-att-tls"
)

// retrScenario names the RETR scenario of big-mailbox message msg.
func retrScenario(msg int, tls bool) string {
	name := ScenarioRetr
	if msg == corpus.BigAttachmentMsg {
		name = ScenarioRetrAtt
	}
	if tls {
		name += "-tls"
	}
	return name
}

// isRetr reports whether a scenario is one of the RETR scenarios, whose
// operations are messages.
func isRetr(scenario string) bool {
	switch scenario {
	case ScenarioRetr, ScenarioRetrTLS, ScenarioRetrAtt, ScenarioRetrAttTLS:
		return true
	}
	return false
}

// bigContentType is the media type that the header of each big-mailbox
// message names: RETR runs check it once, so that a server numbering the
// two messages otherwise (both have BigSize octets) cannot pass one for
// the other.
var bigContentType = map[int]string{corpus.BigTextMsg: "text/plain", corpus.BigAttachmentMsg: "multipart/mixed"}

// checkBigMessage reads the header of message msg with TOP and checks
// that it is the corpus's message of that number.
func checkBigMessage(c *pop3c.Conn, msg int) error {
	head, err := c.Top(msg, 0)
	if err != nil {
		return fmt.Errorf("TOP %d 0: %w", msg, err)
	}
	m, err := mail.ReadMessage(bytes.NewReader(head))
	if err != nil {
		return fmt.Errorf("TOP %d 0: %w", msg, err)
	}
	mt, _, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if want := bigContentType[msg]; err != nil || mt != want {
		return fmt.Errorf("message %d has Content-Type %q, want %s: not the corpus's message %d", msg, m.Header.Get("Content-Type"), want, msg)
	}
	return nil
}

// runRetr has conc clients, each logged in to its own big mailbox, RETR
// message msg (corpus.BigTextMsg or corpus.BigAttachmentMsg, BigSize
// octets either) over and over for dur; Sessions counts RETRs.
func (t *target) runRetr(ctx context.Context, conc int, dur time.Duration, msg int) (report.Run, error) {
	r := report.Run{Scenario: retrScenario(msg, t.TLS != nil), Concurrency: conc}
	if _, ok := bigContentType[msg]; !ok {
		return r, fmt.Errorf("big mailboxes hold messages %d and %d, not %d", corpus.BigTextMsg, corpus.BigAttachmentMsg, msg)
	}
	if conc < 1 || conc > t.Spec.Big {
		return r, fmt.Errorf("%s with %d clients needs %d big mailboxes, the corpus has %d", r.Scenario, conc, conc, t.Spec.Big)
	}
	var tl tally
	var wg sync.WaitGroup
	conns := make([]*pop3c.Conn, conc)
	for k := range conns {
		c, err := pop3c.Dial(ctx, t.Addr, pop3c.Options{TLS: t.TLS, Timeout: t.Timeout})
		if err != nil {
			return r, fmt.Errorf("connect: %w", err)
		}
		defer c.Close()
		if err := c.Login(t.login(corpus.BigUser(k)), t.Spec.Password); err != nil {
			return r, err
		}
		if err := checkBigMessage(c, msg); err != nil {
			return r, fmt.Errorf("%s: %w", corpus.BigUser(k), err)
		}
		conns[k] = c
	}
	start := time.Now()
	end := start.Add(dur)
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(end) && ctx.Err() == nil {
				t0 := time.Now()
				n, err := c.Retr(msg)
				if err != nil {
					tl.fail(err)
					return
				}
				if n != corpus.BigSize {
					tl.fail(fmt.Errorf("RETR %d gave %d octets, want %d", msg, n, corpus.BigSize))
					return
				}
				tl.sessions.Add(1)
				tl.messages.Add(1)
				tl.bytes.Add(n)
				t.Progress.add(n)
				tl.mu.Lock()
				tl.lat = append(tl.lat, time.Since(t0))
				tl.mu.Unlock()
			}
		}()
	}
	wg.Wait()
	secs := time.Since(start).Seconds()
	for _, c := range conns {
		_ = c.Quit()
	}
	tl.fill(&r, secs)
	r.SessionsPerSec = 0
	return r, nil
}

// SMTPMessageSize is the size of each message of the smtp scenario.
const SMTPMessageSize = 10 << 10

// runSMTP has conc senders deliver SMTPMessageSize messages to the corpus's
// users over SMTP (RFC 5321) for dur, many transactions per connection.
func (t *target) runSMTP(ctx context.Context, conc int, dur time.Duration) (report.Run, error) {
	if t.SMTP == "" {
		return report.Run{}, fmt.Errorf("no SMTP address")
	}
	if t.Spec.Users < 1 {
		return report.Run{}, fmt.Errorf("the smtp scenario needs at least one mailbox")
	}
	var tl tally
	var wg sync.WaitGroup
	start := time.Now()
	end := start.Add(dur)
	for k := 0; k < conc; k++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			msg := t.Spec.SMTPMessage(k, SMTPMessageSize)
			for n := 0; time.Now().Before(end) && ctx.Err() == nil; {
				err := t.smtpConn(ctx, k, &n, msg, end, &tl)
				if err != nil {
					tl.fail(err)
					time.Sleep(10 * time.Millisecond)
				}
			}
		}()
	}
	wg.Wait()
	var r report.Run
	r.Scenario, r.Concurrency = "smtp", conc
	tl.fill(&r, time.Since(start).Seconds())
	r.SessionsPerSec = 0
	return r, nil
}

// SMTPPerConn is how many transactions one SMTP connection carries.
const SMTPPerConn = 100

func (t *target) smtpConn(ctx context.Context, k int, n *int, msg []byte, end time.Time, tl *tally) error {
	d := net.Dialer{Timeout: t.Timeout}
	nc, err := d.DialContext(ctx, "tcp", t.SMTP)
	if err != nil {
		return err
	}
	defer nc.Close()
	r := bufio.NewReader(nc)
	w := bufio.NewWriter(nc)
	reply := func(want byte) error {
		_ = nc.SetReadDeadline(time.Now().Add(t.Timeout))
		for {
			l, err := r.ReadString('\n')
			if err != nil {
				return err
			}
			if len(l) < 4 || l[0] != want {
				return fmt.Errorf("SMTP reply %q", l)
			}
			if l[3] != '-' {
				return nil
			}
		}
	}
	cmd := func(want byte, format string, a ...any) error {
		_ = nc.SetWriteDeadline(time.Now().Add(t.Timeout))
		fmt.Fprintf(w, format+"\r\n", a...)
		if err := w.Flush(); err != nil {
			return err
		}
		return reply(want)
	}
	if err := reply('2'); err != nil {
		return fmt.Errorf("greeting: %w", err)
	}
	if err := cmd('2', "EHLO bench.client"); err != nil {
		return err
	}
	for j := 0; j < SMTPPerConn && time.Now().Before(end); j++ {
		to := corpus.SinkUser
		*n++
		t0 := time.Now()
		if err := cmd('2', "MAIL FROM:<bench%d@example.org> SIZE=%d", k, len(msg)); err != nil {
			return err
		}
		if err := cmd('2', "RCPT TO:<%s@%s>", to, t.Spec.Domain); err != nil {
			return err
		}
		if err := cmd('3', "DATA"); err != nil {
			return err
		}
		_ = nc.SetWriteDeadline(time.Now().Add(t.Timeout))
		dw := &dotWriter{w: w, start: true}
		dw.Write(msg)
		w.WriteString(".\r\n")
		if err := w.Flush(); err != nil {
			return err
		}
		if err := reply('2'); err != nil {
			return fmt.Errorf("after DATA: %w", err)
		}
		tl.sessions.Add(0)
		tl.messages.Add(1)
		tl.bytes.Add(int64(len(msg)))
		t.Progress.add(int64(len(msg)))
		tl.mu.Lock()
		tl.lat = append(tl.lat, time.Since(t0))
		tl.mu.Unlock()
	}
	return cmd('2', "QUIT")
}

// dotWriter stuffs a leading '.' on every line (RFC 5321 section 4.5.2).
type dotWriter struct {
	w     *bufio.Writer
	start bool
}

func (d *dotWriter) Write(p []byte) (int, error) {
	for _, c := range p {
		if d.start && c == '.' {
			d.w.WriteByte('.')
		}
		d.w.WriteByte(c)
		d.start = c == '\n'
	}
	return len(p), nil
}
