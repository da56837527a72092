package smtp

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net"
	"net/mail"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	gosmtp "github.com/emersion/go-smtp"

	"github.com/pop3svc/pop3svc/session/delivery"
	"github.com/pop3svc/pop3svc/store/queue"
)

func TestEHLOExtensions(t *testing.T) {
	e := newEnv(t, envOpts{smtp: Options{MaxMessageSize: 1 << 20}})
	c := e.dial(e.smtp)
	r := c.cmd("EHLO client.test", "250")
	for _, ext := range []string{"PIPELINING", "8BITMIME", "ENHANCEDSTATUSCODES", "SIZE 1048576", "SMTPUTF8"} {
		if !strings.Contains(r, "250-"+ext) && !strings.Contains(r, "250 "+ext) {
			t.Errorf("EHLO reply lacks %s:\n%s", ext, r)
		}
	}
	c.cmd("QUIT", "221")
}

func TestThreeRecipientsThreeCopies(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.domain("example.com")
	for _, m := range []string{"a", "b", "c"} {
		e.mailbox(m+"@example.com", 0)
	}
	body := "From: sender@remote.test\r\nTo: a@example.com\r\nSubject: three\r\n\r\nHello\r\nbare LF line\nend\r\n"
	c := e.dial(e.smtp)
	c.cmd("EHLO client.test", "250")
	c.cmd("MAIL FROM:<sender@remote.test>", "250 2.0.0")
	for _, m := range []string{"a", "B", "c"} {
		c.cmd("RCPT TO:<"+m+"@Example.COM>", "250 2.0.0")
	}
	c.cmd("DATA", "354")
	c.data(body)
	c.expect("250 2.0.0 OK: queued as ")
	c.cmd("QUIT", "221")
	e.waitIdle()

	want := strings.ReplaceAll(strings.ReplaceAll(body, "\r\n", "\n"), "\n", "\r\n")
	var first []byte
	for _, m := range []string{"a", "b", "c"} {
		msgs := e.messages(m + "@example.com")
		mustEqual(t, m+" messages", len(msgs), 1)
		if !bytes.HasPrefix(msgs[0], []byte("Return-Path: <sender@remote.test>\r\n")) {
			t.Fatalf("copy for %s: no Return-Path first: %.100q", m, msgs[0])
		}
		rest := msgs[0][bytes.Index(msgs[0], []byte("\r\n"))+2:]
		rest = rest[bytes.Index(rest, []byte("\r\n"))+2:] // marker
		if first == nil {
			first = rest
		} else if !bytes.Equal(first, rest) {
			t.Fatalf("copies differ beyond the added headers:\n%q\n%q", first, rest)
		}
		mustEqual(t, "body", string(stripCopyHeaders(t, msgs[0])), want)
	}
	if !bytes.Contains(first, []byte("by mx.test with ESMTP")) {
		t.Errorf("Received header lacks the host and protocol: %.200q", first)
	}
}

func TestRcptRefusals(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.domain("example.com")
	e.mailbox("a@example.com", 0)
	c := e.dial(e.smtp)
	c.cmd("EHLO client.test", "250")
	c.cmd("MAIL FROM:<x@remote.test>", "250")
	for _, tc := range []struct{ rcpt, want string }{
		{"<nobody@example.com>", "550 5.1.1"},
		{"<a@other.test>", "550 5.7.1"},
		{"<a@[127.0.0.1]>", "550 5.7.1"},
		{"<a.b@example.com>", "550 5.1.1"}, // '.' is not allowed in mailbox names
		{"<a@example..com>", "550 5.7.1"},
		{"<@example.com>", "501"},
		{"<a@>", "501"},
		{"<no-at-sign>", "501"},
		{"a@example.com", "250"}, // missing brackets are tolerated
		{"<a@example.com>", "250"},
	} {
		c.send("RCPT TO:" + tc.rcpt)
		if r := c.reply(); !strings.HasPrefix(r, tc.want) {
			t.Errorf("RCPT TO:%s = %q, want %s", tc.rcpt, r, tc.want)
		}
	}
	c.cmd("MAIL FROM:<bad\x01sender@x.test>", "50")
	c.cmd("RSET", "250")
	c.cmd("QUIT", "221")
}

func TestDomainAddedIsServedAtOnce(t *testing.T) {
	e := newEnv(t, envOpts{})
	c := e.dial(e.smtp)
	c.cmd("EHLO client.test", "250")
	c.cmd("MAIL FROM:<x@remote.test>", "250")
	c.cmd("RCPT TO:<a@new.test>", "550 5.7.1")
	e.domain("new.test")
	e.mailbox("a@new.test", 0)
	c.cmd("RCPT TO:<a@new.test>", "250")
	c.cmd("QUIT", "221")
}

func TestLargeMessageIntact(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.domain("example.com")
	e.mailbox("big@example.com", 0)
	var b bytes.Buffer
	b.WriteString("Subject: big\r\n\r\n")
	for i := 0; b.Len() < 10<<20; i++ {
		fmt.Fprintf(&b, "%08d %s\r\n", i, strings.Repeat(string(rune('a'+i%26)), 90))
		if i%1000 == 0 {
			b.WriteString(".a line starting with a dot\r\n")
		}
	}
	cl, err := gosmtp.Dial(e.smtp)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.SendMail("s@remote.test", []string{"big@example.com"}, bytes.NewReader(b.Bytes())); err != nil {
		t.Fatal(err)
	}
	cl.Quit()
	e.waitIdle()
	msgs := e.messages("big@example.com")
	mustEqual(t, "messages", len(msgs), 1)
	got := stripCopyHeaders(t, msgs[0])
	if sha256.Sum256(got) != sha256.Sum256(b.Bytes()) {
		t.Fatalf("10 MB message changed: got %d octets, sent %d", len(got), b.Len())
	}
}

func TestDotLinesSurvive(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.domain("example.com")
	e.mailbox("dots@example.com", 0)
	body := "Subject: dots\r\n\r\n.\r\n..\r\n...leading\r\n. space\r\nmiddle . dot\r\n.\r\n"
	c := e.dial(e.smtp)
	c.cmd("HELO client.test", "250")
	c.cmd("MAIL FROM:<>", "250")
	c.cmd("RCPT TO:<dots@example.com>", "250")
	c.cmd("DATA", "354")
	c.data(body)
	c.expect("250")
	c.cmd("QUIT", "221")
	e.waitIdle()
	msgs := e.messages("dots@example.com")
	mustEqual(t, "messages", len(msgs), 1)
	mustEqual(t, "body", string(stripCopyHeaders(t, msgs[0])), body)
	if !bytes.HasPrefix(msgs[0], []byte("Return-Path: <>\r\n")) {
		t.Errorf("null sender's Return-Path: %.40q", msgs[0])
	}
}

func TestSizeLimit(t *testing.T) {
	e := newEnv(t, envOpts{smtp: Options{MaxMessageSize: 4096}})
	e.domain("example.com")
	e.mailbox("a@example.com", 0)
	c := e.dial(e.smtp)
	c.cmd("EHLO client.test", "250")
	c.cmd("MAIL FROM:<x@remote.test> SIZE=100000", "552 5.3.4")
	c.cmd("MAIL FROM:<x@remote.test>", "250")
	c.cmd("RCPT TO:<a@example.com>", "250")
	c.cmd("DATA", "354")
	c.data("Subject: big\r\n\r\n" + strings.Repeat("0123456789abcdef0123456789abcdef\r\n", 200))
	c.expect("552 5.3.4")
	// The session goes on.
	c.cmd("MAIL FROM:<x@remote.test>", "250")
	c.cmd("RCPT TO:<a@example.com>", "250")
	c.cmd("DATA", "354")
	c.data("Subject: small\r\n\r\nok\r\n")
	c.expect("250")
	c.cmd("QUIT", "221")
	e.waitIdle()
	mustEqual(t, "messages", len(e.messages("a@example.com")), 1)
}

func TestQuotaSingleRecipientRefusedAtData(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.domain("example.com")
	e.mailbox("small@example.com", 1000)
	c := e.dial(e.smtp)
	c.cmd("EHLO client.test", "250")
	c.cmd("MAIL FROM:<x@remote.test>", "250")
	c.cmd("RCPT TO:<small@example.com>", "250")
	c.cmd("DATA", "354")
	c.data("Subject: q\r\n\r\n" + filler("x", 2000))
	c.expect("552 5.2.2")
	c.cmd("QUIT", "221")
	queued, bad, err := e.q.Depth()
	if err != nil || queued != 0 || bad != 0 {
		t.Fatalf("Stats = %d, %d, %v; want nothing queued", queued, bad, err)
	}
	mustEqual(t, "messages", len(e.messages("small@example.com")), 0)
}

// sendTo sends one message with the raw client and expects 250.
func (e *env) sendTo(from string, rcpts []string, body string) {
	e.t.Helper()
	c := e.dial(e.smtp)
	c.cmd("EHLO client.test", "250")
	c.cmd("MAIL FROM:<"+from+">", "250")
	for _, r := range rcpts {
		c.cmd("RCPT TO:<"+r+">", "250")
	}
	c.cmd("DATA", "354")
	c.data(body)
	c.expect("250")
	c.cmd("QUIT", "221")
}

func TestQuotaNDRToLocalSender(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.domain("example.com")
	e.mailbox("sender@example.com", 0)
	e.mailbox("roomy@example.com", 0)
	e.mailbox("small@example.com", 1000)
	body := "From: sender@example.com\r\nSubject: quota test\r\nMessage-ID: <q1@example.com>\r\n\r\n" + filler("y", 2000)
	e.sendTo("sender@example.com", []string{"roomy@example.com", "small@example.com"}, body)
	e.waitIdle()
	mustEqual(t, "roomy copies", len(e.messages("roomy@example.com")), 1)
	mustEqual(t, "small copies", len(e.messages("small@example.com")), 0)
	ndrs := e.messages("sender@example.com")
	mustEqual(t, "reports", len(ndrs), 1)
	if !bytes.HasPrefix(ndrs[0], []byte("Return-Path: <>\r\n")) {
		t.Errorf("report's Return-Path is not <>: %.40q", ndrs[0])
	}
	checkReport(t, ndrs[0], "small@example.com", "5.2.2", "Subject: quota test")
}

// checkReport parses an RFC 3464 report and checks its parts.
func checkReport(t *testing.T, raw []byte, rcpt, status, origHeader string) {
	t.Helper()
	m, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	mt, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil {
		t.Fatal(err)
	}
	if mt != "multipart/report" || params["report-type"] != "delivery-status" {
		t.Fatalf("Content-Type = %s %v", mt, params)
	}
	mr := multipart.NewReader(m.Body, params["boundary"])
	var types []string
	var dsn, headers string
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(p)
		ct := p.Header.Get("Content-Type")
		ct, _, _ = mime.ParseMediaType(ct)
		types = append(types, ct)
		switch ct {
		case "message/delivery-status":
			dsn = string(b)
		case "text/rfc822-headers":
			headers = string(b)
		}
	}
	mustEqual(t, "parts", strings.Join(types, ","), "text/plain,message/delivery-status,text/rfc822-headers")
	for _, want := range []string{"Reporting-MTA: dns; mx.test", "Final-Recipient: rfc822; " + rcpt, "Action: failed", "Status: " + status} {
		if !strings.Contains(dsn, want+"\r\n") {
			t.Errorf("delivery-status lacks %q:\n%s", want, dsn)
		}
	}
	if !strings.Contains(headers, origHeader+"\r\n") {
		t.Errorf("original headers lack %q:\n%s", origHeader, headers)
	}
	if strings.Contains(strings.TrimSuffix(headers, "\r\n"), "\r\n\r\n") {
		t.Errorf("original headers include the body:\n%s", headers)
	}
}

func TestNullSenderOverQuotaGoesToBadmail(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.domain("example.com")
	e.mailbox("roomy@example.com", 0)
	e.mailbox("small@example.com", 1000)
	body := "Subject: bounce of a bounce\r\n\r\n" + filler("z", 2000)
	e.sendTo("", []string{"roomy@example.com", "small@example.com"}, body)
	e.waitIdle()
	ids, err := e.q.Badmail()
	if err != nil {
		t.Fatal(err)
	}
	mustEqual(t, "Badmail", len(ids), 1)
	reason, err := e.q.BadmailReason(ids[0])
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(reason, "null reverse-path") || !strings.Contains(reason, "small@example.com> failed 5.2.2") {
		t.Errorf("reason file:\n%s", reason)
	}
	eml, err := os.ReadFile(filepath.Join(e.root, queue.BadmailDir, ids[0]+queue.BadSuffix))
	if err != nil || !bytes.Contains(eml, []byte("Subject: bounce of a bounce")) {
		t.Errorf("Badmail message: %v %.100q", err, eml)
	}
	queued, bad, err := e.q.Depth()
	if err != nil || queued != 0 || bad != 1 {
		t.Errorf("Stats = %d, %d, %v; want 0, 1", queued, bad, err)
	}
}

// relay is a test SMTP relay that records what it receives or refuses.
type relay struct {
	addr   string
	refuse bool
	got    chan string
}

type relaySession struct {
	r    *relay
	from string
}

func (s *relaySession) Reset()        {}
func (s *relaySession) Logout() error { return nil }
func (s *relaySession) Mail(from string, _ *gosmtp.MailOptions) error {
	s.from = from
	return nil
}
func (s *relaySession) Rcpt(string, *gosmtp.RcptOptions) error {
	if s.r.refuse {
		return &gosmtp.SMTPError{Code: 550, EnhancedCode: gosmtp.EnhancedCode{5, 1, 1}, Message: "no"}
	}
	return nil
}
func (s *relaySession) Data(r io.Reader) error {
	b, _ := io.ReadAll(r)
	s.r.got <- "<" + s.from + ">\n" + string(b)
	return nil
}

func startRelay(t *testing.T, refuse bool) *relay {
	r := &relay{refuse: refuse, got: make(chan string, 4)}
	srv := gosmtp.NewServer(gosmtp.BackendFunc(func(*gosmtp.Conn) (gosmtp.Session, error) {
		return &relaySession{r: r}, nil
	}))
	srv.Domain = "relay.test"
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r.addr = l.Addr().String()
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return r
}

func TestRemoteSenderNDR(t *testing.T) {
	for _, tc := range []struct {
		name     string
		relay    int // 0 none, 1 accepting, 2 refusing
		badmail  string
		relayGot bool
	}{
		{"relayed", 1, "", true},
		{"no relay", 0, "no relay is configured", false},
		{"relay refuses", 2, "refused by the relay", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var r *relay
			opts := envOpts{}
			if tc.relay > 0 {
				r = startRelay(t, tc.relay == 2)
				opts.delivery.Relay = r.addr
			}
			e := newEnv(t, opts)
			e.domain("example.com")
			e.mailbox("roomy@example.com", 0)
			e.mailbox("small@example.com", 1000)
			body := "Subject: remote\r\n\r\n" + filler("w", 2000)
			e.sendTo("someone@remote.test", []string{"roomy@example.com", "small@example.com"}, body)
			e.waitIdle()
			ids, _ := e.q.Badmail()
			if tc.badmail == "" {
				mustEqual(t, "Badmail", len(ids), 0)
			} else {
				mustEqual(t, "Badmail", len(ids), 1)
				reason, _ := e.q.BadmailReason(ids[0])
				if !strings.Contains(reason, tc.badmail) {
					t.Errorf("reason %q lacks %q", reason, tc.badmail)
				}
			}
			if tc.relayGot {
				select {
				case m := <-r.got:
					from, msg, _ := strings.Cut(m, "\n")
					mustEqual(t, "relay MAIL FROM", from, "<>")
					checkReport(t, []byte(msg), "small@example.com", "5.2.2", "Subject: remote")
				case <-time.After(5 * time.Second):
					t.Fatal("the relay got no report")
				}
			}
		})
	}
}

func TestLMTPPerRecipientReplies(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.domain("example.com")
	e.mailbox("roomy@example.com", 0)
	e.mailbox("small@example.com", 1000)
	c := e.dial(e.lmtp)
	c.cmd("EHLO client.test", "500")
	r := c.cmd("LHLO mta.test", "250")
	if !strings.Contains(r, "PIPELINING") || !strings.Contains(r, "ENHANCEDSTATUSCODES") {
		t.Errorf("LHLO: %s", r)
	}
	c.cmd("MAIL FROM:<x@remote.test>", "250")
	c.cmd("RCPT TO:<roomy@example.com>", "250")
	c.cmd("RCPT TO:<small@example.com>", "250")
	c.cmd("RCPT TO:<nobody@example.com>", "550 5.1.1")
	c.cmd("RCPT TO:<roomy@example.com>", "250") // a duplicate gets its own reply
	c.cmd("DATA", "354")
	c.data("Subject: lmtp\r\n\r\n" + filler("v", 2000))
	got := []string{c.reply(), c.reply(), c.reply()}
	want := []string{"250 2.0.0 <roomy@example.com> OK: queued as ", "552 5.2.2 <small@example.com> Mailbox full", "250 2.0.0 <roomy@example.com> OK: queued as "}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("reply %d = %q, want %q", i, got[i], want[i])
		}
	}
	c.cmd("QUIT", "221")
	e.waitIdle()
	mustEqual(t, "roomy copies", len(e.messages("roomy@example.com")), 1)
	mustEqual(t, "small copies", len(e.messages("small@example.com")), 0)
	ids, _ := e.q.Badmail()
	mustEqual(t, "Badmail", len(ids), 0) // LMTP refusals are the client's to report
}

func TestBadInput(t *testing.T) {
	e := newEnv(t, envOpts{smtp: Options{MaxRecipients: 100}})
	e.domain("example.com")
	e.mailbox("a@example.com", 0)

	t.Run("long line", func(t *testing.T) {
		c := e.dial(e.smtp)
		go func() { // the server may close before it has read it all
			c.w.WriteString("EHLO " + strings.Repeat("x", 1<<20) + "\r\n")
			c.w.Flush()
		}()
		c.expect("500")
		c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.r.ReadLine(); err == nil {
			t.Error("connection still open after a 1 MB line")
		}
	})
	t.Run("long line in data", func(t *testing.T) {
		c := e.dial(e.smtp)
		c.cmd("EHLO client.test", "250")
		c.cmd("MAIL FROM:<x@remote.test>", "250")
		c.cmd("RCPT TO:<a@example.com>", "250")
		c.cmd("DATA", "354")
		go func() {
			c.w.WriteString("Subject: x\r\n\r\n" + strings.Repeat("y", 1<<20) + "\r\n.\r\n")
			c.w.Flush()
		}()
		c.expect("5")
	})
	t.Run("cut off data", func(t *testing.T) {
		c := e.dial(e.smtp)
		c.cmd("EHLO client.test", "250")
		c.cmd("MAIL FROM:<x@remote.test>", "250")
		c.cmd("RCPT TO:<a@example.com>", "250")
		c.cmd("DATA", "354")
		c.send("Subject: cut\r\n\r\npartial")
		c.conn.Close()
	})
	t.Run("1000 recipients", func(t *testing.T) {
		c := e.dial(e.smtp)
		c.cmd("EHLO client.test", "250")
		c.cmd("MAIL FROM:<x@remote.test>", "250")
		ok, limited := 0, 0
		// Pipelined (RFC 2920): all RCPTs, then all replies.
		var b strings.Builder
		for i := 0; i < 1000; i++ {
			b.WriteString("RCPT TO:<a@example.com>\r\n")
		}
		c.w.WriteString(b.String())
		c.w.Flush()
		for i := 0; i < 1000; i++ {
			r := c.reply()
			switch {
			case strings.HasPrefix(r, "250"):
				ok++
			case strings.HasPrefix(r, "452 4.5.3"):
				limited++
			default:
				t.Fatalf("RCPT %d: %q", i, r)
			}
		}
		mustEqual(t, "accepted", ok, 100)
		mustEqual(t, "limited", limited, 900)
		c.cmd("DATA", "354")
		c.data("Subject: many\r\n\r\nx\r\n")
		c.expect("250")
		c.cmd("QUIT", "221")
	})
	t.Run("NUL bytes", func(t *testing.T) {
		c := e.dial(e.smtp)
		c.cmd("EHLO client\x00test", "250")
		c.cmd("MAIL FROM:<x\x00@remote.test>", "501")
		c.cmd("MAIL FROM:<x@remote.test>", "250")
		c.cmd("RCPT TO:<a\x00@example.com>", "5")
		c.cmd("RCPT TO:<a@example.com>", "250")
		c.cmd("DATA", "354")
		c.data("Subject: nul\r\n\r\nnul \x00 inside\r\n")
		c.expect("250")
		c.cmd("\x00\x00\x00", "5")
		c.cmd("QUIT", "221")
	})
	t.Run("garbage commands", func(t *testing.T) {
		c := e.dial(e.smtp)
		c.cmd("MAIL FROM:<x@remote.test>", "502")
		c.cmd("DATA", "502")
		c.cmd("EHLO client.test", "250")
		c.cmd("RCPT TO:<a@example.com>", "502")
		c.cmd("MAIL FROM:x", "501")
		c.cmd("MAIL FROM:<>", "250")
		c.cmd("DATA", "502")
		c.cmd("FOO bar", "50")
		c.cmd("QUIT", "221")
	})
	// The server keeps serving.
	e.sendTo("x@remote.test", []string{"a@example.com"}, "Subject: after\r\n\r\nstill here\r\n")
	e.waitIdle()
	msgs := e.messages("a@example.com")
	mustEqual(t, "messages", len(msgs), 3) // many, nul, after; nothing from the cut-off DATA
	for _, m := range msgs {
		if bytes.Contains(m, []byte("Subject: cut")) {
			t.Error("the cut-off message was delivered")
		}
	}
	// The delivery service's workers deliver in parallel: find the
	// message by its subject, not by its place.
	nul := slices.IndexFunc(msgs, func(m []byte) bool { return bytes.Contains(m, []byte("Subject: nul\r\n")) })
	if nul < 0 || !bytes.Contains(msgs[nul], []byte("nul \x00 inside")) {
		t.Errorf("NUL message missing or changed: %q", msgs)
	}
}

var _ = delivery.MarkerHeader

// filler returns about n octets of body in 70-octet lines.
func filler(ch string, n int) string {
	var b strings.Builder
	for b.Len() < n {
		b.WriteString(strings.Repeat(ch, 70) + "\r\n")
	}
	return b.String()
}
