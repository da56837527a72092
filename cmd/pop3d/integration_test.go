package main

import (
	"bufio"
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
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pop3svc/pop3svc/store"
	"github.com/pop3svc/pop3svc/store/filestore"
)

// The integration tests build pop3d once and run it as a separate process
// on loopback ports chosen by the kernel (port 0), reading the bound
// addresses from its log.

var binPath string

// raceEnabled builds pop3d with the race detector when the tests run with it.
var raceEnabled bool

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "pop3d-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binPath = filepath.Join(dir, "pop3d")
	args := []string{"build", "-o", binPath}
	if raceEnabled {
		args = append(args, "-race")
	}
	out, err := exec.Command("go", append(args, ".")...).CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "go build: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// needTool skips when a client program is missing, except in CI (env CI
// set), where a missing client fails the test.
func needTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is required in CI: %v", name, err)
		}
		t.Skipf("%s not installed", name)
	}
	return p
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type instance struct {
	t      *testing.T
	cmd    *exec.Cmd
	dir    string
	pop3   string // host:port
	pop3s  string // implicit TLS listener, when configured
	admin  string
	log    *syncBuffer
	stdout *syncBuffer
	done   chan error
}

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

// startPop3d writes a configuration, prepares the store with setup and
// runs pop3d.
// top holds top-level keys, pop3 keys of the [pop3] table.
func startPop3d(t *testing.T, top, pop3 string, setup func(ctx context.Context, st store.Store)) *instance {
	t.Helper()
	dir := t.TempDir()
	if top == "" {
		top = "logging = 4"
	}
	if !strings.Contains(pop3, "listen_tls") {
		pop3 += "\nlisten_tls = []"
	}
	cfg := fmt.Sprintf(`mailroot = "mailroot"
%s
[auth]
fail_delay = "20ms"
penalty = "0s"
penalty_max = "0s"
[pop3]
listen = ["127.0.0.1:0"]
login_timeout = "5s"
%s
[smtp]
listen = ["127.0.0.1:0"]
[admin]
listen = "127.0.0.1:0"
`, top, pop3)
	cfgPath := filepath.Join(dir, "pop3d.toml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	if setup != nil {
		st, err := filestore.Open(filepath.Join(dir, "mailroot"), filestore.Options{Node: 1})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		setup(ctx, st)
		cancel()
		st.Close()
	}
	in := &instance{t: t, dir: dir, log: &syncBuffer{}, stdout: &syncBuffer{}, done: make(chan error, 1)}
	in.cmd = exec.Command(binPath, "-config", cfgPath)
	in.cmd.Dir = dir
	in.cmd.Stderr = in.log
	in.cmd.Stdout = in.stdout
	if err := in.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { in.done <- in.cmd.Wait() }()
	t.Cleanup(func() {
		in.stop()
		if strings.Contains(in.log.String(), "DATA RACE") {
			t.Errorf("pop3d reported a data race")
		}
		if t.Failed() {
			t.Logf("pop3d log:\n%s", in.log.String())
		}
	})
	popRe := regexp.MustCompile(`msg="POP3 listening".* addr=(\S+) tls=false`)
	popsRe := regexp.MustCompile(`msg="POP3 listening".* addr=(\S+) tls=true`)
	adminRe := regexp.MustCompile(`msg="admin listening" addr=(\S+)`)
	deadline := time.Now().Add(20 * time.Second)
	for {
		l := in.log.String()
		if m := popRe.FindStringSubmatch(l); m != nil {
			in.pop3 = m[1]
		}
		if m := popsRe.FindStringSubmatch(l); m != nil {
			in.pop3s = m[1]
		}
		if m := adminRe.FindStringSubmatch(l); m != nil {
			in.admin = m[1]
		}
		if in.pop3 != "" && in.admin != "" && strings.Contains(l, "pop3d ready") {
			return in
		}
		select {
		case err := <-in.done:
			in.done <- err
			t.Fatalf("pop3d exited: %v\n%s", err, l)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("pop3d did not start:\n%s", l)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop sends SIGTERM and waits for the exit.
func (in *instance) stop() error {
	if in.cmd.ProcessState != nil {
		return nil
	}
	_ = in.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-in.done:
		in.done <- err
		return err
	case <-time.After(20 * time.Second):
		_ = in.cmd.Process.Kill()
		err := <-in.done
		in.done <- err
		return fmt.Errorf("pop3d did not stop within 20s")
	}
}

func (in *instance) hostPort() (string, string) {
	h, p, _ := net.SplitHostPort(in.pop3)
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

// pop is a minimal raw client for protocol-level checks.
type pop struct {
	t *testing.T
	c net.Conn
	r *bufio.Reader
}

func (in *instance) dial(t *testing.T) *pop {
	t.Helper()
	c, err := net.DialTimeout("tcp", in.pop3, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &pop{t: t, c: c, r: bufio.NewReader(c)}
}

func (p *pop) send(s string) {
	p.t.Helper()
	p.c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(p.c, s); err != nil {
		p.t.Fatalf("send: %v", err)
	}
}

// line reads one line; ok false on EOF or a closed connection.
func (p *pop) line() (string, bool) {
	p.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	l, err := p.r.ReadString('\n')
	if err != nil {
		if ne, isNet := err.(net.Error); isNet && ne.Timeout() {
			p.t.Fatalf("read timed out (got %q)", l)
		}
		return l, false
	}
	return strings.TrimRight(l, "\r\n"), true
}

func (p *pop) expectPrefix(prefix string) string {
	p.t.Helper()
	l, ok := p.line()
	if !ok || !strings.HasPrefix(l, prefix) {
		p.t.Fatalf("got %q (open %v), want %q...", l, ok, prefix)
	}
	return l
}

// multi reads a multi-line response body up to the terminating dot line.
func (p *pop) multi() []string {
	p.t.Helper()
	var out []string
	for {
		l, ok := p.line()
		if !ok {
			p.t.Fatalf("connection closed inside a multi-line response")
		}
		if l == "." {
			return out
		}
		out = append(out, l)
	}
}

func (p *pop) login() {
	p.t.Helper()
	p.expectPrefix("+OK")
	p.send("USER " + testAddr.String() + "\r\n")
	p.expectPrefix("+OK")
	p.send("PASS " + testPassword + "\r\n")
	p.expectPrefix("+OK")
}

func runPy(t *testing.T, script string, args ...string) string {
	t.Helper()
	py := needTool(t, "python3")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, py, append([]string{"-c", script}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("python: %v\n%s", err, out)
	}
	return string(out)
}

func runCurl(t *testing.T, args ...string) (string, error) {
	t.Helper()
	curl := needTool(t, "curl")
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
	h, port := in.hostPort()
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
	h, port := in.hostPort()
	out := runPy(t, apopScript, h, port, testAddr.String(), testPassword)
	if !strings.Contains(out, "apop +OK") || !strings.Contains(out, "stat 2 ") || !strings.Contains(out, "wrong refused") {
		t.Fatalf("APOP with poplib:\n%s", out)
	}
}

func TestCurl(t *testing.T) {
	in := startPop3d(t, "", "", mailbox(3, 3000))
	user := testAddr.String() + ":" + testPassword
	url := "pop3://" + in.pop3
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
			p := in.dial(t)
			p.expectPrefix("+OK")
			p.send(input + "\r\nQUIT\r\n")
			// Every answer is +OK/-ERR (or a CAPA listing); the server may close.
			p.c.SetReadDeadline(time.Now().Add(5 * time.Second))
			var got bytes.Buffer
			if _, err := io.Copy(&got, io.LimitReader(p.r, 1<<20)); err != nil {
				t.Fatalf("the server neither answered QUIT nor closed: %v (got %q)", err, got.String())
			}
			for _, l := range strings.Split(strings.TrimSpace(got.String()), "\r\n") {
				if l == "" || strings.HasPrefix(l, "+OK") || strings.HasPrefix(l, "-ERR") || name == "bare lf" {
					continue
				}
				t.Fatalf("unexpected reply line %q", l)
			}
			// The next client is served as if nothing happened.
			q := in.dial(t)
			q.login()
			q.send("STAT\r\n")
			q.expectPrefix("+OK 1 ")
			q.send("QUIT\r\n")
			q.expectPrefix("+OK")
		})
	}
	if strings.Contains(in.log.String(), "panic") {
		t.Fatalf("a panic was logged:\n%s", in.log.String())
	}
}

func TestDropWithoutQuitDeletesNothing(t *testing.T) {
	in := startPop3d(t, "", "", mailbox(2, 500))
	p := in.dial(t)
	p.login()
	p.send("DELE 1\r\nDELE 2\r\n")
	p.expectPrefix("+OK")
	p.expectPrefix("+OK")
	p.c.Close()
	// The mailbox lock is released once the session is closed.
	deadline := time.Now().Add(10 * time.Second)
	for {
		q := in.dial(t)
		q.login2()
		if l, _ := q.line(); strings.HasPrefix(l, "+OK") {
			q.send("STAT\r\n")
			q.expectPrefix("+OK 2 ")
			q.send("QUIT\r\n")
			q.expectPrefix("+OK")
			return
		} else if time.Now().After(deadline) {
			t.Fatalf("login after a dropped session: %q", l)
		}
		q.c.Close()
		time.Sleep(50 * time.Millisecond)
	}
}

// login2 sends USER and PASS, leaving the PASS reply unread.
func (p *pop) login2() {
	p.t.Helper()
	p.expectPrefix("+OK")
	p.send("USER " + testAddr.String() + "\r\n")
	p.expectPrefix("+OK")
	p.send("PASS " + testPassword + "\r\n")
}

func TestSIGTERMDrains(t *testing.T) {
	const size = 4 << 20
	in := startPop3d(t, "", "", mailbox(1, size))
	p := in.dial(t)
	p.login()
	idle := in.dial(t)
	idle.expectPrefix("+OK")
	p.send("RETR 1\r\n")
	p.expectPrefix("+OK")
	if err := in.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// The RETR in flight completes in full.
	want := testMessage(1, size)
	var got strings.Builder
	for {
		l, ok := p.line()
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
	if l, ok := p.line(); ok {
		t.Fatalf("after the drained command: %q", l)
	}
	if l, ok := idle.line(); ok {
		t.Fatalf("idle connection got %q", l)
	}
	select {
	case err := <-in.done:
		in.done <- err
		if err != nil {
			t.Fatalf("pop3d exit: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("pop3d did not exit after SIGTERM")
	}
}

func TestCheckFlag(t *testing.T) {
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

func TestFirstStartAndAdmin(t *testing.T) {
	in := startPop3d(t, "", "", nil)
	m := regexp.MustCompile(`curl -s --user '([^']+)' (pop3://\S+)`).FindStringSubmatch(in.stdout.String())
	if m == nil {
		t.Fatalf("no curl line printed:\n%s", in.stdout.String())
	}
	if !strings.Contains(m[2], in.pop3) {
		t.Fatalf("curl line uses %s, the service listens on %s", m[2], in.pop3)
	}
	out, err := runCurl(t, "--user", m[1], m[2])
	if err != nil || !strings.Contains(out, "Subject: Welcome") {
		t.Fatalf("welcome message: %v\n%s", err, out)
	}
	metrics, err := runCurl(t, "http://"+in.admin+"/metrics")
	if err != nil || !strings.Contains(metrics, "pop3_connections_total") || !strings.Contains(metrics, `pop3_sockets{state="free"}`) {
		t.Fatalf("/metrics: %v\n%.500s", err, metrics)
	}
	status, err := runCurl(t, "http://"+in.admin+"/api/status")
	if err != nil || !strings.Contains(status, `"connections"`) {
		t.Fatalf("/api/status: %v\n%s", err, status)
	}
	reload, err := runCurl(t, "-X", "POST", "http://"+in.admin+"/api/reload")
	if err != nil || !strings.Contains(reload, `"ok": true`) {
		t.Fatalf("/api/reload: %v\n%s", err, reload)
	}
	// SIGHUP reloads too, and the service keeps serving.
	in.cmd.Process.Signal(syscall.SIGHUP)
	deadline := time.Now().Add(10 * time.Second)
	for strings.Count(in.log.String(), "configuration reloaded") < 2 {
		if time.Now().After(deadline) {
			t.Fatal("SIGHUP did not reload")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if out, err := runCurl(t, "--user", m[1], m[2]); err != nil || !strings.Contains(out, "Subject: Welcome") {
		t.Fatalf("after reload: %v\n%s", err, out)
	}
}

func TestCurlTLS(t *testing.T) {
	in := startPop3d(t, "", `listen_tls = ["127.0.0.1:0"]`, mailbox(2, 3000))
	if in.pop3s == "" {
		t.Fatal("no implicit-TLS listener logged")
	}
	user := testAddr.String() + ":" + testPassword
	out, err := runCurl(t, "-k", "--user", user, "pop3s://"+in.pop3s+"/2")
	if err != nil || out != testMessage(2, 3000) {
		t.Fatalf("curl pop3s RETR: %v\n%.300s", err, out)
	}
	out, err = runCurl(t, "-k", "--ssl-reqd", "--user", user, "pop3://"+in.pop3+"/1")
	if err != nil || out != testMessage(1, 3000) {
		t.Fatalf("curl STLS RETR: %v\n%.300s", err, out)
	}
}
