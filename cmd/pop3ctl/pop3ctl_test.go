package main_test

// End-to-end tests of the built pop3ctl binary against a temporary mail
// root and configuration file.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pop3svc/pop3svc/cmd/internal/config"
	"github.com/pop3svc/pop3svc/cmd/pop3d/pop3dtest"
)

// binary is the pop3ctl built by TestMain.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "pop3ctl-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "pop3ctl")
	out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "go build: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	pop3dtest.Cleanup()
	os.Exit(code)
}

// env is one test's configuration file and mail root.
type env struct {
	t    *testing.T
	dir  string
	conf string
}

// closedAddr returns a loopback address nobody listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := l.Addr().String()
	l.Close()
	return a
}

func newEnv(t *testing.T, extra string) *env {
	t.Helper()
	dir := t.TempDir()
	conf := filepath.Join(dir, "pop3d.toml")
	body := fmt.Sprintf("# test configuration\nmailroot = \"mail\"\nnode = 42\n\n[admin]\nlisten = %q\n%s", closedAddr(t), extra)
	if err := os.WriteFile(conf, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return &env{t: t, dir: dir, conf: conf}
}

type result struct {
	code           int
	stdout, stderr string
}

// run runs pop3ctl -config FILE args... with stdin.
func (e *env) run(stdin string, args ...string) result {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, append([]string{"-config", e.conf}, args...)...)
	cmd.Dir = e.dir
	cmd.Env = append(os.Environ(), "POP3D_CONFIG=")
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		e.t.Fatalf("pop3ctl %v: %v", args, err)
	}
	return result{code: code, stdout: out.String(), stderr: errb.String()}
}

// ok runs a command that must succeed and returns its stdout.
func (e *env) ok(stdin string, args ...string) string {
	e.t.Helper()
	r := e.run(stdin, args...)
	if r.code != 0 {
		e.t.Fatalf("pop3ctl %v: exit %d, stderr %q", args, r.code, r.stderr)
	}
	return r.stdout
}

// refused runs a command that must be refused (exit 1) with one line on
// stderr containing want.
func (e *env) refused(want string, args ...string) {
	e.t.Helper()
	r := e.run("", args...)
	if r.code != 1 {
		e.t.Fatalf("pop3ctl %v: exit %d (stdout %q, stderr %q), want 1", args, r.code, r.stdout, r.stderr)
	}
	if strings.Count(r.stderr, "\n") != 1 || !strings.HasPrefix(r.stderr, "pop3ctl: ") || !strings.Contains(r.stderr, want) {
		e.t.Fatalf("pop3ctl %v: stderr %q, want one line containing %q", args, r.stderr, want)
	}
}

// jsonOK runs a command with -json and decodes its output.
func (e *env) jsonOK(args ...string) map[string]any {
	e.t.Helper()
	out := e.ok("", append([]string{"-json"}, args...)...)
	var v map[string]any
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		e.t.Fatalf("pop3ctl -json %v: %v in %q", args, err, out)
	}
	return v
}

func (e *env) mbxDir(domain, mailbox string) string {
	return filepath.Join(e.dir, "mail", domain, "P3_"+mailbox+".mbx")
}

func TestDomainsAndMailboxes(t *testing.T) {
	e := newEnv(t, "")
	if out := e.ok("", "add", "Example.TEST"); !strings.Contains(out, "example.test") {
		t.Errorf("add domain printed %q", out)
	}
	e.refused("already exists", "add", "example.test")
	e.ok("", "add", "alice@example.test", "-password", "secret1")
	r := e.run("secret2\n", "add", "bob@example.test", "-password-stdin")
	if r.code != 0 || strings.Contains(r.stdout+r.stderr, "secret2") {
		t.Fatalf("add -password-stdin: %+v", r)
	}
	// No password with passwordfile authentication: a warning, exit 0.
	r = e.run("", "add", "carol@example.test")
	if r.code != 0 || !strings.Contains(r.stderr, "warning") {
		t.Fatalf("add without password: %+v", r)
	}
	e.refused("no such domain", "add", "dave@other.test")

	out := e.ok("", "list", "example.test")
	for _, want := range []string{"alice@example.test", "bob@example.test", "carol@example.test", "MAILBOX"} {
		if !strings.Contains(out, want) {
			t.Errorf("list example.test lacks %q:\n%s", want, out)
		}
	}
	v := e.jsonOK("list", "example.test")
	boxes := v["mailboxes"].([]any)
	if len(boxes) != 3 {
		t.Fatalf("list -json: %v", v)
	}
	pw := map[string]bool{}
	for _, b := range boxes {
		m := b.(map[string]any)
		pw[m["mailbox"].(string)] = m["has_password"].(bool)
	}
	if !pw["alice@example.test"] || !pw["bob@example.test"] || pw["carol@example.test"] {
		t.Errorf("has_password = %v", pw)
	}
	v = e.jsonOK("list")
	ds := v["domains"].([]any)
	if len(ds) != 1 || ds[0].(map[string]any)["domain"] != "example.test" || ds[0].(map[string]any)["mailboxes"].(float64) != 3 {
		t.Errorf("list -json domains = %v", v)
	}

	// changepwd, then rename keeps the mailbox.
	e.ok("", "changepwd", "carol@example.test", "-password", "pw3")
	e.ok("new\n", "changepwd", "alice@example.test", "-password-stdin")
	e.refused("no such mailbox", "changepwd", "zed@example.test", "-password", "x")
	e.ok("", "rename", "carol@example.test", "carla")
	if _, err := os.Stat(e.mbxDir("example.test", "carla")); err != nil {
		t.Errorf("renamed mailbox folder: %v", err)
	}
	e.refused("within its domain", "rename", "carla@example.test", "x@other.test")

	// A domain with mailboxes needs -force.
	e.refused("-force", "delete", "example.test")
	e.ok("", "delete", "bob@example.test")
	if _, err := os.Stat(e.mbxDir("example.test", "bob")); !os.IsNotExist(err) {
		t.Errorf("deleted mailbox folder still there: %v", err)
	}
	e.ok("", "delete", "example.test", "-force")
	e.refused("no such domain", "list", "example.test")
	if v := e.jsonOK("list"); len(v["domains"].([]any)) != 0 {
		t.Errorf("list after delete = %v", v)
	}
}

func TestForbiddenCharacters(t *testing.T) {
	e := newEnv(t, "")
	e.ok("", "add", "example.test")
	r := e.run("", "add", "a*b@example.test")
	want := "pop3ctl: mailbox name contains the character '*', which is not allowed\n"
	if r.code != 1 || r.stderr != want {
		t.Errorf("add a*b: exit %d stderr %q, want 1 %q", r.code, r.stderr, want)
	}
	for _, name := range []string{"a(b", "a/b", `a\b`, "a b", "a.b", "a+b", strings.Repeat("x", 64)} {
		e.refused("mailbox name", "add", name+"@example.test")
	}
	e.refused("domain", "add", "bad_domain.test")
	e.refused("domain", "add", "bad-.test")
	e.refused("domain", "add", "--", "-bad.test")
	e.refused("empty label", "add", "a..test")
	if ents, _ := os.ReadDir(filepath.Join(e.dir, "mail", "example.test")); len(ents) != 0 {
		t.Errorf("refused names left %d entries", len(ents))
	}
}

func TestLockUnlock(t *testing.T) {
	e := newEnv(t, "")
	e.ok("", "add", "example.test")
	e.ok("", "add", "alice@example.test", "-password", "pw")
	locked := func() bool {
		v := e.jsonOK("list", "example.test")
		return v["mailboxes"].([]any)[0].(map[string]any)["locked"].(bool)
	}
	e.ok("", "lock", "alice@example.test")
	if !locked() {
		t.Error("mailbox not locked after lock")
	}
	e.ok("", "unlock", "alice@example.test")
	if locked() {
		t.Error("mailbox locked after unlock")
	}
	e.ok("", "lock", "example.test")
	if v := e.jsonOK("list"); !v["domains"].([]any)[0].(map[string]any)["locked"].(bool) {
		t.Errorf("domain not locked: %v", v)
	}
	if !locked() {
		t.Error("mailbox of a locked domain not shown locked")
	}
	// Delivery goes on under an administrator's lock.
	e.ok("hi\n", "deliver", "alice@example.test")
	e.ok("", "unlock", "example.test")
	if locked() {
		t.Error("mailbox locked after unlocking the domain")
	}
	e.refused("no such", "lock", "nobody@example.test")
}

func TestDeliverStatQuota(t *testing.T) {
	e := newEnv(t, "")
	e.ok("", "add", "example.test")
	e.ok("", "add", "alice@example.test", "-password", "pw")
	e.ok("", "add", "bob@example.test", "-password", "pw")

	msg := "Subject: test\n\nline one\nline two\n" // bare LF
	uid := strings.TrimSpace(e.ok(msg, "deliver", "alice@example.test"))
	if len(uid) != 26 || !strings.HasSuffix(uid, "00042") {
		t.Fatalf("deliver printed UID %q, want 26 digits ending in node 00042", uid)
	}
	stored, err := os.ReadFile(filepath.Join(e.mbxDir("example.test", "alice"), "P3_"+uid+".eml"))
	if err != nil {
		t.Fatal(err)
	}
	want := strings.ReplaceAll(msg, "\n", "\r\n")
	if string(stored) != want {
		t.Errorf("stored message %q, want %q", stored, want)
	}

	// From a file, with -json.
	f := filepath.Join(e.dir, "msg.eml")
	os.WriteFile(f, []byte("Subject: two\r\n\r\nbody\r\n"), 0o644)
	v := e.jsonOK("deliver", "bob@example.test", f)
	if u, _ := v["uid"].(string); len(u) != 26 || u == uid {
		t.Errorf("deliver -json = %v", v)
	}

	v = e.jsonOK("stat")
	if v["messages"].(float64) != 2 || v["bytes"].(float64) != float64(len(want)+len("Subject: two\r\n\r\nbody\r\n")) {
		t.Errorf("stat -json totals = %v", v)
	}
	dom := v["domains"].([]any)[0].(map[string]any)
	if dom["domain"] != "example.test" || dom["messages"].(float64) != 2 {
		t.Errorf("stat -json domain = %v", dom)
	}
	out := e.ok("", "stat", "example.test")
	if !strings.Contains(out, "alice@example.test") || !strings.Contains(out, "total example.test") {
		t.Errorf("stat example.test:\n%s", out)
	}

	// Quota: over quota is refused with a clear message and stores nothing.
	e.ok("", "quota", "alice@example.test", "1KB")
	if v := e.jsonOK("quota", "alice@example.test"); v["quota"].(float64) != 1024 {
		t.Errorf("quota -json = %v", v)
	}
	r := e.run(strings.Repeat("x", 2000)+"\n", "deliver", "alice@example.test")
	if r.code != 73 || !strings.Contains(r.stderr, "over its quota") || strings.Count(r.stderr, "\n") != 1 {
		t.Errorf("over-quota deliver: %+v", r)
	}
	if v := e.jsonOK("quota", "alice@example.test"); v["messages"].(float64) != 1 {
		t.Errorf("over-quota delivery stored a message: %v", v)
	}
	e.ok("", "quota", "alice@example.test", "none")
	e.ok(strings.Repeat("x", 2000)+"\n", "deliver", "alice@example.test")
	r = e.run("", "quota", "alice@example.test", "lots")
	if r.code != 2 {
		t.Errorf("quota lots: exit %d, want 2", r.code)
	}
	if r := e.run("", "deliver", "nobody@example.test"); r.code != 67 || !strings.Contains(r.stderr, "no such mailbox") {
		t.Errorf("deliver to nobody: %+v, want exit 67", r)
	}
}

func TestUsageErrors(t *testing.T) {
	e := newEnv(t, "")
	for _, args := range [][]string{
		{},
		{"frobnicate"},
		{"add"},
		{"add", "a.test", "b.test"},
		{"list", "a", "b"},
		{"changepwd", "a@b.test"},
		{"delete", "a@b.test", "-force"},
		{"get", "-nosuchflag"},
		{"set", "greeting"},
		{"lock", "-password", "x", "a.test"},
	} {
		r := e.run("", args...)
		if r.code != 2 || !strings.Contains(r.stderr, "usage") {
			t.Errorf("pop3ctl %v: exit %d stderr %q, want 2 with a usage line", args, r.code, r.stderr)
		}
	}
	r := e.run("", "-json", "frobnicate")
	var v map[string]string
	if r.code != 2 || json.Unmarshal([]byte(r.stdout), &v) != nil || !strings.Contains(v["error"], "frobnicate") {
		t.Errorf("-json usage error: %+v", r)
	}
	r = e.run("", "-json", "add", "a*b@example.test")
	if r.code != 1 || json.Unmarshal([]byte(r.stdout), &v) != nil || v["error"] != "mailbox name contains the character '*', which is not allowed" {
		t.Errorf("-json refusal: %+v", r)
	}
	if out := e.ok("", "help"); !strings.Contains(out, "changepwd") {
		t.Errorf("help:\n%s", out)
	}
	// Flags after the verb work like flags before it.
	e.ok("", "add", "example.test", "-json")
}

func TestGetSet(t *testing.T) {
	e := newEnv(t, "\n[pop3]\nsocketmax = 100 # keep this comment\n")
	if got := strings.TrimSpace(e.ok("", "get", "socketmax")); got != "100" {
		t.Errorf("get socketmax = %q", got)
	}
	if got := strings.TrimSpace(e.ok("", "get", "port")); got != "1100" {
		t.Errorf("get port = %q", got)
	}
	v := e.jsonOK("get")
	if len(v["settings"].([]any)) < 40 {
		t.Errorf("get -json has %d settings", len(v["settings"].([]any)))
	}
	out := e.ok("", "get")
	if !strings.Contains(out, "pop3.socketmax") || !strings.Contains(out, "auth.method") {
		t.Errorf("get:\n%s", out)
	}

	if out := e.ok("", "get"); !strings.Contains(out, "APPLIES") || !regexp.MustCompile(`pop3\.listen +\S+ +restart`).MatchString(out) || !regexp.MustCompile(`pop3\.socketmax +\S+ +live`).MatchString(out) {
		t.Errorf("get does not show when keys apply:\n%s", out)
	}
	if v := e.jsonOK("get", "port"); v["applies"] != "restart" {
		t.Errorf("get -json port = %v, want applies restart", v)
	}
	// The description the README and the console show.
	if desc, _, _ := config.Describe("pop3.socketmax"); !strings.Contains(e.ok("", "get"), desc) {
		t.Errorf("get does not show the description %q", desc)
	}
	if v := e.jsonOK("get", "socketmax"); v["description"] != "POP3 sessions served at once." {
		t.Errorf("get -json socketmax = %v, want its description", v)
	}
	out = e.ok("", "set", "socketmax", "250")
	if !strings.Contains(out, "No service answered") {
		t.Errorf("set without a running service: %q", out)
	}
	if got := strings.TrimSpace(e.ok("", "get", "pop3.socketmax")); got != "250" {
		t.Errorf("after set: get = %q", got)
	}
	body, _ := os.ReadFile(e.conf)
	if !strings.Contains(string(body), "socketmax = 250 # keep this comment") || !strings.HasPrefix(string(body), "# test configuration\n") {
		t.Errorf("set lost comments:\n%s", body)
	}
	e.ok("", "set", "port", "1995")
	e.ok("", "set", "greeting", "Hello there")
	e.ok("", "set", "authentication", "2")
	v = e.jsonOK("get", "auth.method")
	if v["value"] != "system" {
		t.Errorf("get -json auth.method = %v", v)
	}
	if got := strings.TrimSpace(e.ok("", "get", "pop3.listen")); got != "127.0.0.1:1995" {
		t.Errorf("pop3.listen after set port = %q", got)
	}

	// Invalid values are refused and leave the file byte for byte.
	before, _ := os.ReadFile(e.conf)
	for _, c := range [][2]string{
		{"socketmax", "0"}, {"socketmin", "1000"}, {"threadcount", "x"}, {"greeting", "bad\x01"},
		{"no.such", "1"}, {"tls.min_version", "2.0"}, {"port", "99999"},
	} {
		r := e.run("", "set", c[0], c[1])
		if r.code != 1 || strings.Count(r.stderr, "\n") != 1 {
			t.Errorf("set %s %q: exit %d stderr %q, want 1 with one line", c[0], c[1], r.code, r.stderr)
		}
	}
	after, _ := os.ReadFile(e.conf)
	if !bytes.Equal(before, after) {
		t.Errorf("refused set changed the file:\n%s", after)
	}
	if ents, _ := os.ReadDir(e.dir); len(ents) != 1 {
		t.Errorf("refused sets left files: %d entries", len(ents))
	}
}

// fakeService answers the admin API as pop3d does: GET /api/status with
// the file it reads, POST /api/reload with the given status and answer.
type fakeService struct {
	file    atomic.Pointer[string]
	code    atomic.Int32
	answer  atomic.Pointer[string]
	reloads atomic.Int32
}

func startFakeService(t *testing.T) (*fakeService, string) {
	f := &fakeService{}
	f.code.Store(http.StatusOK)
	ok := `{"ok": true, "restart": []}`
	f.answer.Store(&ok)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodGet && r.URL.Path == "/api/status":
			b, _ := json.Marshal(map[string]any{"uptime": "1s", "config_file": *f.file.Load()})
			w.Write(b)
		case r.Method == http.MethodPost && r.URL.Path == "/api/reload":
			f.reloads.Add(1)
			w.WriteHeader(int(f.code.Load()))
			io.WriteString(w, *f.answer.Load())
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return f, strings.TrimPrefix(srv.URL, "http://")
}

func TestSetTellsRunningService(t *testing.T) {
	f, addr := startFakeService(t)
	e := newEnv(t, "")
	none := ""
	f.file.Store(&none)
	e.ok("", "set", "admin.listen", addr) // the service is not yet found there
	f.file.Store(&e.conf)
	v := e.jsonOK("set", "logging", "2")
	if v["reloaded"] != true || f.reloads.Load() != 1 || v["reload_error"] != nil {
		t.Errorf("set -json = %v with %d reload calls, want reloaded and 1 call", v, f.reloads.Load())
	}
	if out := e.ok("", "set", "logging", "1"); !strings.Contains(out, "was told and reloaded") || strings.Contains(out, "restart") {
		t.Errorf("set output %q", out)
	}

	// A restart key: the service says so, and pop3ctl repeats its words.
	restart := `{"ok": true, "restart": ["pop3.listen"], "notice": "x"}`
	f.answer.Store(&restart)
	out := e.ok("", "set", "pop3.listen", "127.0.0.1:1101")
	if !strings.Contains(out, config.RestartNotice([]string{"pop3.listen"})) || strings.Contains(out, "not told") {
		t.Errorf("set pop3.listen output %q", out)
	}
	v = e.jsonOK("set", "pop3.listen", "127.0.0.1:1102")
	if v["restart_notice"] != config.RestartNotice([]string{"pop3.listen"}) || fmt.Sprint(v["restart"]) != "[pop3.listen]" {
		t.Errorf("set -json pop3.listen = %v", v)
	}

	// A reload that failed: its whole error, not a piece of the JSON.
	failed := `{
  "ok": false,
  "restart": [],
  "error": "pop3: auth.method directory: ldap.url is empty"
}`
	f.code.Store(http.StatusUnprocessableEntity)
	f.answer.Store(&failed)
	v = e.jsonOK("set", "logging", "3")
	if v["reloaded"] != false || v["reload_error"] != "pop3: auth.method directory: ldap.url is empty" {
		t.Errorf("set -json with a failed reload = %v", v)
	}
}

// TestSetRefusedWhenTheServiceReadsNoFile: a service running on its
// built-in defaults would never read the file; pop3ctl refuses (with the
// console's words) and writes nothing. So it does when the service reads
// another file.
func TestSetRefusedWhenTheServiceReadsNoFile(t *testing.T) {
	f, addr := startFakeService(t)
	e := newEnv(t, "")
	none := ""
	f.file.Store(&none)
	e.ok("", "set", "admin.listen", addr)
	before, _ := os.ReadFile(e.conf)
	r := e.run("", "set", "sparequired", "true")
	if r.code != 1 || !strings.Contains(r.stderr, config.NoFileRefusal) {
		t.Errorf("set on a service without a file: exit %d stderr %q", r.code, r.stderr)
	}
	other := filepath.Join(t.TempDir(), "other.toml")
	f.file.Store(&other)
	r = e.run("", "set", "sparequired", "true")
	if r.code != 1 || !strings.Contains(r.stderr, "the running service reads "+other) {
		t.Errorf("set on a service reading another file: exit %d stderr %q", r.code, r.stderr)
	}
	if after, _ := os.ReadFile(e.conf); !bytes.Equal(before, after) || f.reloads.Load() != 0 {
		t.Errorf("a refused set changed the file or reloaded (%d)", f.reloads.Load())
	}
}

func TestBadConfig(t *testing.T) {
	e := newEnv(t, "\n[pop3]\nsocketmax = 0\nbogus = 1\n")
	r := e.run("", "list")
	if r.code != 1 || strings.Count(r.stderr, "\n") != 1 || !strings.Contains(r.stderr, "pop3.bogus") || !strings.Contains(r.stderr, "pop3.socketmax") {
		t.Errorf("list with a bad config: %+v", r)
	}
}

// TestSetAuthenticationChecksMailboxes: switching the method is refused
// while existing mailboxes could no longer log in, unless -force.
func TestSetAuthenticationChecksMailboxes(t *testing.T) {
	e := newEnv(t, "")
	e.ok("", "add", "example.test")
	e.ok("", "add", "root@example.test")                             // a system user exists (root), no password
	e.ok("", "add", "nosuchuser42x@example.test", "-password", "pw") // no system user of that name

	e.refused("nosuchuser42x@example.test (no system user nosuchuser42x)", "set", "authentication", "system")
	if got := strings.TrimSpace(e.ok("", "get", "auth.method")); got != "passwordfile" {
		t.Fatalf("a refused switch changed auth.method to %q", got)
	}
	e.ok("", "delete", "nosuchuser42x@example.test")
	e.ok("", "set", "authentication", "system")
	if got := strings.TrimSpace(e.ok("", "get", "auth.method")); got != "system" {
		t.Fatalf("auth.method = %q, want system", got)
	}
	// Back to the password file: root@ has no password-file password.
	e.refused("root@example.test (no password-file password)", "set", "authentication", "passwordfile")
	e.ok("", "set", "authentication", "passwordfile", "-force")
	if got := strings.TrimSpace(e.ok("", "get", "auth.method")); got != "passwordfile" {
		t.Fatalf("auth.method = %q after -force, want passwordfile", got)
	}
}
