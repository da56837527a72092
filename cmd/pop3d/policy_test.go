package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/pop3svc/pop3svc/cmd/pop3d/pop3dtest"
)

// twoServers starts two pop3d processes (nodes 1 and 2) on one mail root
// with the [pop3] lines given; the first makes alice@example.org (three
// messages) and bob@other.test.
func twoServers(t *testing.T, pop3 string) (a, b *pop3dtest.Server) {
	t.Helper()
	root := filepath.Join(t.TempDir(), "mailroot")
	setup := append(mailboxSetup(3), []string{"add", "other.test"}, []string{"add", "bob@other.test", "-password", "bobpass"})
	a = pop3dtest.Start(t, pop3dtest.Config{Top: "node = 1", POP3: pop3, MailRoot: root, Setup: setup,
		Auth: "fail_delay = \"20ms\"\npenalty = \"0s\"\npenalty_max = \"0s\""})
	b = pop3dtest.Start(t, pop3dtest.Config{Top: "node = 2", POP3: pop3, MailRoot: root,
		Auth: "fail_delay = \"20ms\"\npenalty = \"0s\"\npenalty_max = \"0s\""})
	return a, b
}

func popLogin(t *testing.T, addr, user, pass string) (*pop3dtest.Conn, string) {
	t.Helper()
	c := pop3dtest.Dial(t, addr, "")
	if r := c.Cmd("USER " + user); !strings.HasPrefix(r, "+OK") {
		t.Fatalf("USER %s: %q", user, r)
	}
	return c, c.Cmd("PASS " + pass)
}

func capaHasLine(t *testing.T, c *pop3dtest.Conn, want string) bool {
	t.Helper()
	if r := c.Cmd("CAPA"); !strings.HasPrefix(r, "+OK") {
		t.Fatalf("CAPA: %q", r)
	}
	found := false
	for _, l := range c.Multi() {
		found = found || l == want
	}
	return found
}

// A login sooner than LOGIN-DELAY after the last one is refused on every
// server that shares the store: the last login is kept in the store.
func TestLoginDelayAcrossServers(t *testing.T) {
	a, b := twoServers(t, "login_delay = 3600\nlogin_delay_domains = [\"other.test=0\"]")

	c := pop3dtest.Dial(t, b.POP3, "")
	if !capaHasLine(t, c, "LOGIN-DELAY 0 USER") {
		t.Fatal("CAPA before login lacks LOGIN-DELAY 0 USER")
	}
	c.Close()

	c, r := popLogin(t, a.POP3, "alice@example.org", "secret")
	if !strings.HasPrefix(r, "+OK") {
		t.Fatalf("first login on server 1: %q", r)
	}
	if !capaHasLine(t, c, "LOGIN-DELAY 3600") {
		t.Fatal("CAPA after login lacks alice's LOGIN-DELAY 3600")
	}
	if r := c.Cmd("QUIT"); !strings.HasPrefix(r, "+OK") {
		t.Fatalf("QUIT: %q", r)
	}
	c.Close()

	for name, srv := range map[string]*pop3dtest.Server{"server 2": b, "server 1": a} {
		c, r = popLogin(t, srv.POP3, "alice@example.org", "secret")
		if !strings.HasPrefix(r, "-ERR [LOGIN-DELAY] ") {
			t.Fatalf("second login on %s: %q, want -ERR [LOGIN-DELAY]", name, r)
		}
		// The session stays in AUTHORIZATION.
		if r := c.Cmd("STAT"); r != "-ERR command not valid in this state" {
			t.Fatalf("STAT after the refusal on %s: %q", name, r)
		}
		c.Close()
	}
	// A wrong password during the delay gets [AUTH], as always: the delay is
	// judged only once the credentials are good.
	c, r = popLogin(t, b.POP3, "alice@example.org", "wrong")
	if !strings.HasPrefix(r, "-ERR [AUTH] ") {
		t.Fatalf("wrong password during the delay: %q", r)
	}
	c.Close()

	// other.test has no delay: bob logs in on both, one after the other.
	for _, srv := range []*pop3dtest.Server{a, b, a} {
		c, r = popLogin(t, srv.POP3, "bob@other.test", "bobpass")
		if !strings.HasPrefix(r, "+OK") {
			t.Fatalf("bob: %q", r)
		}
		if !capaHasLine(t, c, "LOGIN-DELAY 0") {
			t.Fatal("bob's CAPA lacks LOGIN-DELAY 0")
		}
		c.Cmd("QUIT")
		c.Close()
	}
}

// EXPIRE 0 through pop3d and curl: a message curl retrieved is gone after
// its session; one it only listed stays.
func TestExpireZeroWithCurl(t *testing.T) {
	in := startPop3d(t, "", "expire = \"0\"", mailbox(3, 200))
	user := testAddr.String() + ":" + testPassword
	url := "pop3://" + in.POP3
	c := pop3dtest.Dial(t, in.POP3, "")
	if !capaHasLine(t, c, "EXPIRE 0") {
		t.Fatal("CAPA lacks EXPIRE 0")
	}
	c.Close()
	if out, err := runCurl(t, "--user", user, url+"/2"); err != nil || !strings.Contains(out, "Subject: message 2") {
		t.Fatalf("curl RETR 2: %v\n%.300s", err, out)
	}
	out, err := runCurl(t, "--user", user, url+"/")
	if err != nil {
		t.Fatalf("curl LIST: %v", err)
	}
	if n := len(strings.Split(strings.TrimSpace(out), "\n")); n != 2 {
		t.Fatalf("after curl retrieved message 2, LIST shows %d messages:\n%s", n, out)
	}
	out, err = runCurl(t, "--user", user, url+"/2")
	if err != nil || !strings.Contains(out, "Subject: message 3") {
		t.Fatalf("message 2 is now the third: %v\n%.300s", err, out)
	}
}
