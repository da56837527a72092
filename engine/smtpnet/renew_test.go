package smtpnet

import (
	"strconv"
	"strings"
	"testing"

	smtpsvc "github.com/pop3svc/pop3svc/session/smtp"
)

// TestRenewReachesNewConnections: after the protocol's options changed
// (on reload), Renew makes connections accepted afterwards see them, the
// protocol's own settings included (the SIZE and LIMITS it announces, the
// line length it enforces), while a session already open keeps those it
// started with.
func TestRenewReachesNewConnections(t *testing.T) {
	e := newEnv(t, 0, Options{})
	e.svc.SetOptions(smtpsvc.Options{Hostname: "mx.test", MaxMessageSize: 1 << 20, MaxRecipients: 10})
	e.net.Renew()
	old := e.dial(e.smtp)
	if r := old.cmd("EHLO client.test", "250"); !strings.Contains(r, "SIZE 1048576") {
		t.Fatalf("EHLO before the change:\n%s", r)
	}
	for round, o := range []smtpsvc.Options{
		{Hostname: "mx.test", MaxMessageSize: 2 << 20, MaxRecipients: 20, MaxLine: 1000},
		{Hostname: "mx.test", MaxMessageSize: 3 << 20, MaxRecipients: 30, MaxLine: 2000},
	} {
		e.svc.SetOptions(o)
		e.net.Renew()
		c := e.dial(e.smtp)
		r := c.cmd("EHLO client.test", "250")
		for _, want := range []string{"SIZE " + strconv.FormatInt(o.MaxMessageSize, 10), "LIMITS RCPTMAX=" + strconv.Itoa(o.MaxRecipients)} {
			if !strings.Contains(r, want) {
				t.Errorf("round %d: EHLO after Renew lacks %q:\n%s", round, want, r)
			}
		}
		long := "NOOP " + strings.Repeat("x", 1500)
		if o.MaxLine == 1000 {
			c.cmd(long, "500") // too long line, closing connection
		} else {
			c.cmd(long, "250")
			c.cmd("QUIT", "221")
		}
	}
	if r := old.cmd("EHLO client.test", "250"); !strings.Contains(r, "SIZE 1048576") {
		t.Fatalf("EHLO on the session opened before the changes:\n%s", r)
	}
	old.cmd("QUIT", "221")
}
