package ldap

import (
	"fmt"
	"strings"
	"testing"
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
	s := startServer(t, ldapTable(slapdURL), "", setup...)
	userPass := func(addr, user, pw string) string {
		p := dialPOP3(t, addr, "")
		defer p.cmd("QUIT")
		if r := p.cmd("USER " + user); !strings.HasPrefix(r, "+OK") {
			t.Fatalf("USER = %q", r)
		}
		return p.cmd("PASS " + pw)
	}
	for _, c := range []struct{ user, pw, want string }{
		{"alice@example.com", "alice-pw", "+OK"},
		{"alice@example.com", "wrong", "-ERR [AUTH]"},
		{"nobody@example.com", "x", "-ERR [AUTH]"},
		{"bob@example.com", "bob-pw", "-ERR [AUTH]"}, // in the directory, but no mailbox here
	} {
		if r := userPass(s.pop3, c.user, c.pw); !strings.HasPrefix(r, c.want) {
			t.Errorf("USER %s / PASS %q = %q, want %s", c.user, c.pw, r, c.want)
		}
	}
	// APOP and CRAM-MD5 need the password file: not offered.
	p := dialPOP3(t, s.pop3, "")
	p.cmd("CAPA")
	for l := p.line(); l != "."; l = p.line() {
		if strings.HasPrefix(l, "SASL") && strings.Contains(l, "CRAM-MD5") || strings.Contains(l, "NTLM") {
			t.Errorf("CAPA offers %q with the directory method", l)
		}
	}

	down := startServer(t, ldapTable("ldap://"+freeAddr(t)), "", setup...)
	if r := userPass(down.pop3, "alice@example.com", "alice-pw"); !strings.HasPrefix(r, "-ERR [SYS/TEMP]") {
		t.Errorf("directory down: %q, want -ERR [SYS/TEMP]", r)
	}
}
