package ldap

import (
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/pop3svc/pop3svc/cmd/pop3d/pop3dtest"
)

// TestE2EDirectory logs in over POP3 against the built pop3d with
// auth.method = "directory" and the test slapd: a good password, a wrong
// one, an unknown user, and a directory that is down ([SYS/TEMP], never
// [AUTH]).
func TestE2EDirectory(t *testing.T) {
	needSlapd(t)
	ldapTable := func(url string) string {
		return fmt.Sprintf(`method = "directory"
fail_delay = "5ms"
penalty = "1ms"
penalty_max = "5ms"
[ldap]
url = %q
search_base = %q
search_filter = "(&(objectClass=inetOrgPerson)(mail=%%s))"
timeout = "2s"
pool_size = 2`, url, suffix)
	}
	setup := [][]string{{"add", "example.com"}, {"add", "alice@example.com"}, {"add", "nobody@example.com"}}
	s := pop3dtest.Start(t, pop3dtest.Config{Auth: ldapTable(slapdURL), Setup: setup})
	userPass := func(addr, user, pw string) string {
		p := pop3dtest.Dial(t, addr, "")
		defer p.Cmd("QUIT")
		if r := p.Cmd("USER " + user); !strings.HasPrefix(r, "+OK") {
			t.Fatalf("USER = %q", r)
		}
		return p.Cmd("PASS " + pw)
	}
	for _, c := range []struct{ user, pw, want string }{
		{"alice@example.com", "alice-pw", "+OK"},
		{"alice@example.com", "wrong", "-ERR [AUTH]"},
		{"nobody@example.com", "x", "-ERR [AUTH]"},
		{"bob@example.com", "bob-pw", "-ERR [AUTH]"}, // in the directory, but no mailbox here
	} {
		if r := userPass(s.POP3, c.user, c.pw); !strings.HasPrefix(r, c.want) {
			t.Errorf("USER %s / PASS %q = %q, want %s", c.user, c.pw, r, c.want)
		}
	}
	// APOP and CRAM-MD5 need the password file: not offered.
	p := pop3dtest.Dial(t, s.POP3, "")
	p.Cmd("CAPA")
	for l := p.Line(); l != "."; l = p.Line() {
		if strings.HasPrefix(l, "SASL") && strings.Contains(l, "CRAM-MD5") || strings.Contains(l, "NTLM") {
			t.Errorf("CAPA offers %q with the directory method", l)
		}
	}

	down := pop3dtest.Start(t, pop3dtest.Config{Auth: ldapTable("ldap://" + unusedAddr(t)), Setup: setup})
	if r := userPass(down.POP3, "alice@example.com", "alice-pw"); !strings.HasPrefix(r, "-ERR [SYS/TEMP]") {
		t.Errorf("directory down: %q, want -ERR [SYS/TEMP]", r)
	}
}

// unusedAddr is a loopback address nobody listens on: a port the kernel
// chose, released again (a directory that is down).
func unusedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
