package main

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/smtp"
	"net/textproto"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pop3svc/pop3svc/cmd/pop3d/pop3dtest"
)

// The submission tests run pop3d with its submission listeners: alice
// and bob of example.org send with SMTP AUTH; the copies are read back
// by POP3.

const (
	alicePass = "alice-Passw0rd"
	bobPass   = "bob-Passw0rd"
)

func submissionSetup() [][]string {
	return [][]string{
		{"add", "example.org"},
		{"add", "alice@example.org", "-password", alicePass},
		{"add", "bob@example.org", "-password", bobPass},
		{"add", "rate@example.org", "-password", alicePass},
	}
}

// fastHash keeps the tests' password hashes cheap (bcrypt at its lowest
// cost): every pop3ctl add and every login pays one.
const fastHash = `hash = "bcrypt"
bcrypt_cost = 4
`

func startSubmission(t *testing.T, auth, sub, smtpTable string) *pop3dtest.Server {
	t.Helper()
	return pop3dtest.Start(t, pop3dtest.Config{
		Top: "logging = 4",
		Auth: fastHash + `fail_delay = "20ms"
penalty = "0s"
penalty_max = "0s"
` + auth,
		SMTP:            true,
		SMTPTable:       smtpTable,
		Submission:      true,
		SubmissionTable: sub,
		Setup:           submissionSetup(),
	})
}

// popMessages logs in as addr and returns every message of the mailbox,
// waiting (with a deadline) until there are want of them.
func popMessages(t testing.TB, in *pop3dtest.Server, addr, pass string, want int) []string {
	t.Helper()
	var out []string
	n := 0
	if !pop3dtest.Eventually(30*time.Second, func() bool {
		p := pop3dtest.DialRaw(t, in.POP3, "")
		p.Expect("+OK")
		p.Send("USER " + addr + "\r\n")
		p.Expect("+OK")
		p.Send("PASS " + pass + "\r\n")
		p.Expect("+OK")
		p.Send("STAT\r\n")
		var size int
		fmt.Sscanf(p.Expect("+OK"), "+OK %d %d", &n, &size)
		if n >= want {
			for i := 1; i <= n; i++ {
				p.Send(fmt.Sprintf("RETR %d\r\n", i))
				p.Expect("+OK")
				out = append(out, strings.Join(p.Multi(), "\r\n"))
			}
		}
		p.Send("QUIT\r\n")
		p.Expect("+OK")
		p.Close()
		return n >= want
	}) {
		t.Fatalf("%s has %d messages after 30s, want %d", addr, n, want)
	}
	return out
}

func swaks(t testing.TB, args ...string) string {
	t.Helper()
	pop3dtest.NeedTool(t, "swaks")
	out, err := exec.Command("swaks", append(args, "--timeout", "20")...).CombinedOutput()
	if err != nil && strings.Contains(string(out), "Net::SSLeay") {
		pop3dtest.Unavailable(t, "swaks cannot do TLS: "+strings.TrimSpace(string(out)), "libnet-ssleay-perl libio-socket-ssl-perl")
	}
	if err != nil {
		t.Fatalf("swaks %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// TestSubmissionSwaks sends with swaks over STARTTLS with AUTH PLAIN,
// LOGIN and CRAM-MD5, and over implicit TLS with AUTH PLAIN; bob reads the
// four messages by POP3, each with the trace and headers submission adds.
func TestSubmissionSwaks(t *testing.T) {
	t.Parallel()
	in := startSubmission(t, "", "", "")
	host, port, _ := net.SplitHostPort(in.Submission)
	thost, tport, _ := net.SplitHostPort(in.SubmissionTLS)
	for _, mech := range []string{"PLAIN", "LOGIN", "CRAM-MD5"} {
		out := swaks(t, "--server", host, "--port", port, "--tls",
			"--auth", mech, "--auth-user", "alice@example.org", "--auth-password", alicePass,
			"--from", "alice@example.org", "--to", "bob@example.org",
			"--header", "Subject: sent with "+mech, "--body", "body of "+mech+"\n")
		if !strings.Contains(out, "TLS started") || !strings.Contains(out, "235 2.0.0") || !strings.Contains(out, "250 2.0.0 OK: queued as") {
			t.Fatalf("swaks %s over STARTTLS did not start TLS, authenticate and queue:\n%s", mech, out)
		}
	}
	out := swaks(t, "--server", thost, "--port", tport, "--tlsc",
		"--auth", "PLAIN", "--auth-user", "alice@example.org", "--auth-password", alicePass,
		"--from", "alice@example.org", "--to", "bob@example.org",
		"--header", "Subject: sent over implicit TLS", "--body", "body over implicit TLS\n")
	if !strings.Contains(out, "235 2.0.0") || !strings.Contains(out, "250 2.0.0 OK: queued as") {
		t.Fatalf("swaks over implicit TLS did not authenticate and queue:\n%s", out)
	}
	msgs := popMessages(t, in, "bob@example.org", bobPass, 4)
	if len(msgs) != 4 {
		t.Fatalf("bob has %d messages, want 4", len(msgs))
	}
	// The delivery service's workers run side by side: the mailbox's
	// order need not be the order of sending.
	for i, want := range []string{"body of PLAIN", "body of LOGIN", "body of CRAM-MD5", "body over implicit TLS"} {
		m := withText(msgs, want)
		if m == "" {
			t.Errorf("no message has %q:\n%q", want, msgs)
			continue
		}
		if !strings.Contains(m, "with ESMTPSA") {
			t.Errorf("message %d: Received does not say ESMTPSA (RFC 3848):\n%s", i+1, m)
		}
		for _, h := range []string{"\r\nMessage-Id: ", "\r\nDate: "} {
			if !strings.Contains(strings.ToLower(m), strings.ToLower(h)) {
				t.Errorf("message %d has no %s header:\n%s", i+1, strings.TrimSpace(h), m)
			}
		}
	}
}

// TestSubmissionSmtplib authenticates with Python's smtplib over STARTTLS,
// once with AUTH PLAIN and once with AUTH LOGIN.
func TestSubmissionSmtplib(t *testing.T) {
	t.Parallel()
	in := startSubmission(t, "", "", "")
	host, port, _ := net.SplitHostPort(in.Submission)
	script := `
import smtplib, ssl, sys
host, port, mech, user, pw = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
s = smtplib.SMTP(host, port, timeout=20)
s.ehlo()
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
s.starttls(context=ctx)
s.ehlo()
s.user, s.password = user, pw
obj = {"PLAIN": s.auth_plain, "LOGIN": s.auth_login}[mech]
code, resp = s.auth(mech, obj)
print("auth", code)
msg = "From: %s\r\nTo: bob@example.org\r\nSubject: smtplib %s\r\n\r\nsent by smtplib with %s\r\n" % (user, mech, mech)
s.sendmail(user, ["bob@example.org"], msg)
print("sent")
s.quit()
`
	for _, mech := range []string{"PLAIN", "LOGIN"} {
		out := runPy(t, script, host, port, mech, "alice@example.org", alicePass)
		if !strings.Contains(out, "auth 235") || !strings.Contains(out, "sent") {
			t.Fatalf("smtplib %s: %s", mech, out)
		}
	}
	msgs := popMessages(t, in, "bob@example.org", bobPass, 2)
	for _, want := range []string{"sent by smtplib with PLAIN", "sent by smtplib with LOGIN"} {
		if withText(msgs, want) == "" {
			t.Errorf("no message has %q:\n%q", want, msgs)
		}
	}
}

// withText returns the first of msgs that contains s, "" when none does.
func withText(msgs []string, s string) string {
	for _, m := range msgs {
		if strings.Contains(m, s) {
			return m
		}
	}
	return ""
}

// code returns the SMTP reply code of a net/smtp error, 0 for none.
func code(err error) int {
	var te *textproto.Error
	if errors.As(err, &te) {
		return te.Code
	}
	return 0
}

func smtpClient(t testing.TB, addr string) *smtp.Client {
	t.Helper()
	c, err := smtp.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Hello("client.test"); err != nil {
		t.Fatal(err)
	}
	return c
}

func startTLS(t testing.TB, c *smtp.Client) {
	t.Helper()
	if err := c.StartTLS(&tls.Config{InsecureSkipVerify: true, ServerName: "localhost"}); err != nil { //nolint:gosec // the test server's self-signed pair
		t.Fatal(err)
	}
}

// plainAuth is AUTH PLAIN without net/smtp's refusal of links without TLS,
// so that the server's own refusal can be tested.
type plainAuth struct{ user, pass string }

func (a plainAuth) Start(*smtp.ServerInfo) (string, []byte, error) {
	return "PLAIN", []byte("\x00" + a.user + "\x00" + a.pass), nil
}
func (a plainAuth) Next(_ []byte, more bool) ([]byte, error) {
	if more {
		return nil, errors.New("unexpected challenge")
	}
	return nil, nil
}

// send runs one transaction; the error is the first refusal.
func send(c *smtp.Client, from string, to []string, msg string) error {
	if err := c.Mail(from); err != nil {
		return err
	}
	for _, r := range to {
		if err := c.Rcpt(r); err != nil {
			return err
		}
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write([]byte(msg)); err != nil {
		return err
	}
	return w.Close()
}

// raw sends one command line as is and returns the reply.
func raw(t testing.TB, c *smtp.Client, line string) (int, string) {
	t.Helper()
	id, err := c.Text.Cmd("%s", line)
	if err != nil {
		t.Fatal(err)
	}
	c.Text.StartResponse(id)
	defer c.Text.EndResponse(id)
	code, msg, _ := c.Text.ReadResponse(0)
	return code, msg
}

// TestSubmissionPolicy checks who may send what: AUTH before MAIL, no
// plaintext AUTH without TLS, own address and aliases only (MAIL FROM and
// From:), the per-user limits, header injection through envelope
// addresses, the size limit, and relaying on the SMTP port.
func TestSubmissionPolicy(t *testing.T) {
	t.Parallel()
	in := startSubmission(t, "", `aliases = ["alice@example.org=sales@example.org"]
max_recipients = 3
max_messages_per_hour = 2`, `max_message_size = "100KB"`)

	t.Run("no plaintext AUTH without TLS", func(t *testing.T) {
		c := smtpClient(t, in.Submission)
		ok, mechs := c.Extension("AUTH")
		if !ok || strings.Contains(mechs, "PLAIN") || strings.Contains(mechs, "LOGIN") || !strings.Contains(mechs, "CRAM-MD5") {
			t.Errorf("EHLO without TLS offers AUTH %q (ok=%v), want CRAM-MD5 only", mechs, ok)
		}
		if err := c.Auth(plainAuth{"alice@example.org", alicePass}); code(err) != 538 {
			t.Errorf("AUTH PLAIN without TLS: %v, want 538", err)
		}
		c = smtpClient(t, in.Submission) // net/smtp quits after a refused AUTH
		startTLS(t, c)
		if ok, mechs := c.Extension("AUTH"); !ok || !strings.Contains(mechs, "PLAIN") || !strings.Contains(mechs, "LOGIN") {
			t.Errorf("EHLO after STARTTLS offers AUTH %q, want PLAIN and LOGIN", mechs)
		}
	})
	t.Run("MAIL before AUTH", func(t *testing.T) {
		c := smtpClient(t, in.Submission)
		startTLS(t, c)
		if err := c.Mail("alice@example.org"); code(err) != 530 {
			t.Errorf("MAIL without AUTH: %v, want 530", err)
		}
	})
	t.Run("wrong password", func(t *testing.T) {
		c := smtpClient(t, in.Submission)
		startTLS(t, c)
		if err := c.Auth(plainAuth{"alice@example.org", "wrong"}); code(err) != 535 {
			t.Errorf("AUTH with a wrong password: %v, want 535", err)
		}
	})

	authed := func(t *testing.T, user string) *smtp.Client {
		c := smtpClient(t, in.Submission)
		startTLS(t, c)
		if err := c.Auth(plainAuth{user, alicePass}); err != nil {
			t.Fatalf("AUTH as %s: %v", user, err)
		}
		return c
	}
	msg := func(from string) string {
		return "From: " + from + "\r\nTo: bob@example.org\r\nSubject: policy\r\n\r\nbody\r\n"
	}

	t.Run("someone else's address", func(t *testing.T) {
		c := authed(t, "alice@example.org")
		if err := c.Mail("bob@example.org"); code(err) != 553 {
			t.Errorf("MAIL FROM bob as alice: %v, want 553", err)
		}
		if err := c.Reset(); err != nil {
			t.Fatal(err)
		}
		if err := send(c, "alice@example.org", []string{"bob@example.org"}, msg("Bob <bob@example.org>")); code(err) != 553 {
			t.Errorf("From: bob as alice: %v, want 553", err)
		}
	})
	t.Run("alias", func(t *testing.T) {
		c := authed(t, "alice@example.org")
		if err := send(c, "sales@example.org", []string{"bob@example.org"}, msg("Sales <sales@EXAMPLE.org>")); err != nil {
			t.Errorf("sending as the alias sales@example.org: %v", err)
		}
	})
	t.Run("recipients per message", func(t *testing.T) {
		c := authed(t, "alice@example.org")
		if err := c.Mail("alice@example.org"); err != nil {
			t.Fatal(err)
		}
		for i := range 3 {
			if err := c.Rcpt("bob@example.org"); err != nil {
				t.Fatalf("RCPT %d: %v", i+1, err)
			}
		}
		if err := c.Rcpt("bob@example.org"); code(err) != 452 {
			t.Errorf("RCPT 4 of at most 3: %v, want 452", err)
		}
	})
	t.Run("messages per hour", func(t *testing.T) {
		c := authed(t, "rate@example.org")
		for i := range 2 {
			if err := send(c, "rate@example.org", []string{"bob@example.org"}, msg("rate@example.org")); err != nil {
				t.Fatalf("message %d of at most 2: %v", i+1, err)
			}
		}
		if err := c.Mail("rate@example.org"); code(err) != 450 {
			t.Errorf("message 3 of at most 2 an hour: %v, want 450", err)
		}
	})
	t.Run("header injection through envelope addresses", func(t *testing.T) {
		c := authed(t, "alice@example.org")
		if code, m := raw(t, c, "MAIL FROM:<alice@example.org>"); code != 250 {
			t.Fatalf("MAIL: %d %s", code, m)
		}
		for _, rc := range []string{
			"RCPT TO:<\"x>\rBcc: victim@remote.test\"@remote.test>",
			"RCPT TO:<\"a,b\"@remote.test>",
			"RCPT TO:<\"a\x00b\"@remote.test>",
		} {
			if code, m := raw(t, c, rc); code/100 != 5 {
				t.Errorf("%q: %d %s, want a refusal", rc, code, m)
			}
		}
		raw(t, c, "RSET")
		if code, m := raw(t, c, "MAIL FROM:<\"alice\rX-Injected: 1\"@example.org>"); code != 553 {
			t.Errorf("MAIL FROM with a CR: %d %s, want 553", code, m)
		}
	})
	t.Run("over the size limit", func(t *testing.T) {
		c := authed(t, "alice@example.org")
		big := msg("alice@example.org") + strings.Repeat(strings.Repeat("x", 98)+"\r\n", 2000)
		if err := send(c, "alice@example.org", []string{"bob@example.org"}, big); code(err) != 552 {
			t.Errorf("a 200 KB message over 100KB: %v, want 552", err)
		}
	})
	t.Run("relay on the SMTP port", func(t *testing.T) {
		c := smtpClient(t, in.SMTP[0])
		if err := c.Mail("someone@remote.test"); err != nil {
			t.Fatal(err)
		}
		if err := c.Rcpt("victim@elsewhere.test"); code(err) != 550 || !strings.Contains(err.Error(), "5.7.1") {
			t.Errorf("relay attempt: %v, want 550 5.7.1", err)
		}
		re := regexp.MustCompile(`msg="relay attempt refused".*remote=127\.0\.0\.1:\d+.*rcpt=victim@elsewhere\.test`)
		if !pop3dtest.Eventually(10*time.Second, func() bool { return re.MatchString(in.Log()) }) {
			t.Fatalf("no log line for the relay attempt with the client's address:\n%s", in.Log())
		}
	})
	// The alias message and the two of rate@ reached bob.
	popMessages(t, in, "bob@example.org", bobPass, 3)
}

// TestSubmissionSharesPOP3Guard fails AUTH on the submission port until
// the guard bans the address, then finds POP3 refusing the right
// password from it: one guard for both protocols.
func TestSubmissionSharesPOP3Guard(t *testing.T) {
	t.Parallel()
	in := startSubmission(t, "ban_after = 2\nban_window = \"10m\"\nban_time = \"10m\"", "", "")
	for i := range 2 {
		c := smtpClient(t, in.Submission)
		startTLS(t, c)
		if err := c.Auth(plainAuth{"alice@example.org", "wrong"}); code(err) != 535 {
			t.Fatalf("failed AUTH %d: %v, want 535", i+1, err)
		}
	}
	c := smtpClient(t, in.Submission)
	startTLS(t, c)
	if err := c.Auth(plainAuth{"alice@example.org", alicePass}); code(err) != 535 {
		t.Errorf("AUTH with the right password from a banned address: %v, want 535", err)
	}
	p := pop3dtest.DialRaw(t, in.POP3, "")
	p.Expect("+OK")
	p.Send("USER alice@example.org\r\n")
	p.Expect("+OK")
	p.Send("PASS " + alicePass + "\r\n")
	if r := p.Line(); !strings.HasPrefix(r, "-ERR") {
		t.Errorf("POP3 login from an address banned by failed SMTP AUTH: %q, want -ERR", r)
	}
}
