package console

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

// auditLines are the audit lines of the log, as key → value maps.
func auditLines(log string) []map[string]string {
	var out []map[string]string
	for _, l := range strings.Split(log, "\n") {
		if !strings.Contains(l, "msg=audit") {
			continue
		}
		m := map[string]string{}
		for _, f := range regexp.MustCompile(`(\w+)=("(?:[^"\\]|\\.)*"|\S*)`).FindAllStringSubmatch(l, -1) {
			m[f[1]] = strings.Trim(f[2], `"`)
		}
		out = append(out, m)
	}
	return out
}

// TestConsoleAuditLines: every change made in the console writes one
// audit line with who (the proxy's X-Remote-User), from (the client's
// address), what, and the old and new values; never a password.
func TestConsoleAuditLines(t *testing.T) {
	e := newConsoleEnv(t, "")
	if err := e.st.CreateDomain(context.Background(), "example.com"); err != nil {
		t.Fatal(err)
	}
	post := func(path string, kv ...string) {
		t.Helper()
		form := url.Values{"csrf": {e.c.token}}
		for i := 0; i+1 < len(kv); i += 2 {
			form.Add(kv[i], kv[i+1])
		}
		code, body := e.postRaw(path, form, map[string]string{"Origin": "http://example.com", "Sec-Fetch-Site": "same-origin", "X-Remote-User": "carol"})
		if code != http.StatusOK {
			t.Fatalf("POST %s %v: %d\n%s", path, kv, code, excerpt(body))
		}
	}
	const secret = "Audit-Secret-PW1"
	post("/console/domains/example.com", "action", "add", "mailbox", "alice", "password", secret)
	post("/console/domains/example.com", "action", "quota", "mailbox", "alice", "quota", "20MB")
	post("/console/domains/example.com", "action", "password", "mailbox", "alice", "password", secret+"2")
	post("/console/domains/example.com", "action", "lock", "mailbox", "alice")
	post("/console/settings", "key", "pop3.socketmax", "value", "500")
	post("/console/domains", "action", "add", "domain", "example.net")

	want := []map[string]string{
		{"action": "add", "object": "alice@example.com", "old": "-", "new": "mailbox"},
		{"action": "quota", "object": "alice@example.com", "old": "none", "new": "20MB"},
		{"action": "password", "object": "alice@example.com", "old": "(hidden)", "new": "(hidden)"},
		{"action": "lock", "object": "alice@example.com", "old": "unlocked", "new": "locked"},
		{"action": "set", "object": "pop3.socketmax", "old": "10000", "new": "500"},
		{"action": "add", "object": "example.net", "old": "-", "new": "domain"},
	}
	got := auditLines(e.logs.String())
	if len(got) != len(want) {
		t.Fatalf("%d audit lines, want %d:\n%s", len(got), len(want), e.logs.String())
	}
	for i, w := range want {
		g := got[i]
		if g["via"] != "console" || g["who"] != "carol" || !strings.Contains(g["from"], ":") {
			t.Errorf("audit line %d: via %q who %q from %q", i, g["via"], g["who"], g["from"])
		}
		for k, v := range w {
			if g[k] != v {
				t.Errorf("audit line %d: %s = %q, want %q (%v)", i, k, g[k], v, g)
			}
		}
	}
	if strings.Contains(e.logs.String(), secret) {
		t.Fatal("a password is in the log")
	}
}
