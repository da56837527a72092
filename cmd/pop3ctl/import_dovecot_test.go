package main_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pop3svc/pop3svc/cmd/pop3d/pop3dtest"
)

const (
	doveUser     = "alice@example.test"
	dovePassword = "old-secret"
	doveMessages = 300
	// dave's mailbox is getmail's (fetchmail takes alice's): a second
	// mailbox, imported through a users file.
	daveUser     = "dave@example.test"
	daveMessages = 40
)

// dovecot is Debian's Dovecot run as the test's own instance: its own
// configuration, folders and loopback port; nothing outside dir changes.
type dovecot struct {
	dir, addr, maildir string
	cmd                *exec.Cmd
}

// freePort returns a loopback port nobody listens on now.
func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// startDovecot fills a Maildir with doveMessages messages and serves it.
func startDovecot(t *testing.T) *dovecot {
	t.Helper()
	bin := pop3dtest.NeedTool(t, "dovecot")
	if os.Geteuid() != 0 {
		pop3dtest.Unavailable(t, "Dovecot's own instance needs root to switch to its mail user", "dovecot-pop3d (and running the tests as root)")
	}
	mailUser, err := user.Lookup("nobody")
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(mailUser.Uid)
	gid, _ := strconv.Atoi(mailUser.Gid)
	d := &dovecot{dir: t.TempDir(), addr: freePort(t)}
	// Dovecot's mail processes run as nobody: the folders above must be passable.
	for p := d.dir; p != "/" && p != os.TempDir(); p = filepath.Dir(p) {
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	d.maildir = filepath.Join(d.dir, "mail", "alice", "Maildir")
	fillMaildir(t, d.maildir, doveMessages)
	fillMaildir(t, filepath.Join(d.dir, "mail", "dave", "Maildir"), daveMessages)
	if err := filepath.Walk(filepath.Join(d.dir, "mail"), func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, gid)
	}); err != nil {
		t.Fatal(err)
	}
	for _, sub := range []string{"run", "state"} {
		if err := os.MkdirAll(filepath.Join(d.dir, sub), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	passwd := filepath.Join(d.dir, "passwd")
	if err := os.WriteFile(passwd, []byte(doveUser+":{PLAIN}"+dovePassword+"::::::\n"+daveUser+":{PLAIN}"+dovePassword+"::::::\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return d.run(t, bin, uid, gid, passwd)
}

// fillMaildir makes a Maildir holding n messages of growing sizes, some
// with lines starting with a dot.
func fillMaildir(t *testing.T, maildir string, n int) {
	t.Helper()
	for _, sub := range []string{"cur", "new", "tmp"} {
		if err := os.MkdirAll(filepath.Join(maildir, sub), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < n; i++ {
		body := fmt.Sprintf("From: sender%d@example.org\nTo: alice@example.test\nSubject: message %d\nMessage-ID: <%d@example.org>\n\n", i, i, i)
		for l := 0; l < 5+(i%13)*40; l++ {
			body += fmt.Sprintf("line %d of message %d, with some text to give it weight\n", l, i)
			if l%17 == 3 {
				body += ".a line that starts with a dot\n"
			}
		}
		name := fmt.Sprintf("%d.M%dP100.oldhost", 1700000000+i, i)
		if err := os.WriteFile(filepath.Join(maildir, "new", name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// run writes Dovecot's configuration and starts it.
func (d *dovecot) run(t *testing.T, bin string, uid, gid int, passwd string) *dovecot {
	t.Helper()
	_, port, _ := net.SplitHostPort(d.addr)
	conf := fmt.Sprintf(`base_dir = %[1]s/run
state_dir = %[1]s/state
log_path = %[1]s/dovecot.log
protocols = pop3
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain
first_valid_uid = %[2]d
first_valid_gid = %[3]d
default_internal_user = dovecot
default_login_user = dovenull
mail_location = maildir:%[1]s/mail/%%n/Maildir
pop3_uidl_format = %%08Xu%%08Xv
passdb {
  driver = passwd-file
  args = %[4]s
}
userdb {
  driver = static
  args = uid=%[2]d gid=%[3]d home=%[1]s/mail/%%n
}
service pop3-login {
  inet_listener pop3 {
    address = 127.0.0.1
    port = %[5]s
  }
}
`, d.dir, uid, gid, passwd, port)
	confPath := filepath.Join(d.dir, "dovecot.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	d.cmd = exec.Command(bin, "-F", "-c", confPath)
	out, _ := os.Create(filepath.Join(d.dir, "dovecot.stderr"))
	d.cmd.Stdout, d.cmd.Stderr = out, out
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		d.stop()
		if t.Failed() {
			l, _ := os.ReadFile(filepath.Join(d.dir, "dovecot.log"))
			e, _ := os.ReadFile(filepath.Join(d.dir, "dovecot.stderr"))
			t.Logf("dovecot log:\n%s%s", l, e)
		}
	})
	waitListening(t, d.addr)
	return d
}

func (d *dovecot) stop() {
	if d.cmd == nil {
		return
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { d.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		d.cmd.Process.Kill()
		<-done
	}
	d.cmd = nil
}

// waitListening polls until addr accepts connections.
func waitListening(t *testing.T, addr string) {
	t.Helper()
	var err error
	if !pop3dtest.Eventually(30*time.Second, func() bool {
		var c net.Conn
		if c, err = net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
		}
		return err == nil
	}) {
		t.Fatalf("nothing listens on %s: %v", addr, err)
	}
}

// login opens a POP3 session.
func login(t *testing.T, addr, user, pw string) *pop3dtest.Conn {
	t.Helper()
	p := pop3dtest.Dial(t, addr, "")
	if r := p.Cmd("USER " + user); !strings.HasPrefix(r, "+OK") {
		t.Fatalf("USER: %q", r)
	}
	if r := p.Cmd("PASS " + pw); !strings.HasPrefix(r, "+OK") {
		t.Fatalf("PASS at %s: %q", addr, r)
	}
	return p
}

// listing is a server's UIDL list with the LIST size of each message.
func listing(t *testing.T, addr, user, pw string) []string {
	t.Helper()
	p := login(t, addr, user, pw)
	defer p.Close()
	if r := p.Cmd("UIDL"); !strings.HasPrefix(r, "+OK") {
		t.Fatalf("UIDL: %q", r)
	}
	uidls := p.Multi()
	if r := p.Cmd("LIST"); !strings.HasPrefix(r, "+OK") {
		t.Fatalf("LIST: %q", r)
	}
	sizes := p.Multi()
	if len(uidls) != len(sizes) {
		t.Fatalf("%d UIDL lines, %d LIST lines", len(uidls), len(sizes))
	}
	out := make([]string, len(uidls))
	for i := range uidls {
		u, s := strings.Fields(uidls[i]), strings.Fields(sizes[i])
		out[i] = u[1] + " " + s[1]
	}
	p.Cmd("QUIT")
	return out
}

// retrAll returns every message's text as RETR sends it.
func retrAll(t *testing.T, addr, user, pw string, n int) []string {
	t.Helper()
	p := login(t, addr, user, pw)
	defer p.Close()
	out := make([]string, n)
	for i := 1; i <= n; i++ {
		if r := p.Cmd("RETR " + strconv.Itoa(i)); !strings.HasPrefix(r, "+OK") {
			t.Fatalf("RETR %d: %q", i, r)
		}
		out[i-1] = strings.Join(p.Multi(), "\n")
	}
	p.Cmd("QUIT")
	return out
}

// runTool runs a program and returns its exit status and output.
func runTool(t *testing.T, env []string, cred *syscall.Credential, name string, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	var buf pop3dtest.LogBuffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	done := make(chan struct{})
	var err error
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { err = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(3 * time.Minute):
		cmd.Process.Kill()
		<-done
		t.Fatalf("%s hung:\n%s", name, buf.String())
	}
	out := buf.String()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), out
	} else if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return 0, out
}

// leaveOnServer are the clients that keep mail on the server and remember
// what they fetched by UIDL: fetchmail (its .fetchids) and getmail (its
// oldmail file), each with its state folder.
type leaveOnServer struct {
	t                        *testing.T
	home, fetchmail, getmail string
	count                    string // fetchmail's BSMTP output: one MAIL FROM per message
	uid, gid                 int    // nobody, who runs getmail
}

func newClients(t *testing.T) *leaveOnServer {
	c := &leaveOnServer{t: t, home: t.TempDir(), fetchmail: pop3dtest.NeedTool(t, "fetchmail"), getmail: pop3dtest.NeedTool(t, "getmail")}
	c.count = filepath.Join(c.home, "count")
	u, err := user.Lookup("nobody")
	if err != nil {
		t.Fatal(err)
	}
	c.uid, _ = strconv.Atoi(u.Uid)
	c.gid, _ = strconv.Atoi(u.Gid)
	for p := c.home; p != "/" && p != os.TempDir(); p = filepath.Dir(p) {
		os.Chmod(p, 0o755)
	}
	return c
}

// fetch runs both clients against addr, fetchmail for alice and getmail
// for dave, and returns how many messages each fetched.
func (c *leaveOnServer) fetch(addr string) (fetchmail, getmail int) {
	t := c.t
	t.Helper()
	host, port, _ := net.SplitHostPort(addr)
	os.WriteFile(c.count, nil, 0o600)
	rc := filepath.Join(c.home, "fetchmailrc")
	text := fmt.Sprintf("set no syslog\npoll %s service %s protocol pop3 uidl user %q password %q sslproto '' keep bsmtp %q\n",
		host, port, doveUser, dovePassword, c.count)
	if err := os.WriteFile(rc, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	defer func() {
		t.Logf("fetch from %s: fetchmail %d, getmail %d messages in %v", addr, fetchmail, getmail, time.Since(start))
	}()
	code, out := runTool(t, []string{"HOME=" + c.home, "FETCHMAILHOME=" + c.home}, nil, c.fetchmail, "-f", rc, "-i", filepath.Join(c.home, "fetchids"), "--nodetach")
	if code != 0 && code != 1 { // 1: no mail
		t.Fatalf("fetchmail: exit %d\n%s", code, out)
	}
	b, _ := os.ReadFile(c.count)
	fetchmail = strings.Count(string(b), "MAIL FROM:")

	gdir := filepath.Join(c.home, "getmail")
	os.MkdirAll(gdir, 0o700)
	// getmail's file destinations deliver through a child process whose
	// end it may miss (it then waits for its timeout), so it hands the
	// messages to an LMTP sink that counts them.
	sink := lmtpSink(t)
	grc := fmt.Sprintf(`[retriever]
type = SimplePOP3Retriever
server = %s
port = %s
username = %s
password = %s

[destination]
type = MDA_lmtp
host = 127.0.0.1
port = %d
override = sink@example.test

[options]
delete = false
read_all = false
verbose = 0
`, host, port, daveUser, dovePassword, sink.port)
	if err := os.WriteFile(filepath.Join(gdir, "getmailrc"), []byte(grc), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out = runTool(t, []string{"HOME=" + c.home}, nil, c.getmail, "--getmaildir", gdir, "--rcfile", "getmailrc")
	if code != 0 {
		t.Fatalf("getmail: exit %d\n%s", code, out)
	}
	getmail = sink.close()
	return fetchmail, getmail
}

// sink is an LMTP server on loopback that accepts and counts messages.
type sink struct {
	port int
	l    net.Listener
	n    chan int
}

func lmtpSink(t *testing.T) *sink {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &sink{port: l.Addr().(*net.TCPAddr).Port, l: l, n: make(chan int, 1)}
	go func() {
		total := 0
		defer func() { s.n <- total }()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			total += serveLMTP(c)
		}
	}()
	return s
}

// close stops the sink and returns how many messages it took.
func (s *sink) close() int {
	s.l.Close()
	return <-s.n
}

// serveLMTP answers one LMTP connection (RFC 2033), one recipient a
// message, and returns the messages it accepted.
func serveLMTP(c net.Conn) int {
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Minute))
	r := bufio.NewReader(c)
	say := func(s string) { io.WriteString(c, s+"\r\n") }
	say("220 sink LMTP")
	n := 0
	for {
		l, err := r.ReadString('\n')
		if err != nil {
			return n
		}
		cmd := strings.ToUpper(strings.TrimSpace(l))
		switch {
		case strings.HasPrefix(cmd, "LHLO"):
			say("250-sink")
			say("250 8BITMIME")
		case strings.HasPrefix(cmd, "DATA"):
			say("354 go on")
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					return n
				}
				if strings.TrimRight(l, "\r\n") == "." {
					break
				}
			}
			n++
			say("250 2.0.0 kept")
		case strings.HasPrefix(cmd, "QUIT"):
			say("221 bye")
			return n
		default:
			say("250 ok")
		}
	}
}

type importSummary struct {
	Mailboxes []struct {
		Mailbox     string `json:"mailbox"`
		Source      int    `json:"source_messages"`
		Imported    int    `json:"imported"`
		Present     int    `json:"already_present"`
		Error       string `json:"error"`
		Differences []struct {
			Kind string `json:"kind"`
			UIDL string `json:"uidl"`
		} `json:"differences"`
		Verified bool `json:"verified"`
	} `json:"mailboxes"`
	Imported int     `json:"imported"`
	Bytes    int64   `json:"bytes"`
	Seconds  float64 `json:"seconds"`
	Rate     float64 `json:"messages_per_second"`
	MBRate   float64 `json:"mb_per_second"`
}

// ctlImport runs pop3ctl import -json -verify and decodes its summary.
func ctlImport(t *testing.T, s *pop3dtest.Server, stdin string, args ...string) importSummary {
	t.Helper()
	cmd := exec.Command(pop3dtest.Binary(t, "pop3ctl"), append([]string{"-config", s.Conf, "-json", "import"}, args...)...)
	cmd.Dir = s.Dir
	cmd.Stdin = strings.NewReader(stdin)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("pop3ctl import %v: %v\n%s\n%s", args, err, out, stderr.String())
	}
	var sum importSummary
	if err := json.Unmarshal(out, &sum); err != nil {
		t.Fatalf("pop3ctl import -json: %v\n%s", err, out)
	}
	for _, m := range sum.Mailboxes {
		if m.Error != "" || len(m.Differences) != 0 || !m.Verified {
			t.Fatalf("import into %s: %+v", m.Mailbox, m)
		}
	}
	return sum
}

// TestImportFromDovecot moves a Dovecot Maildir, which earlier POP3
// sessions read from and deleted in, into the store over POP3 and from
// the Maildir; the UIDL lists and sizes match Dovecot's own, a second
// run imports nothing, an import killed half-way ends, once run again,
// with the same mailbox as one never interrupted, and fetchmail and
// getmail, with the state they wrote against Dovecot, fetch nothing from
// pop3d put in Dovecot's place, then exactly the one new message.
func TestImportFromDovecot(t *testing.T) {
	d := startDovecot(t)
	clients := newClients(t)

	// Earlier POP3 sessions: read the first 50, delete 21 of them; then
	// delete 11 more in another session.
	p := login(t, d.addr, doveUser, dovePassword)
	for i := 1; i <= 50; i++ {
		p.Cmd("RETR " + strconv.Itoa(i))
		p.Multi()
	}
	for i := 10; i <= 30; i++ {
		if r := p.Cmd("DELE " + strconv.Itoa(i)); !strings.HasPrefix(r, "+OK") {
			t.Fatalf("DELE %d: %q", i, r)
		}
	}
	p.Cmd("QUIT")
	p = login(t, d.addr, doveUser, dovePassword)
	for i := 60; i <= 70; i++ {
		p.Cmd("DELE " + strconv.Itoa(i))
	}
	p.Cmd("QUIT")
	const left = doveMessages - 21 - 11
	// dave: 5 read, 3 of them deleted.
	p = login(t, d.addr, daveUser, dovePassword)
	for i := 1; i <= 5; i++ {
		p.Cmd("RETR " + strconv.Itoa(i))
		p.Multi()
	}
	for i := 2; i <= 4; i++ {
		p.Cmd("DELE " + strconv.Itoa(i))
	}
	p.Cmd("QUIT")
	const daveLeft = daveMessages - 3
	// The clients leave everything on the server and remember the UIDLs.
	if fm, gm := clients.fetch(d.addr); fm != left || gm != daveLeft {
		t.Fatalf("from Dovecot fetchmail fetched %d, getmail %d; want %d and %d", fm, gm, left, daveLeft)
	}
	daveWant := listing(t, d.addr, daveUser, dovePassword)
	want := listing(t, d.addr, doveUser, dovePassword)
	if len(want) != left {
		t.Fatalf("Dovecot lists %d messages, want %d", len(want), left)
	}
	wantText := retrAll(t, d.addr, doveUser, dovePassword, left)

	srv := pop3dtest.Start(t, pop3dtest.Config{Setup: [][]string{
		{"add", "example.test"},
		{"add", doveUser, "-password", dovePassword},
	}})
	// Over POP3, then from the Maildir into other mailboxes.
	sum := ctlImport(t, srv, dovePassword+"\n", "pop3", "-from", d.addr, "-user", doveUser, "-password-stdin", "-verify", doveUser)
	if sum.Imported != left {
		t.Fatalf("import pop3 imported %d, want %d", sum.Imported, left)
	}
	t.Logf("import pop3 from Dovecot: %d messages, %.1f MB in %.2f s: %.0f messages/s, %.1f MB/s", sum.Imported, float64(sum.Bytes)/1e6, sum.Seconds, sum.Rate, sum.MBRate)
	if again := ctlImport(t, srv, dovePassword+"\n", "pop3", "-from", d.addr, "-user", doveUser, "-password-stdin", "-verify", doveUser); again.Imported != 0 || again.Mailboxes[0].Present != left {
		t.Fatalf("a second import pop3: %+v", again)
	}
	sum = ctlImport(t, srv, "", "maildir", d.maildir, "bob@example.test", "-verify")
	if sum.Imported != left {
		t.Fatalf("import maildir imported %d, want %d", sum.Imported, left)
	}
	t.Logf("import maildir: %d messages, %.1f MB in %.2f s: %.0f messages/s, %.1f MB/s", sum.Imported, float64(sum.Bytes)/1e6, sum.Seconds, sum.Rate, sum.MBRate)
	// The domain-wide form: a users file naming each mailbox's old login.
	users := filepath.Join(t.TempDir(), "users")
	if err := os.WriteFile(users, []byte("# mailbox, old user, old password\ndave "+daveUser+" "+dovePassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if sum = ctlImport(t, srv, "", "pop3", "-from", d.addr, "-users", users, "-verify", "example.test"); sum.Imported != daveLeft {
		t.Fatalf("import pop3 -users imported %d, want %d", sum.Imported, daveLeft)
	}
	srv.Ctl(t, "", "changepwd", daveUser, "-password", dovePassword)
	if got := listing(t, srv.POP3, daveUser, dovePassword); !slices.Equal(got, daveWant) {
		t.Fatalf("dave: UIDL and LIST differ from Dovecot's:\n got %q\nwant %q", got, daveWant)
	}
	srv.Ctl(t, "", "changepwd", "bob@example.test", "-password", dovePassword)
	for _, box := range []string{doveUser, "bob@example.test"} {
		if got := listing(t, srv.POP3, box, dovePassword); !slices.Equal(got, want) {
			t.Fatalf("%s: UIDL and LIST differ from Dovecot's:\n got %q\nwant %q", box, got[:min(5, len(got))], want[:5])
		}
		if got := retrAll(t, srv.POP3, box, dovePassword, left); !slices.Equal(got, wantText) {
			t.Fatalf("%s: the messages differ from Dovecot's", box)
		}
	}

	// An import killed at a random point, run again, ends like bob's.
	killedImport(t, srv, d.maildir, left)
	if got, want := mailboxText(t, srv, "carol@example.test", left), mailboxText(t, srv, "bob@example.test", left); !slices.Equal(got, want) {
		t.Fatalf("the interrupted and resumed import differs from the uninterrupted one")
	}

	// pop3d takes Dovecot's place (same address): the clients' state
	// files, written against Dovecot, say they have everything.
	d.stop()
	srv.Stop()
	_, port, _ := net.SplitHostPort(d.addr)
	srv2 := pop3dtest.Start(t, pop3dtest.Config{MailRoot: filepath.Join(srv.Dir, "mailroot"), POP3Listen: "127.0.0.1:" + port})
	if fm, gm := clients.fetch(srv2.POP3); fm != 0 || gm != 0 {
		t.Fatalf("after the move fetchmail fetched %d, getmail %d; want 0", fm, gm)
	}
	srv2.Ctl(t, "Subject: after the move\n\nnew\n", "deliver", doveUser)
	srv2.Ctl(t, "Subject: after the move\n\nnew\n", "deliver", daveUser)
	if fm, gm := clients.fetch(srv2.POP3); fm != 1 || gm != 1 {
		t.Fatalf("a message delivered after the move: fetchmail fetched %d, getmail %d; want 1 each", fm, gm)
	}
	if fm, gm := clients.fetch(srv2.POP3); fm != 0 || gm != 0 {
		t.Fatalf("the third fetch: fetchmail fetched %d, getmail %d; want 0", fm, gm)
	}
}

// mailboxText is a mailbox's UIDL list and messages, through POP3.
func mailboxText(t *testing.T, s *pop3dtest.Server, box string, n int) []string {
	t.Helper()
	s.Ctl(t, "", "changepwd", box, "-password", dovePassword)
	return append(listing(t, s.POP3, box, dovePassword), retrAll(t, s.POP3, box, dovePassword, n)...)
}

// killedImport imports the Maildir into carol, kills pop3ctl with SIGKILL
// once a random number of messages is in, and runs the import again.
func killedImport(t *testing.T, s *pop3dtest.Server, maildir string, n int) {
	t.Helper()
	dir := filepath.Join(s.Dir, "mailroot", "example.test", "P3_carol.mbx")
	count := func() int {
		ents, _ := os.ReadDir(dir)
		k := 0
		for _, e := range ents {
			if strings.HasSuffix(e.Name(), ".eml") {
				k++
			}
		}
		return k
	}
	s.Ctl(t, "", "add", "carol@example.test")
	killed := false
	for attempt := 0; attempt < 5 && !killed; attempt++ {
		at := count() + 1 + rand.IntN(max(1, (n-count())/2))
		cmd := exec.Command(pop3dtest.Binary(t, "pop3ctl"), "-config", s.Conf, "import", "maildir", maildir, "carol@example.test")
		cmd.Dir = s.Dir
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		finished := false
		reached := pop3dtest.Eventually(2*time.Minute, func() bool {
			select {
			case <-done:
				finished = true // before the kill: try again with a later point
				return true
			default:
			}
			return count() >= at
		})
		switch {
		case !reached:
			cmd.Process.Kill()
			t.Fatalf("the import did not reach %d messages", at)
		case !finished:
			cmd.Process.Kill()
			<-done
			killed = cmd.ProcessState.ExitCode() == -1
			t.Logf("pop3ctl import killed with %d of %d messages in (aimed at %d)", count(), n, at)
		}
		if count() >= n {
			break
		}
	}
	if !killed {
		t.Fatalf("the import always finished before it could be killed")
	}
	sum := ctlImport(t, s, "", "maildir", maildir, "carol@example.test", "-verify")
	if sum.Imported+sum.Mailboxes[0].Present != n || sum.Imported == 0 {
		t.Fatalf("the resumed import: %+v", sum)
	}
}
