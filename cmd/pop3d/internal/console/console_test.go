package console

import (
	"bytes"
	"context"
	"errors"
	"html"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pop3svc/pop3svc/cmd/internal/config"
	"github.com/pop3svc/pop3svc/cmd/pop3d/pop3dtest"
	"github.com/pop3svc/pop3svc/store"
	"github.com/pop3svc/pop3svc/store/filestore"
	"github.com/pop3svc/pop3svc/store/queue"
)

// consoleEnv is a console over a real file store and a real config file.
type consoleEnv struct {
	t       *testing.T
	c       *Console
	h       http.Handler
	st      store.Store
	cfgPath string
	logs    *pop3dtest.LogBuffer
	reloads int
	q       *queue.Queue
	oq      *queue.Queue // the outbound queue

	mu       sync.Mutex
	counters Counters // what Options.Counters returns
}

// setCounters sets the counters the console reads.
func (e *consoleEnv) setCounters(c Counters) {
	e.mu.Lock()
	e.counters = c
	e.mu.Unlock()
}

const consoleTestConfig = `# console test
mailroot = "mailroot"
logging = 3

[admin]
listen = ""
`

func newConsoleEnv(t *testing.T, extra string) *consoleEnv {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "pop3d.toml")
	if err := os.WriteFile(path, []byte(consoleTestConfig+extra), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	st, err := filestore.Open(cfg.MailRoot, filestore.Options{Node: cfg.Node})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	q, err := queue.Open(cfg.MailRoot)
	if err != nil {
		t.Fatal(err)
	}
	oq, err := queue.OpenOutbound(cfg.MailRoot)
	if err != nil {
		t.Fatal(err)
	}
	logs := &pop3dtest.LogBuffer{}
	e := &consoleEnv{t: t, st: st, cfgPath: path, logs: logs, q: q, oq: oq}
	e.c = New(Options{
		ConfigPath: path,
		Store:      st,
		Queue:      q,
		Outbound:   oq,
		Log:        slog.New(slog.NewTextHandler(logs, nil)),
		Started:    time.Now(),
		Counters: func() Counters {
			e.mu.Lock()
			defer e.mu.Unlock()
			return e.counters
		},
		PollInterval: 300 * time.Millisecond,
		Reload: func() ([]string, error) {
			e.reloads++
			ncfg, err := config.Load(path)
			if err != nil {
				return nil, err
			}
			e.c.SetConfig(ncfg)
			return config.RestartChanges(cfg, ncfg), nil
		},
	}, cfg)
	mux := http.NewServeMux()
	mux.Handle("/console/", e.c)
	e.h = mux
	return e
}

func (e *consoleEnv) do(req *http.Request) (int, string) {
	e.t.Helper()
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, req)
	return rec.Code, rec.Body.String()
}

func (e *consoleEnv) get(path string) (int, string) {
	e.t.Helper()
	return e.do(httptest.NewRequest(http.MethodGet, path, nil))
}

// postRaw posts form as is, with the headers given.
func (e *consoleEnv) postRaw(path string, form url.Values, hdr map[string]string) (int, string) {
	e.t.Helper()
	req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	return e.do(req)
}

// post posts form with the token and a same-origin Origin, as a browser
// on the console's page does.
func (e *consoleEnv) post(path string, kv ...string) (int, string) {
	e.t.Helper()
	form := url.Values{"csrf": {e.c.token}}
	for i := 0; i+1 < len(kv); i += 2 {
		form.Add(kv[i], kv[i+1])
	}
	return e.postRaw(path, form, map[string]string{"Origin": "http://example.com", "Sec-Fetch-Site": "same-origin"})
}

func (e *consoleEnv) want(code int, body string, wantCode int, wantIn ...string) {
	e.t.Helper()
	if code != wantCode {
		e.t.Errorf("status %d, want %d; body:\n%s", code, wantCode, excerpt(body))
	}
	for _, w := range wantIn {
		if !strings.Contains(body, w) {
			e.t.Errorf("page lacks %q; body:\n%s", w, excerpt(body))
		}
	}
}

// excerpt is the <main> of a page, for failure messages.
func excerpt(body string) string {
	if i := strings.Index(body, "<main>"); i >= 0 {
		body = body[i:]
	}
	if len(body) > 3000 {
		body = body[:3000]
	}
	return body
}

func TestConsoleDomainFlows(t *testing.T) {
	e := newConsoleEnv(t, "")
	ctx := context.Background()

	code, body := e.post("/console/domains", "action", "add", "domain", "Example.COM")
	e.want(code, body, http.StatusOK, "Added domain example.com.")
	code, body = e.post("/console/domains", "action", "add", "domain", "example.com")
	e.want(code, body, http.StatusConflict, "domain already exists")

	if _, err := e.st.Domain(ctx, "example.com"); err != nil {
		t.Fatalf("domain not created: %v", err)
	}
	code, body = e.get("/console/domains")
	e.want(code, body, http.StatusOK, `href="/console/domains/example.com"`, "unlocked")

	code, body = e.post("/console/domains", "action", "lock", "domain", "example.com")
	e.want(code, body, http.StatusOK, "Locked domain example.com.", `<span class="locked">locked</span>`)
	if d, _ := e.st.Domain(ctx, "example.com"); !d.Locked {
		t.Error("domain not locked in the store")
	}
	code, body = e.post("/console/domains", "action", "unlock", "domain", "example.com")
	e.want(code, body, http.StatusOK, "Unlocked domain example.com.")
	if d, _ := e.st.Domain(ctx, "example.com"); d.Locked {
		t.Error("domain still locked in the store")
	}

	// Deleting a domain takes two steps, as for a mailbox: the first
	// page says what goes with it and carries a token; the old tick box
	// ("confirm=1") deletes nothing.
	alice := store.Address{Mailbox: "alice", Domain: "example.com"}
	if err := e.st.CreateMailbox(ctx, alice, "pw"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.st.Deliver(ctx, alice, strings.NewReader("Subject: x\r\n\r\nbody\r\n")); err != nil {
		t.Fatal(err)
	}
	code, body = e.post("/console/domains", "action", "delete", "domain", "example.com")
	e.want(code, body, http.StatusOK, "Delete domain example.com?", "Its 1 mailbox(es), holding 1 message(s)", "Yes, delete")
	tok := confirmTokenOf(t, body)
	for _, bad := range []string{"", "1", tok + "0"} {
		code, body = e.post("/console/domains", "action", "delete", "domain", "example.com", "confirm", bad)
		e.want(code, body, http.StatusOK, "Delete domain example.com?")
	}
	if _, err := e.st.Domain(ctx, "example.com"); err != nil {
		t.Fatalf("an unconfirmed delete removed the domain: %v", err)
	}
	// A mailbox added after the page was shown: its token no longer
	// holds, and a new page asks with the new count.
	if err := e.st.CreateMailbox(ctx, store.Address{Mailbox: "bob", Domain: "example.com"}, "pw"); err != nil {
		t.Fatal(err)
	}
	code, body = e.post("/console/domains", "action", "delete", "domain", "example.com", "confirm", tok)
	e.want(code, body, http.StatusOK, "Delete domain example.com?", "Its 2 mailbox(es)")
	if _, err := e.st.Mailbox(ctx, alice); err != nil {
		t.Fatalf("a stale confirmation deleted the domain: %v", err)
	}
	code, body = e.post("/console/domains", "action", "delete", "domain", "example.com", "confirm", confirmTokenOf(t, body))
	e.want(code, body, http.StatusOK, "Deleted domain example.com with 2 mailbox(es).", "No domains yet.")
	if _, err := e.st.Domain(ctx, "example.com"); !errors.Is(err, store.ErrNoSuchDomain) {
		t.Errorf("after delete: Domain = %v, want ErrNoSuchDomain", err)
	}
	// An empty domain asks too, and says it has no mailboxes.
	if err := e.st.CreateDomain(ctx, "empty.example"); err != nil {
		t.Fatal(err)
	}
	code, body = e.post("/console/domains", "action", "delete", "domain", "empty.example")
	e.want(code, body, http.StatusOK, "Delete domain empty.example?", "It has no mailboxes.")
	code, body = e.post("/console/domains", "action", "delete", "domain", "empty.example", "confirm", confirmTokenOf(t, body))
	e.want(code, body, http.StatusOK, "Deleted domain empty.example with 0 mailbox(es).")

	code, body = e.post("/console/domains", "action", "delete", "domain", "nosuch.example")
	e.want(code, body, http.StatusNotFound, "no such domain")
	code, body = e.post("/console/domains", "action", "explode", "domain", "x.example")
	e.want(code, body, http.StatusBadRequest, "unknown action")
}

func TestConsoleMailboxFlows(t *testing.T) {
	e := newConsoleEnv(t, "")
	ctx := context.Background()
	if err := e.st.CreateDomain(ctx, "example.com"); err != nil {
		t.Fatal(err)
	}
	alice := store.Address{Mailbox: "alice", Domain: "example.com"}
	const page = "/console/domains/example.com"
	const secret = "Sekr3t-console-PW"

	code, body := e.post(page, "action", "add", "mailbox", "Alice", "password", secret)
	e.want(code, body, http.StatusOK, "Added mailbox alice@example.com.", "<td>alice@example.com</td>")
	if err := e.st.VerifyPassword(ctx, alice, secret); err != nil {
		t.Errorf("VerifyPassword after add: %v", err)
	}
	if strings.Contains(body, secret) || strings.Contains(e.logs.String(), secret) {
		t.Error("the password was echoed in the page or the log")
	}

	// Without a password, under passwordfile: created, with a warning.
	code, body = e.post(page, "action", "add", "mailbox", "bob")
	e.want(code, body, http.StatusOK, "Added mailbox bob@example.com.", "has no password")

	if _, err := e.st.Deliver(ctx, alice, strings.NewReader("Subject: hi\r\n\r\nhello\r\n")); err != nil {
		t.Fatal(err)
	}
	code, body = e.get(page)
	e.want(code, body, http.StatusOK, "Mailboxes of example.com")

	code, body = e.post(page, "action", "lock", "mailbox", "alice")
	e.want(code, body, http.StatusOK, "Locked mailbox alice@example.com.")
	if m, _ := e.st.Mailbox(ctx, alice); !m.Locked {
		t.Error("mailbox not locked in the store")
	}
	code, body = e.post(page, "action", "unlock", "mailbox", "alice")
	e.want(code, body, http.StatusOK, "Unlocked mailbox alice@example.com.")
	if m, _ := e.st.Mailbox(ctx, alice); m.Locked {
		t.Error("mailbox still locked in the store")
	}

	code, body = e.post(page, "action", "quota", "mailbox", "alice", "quota", "10KB")
	e.want(code, body, http.StatusOK, "Quota of alice@example.com set to 10KB", ">10KB<")
	if q, _ := e.st.Quota(ctx, alice); q != 10<<10 {
		t.Errorf("quota = %d, want %d", q, 10<<10)
	}
	code, body = e.post(page, "action", "quota", "mailbox", "alice", "quota", "lots")
	e.want(code, body, http.StatusBadRequest, "quota: &#34;lots&#34; is not a size")
	if q, _ := e.st.Quota(ctx, alice); q != 10<<10 {
		t.Errorf("a refused quota changed it to %d", q)
	}
	code, body = e.post(page, "action", "quota", "mailbox", "alice", "quota", "none")
	e.want(code, body, http.StatusOK, "set to none")
	if q, _ := e.st.Quota(ctx, alice); q != 0 {
		t.Errorf("quota = %d after none", q)
	}

	const secret2 = "An0ther-console-PW"
	code, body = e.post(page, "action", "password", "mailbox", "alice", "password", secret2)
	e.want(code, body, http.StatusOK, "Changed the password of alice@example.com.")
	if err := e.st.VerifyPassword(ctx, alice, secret2); err != nil {
		t.Errorf("VerifyPassword after change: %v", err)
	}
	code, body = e.post(page, "action", "password", "mailbox", "alice", "password", "")
	e.want(code, body, http.StatusBadRequest, "the password is empty")
	code, body = e.post(page, "action", "password", "mailbox", "nobody", "password", "x")
	e.want(code, body, http.StatusNotFound, "no such mailbox")
	if strings.Contains(body, secret2) || strings.Contains(e.logs.String(), secret2) {
		t.Error("the password was echoed in the page or the log")
	}

	// Deleting takes two steps: the first asks, with a token; only the
	// second, with that token for that mailbox, deletes.
	code, body = e.post(page, "action", "delete", "mailbox", "alice")
	e.want(code, body, http.StatusOK, "Delete mailbox alice@example.com?", "Yes, delete")
	if _, err := e.st.Mailbox(ctx, alice); err != nil {
		t.Fatalf("the first step deleted the mailbox: %v", err)
	}
	tok := regexp.MustCompile(`name="confirm" value="([^"]+)"`).FindStringSubmatch(body)
	if tok == nil {
		t.Fatalf("no confirmation token:\n%s", excerpt(body))
	}
	for _, bad := range []string{"", "1", "0.00", tok[1] + "0", strings.Replace(tok[1], ".", "9.", 1)} {
		code, body = e.post(page, "action", "delete", "mailbox", "alice", "confirm", bad)
		e.want(code, body, http.StatusOK, "Delete mailbox alice@example.com?")
	}
	// The token of alice does not delete bob.
	code, body = e.post(page, "action", "delete", "mailbox", "bob", "confirm", tok[1])
	e.want(code, body, http.StatusOK, "Delete mailbox bob@example.com?")
	if _, err := e.st.Mailbox(ctx, store.Address{Mailbox: "bob", Domain: "example.com"}); err != nil {
		t.Fatalf("alice's token deleted bob: %v", err)
	}
	// An expired token does not delete.
	old := e.c.confirmToken("mailbox alice@example.com", time.Now().Add(-time.Second))
	code, body = e.post(page, "action", "delete", "mailbox", "alice", "confirm", old)
	e.want(code, body, http.StatusOK, "Delete mailbox alice@example.com?")
	if _, err := e.st.Mailbox(ctx, alice); err != nil {
		t.Fatalf("a refused confirmation deleted the mailbox: %v", err)
	}
	code, body = e.post(page, "action", "delete", "mailbox", "alice", "confirm", tok[1])
	e.want(code, body, http.StatusOK, "Deleted mailbox alice@example.com.")
	if _, err := e.st.Mailbox(ctx, alice); !errors.Is(err, store.ErrNoSuchMailbox) {
		t.Errorf("after delete: Mailbox = %v", err)
	}

	code, body = e.get("/console/domains/nosuch.example")
	e.want(code, body, http.StatusNotFound, "no such domain")
	code, body = e.post("/console/domains/nosuch.example", "action", "add", "mailbox", "x", "password", "y")
	e.want(code, body, http.StatusNotFound, "no such domain")
}

func TestConsoleCSRF(t *testing.T) {
	e := newConsoleEnv(t, "")
	ctx := context.Background()
	same := map[string]string{"Origin": "http://example.com"}
	cases := []struct {
		name string
		form url.Values
		hdr  map[string]string
	}{
		{"no token", url.Values{"action": {"add"}, "domain": {"a.example"}}, same},
		{"wrong token", url.Values{"csrf": {strings.Repeat("0", 64)}, "action": {"add"}, "domain": {"a.example"}}, same},
		{"foreign Origin", url.Values{"csrf": {e.c.token}, "action": {"add"}, "domain": {"a.example"}}, map[string]string{"Origin": "http://evil.example"}},
		{"null Origin", url.Values{"csrf": {e.c.token}, "action": {"add"}, "domain": {"a.example"}}, map[string]string{"Origin": "null"}},
		{"foreign Referer", url.Values{"csrf": {e.c.token}, "action": {"add"}, "domain": {"a.example"}}, map[string]string{"Referer": "http://evil.example/page"}},
		{"cross-site fetch", url.Values{"csrf": {e.c.token}, "action": {"add"}, "domain": {"a.example"}}, map[string]string{"Sec-Fetch-Site": "cross-site"}},
	}
	for _, tc := range cases {
		code, body := e.postRaw("/console/domains", tc.form, tc.hdr)
		if code != http.StatusForbidden || !strings.Contains(body, "refused") {
			t.Errorf("%s: status %d, want 403 with a reason; body:\n%s", tc.name, code, excerpt(body))
		}
	}
	if ds, _ := e.st.ListDomains(ctx); len(ds) != 0 {
		t.Fatalf("a refused request created %v", ds)
	}
	// The same request from the console's own page goes through, also
	// without Origin/Referer (a client that sends neither).
	code, body := e.postRaw("/console/domains", url.Values{"csrf": {e.c.token}, "action": {"add"}, "domain": {"a.example"}}, nil)
	e.want(code, body, http.StatusOK, "Added domain a.example.")
	code, body = e.postRaw("/console/domains", url.Values{"csrf": {e.c.token}, "action": {"add"}, "domain": {"b.example"}},
		map[string]string{"Referer": "http://example.com/console/domains"})
	e.want(code, body, http.StatusOK, "Added domain b.example.")
}

func TestConsoleGETChangesNothing(t *testing.T) {
	e := newConsoleEnv(t, "")
	ctx := context.Background()
	if err := e.st.CreateDomain(ctx, "example.com"); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(e.cfgPath)
	q := "?csrf=" + e.c.token + "&action=delete&domain=example.com&confirm=1&mailbox=x&key=pop3.socketmax&value=7"
	for _, p := range []string{"/console/domains" + q, "/console/domains/example.com" + q, "/console/" + q} {
		if code, body := e.get(p); code != http.StatusOK {
			t.Errorf("GET %s: status %d; body:\n%s", p, code, excerpt(body))
		}
	}
	for _, p := range []string{"/console/settings", "/console/settings" + q} {
		if code, _ := e.get(p); code != http.StatusMethodNotAllowed {
			t.Errorf("GET %s: status %d, want 405", p, code)
		}
	}
	req := httptest.NewRequest(http.MethodPut, "/console/domains", strings.NewReader("csrf="+e.c.token+"&action=delete&domain=example.com&confirm=1"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if code, _ := e.do(req); code != http.StatusMethodNotAllowed {
		t.Errorf("PUT: status %d, want 405", code)
	}
	if _, err := e.st.Domain(ctx, "example.com"); err != nil {
		t.Errorf("a GET removed the domain: %v", err)
	}
	after, _ := os.ReadFile(e.cfgPath)
	if !bytes.Equal(before, after) || e.reloads != 0 {
		t.Errorf("a GET changed the file or reloaded (%d reloads)", e.reloads)
	}
}

func TestConsoleServerAndSettings(t *testing.T) {
	e := newConsoleEnv(t, "")
	code, body := e.get("/console/")
	e.want(code, body, http.StatusOK, "Queue (waiting for delivery)", "Badmail", "<code>admin.console</code>", "<code>pop3.socketmax</code>",
		"not running in this process")
	code, body = e.get("/console/?key=socketmax")
	e.want(code, body, http.StatusOK, `<option value="pop3.socketmax" selected>`, `name="value" value="10000"`)
	code, body = e.get("/console/style.css")
	e.want(code, body, http.StatusOK, "font")

	code, body = e.post("/console/settings", "key", "pop3.socketmax", "value", "500")
	e.want(code, body, http.StatusOK, "Set pop3.socketmax = 500 in", "reloaded its configuration")
	cfg, err := config.Load(e.cfgPath)
	if err != nil || cfg.POP3.SocketMax != 500 {
		t.Fatalf("file after set: socketmax %v, err %v", cfg, err)
	}
	if e.reloads != 1 || e.c.cfg.Load().POP3.SocketMax != 500 {
		t.Errorf("reloads = %d, console sees socketmax %d", e.reloads, e.c.cfg.Load().POP3.SocketMax)
	}
	if !strings.Contains(string(must(os.ReadFile(e.cfgPath))), "# console test") {
		t.Error("the file's comment was lost")
	}

	// Refused values change nothing and say why, on one line.
	before := must(os.ReadFile(e.cfgPath))
	for _, tc := range []struct{ key, value, why string }{
		{"pop3.socketmax", "many", "pop3.socketmax"},
		{"no.such.key", "1", "unknown setting &#34;no.such.key&#34;"},
		{"pop3.socketmax", "-5", "pop3.socketmax"},
		{"admin.listen", "not an address", "admin.listen"},
	} {
		code, body := e.post("/console/settings", "key", tc.key, "value", tc.value)
		e.want(code, body, http.StatusUnprocessableEntity, `<p class="error" role="alert">`, tc.why)
	}
	if !bytes.Equal(before, must(os.ReadFile(e.cfgPath))) || e.reloads != 1 {
		t.Errorf("a refused setting changed the file or reloaded (%d reloads)", e.reloads)
	}

	// Switching authentication is refused while a mailbox would be locked
	// out, unless forced.
	ctx := context.Background()
	if err := e.st.CreateDomain(ctx, "example.com"); err != nil {
		t.Fatal(err)
	}
	if err := e.st.CreateMailbox(ctx, store.Address{Mailbox: "zz-no-such-system-user", Domain: "example.com"}, "pw"); err != nil {
		t.Fatal(err)
	}
	code, body = e.post("/console/settings", "key", "auth.method", "value", "system")
	e.want(code, body, http.StatusUnprocessableEntity, "could no longer log in with auth.method=system",
		"zz-no-such-system-user@example.com (no system user zz-no-such-system-user)", "switch anyway")
	if cfg, _ := config.Load(e.cfgPath); cfg.Auth.Method != "passwordfile" {
		t.Errorf("a refused switch set auth.method = %s", cfg.Auth.Method)
	}
	code, body = e.post("/console/settings", "key", "auth.method", "value", "system", "force", "1")
	e.want(code, body, http.StatusOK, "Set auth.method = system")
	if e.c.cfg.Load().Auth.Method != "system" {
		t.Error("the console does not see the new method")
	}
	code, body = e.get("/console/")
	e.want(code, body, http.StatusOK, "Authentication: system")

	// Turning the console off takes effect at the reload.
	code, body = e.post("/console/settings", "key", "admin.console", "value", "false")
	e.want(code, body, http.StatusOK, "Set admin.console = false")
	if code, _ := e.get("/console/"); code != http.StatusNotFound {
		t.Errorf("console off: status %d, want 404", code)
	}
}

func TestConsoleNoConfigFile(t *testing.T) {
	e := newConsoleEnv(t, "")
	e.c.opts.ConfigPath = ""
	code, body := e.post("/console/settings", "key", "pop3.socketmax", "value", "500")
	// The words pop3ctl set uses for the same refusal.
	e.want(code, body, http.StatusUnprocessableEntity, html.EscapeString(config.NoFileRefusal))
}

func TestConsoleOff(t *testing.T) {
	e := newConsoleEnv(t, "console = false\n")
	if code, _ := e.get("/console/"); code != http.StatusNotFound {
		t.Errorf("GET with admin.console = false: status %d, want 404", code)
	}
	code, _ := e.post("/console/domains", "action", "add", "domain", "a.example")
	if ds, _ := e.st.ListDomains(context.Background()); code != http.StatusNotFound || len(ds) != 0 {
		t.Errorf("POST with admin.console = false: status %d, domains %v", code, ds)
	}
}

func TestConsoleEscaping(t *testing.T) {
	e := newConsoleEnv(t, "")
	ctx := context.Background()
	code, body := e.post("/console/domains", "action", "add", "domain", `<script>alert(1)</script>`)
	e.want(code, body, http.StatusBadRequest, "domain name contains the character &#39;&lt;&#39;")
	if strings.Contains(body, "<script>") {
		t.Errorf("a refused name reached the page unescaped:\n%s", excerpt(body))
	}
	if err := e.st.CreateDomain(ctx, "example.com"); err != nil {
		t.Fatal(err)
	}
	// '<' and '>' are allowed in mailbox names: the page must escape them.
	code, body = e.post("/console/domains/example.com", "action", "add", "mailbox", "<script>", "password", "pw")
	e.want(code, body, http.StatusOK, "&lt;script&gt;@example.com")
	if strings.Contains(body, "<script>") {
		t.Errorf("a mailbox name reached the page unescaped:\n%s", excerpt(body))
	}
	code, body = e.post("/console/domains/example.com", "action", "add", "mailbox", `"><img src=x>`, "password", "pw")
	e.want(code, body, http.StatusBadRequest, "mailbox name contains")
	if strings.Contains(body, "<img") {
		t.Errorf("a refused mailbox name reached the page unescaped:\n%s", excerpt(body))
	}
	code, body = e.postRaw("/console/domains", url.Values{"action": {"add"}}, map[string]string{"Origin": `http://"><b>x</b>`})
	if code != http.StatusForbidden || strings.Contains(body, "<b>x") {
		t.Errorf("a hostile Origin: status %d, body:\n%s", code, excerpt(body))
	}
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

// TestConsoleReportsRestartKeys: a restart key changed from the console
// is reported in the words of the log and pop3ctl, on every change until
// the service restarts.
func TestConsoleReportsRestartKeys(t *testing.T) {
	e := newConsoleEnv(t, "")
	code, body := e.post("/console/settings", "key", "pop3.listen", "value", "127.0.0.1:1101")
	e.want(code, body, http.StatusOK, "Set pop3.listen = 127.0.0.1:1101 in", html.EscapeString(config.RestartNotice([]string{"pop3.listen"})))
	code, body = e.post("/console/settings", "key", "pop3.socketmax", "value", "400")
	e.want(code, body, http.StatusOK, "Set pop3.socketmax = 400 in", html.EscapeString(config.RestartNotice([]string{"pop3.listen"})))
}

// TestEveryTableHasAGroupTitle: each table of the configuration file gets
// a title and an introduction on the server page, not its bare name.
func TestEveryTableHasAGroupTitle(t *testing.T) {
	for _, k := range config.Keys() {
		table, _, ok := strings.Cut(k, ".")
		if !ok {
			table = ""
		}
		if tt := settingTables[table]; tt[0] == "" || tt[1] == "" {
			t.Errorf("table %q (key %s) has no title and introduction in settingTables", table, k)
		}
	}
}
