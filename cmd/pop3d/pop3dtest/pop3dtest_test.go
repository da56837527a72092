package pop3dtest

import (
	"net"
	"strings"
	"testing"
)

func TestMain(m *testing.M) { Main(m) }

// TestListenersDistinct runs several servers at once, each with every
// listener on port 0 (POP3, implicit-TLS POP3, SMTP, admin), and checks
// that all bound addresses differ and answer.
func TestListenersDistinct(t *testing.T) {
	const servers = 3
	var all []*Server
	for range servers {
		all = append(all, Start(t, Config{Top: "logging = 4", SMTP: true, TLS: true}))
	}
	seen := map[string]bool{}
	for _, s := range all {
		addrs := append([]string{s.POP3, s.POP3S, s.Admin}, s.SMTP...)
		if len(addrs) != 4 {
			t.Fatalf("addresses %v, want POP3, POP3S, admin and one SMTP", addrs)
		}
		for _, a := range addrs {
			if seen[a] {
				t.Fatalf("address %s bound twice", a)
			}
			seen[a] = true
			c, err := net.DialTimeout("tcp", a, DialTimeout)
			if err != nil {
				t.Fatalf("dial %s: %v", a, err)
			}
			c.Close()
		}
		p := Dial(t, s.POP3, "127.0.0.1")
		if r := p.Cmd("CAPA"); !strings.HasPrefix(r, "+OK") {
			t.Fatalf("CAPA = %q", r)
		}
		if caps := p.Multi(); len(caps) == 0 {
			t.Fatal("empty CAPA listing")
		}
		if r := p.Cmd("QUIT"); !strings.HasPrefix(r, "+OK") {
			t.Fatalf("QUIT = %q", r)
		}
	}
}

// TestCtlAndStop runs pop3ctl against a server's configuration, then
// stops the server, which exits cleanly after SIGTERM.
func TestCtlAndStop(t *testing.T) {
	s := Start(t, Config{Setup: [][]string{{"add", "example.com"}, {"add", "bob@example.com", "-password", "Pw-12345"}}})
	p := Dial(t, s.POP3, "")
	if r := p.Cmd("USER bob@example.com"); !strings.HasPrefix(r, "+OK") {
		t.Fatalf("USER = %q", r)
	}
	if r := p.Cmd("PASS Pw-12345"); !strings.HasPrefix(r, "+OK") {
		t.Fatalf("PASS = %q", r)
	}
	p.Cmd("QUIT")
	if _, err := s.TryCtl("", "no-such-command"); err == nil {
		t.Error("pop3ctl accepted an unknown command")
	}
	if err := s.Stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if err, ok := s.Wait(0); !ok || err != nil {
		t.Fatalf("after Stop: exited %v, status %v", ok, err)
	}
}
