package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pop3svc/pop3svc/cmd/pop3d/pop3dtest"
)

// postfixTimeout bounds each wait on Postfix: a command, a delivery
// showing in its log, a message reaching its queue.
const postfixTimeout = 60 * time.Second

// readmeSnippetPort is the LMTP address the README's snippets use; the
// test puts its own port there.
const readmeSnippetPort = "127.0.0.1:24"

// readmeSnippet returns the fenced block of README.md that follows the
// marker line "<!-- tested by TEST: NAME -->".
func readmeSnippet(t *testing.T, test, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	marker := "<!-- tested by " + test + ": " + name + " -->"
	_, after, ok := strings.Cut(string(b), marker+"\n")
	if !ok {
		t.Fatalf("README.md has no line %q", marker)
	}
	lines := strings.Split(after, "\n")
	if len(lines) == 0 || !strings.HasPrefix(lines[0], "```") {
		t.Fatalf("README.md: no fenced block after %q", marker)
	}
	for i, l := range lines[1:] {
		if l == "```" {
			return strings.Join(lines[1:i+1], "\n") + "\n"
		}
	}
	t.Fatalf("README.md: the block after %q does not end", marker)
	return ""
}

// freeLoopbackPort returns a port of 127.0.0.1 that nothing listened on
// a moment ago. Postfix's master.cf and pop3d's restart need a fixed one.
func freeLoopbackPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, port, _ := net.SplitHostPort(l.Addr().String())
	return port
}

// postfixTool finds a program of Debian's postfix package, in the PATH
// or in /usr/sbin (outside a PATH that is not root's).
func postfixTool(t *testing.T, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	p := filepath.Join("/usr/sbin", name)
	if _, err := os.Stat(p); err != nil {
		pop3dtest.Unavailable(t, name+" is not installed", "postfix")
	}
	return p
}

// postfixInstance is a Postfix of its own: configuration, queue and data
// folders under one temporary folder, started with postfix -c.
type postfixInstance struct {
	t       *testing.T
	dir     string // the instance's folder
	conf    string // config_directory
	queue   string // queue_directory
	smtpd   string // its smtpd's address
	postfix string // the postfix program
	postq   string // the postqueue program
}

// startPostfix writes main.cf (the instance's own lines, then extra's,
// which replace those of the same name) and master.cf, starts Postfix
// and stops it when the test ends.
func startPostfix(t *testing.T, extra string) *postfixInstance {
	t.Helper()
	p := &postfixInstance{t: t, postfix: postfixTool(t, "postfix"), postq: postfixTool(t, "postqueue")}
	if os.Geteuid() != 0 {
		pop3dtest.Unavailable(t, "starting a Postfix instance needs root", "postfix (and running the tests as root)")
	}
	pu, err := user.Lookup("postfix")
	if err != nil {
		pop3dtest.Unavailable(t, "no postfix user", "postfix")
	}
	uid, _ := strconv.Atoi(pu.Uid)

	// Postfix's daemons run as the postfix user: every folder on the way
	// to the queue must be searchable by it, and the configuration owned
	// by root and writable by root only.
	p.dir, err = os.MkdirTemp("", "postfix-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(p.dir) })
	if err := os.Chmod(p.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	p.conf = filepath.Join(p.dir, "conf")
	p.queue = filepath.Join(p.dir, "queue")
	data := filepath.Join(p.dir, "data")
	for _, d := range []string{p.conf, p.queue, data} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chown(data, uid, -1); err != nil {
		t.Fatal(err)
	}
	p.smtpd = "127.0.0.1:" + freeLoopbackPort(t)
	main := fmt.Sprintf(`compatibility_level = 3.6
queue_directory = %[1]s
data_directory = %[2]s
maillog_file = %[3]s
maillog_file_prefixes = %[4]s
myhostname = mx.postfix.test
inet_interfaces = loopback-only
inet_protocols = ipv4
mydestination =
mynetworks = 127.0.0.0/8
alias_maps =
alias_database =
local_recipient_maps =
`, p.queue, data, filepath.Join(p.dir, "maillog"), p.dir)
	// A parameter extra sets replaces the instance's line (Postfix would
	// warn about the second one on every command's output).
	for _, l := range strings.Split(extra, "\n") {
		if k, _, ok := strings.Cut(l, "="); ok {
			main = regexp.MustCompile(`(?m)^`+regexp.QuoteMeta(strings.TrimSpace(k))+` =.*\n`).ReplaceAllString(main, "")
		}
	}
	main += extra
	// The services a mail hub needs, none chrooted, and smtpd on the
	// test's port only.
	master := p.smtpd + ` inet n - n - - smtpd
pickup    unix  n - n 60 1 pickup
cleanup   unix  n - n -  0 cleanup
qmgr      unix  n - n 300 1 qmgr
rewrite   unix  - - n -  - trivial-rewrite
bounce    unix  - - n -  0 bounce
defer     unix  - - n -  0 bounce
trace     unix  - - n -  0 bounce
verify    unix  - - n -  1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n -  - proxymap
smtp      unix  - - n -  - smtp
relay     unix  - - n -  - smtp
showq     unix  n - n -  - showq
error     unix  - - n -  - error
retry     unix  - - n -  - error
discard   unix  - - n -  - discard
lmtp      unix  - - n -  - lmtp
local     unix  - n n -  - local
anvil     unix  - - n -  1 anvil
scache    unix  - - n -  1 scache
postlog   unix-dgram n - n - 1 postlogd
`
	for name, text := range map[string]string{"main.cf": main, "master.cf": master} {
		if err := os.WriteFile(filepath.Join(p.conf, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	p.run("postfix", "check")
	p.run("postfix", "start")
	t.Cleanup(p.stop)
	pop3dtest.WaitFor(t, postfixTimeout, "Postfix's smtpd listening on "+p.smtpd, func() bool {
		c, err := net.DialTimeout("tcp", p.smtpd, time.Second)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return p
}

// run runs postfix or postqueue with the instance's configuration and
// fails the test when it fails.
func (p *postfixInstance) run(prog string, args ...string) string {
	p.t.Helper()
	out, err := p.try(prog, args...)
	if err != nil {
		p.t.Fatalf("%s -c %s %s: %v\n%s\nmaillog:\n%s", prog, p.conf, strings.Join(args, " "), err, out, p.log())
	}
	return out
}

func (p *postfixInstance) try(prog string, args ...string) (string, error) {
	path := p.postfix
	if prog == "postqueue" {
		path = p.postq
	}
	ctx, cancel := context.WithTimeout(context.Background(), postfixTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, append([]string{"-c", p.conf}, args...)...).CombinedOutput()
	return string(out), err
}

// stop stops the instance and waits until its master process is gone;
// it is killed when it outlives the wait.
func (p *postfixInstance) stop() {
	t := p.t
	pid := 0
	if b, err := os.ReadFile(filepath.Join(p.queue, "pid", "master.pid")); err == nil {
		pid, _ = strconv.Atoi(strings.TrimSpace(string(b)))
	}
	if out, err := p.try("postfix", "stop"); err != nil {
		t.Errorf("postfix -c %s stop: %v\n%s", p.conf, err, out)
	}
	gone := func() bool { return pid <= 0 || syscall.Kill(pid, 0) != nil }
	if !pop3dtest.Eventually(postfixTimeout, gone) {
		t.Errorf("Postfix's master (pid %d) still runs %v after postfix stop: killed", pid, postfixTimeout)
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	if t.Failed() {
		t.Logf("Postfix's maillog:\n%s", p.log())
	}
}

func (p *postfixInstance) log() string {
	b, _ := os.ReadFile(filepath.Join(p.dir, "maillog"))
	return string(b)
}

// waitLog waits until Postfix logged a line matching re and returns it.
func (p *postfixInstance) waitLog(what string, re *regexp.Regexp) string {
	p.t.Helper()
	var line string
	pop3dtest.WaitFor(p.t, postfixTimeout, what, func() bool {
		line = re.FindString(p.log())
		return line != ""
	})
	return line
}

// queued returns Postfix's queue as postqueue -j lists it.
func (p *postfixInstance) queued() []postqueueEntry {
	p.t.Helper()
	var out []postqueueEntry
	sc := bufio.NewScanner(strings.NewReader(p.run("postqueue", "-j")))
	for sc.Scan() {
		var e postqueueEntry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			p.t.Fatalf("postqueue -j: %v: %q", err, sc.Text())
		}
		out = append(out, e)
	}
	return out
}

type postqueueEntry struct {
	QueueName  string `json:"queue_name"`
	QueueID    string `json:"queue_id"`
	Recipients []struct {
		Address     string `json:"address"`
		DelayReason string `json:"delay_reason"`
	} `json:"recipients"`
}

var queuedAsRe = regexp.MustCompile(`250 2\.0\.0 Ok: queued as ([0-9A-Za-z]+)`)

// waitDeferred waits until Postfix holds message id for rcpt in its
// deferred queue with a delay reason (containing reason, when not "").
func (p *postfixInstance) waitDeferred(t *testing.T, id, rcpt, reason string) {
	t.Helper()
	pop3dtest.WaitFor(t, postfixTimeout, id+" deferred in Postfix's queue", func() bool {
		for _, e := range p.queued() {
			if e.QueueID == id && e.QueueName == "deferred" && len(e.Recipients) == 1 &&
				e.Recipients[0].Address == rcpt && e.Recipients[0].DelayReason != "" &&
				strings.Contains(e.Recipients[0].DelayReason, reason) {
				return true
			}
		}
		return false
	})
}

// flush asks Postfix to deliver its queue now, waits for the log line
// re (what), and expects the queue to empty (the queue manager removes
// the file a moment after the delivery agent logs).
func (p *postfixInstance) flush(t *testing.T, what string, re *regexp.Regexp) {
	t.Helper()
	p.run("postqueue", "-f")
	p.waitLog(what, re)
	var q []postqueueEntry
	if !pop3dtest.Eventually(postfixTimeout, func() bool {
		q = p.queued()
		return len(q) == 0
	}) {
		t.Fatalf("Postfix's queue after the flush: %+v", q)
	}
}

// send hands a message to Postfix's smtpd with swaks and returns its
// Postfix queue id.
func (p *postfixInstance) send(from, to, subject string) string {
	p.t.Helper()
	swaks := pop3dtest.NeedTool(p.t, "swaks")
	host, port, _ := net.SplitHostPort(p.smtpd)
	ctx, cancel := context.WithTimeout(context.Background(), postfixTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, swaks, "--server", host, "--port", port,
		"--from", from, "--to", to, "--header", "Subject: "+subject,
		"--body", "sent through Postfix: "+subject).CombinedOutput()
	if err != nil {
		p.t.Fatalf("swaks: %v\n%s", err, out)
	}
	m := queuedAsRe.FindStringSubmatch(string(out))
	if m == nil {
		p.t.Fatalf("swaks: Postfix did not queue the message:\n%s", out)
	}
	return m[1]
}

// poplibRetrieve prints every message of a mailbox, retrieved with
// Python's poplib, each after a "=== message N" line.
const poplibRetrieve = `
import poplib, sys
host, port, user, pw = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
p = poplib.POP3(host, port, timeout=20)
p.user(user)
p.pass_(pw)
n, _ = p.stat()
for i in range(1, n + 1):
    print("=== message", i)
    print("\n".join(l.decode() for l in p.retr(i)[1]))
p.quit()
`

// poplibMessages retrieves a mailbox's messages with poplib, once it
// holds at least want of them (30 s at most): an LMTP 250 means the
// message is in pop3d's queue, and the delivery service moves it into
// the mailbox a moment later.
func poplibMessages(t *testing.T, srv *pop3dtest.Server, mailbox, password string, want int) []string {
	t.Helper()
	h, port := hostPort(srv)
	var msgs []string
	pop3dtest.Eventually(30*time.Second, func() bool {
		out := runPy(t, poplibRetrieve, h, port, mailbox, password)
		msgs = regexp.MustCompile(`(?m)^=== message \d+\n`).Split(out, -1)[1:]
		return len(msgs) >= want
	})
	return msgs
}

// TestPostfixLMTP runs Debian's Postfix as a mail hub in front of pop3d,
// configured with the README's lines: Postfix hands the domain's mail to
// pop3d's LMTP listener, bounces a message for an unknown mailbox with
// our 550, and keeps a message queued while pop3d is down until it is
// back.
func TestPostfixLMTP(t *testing.T) {
	const (
		alicePw = "alice-Pw-123"
		bobPw   = "bob-Pw-456"
	)
	lmtp := "127.0.0.1:" + freeLoopbackPort(t)
	toml := readmeSnippet(t, "TestPostfixLMTP", "pop3d.toml")
	mainCf := readmeSnippet(t, "TestPostfixLMTP", "main.cf")
	for name, s := range map[string]string{"pop3d.toml": toml, "main.cf": mainCf} {
		if !strings.Contains(s, readmeSnippetPort) {
			t.Fatalf("README's %s snippet does not name %s:\n%s", name, readmeSnippetPort, s)
		}
	}
	smtpTable, ok := strings.CutPrefix(strings.ReplaceAll(toml, readmeSnippetPort, lmtp), "[smtp]\n")
	if !ok {
		t.Fatalf("README's pop3d.toml snippet is not an [smtp] table:\n%s", toml)
	}
	mailRoot := filepath.Join(t.TempDir(), "mailroot")
	cfg := pop3dtest.Config{
		MailRoot:  mailRoot,
		SMTPTable: smtpTable,
		Setup: [][]string{
			{"add", "example.org"},
			{"add", "alice@example.org", "-password", alicePw},
			{"add", "bob@example.org", "-password", bobPw},
		},
	}
	srv := pop3dtest.Start(t, cfg)
	pf := startPostfix(t, strings.ReplaceAll(mainCf, readmeSnippetPort, lmtp))
	sentRe := func(id, rcpt string) *regexp.Regexp {
		return regexp.MustCompile(`(?m)^.*` + id + `: to=<` + regexp.QuoteMeta(rcpt) + `>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:\d+.*status=sent.*$`)
	}

	// Delivered: Postfix's smtpd takes it, its lmtp client hands it to
	// pop3d, and a POP3 client reads it.
	id := pf.send("bob@example.org", "alice@example.org", "through Postfix")
	pf.waitLog("Postfix delivering "+id+" over LMTP", sentRe(id, "alice@example.org"))
	msgs := poplibMessages(t, srv, "alice@example.org", alicePw, 1)
	if len(msgs) != 1 || !strings.Contains(msgs[0], "Subject: through Postfix") ||
		!strings.Contains(msgs[0], "sent through Postfix: through Postfix") ||
		!strings.Contains(msgs[0], "by mx.postfix.test (Postfix)") {
		t.Fatalf("alice's mailbox over POP3: %q", msgs)
	}

	// An unknown mailbox: pop3d answers 550 5.1.1, Postfix bounces, and
	// its bounce reaches the sender's mailbox through pop3d as well.
	id = pf.send("bob@example.org", "nobody@example.org", "for nobody")
	line := pf.waitLog("Postfix bouncing "+id, regexp.MustCompile(`(?m)^.*`+id+`: to=<nobody@example\.org>.*status=bounced.*$`))
	if !strings.Contains(line, "550 5.1.1") {
		t.Fatalf("the bounce does not give pop3d's 550 5.1.1: %s", line)
	}
	pf.waitLog("the bounce for "+id+" delivered to bob", regexp.MustCompile(`(?m)^.*: to=<bob@example\.org>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:\d+.*status=sent.*$`))
	msgs = poplibMessages(t, srv, "bob@example.org", bobPw, 1)
	if len(msgs) != 1 || !strings.Contains(msgs[0], "Undelivered Mail Returned to Sender") ||
		!strings.Contains(msgs[0], "nobody@example.org") || !strings.Contains(msgs[0], "550 5.1.1") {
		t.Fatalf("bob's mailbox (the bounce) over POP3: %q", msgs)
	}

	// pop3d down: a temporary failure, the message stays deferred in
	// Postfix's queue; after pop3d is back, a flush delivers it.
	if err := srv.Stop(); err != nil {
		t.Fatalf("stopping pop3d: %v", err)
	}
	id = pf.send("bob@example.org", "alice@example.org", "while pop3d was down")
	pf.waitDeferred(t, id, "alice@example.org", "")
	cfg.Setup = nil
	srv = pop3dtest.Start(t, cfg)
	pf.flush(t, "Postfix delivering "+id+" after the flush", sentRe(id, "alice@example.org"))
	msgs = poplibMessages(t, srv, "alice@example.org", alicePw, 2)
	if len(msgs) != 2 || !strings.Contains(msgs[1], "Subject: while pop3d was down") {
		t.Fatalf("alice's mailbox after the flush: %q", msgs)
	}
}

// readmeCtlPath is where the README's snippets run pop3ctl from; the
// tests put their copy there.
const readmeCtlPath = "/usr/local/bin/pop3ctl"

// publicCtl copies the built pop3ctl into a folder every user may
// enter, for an MTA running it as another user than root.
func publicCtl(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "pop3ctl-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(pop3dtest.Binary(t, "pop3ctl"))
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "pop3ctl")
	if err := os.WriteFile(p, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestPostfixMailboxCommand runs Debian's Postfix with the README's
// mailbox_command lines: its local(8) runs pop3ctl deliver -lmtp as the
// recipient's Unix user (the system's news account), which cannot read
// the mail root (pop3d's, 0700), and pop3d's LMTP listener stores the
// message. A Unix user without a mailbox (games) is bounced with deliver's
// 67, and while pop3d is down deliver's 75 keeps the message deferred.
func TestPostfixMailboxCommand(t *testing.T) {
	const newsPw = "news-Pw-123"
	for _, name := range []string{"news", "games"} {
		if _, err := user.Lookup(name); err != nil {
			t.Fatalf("the Unix account %s (every Debian system has it, from base-passwd): %v", name, err)
		}
	}
	lmtp := "127.0.0.1:" + freeLoopbackPort(t)
	toml := readmeSnippet(t, "TestPostfixLMTP", "pop3d.toml")
	mainCf := readmeSnippet(t, "TestPostfixMailboxCommand", "main.cf")
	for _, want := range []string{readmeSnippetPort, readmeCtlPath} {
		if !strings.Contains(mainCf, want) {
			t.Fatalf("README's mailbox_command snippet does not name %s:\n%s", want, mainCf)
		}
	}
	smtpTable, ok := strings.CutPrefix(strings.ReplaceAll(toml, readmeSnippetPort, lmtp), "[smtp]\n")
	if !ok {
		t.Fatalf("README's pop3d.toml snippet is not an [smtp] table:\n%s", toml)
	}
	mailRoot := filepath.Join(t.TempDir(), "mailroot")
	cfg := pop3dtest.Config{
		MailRoot:  mailRoot,
		SMTPTable: smtpTable,
		Setup: [][]string{
			{"add", "example.org"},
			{"add", "news@example.org", "-password", newsPw},
		},
	}
	srv := pop3dtest.Start(t, cfg)
	ctl := publicCtl(t)
	r := strings.NewReplacer(readmeSnippetPort, lmtp, readmeCtlPath, ctl)
	pf := startPostfix(t, r.Replace(mainCf))
	localRe := func(id, rcpt, status string) *regexp.Regexp {
		return regexp.MustCompile(`(?m)^.*` + id + `: to=<` + regexp.QuoteMeta(rcpt) + `>, relay=local,.*status=` + status + `.*$`)
	}

	// Delivered: local(8) runs deliver as news, pop3d stores it.
	id := pf.send("bob@example.net", "news@example.org", "through local")
	line := pf.waitLog("local(8) delivering "+id+" to news", localRe(id, "news@example.org", "sent"))
	if !strings.Contains(line, "delivered to command") {
		t.Fatalf("Postfix did not deliver through mailbox_command: %s", line)
	}
	msgs := poplibMessages(t, srv, "news@example.org", newsPw, 1)
	if len(msgs) != 1 || !strings.Contains(msgs[0], "Subject: through local") ||
		!strings.Contains(msgs[0], "Return-Path: <bob@example.net>") ||
		!strings.Contains(msgs[0], "sent through Postfix: through local") ||
		!strings.Contains(msgs[0], "by mx.postfix.test (Postfix)") ||
		strings.HasPrefix(msgs[0], "From ") {
		t.Fatalf("news's mailbox over POP3: %q", msgs)
	}

	// games is a Unix user without a mailbox: deliver exits 67, Postfix
	// bounces with 5.1.1, and the bounce reaches the sender, news.
	id = pf.send("news@example.org", "games@example.org", "for games")
	line = pf.waitLog("local(8) bouncing "+id, localRe(id, "games@example.org", "bounced"))
	if !strings.Contains(line, "dsn=5.1.1") || !strings.Contains(line, "550 5.1.1") {
		t.Fatalf("the bounce does not give deliver's 67 (5.1.1) and pop3d's 550 5.1.1: %s", line)
	}
	pf.waitLog("the bounce for "+id+" delivered to news", regexp.MustCompile(`(?m)^.*: to=<news@example\.org>, relay=local,.*status=sent.*$\n(?s:.*)^.*: to=<news@example\.org>, relay=local,.*status=sent.*$`))
	msgs = poplibMessages(t, srv, "news@example.org", newsPw, 2)
	if len(msgs) != 2 || !strings.Contains(msgs[1], "Undelivered Mail Returned to Sender") ||
		!strings.Contains(msgs[1], "games@example.org") || !strings.Contains(msgs[1], "550 5.1.1") {
		t.Fatalf("news's mailbox (the bounce) over POP3: %q", msgs)
	}

	// pop3d down: deliver exits 75, the message stays deferred; after
	// pop3d is back, a flush delivers it.
	if err := srv.Stop(); err != nil {
		t.Fatalf("stopping pop3d: %v", err)
	}
	id = pf.send("bob@example.net", "news@example.org", "while pop3d was down")
	pf.waitDeferred(t, id, "news@example.org", "cannot reach the LMTP server")
	cfg.Setup = nil
	srv = pop3dtest.Start(t, cfg)
	pf.flush(t, "local(8) delivering "+id+" after the flush", localRe(id, "news@example.org", "sent"))
	msgs = poplibMessages(t, srv, "news@example.org", newsPw, 3)
	if len(msgs) != 3 || !strings.Contains(msgs[2], "Subject: while pop3d was down") {
		t.Fatalf("news's mailbox after the flush: %q", msgs)
	}
}
