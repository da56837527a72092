package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pop3svc/pop3svc/cmd/pop3d/pop3dtest"
	"github.com/pop3svc/pop3svc/store"
	"github.com/pop3svc/pop3svc/store/filestore"
)

// The integration tests run the built pop3d as a separate process on
// loopback ports chosen by the kernel (port 0), reading the bound
// addresses from its log (see package pop3dtest).

func TestMain(m *testing.M) { pop3dtest.Main(m) }

const testPassword = "s3cret-Passw0rd"

var testAddr = store.Address{Mailbox: "alice", Domain: "example.org"}

// testMessage returns a message of about size octets, CRLF line endings.
func testMessage(i, size int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "From: bob@example.org\r\nTo: alice@example.org\r\nSubject: message %d\r\n\r\n", i)
	line := 0
	for b.Len() < size {
		fmt.Fprintf(&b, "line %d of message %d %s\r\n", line, i, strings.Repeat("x", 50))
		if line%17 == 0 {
			b.WriteString(".a line starting with a dot\r\n")
		}
		line++
	}
	return b.String()
}

// integrationConfig is the configuration of these tests: top holds
// top-level keys ("logging = 4" when empty), pop3 keys of the [pop3]
// table; setup prepares the store before the start.
func integrationConfig(t testing.TB, top, pop3 string, setup func(ctx context.Context, st store.Store)) pop3dtest.Config {
	if top == "" {
		top = "logging = 4"
	}
	c := pop3dtest.Config{
		Top: top,
		Auth: `fail_delay = "20ms"
penalty = "0s"
penalty_max = "0s"`,
		POP3: "login_timeout = \"5s\"\n" + pop3,
		SMTP: true,
	}
	if setup != nil {
		c.Prepare = func(dir string) {
			st, err := filestore.Open(filepath.Join(dir, "mailroot"), filestore.Options{Node: 1})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			setup(ctx, st)
			cancel()
			st.Close()
		}
	}
	return c
}

// startPop3d runs pop3d with integrationConfig.
func startPop3d(t testing.TB, top, pop3 string, setup func(ctx context.Context, st store.Store)) *pop3dtest.Server {
	t.Helper()
	return pop3dtest.Start(t, integrationConfig(t, top, pop3, setup))
}

func hostPort(in *pop3dtest.Server) (string, string) {
	h, p, _ := net.SplitHostPort(in.POP3)
	return h, p
}

func mailbox(n, size int) func(ctx context.Context, st store.Store) {
	return func(ctx context.Context, st store.Store) {
		if err := st.CreateDomain(ctx, testAddr.Domain); err != nil {
			panic(err)
		}
		if err := st.CreateMailbox(ctx, testAddr, testPassword); err != nil {
			panic(err)
		}
		for i := range n {
			if _, err := st.Deliver(ctx, testAddr, strings.NewReader(testMessage(i+1, size))); err != nil {
				panic(err)
			}
		}
	}
}

// dial connects to the POP3 listener without reading the greeting.
func dial(t *testing.T, in *pop3dtest.Server) *pop3dtest.Conn {
	t.Helper()
	return pop3dtest.DialRaw(t, in.POP3, "")
}

func login(p *pop3dtest.Conn) {
	p.T.Helper()
	p.Expect("+OK")
	p.Send("USER " + testAddr.String() + "\r\n")
	p.Expect("+OK")
	p.Send("PASS " + testPassword + "\r\n")
	p.Expect("+OK")
}

func runPy(t *testing.T, script string, args ...string) string {
	t.Helper()
	return runPyArgs(t, append([]string{"-c", script}, args...)...)
}

// runPyArgs runs python3 with args: a script file or -c and its text,
// then the script's arguments.
func runPyArgs(t *testing.T, args ...string) string {
	t.Helper()
	py := pop3dtest.NeedTool(t, "python3")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, py, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("python: %v\n%s", err, out)
	}
	return string(out)
}

func runCurl(t *testing.T, args ...string) (string, error) {
	t.Helper()
	curl := pop3dtest.NeedTool(t, "curl")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, curl, append([]string{"-s", "-S", "--max-time", "30"}, args...)...).CombinedOutput()
	return string(out), err
}

const poplibScript = `
import poplib, sys
host, port, user, pw = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
p = poplib.POP3(host, port, timeout=20)
print("welcome", p.getwelcome().decode())
p.user(user)
p.pass_(pw)
print("stat", *p.stat())
resp, lst, _ = p.list()
print("list", len(lst))
resp, uidl, _ = p.uidl()
print("uidl", len(uidl), uidl[0].decode())
resp, lines, _ = p.top(1, 0)
print("top", len(lines), lines[2].decode())
resp, lines, octets = p.retr(2)
print("retr", resp.decode(), octets, lines[2].decode())
print("dots", sum(1 for l in lines if l.startswith(b".a line")))
p.dele(1)
p.rset()
p.dele(3)
print("quit", p.quit().decode())
p = poplib.POP3(host, port, timeout=20)
p.user(user)
p.pass_(pw)
print("stat2", *p.stat())
p.quit()
`

func TestPoplib(t *testing.T) {
	in := startPop3d(t, "", "", mailbox(3, 2000))
	h, port := hostPort(in)
	out := runPy(t, poplibScript, h, port, testAddr.String(), testPassword)
	for _, want := range []string{
		"welcome +OK",
		"stat 3 ",
		"list 3",
		"uidl 3 1 ",
		"top 4 Subject: message 1", // headers plus the blank line
		"retr +OK",
		"Subject: message 2",
		"quit +OK",
		"stat2 2 ",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("poplib output lacks %q:\n%s", want, out)
		}
	}
	if !regexp.MustCompile(`(?m)^dots [1-9]`).MatchString(out) {
		t.Errorf("dot-stuffed lines did not come back intact:\n%s", out)
	}
}

const apopScript = `
import poplib, sys
host, port, user, pw = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
p = poplib.POP3(host, port, timeout=20)
print("apop", p.apop(user, pw).decode())
print("stat", *p.stat())
p.quit()
p = poplib.POP3(host, port, timeout=20)
try:
    p.apop(user, "wrong")
    print("wrong accepted")
except poplib.error_proto as e:
    print("wrong refused", e)
`

func TestPoplibAPOP(t *testing.T) {
	in := startPop3d(t, "", "", mailbox(2, 500))
	h, port := hostPort(in)
	out := runPy(t, apopScript, h, port, testAddr.String(), testPassword)
	if !strings.Contains(out, "apop +OK") || !strings.Contains(out, "stat 2 ") || !strings.Contains(out, "wrong refused") {
		t.Fatalf("APOP with poplib:\n%s", out)
	}
}

func TestCurl(t *testing.T) {
	in := startPop3d(t, "", "", mailbox(3, 3000))
	user := testAddr.String() + ":" + testPassword
	url := "pop3://" + in.POP3
	out, err := runCurl(t, "--user", user, url+"/")
	if err != nil || len(strings.Split(strings.TrimSpace(out), "\n")) != 3 {
		t.Fatalf("curl LIST: %v\n%s", err, out)
	}
	out, err = runCurl(t, "--user", user, url+"/2")
	if err != nil || !strings.Contains(out, "Subject: message 2") || !strings.Contains(out, "\r\n.a line starting with a dot\r\n") {
		t.Fatalf("curl RETR: %v\n%.300s", err, out)
	}
	if want := testMessage(2, 3000); out != want {
		t.Fatalf("curl RETR returned %d octets, want the %d stored", len(out), len(want))
	}
	out, err = runCurl(t, "--user", user, "-X", "UIDL", url+"/")
	if err != nil || len(regexp.MustCompile(`(?m)^\d+ \d{26}\r?$`).FindAllString(out, -1)) != 3 {
		t.Fatalf("curl UIDL: %v\n%s", err, out)
	}
	for _, mech := range []string{"AUTH=PLAIN", "AUTH=LOGIN", "AUTH=CRAM-MD5", "AUTH=+APOP"} {
		out, err = runCurl(t, "--user", user, "--login-options", mech, url+"/1")
		if err != nil || !strings.Contains(out, "Subject: message 1") {
			t.Errorf("curl %s: %v\n%.300s", mech, err, out)
		}
	}
	if _, err := runCurl(t, "--user", testAddr.String()+":wrong", url+"/1"); err == nil {
		t.Error("curl with a wrong password succeeded")
	}
}

func TestBadInputs(t *testing.T) {
	in := startPop3d(t, "", "", mailbox(1, 500))
	clientHello, _ := hex.DecodeString("16030100a5010000a10303" + strings.Repeat("ab", 32) + "000020c02bc02fc02cc030cca9cca8c013c009c014c00a009c009d002f0035c012000a01000058")
	inputs := map[string]string{
		"long line":  "USER " + strings.Repeat("a", 10240) + "\r\n",
		"nul bytes":  "USER a\x00b@example.org\r\nPASS \x00\x00\r\n",
		"garbage":    "\xff\xfe\x01\x02 \x80\x81\r\n\r\n\x1b[31m\r\n",
		"tls hello":  string(clientHello),
		"traversal":  "USER ../../etc/passwd\r\nPASS x\r\nUSER ..\\..\\x@example.org\r\nPASS y\r\n",
		"bare lf":    "CAPA\nNOOP\n",
		"many lines": strings.Repeat("NOOP\r\n", 5000),
	}
	for name, input := range inputs {
		t.Run(name, func(t *testing.T) {
			p := dial(t, in)
			p.Expect("+OK")
			p.Send(input + "\r\nQUIT\r\n")
			// Every answer is +OK/-ERR (or a CAPA listing); the server may close.
			p.C.SetReadDeadline(time.Now().Add(5 * time.Second))
			var got bytes.Buffer
			if _, err := io.Copy(&got, io.LimitReader(p.R, 1<<20)); err != nil {
				t.Fatalf("the server neither answered QUIT nor closed: %v (got %q)", err, got.String())
			}
			for _, l := range strings.Split(strings.TrimSpace(got.String()), "\r\n") {
				if l == "" || strings.HasPrefix(l, "+OK") || strings.HasPrefix(l, "-ERR") || name == "bare lf" {
					continue
				}
				t.Fatalf("unexpected reply line %q", l)
			}
			// The next client is served as if nothing happened.
			q := dial(t, in)
			login(q)
			q.Send("STAT\r\n")
			q.Expect("+OK 1 ")
			q.Send("QUIT\r\n")
			q.Expect("+OK")
		})
	}
	if strings.Contains(in.Log(), "panic") {
		t.Fatalf("a panic was logged:\n%s", in.Log())
	}
}

func TestDropWithoutQuitDeletesNothing(t *testing.T) {
	in := startPop3d(t, "", "", mailbox(2, 500))
	p := dial(t, in)
	login(p)
	p.Send("DELE 1\r\nDELE 2\r\n")
	p.Expect("+OK")
	p.Expect("+OK")
	p.C.Close()
	// The mailbox lock is released once the session is closed.
	var q *pop3dtest.Conn
	var l string
	if !pop3dtest.Eventually(10*time.Second, func() bool {
		q = dial(t, in)
		login2(q)
		if l, _ = q.ReadLine(); strings.HasPrefix(l, "+OK") {
			return true
		}
		q.C.Close()
		return false
	}) {
		t.Fatalf("login after a dropped session: %q", l)
	}
	q.Send("STAT\r\n")
	q.Expect("+OK 2 ")
	q.Send("QUIT\r\n")
	q.Expect("+OK")
}

// login2 sends USER and PASS, leaving the PASS reply unread.
func login2(p *pop3dtest.Conn) {
	p.T.Helper()
	p.Expect("+OK")
	p.Send("USER " + testAddr.String() + "\r\n")
	p.Expect("+OK")
	p.Send("PASS " + testPassword + "\r\n")
}

func TestSIGTERMDrains(t *testing.T) {
	const size = 4 << 20
	in := startPop3d(t, "", "", mailbox(1, size))
	p := dial(t, in)
	login(p)
	idle := dial(t, in)
	idle.Expect("+OK")
	p.Send("RETR 1\r\n")
	p.Expect("+OK")
	if err := in.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// The RETR in flight completes in full.
	want := testMessage(1, size)
	var got strings.Builder
	for {
		l, ok := p.ReadLine()
		if !ok {
			t.Fatalf("connection closed after %d octets of the message", got.Len())
		}
		if l == "." {
			break
		}
		l = strings.TrimPrefix(l, ".")
		got.WriteString(l + "\r\n")
	}
	if got.String() != want {
		t.Fatalf("drained RETR returned %d octets, want %d", got.Len(), len(want))
	}
	// Both connections are closed and the process exits cleanly.
	if l, ok := p.ReadLine(); ok {
		t.Fatalf("after the drained command: %q", l)
	}
	if l, ok := idle.ReadLine(); ok {
		t.Fatalf("idle connection got %q", l)
	}
	err, exited := in.Wait(15 * time.Second)
	if !exited {
		t.Fatal("pop3d did not exit after SIGTERM")
	}
	if err != nil {
		t.Fatalf("pop3d exit: %v", err)
	}
}

func TestCheckFlag(t *testing.T) {
	binPath := pop3dtest.Binary(t, "pop3d")
	dir := t.TempDir()
	good := filepath.Join(dir, "good.toml")
	os.WriteFile(good, []byte("[pop3]\nsocketmax = 100\n"), 0o600)
	out, err := exec.Command(binPath, "-check", "-config", good).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "configuration OK") {
		t.Fatalf("-check on a good file: %v\n%s", err, out)
	}
	bad := filepath.Join(dir, "bad.toml")
	os.WriteFile(bad, []byte("[pop3]\nsocketmax = -1\nnosuchkey = 1\n"), 0o600)
	out, err = exec.Command(binPath, "-check", "-config", bad).CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("-check on a bad file: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "socketmax") || !strings.Contains(string(out), "nosuchkey") {
		t.Fatalf("-check does not name every bad key:\n%s", out)
	}
}

// TestEmptyStoreStaysEmpty: without -demo (a package's service) the first
// start on an empty store creates no domain and no mailbox.
func TestEmptyStoreStaysEmpty(t *testing.T) {
	in := startPop3d(t, "", "", nil)
	// "pop3d ready" is logged after the point where -demo creates the
	// mailbox, and Start waited for it.
	if strings.Contains(in.Stdout(), "curl") || strings.Contains(in.Log(), "demo mailbox") {
		t.Fatalf("a demo mailbox was announced without -demo:\n%s\n%s", in.Stdout(), in.Log())
	}
	out := in.Ctl(t, "", "-json", "list")
	if strings.Contains(out, "example.test") {
		t.Fatalf("pop3ctl list after a first start without -demo: %s", out)
	}
	p := dial(t, in)
	p.Expect("+OK")
	p.Send("USER demo@example.test\r\nPASS x\r\n")
	p.Expect("+OK")
	p.Expect("-ERR")
}

func TestFirstStartAndAdmin(t *testing.T) {
	c := integrationConfig(t, "", "", nil)
	c.Args = []string{"-demo"}
	in := pop3dtest.Start(t, c)
	// Start waited for "pop3d ready" on stderr; stdout is another pipe,
	// copied by its own goroutine.
	curlLine := regexp.MustCompile(`curl -s --user '([^']+)' (pop3://\S+)`)
	var m []string
	if !pop3dtest.Eventually(10*time.Second, func() bool {
		m = curlLine.FindStringSubmatch(in.Stdout())
		return m != nil
	}) {
		t.Fatalf("no curl line printed:\n%s", in.Stdout())
	}
	if !strings.Contains(m[2], in.POP3) {
		t.Fatalf("curl line uses %s, the service listens on %s", m[2], in.POP3)
	}
	out, err := runCurl(t, "--user", m[1], m[2])
	if err != nil || !strings.Contains(out, "Subject: Welcome") {
		t.Fatalf("welcome message: %v\n%s", err, out)
	}
	metrics, err := runCurl(t, "http://"+in.Admin+"/metrics")
	if err != nil || !strings.Contains(metrics, "pop3_connections_total") || !strings.Contains(metrics, `pop3_sockets{state="free"}`) {
		t.Fatalf("/metrics: %v\n%.500s", err, metrics)
	}
	status, err := runCurl(t, "http://"+in.Admin+"/api/status")
	if err != nil || !strings.Contains(status, `"connections"`) {
		t.Fatalf("/api/status: %v\n%s", err, status)
	}
	reload, err := runCurl(t, "-X", "POST", "http://"+in.Admin+"/api/reload")
	if err != nil || !strings.Contains(reload, `"ok": true`) {
		t.Fatalf("/api/reload: %v\n%s", err, reload)
	}
	// SIGHUP reloads too, and the service keeps serving.
	in.Signal(syscall.SIGHUP)
	pop3dtest.WaitFor(t, 10*time.Second, "SIGHUP to reload", func() bool { return strings.Count(in.Log(), "configuration reloaded") >= 2 })
	if out, err := runCurl(t, "--user", m[1], m[2]); err != nil || !strings.Contains(out, "Subject: Welcome") {
		t.Fatalf("after reload: %v\n%s", err, out)
	}
}

func TestCurlTLS(t *testing.T) {
	c := integrationConfig(t, "", "", mailbox(2, 3000))
	c.TLS = true // Start fails the test when no implicit-TLS listener is logged
	in := pop3dtest.Start(t, c)
	user := testAddr.String() + ":" + testPassword
	out, err := runCurl(t, "-k", "--user", user, "pop3s://"+in.POP3S+"/2")
	if err != nil || out != testMessage(2, 3000) {
		t.Fatalf("curl pop3s RETR: %v\n%.300s", err, out)
	}
	out, err = runCurl(t, "-k", "--ssl-reqd", "--user", user, "pop3://"+in.POP3+"/1")
	if err != nil || out != testMessage(1, 3000) {
		t.Fatalf("curl STLS RETR: %v\n%.300s", err, out)
	}
}
