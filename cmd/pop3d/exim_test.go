package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/pop3svc/pop3svc/cmd/pop3d/pop3dtest"
)

// eximDebsDefault is where .ci/run leaves the exim4-daemon-light package
// it downloads (exim4 cannot be installed next to Postfix); $EXIM_DEBS
// names another folder.
const eximDebsDefault = "/var/cache/pop3svc-ci/exim"

// readmeConfPath is the configuration file the README's Exim snippet
// gives pop3ctl; the test puts its own there.
const readmeConfPath = "/etc/pop3svc/pop3d.toml"

// eximRun runs the unpacked exim binary in a mount namespace of its own
// in which /etc is an overlay holding the test's exim4.conf (the path
// compiled into Debian's binary, read with root's privileges, which -C
// would give up) and a passwd with Debian-exim (the compiled-in Exim
// user) and pop3svc. Nothing outside the namespace changes.
const eximRun = `set -e
mount -t tmpfs -o mode=0755 pop3svc-exim "$1"
mkdir "$1/upper" "$1/work"
cp -a "$2/." "$1/upper/"
mount -t overlay overlay -o "lowerdir=/etc,upperdir=$1/upper,workdir=$1/work" /etc
shift 2
exec "$@"
`

// eximInstance is Debian's Exim unpacked in a folder of its own.
type eximInstance struct {
	t     *testing.T
	dir   string // the instance's folder
	bin   string // the exim4 binary
	etc   string // what the overlay puts on /etc
	spool string // spool_directory
}

// unusedIDs returns n numbers that are neither a user's nor a group's id
// on this system.
func unusedIDs(t *testing.T, n int) []int {
	t.Helper()
	used := map[int]bool{}
	for _, f := range []string{"/etc/passwd", "/etc/group"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range strings.Split(string(b), "\n") {
			if fs := strings.Split(l, ":"); len(fs) > 3 {
				id, _ := strconv.Atoi(fs[2])
				used[id] = true
				if f == "/etc/passwd" {
					id, _ = strconv.Atoi(fs[3])
					used[id] = true
				}
			}
		}
	}
	var ids []int
	for id := 61000; len(ids) < n; id++ {
		if !used[id] {
			ids = append(ids, id)
		}
	}
	return ids
}

// startExim unpacks exim4-daemon-light and writes its configuration:
// the instance's main lines, then routersAndTransports. eximUID is
// Debian-exim's id, pop3svcUID pop3svc's (groups of the same numbers).
func startExim(t *testing.T, routersAndTransports string, eximUID, pop3svcUID int) *eximInstance {
	t.Helper()
	if os.Geteuid() != 0 {
		pop3dtest.Unavailable(t, "running Exim with its own /etc needs root", "exim4-daemon-light (and running the tests as root)")
	}
	pop3dtest.NeedTool(t, "unshare")
	debs := os.Getenv("EXIM_DEBS")
	if debs == "" {
		debs = eximDebsDefault
	}
	found, _ := filepath.Glob(filepath.Join(debs, "exim4-daemon-light_*.deb"))
	if len(found) == 0 {
		pop3dtest.Unavailable(t, "no exim4-daemon-light_*.deb in "+debs+" (.ci/run downloads it with apt-get download)", "exim4-daemon-light (downloaded, not installed) and libidn12")
	}
	e := &eximInstance{t: t}
	var err error
	e.dir, err = os.MkdirTemp("", "exim-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(e.dir) })
	// Exim's processes running as Debian-exim re-execute the binary and
	// write the spool: every folder on the way is searchable.
	if err := os.Chmod(e.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	pkg := filepath.Join(e.dir, "pkg")
	if out, err := exec.Command("dpkg-deb", "-x", found[len(found)-1], pkg).CombinedOutput(); err != nil {
		t.Fatalf("dpkg-deb -x %s: %v\n%s", found[len(found)-1], err, out)
	}
	e.bin = filepath.Join(pkg, "usr", "sbin", "exim4")
	e.spool = filepath.Join(e.dir, "spool")
	e.etc = filepath.Join(e.dir, "etc")
	for _, d := range []string{e.spool, filepath.Join(e.etc, "exim4"), filepath.Join(e.dir, "mnt")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chown(e.spool, eximUID, eximUID); err != nil {
		t.Fatal(err)
	}
	for name, add := range map[string]string{
		"passwd": fmt.Sprintf("Debian-exim:x:%[1]d:%[1]d::/nonexistent:/usr/sbin/nologin\npop3svc:x:%[2]d:%[2]d::/nonexistent:/usr/sbin/nologin\n", eximUID, pop3svcUID),
		"group":  fmt.Sprintf("Debian-exim:x:%[1]d:\npop3svc:x:%[2]d:\n", eximUID, pop3svcUID),
	} {
		b, err := os.ReadFile(filepath.Join("/etc", name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(e.etc, name), append(b, add...), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	conf := fmt.Sprintf(`exim_path = %[1]s
spool_directory = %[2]s
log_file_path = %[2]s/log/%%slog
primary_hostname = mx.exim.test
keep_environment =

%[3]s
begin retry
*  *  F,1d,15m
`, e.bin, e.spool, routersAndTransports)
	if err := os.WriteFile(filepath.Join(e.etc, "exim4", "exim4.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	return e
}

// run runs exim with args and stdin, and returns its output.
func (e *eximInstance) run(stdin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), postfixTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "unshare", append([]string{"--mount", "--propagation", "private",
		"sh", "-c", eximRun, "sh", filepath.Join(e.dir, "mnt"), e.etc, e.bin}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (e *eximInstance) mustRun(stdin string, args ...string) string {
	e.t.Helper()
	out, err := e.run(stdin, args...)
	if err != nil {
		e.t.Fatalf("exim %s: %v\n%s\nmainlog:\n%s", strings.Join(args, " "), err, out, e.log())
	}
	return out
}

func (e *eximInstance) log() string {
	b, _ := os.ReadFile(filepath.Join(e.spool, "log", "mainlog"))
	return string(b)
}

// waitLog waits until Exim logged a line matching re and returns it.
func (e *eximInstance) waitLog(what string, re *regexp.Regexp) string {
	e.t.Helper()
	var line string
	ok := pop3dtest.Eventually(postfixTimeout, func() bool {
		line = re.FindString(e.log())
		return line != ""
	})
	if !ok {
		e.t.Fatalf("%s: not in Exim's mainlog within %v:\n%s", what, postfixTimeout, e.log())
	}
	return line
}

var eximIDRe = regexp.MustCompile(`(?m)^\S+ \S+ (\S+) <= `)

// send submits a message on exim's standard input (-bm) for one
// recipient and returns its Exim message id; -odi delivers it before
// exim returns.
func (e *eximInstance) send(from, to, subject string) string {
	e.t.Helper()
	before := len(eximIDRe.FindAllString(e.log(), -1))
	e.mustRun("Subject: "+subject+"\n\nsent through Exim: "+subject+"\n", "-odi", "-f", from, to)
	ids := eximIDRe.FindAllStringSubmatch(e.log(), -1)
	if len(ids) <= before {
		e.t.Fatalf("Exim logged no reception for %s:\n%s", to, e.log())
	}
	return ids[before][1]
}

// TestEximPipe runs Debian's Exim with the README's router and pipe
// transport: pop3ctl deliver, run by Exim as pop3svc (the mail root's
// owner), stores a message without Exim's "From " line and with its
// Return-Path and Delivered-To; an unknown mailbox (exit 67) is bounced
// and the bounce reaches the sender's mailbox; a store failure (exit 75)
// leaves the message in Exim's queue until a queue run after the mail
// root is writable again.
func TestEximPipe(t *testing.T) {
	const (
		alicePw = "alice-Pw-123"
		bobPw   = "bob-Pw-456"
	)
	snippet := readmeSnippet(t, "TestEximPipe", "exim4.conf")
	for _, want := range []string{"# routers section\n", "# transports section\n", readmeCtlPath, readmeConfPath, "user = pop3svc\n"} {
		if !strings.Contains(snippet, want) {
			t.Fatalf("README's Exim snippet has no %q:\n%s", want, snippet)
		}
	}
	ids := unusedIDs(t, 2)
	eximUID, pop3svcUID := ids[0], ids[1]

	// The store, made by pop3ctl as root, then handed to pop3svc.
	dir, err := os.MkdirTemp("", "exim-store-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	mailRoot := filepath.Join(dir, "mailroot")
	cfg := pop3dtest.Config{
		MailRoot: mailRoot,
		Setup: [][]string{
			{"add", "example.org"},
			{"add", "alice@example.org", "-password", alicePw},
			{"add", "bob@example.org", "-password", bobPw},
		},
	}
	srv := pop3dtest.Start(t, cfg)
	if err := srv.Stop(); err != nil {
		t.Fatalf("stopping pop3d: %v", err)
	}
	chownTree(t, mailRoot, pop3svcUID)
	conf := filepath.Join(dir, "pop3d.toml")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf("mailroot = %q\n", mailRoot)), 0o644); err != nil {
		t.Fatal(err)
	}
	r := strings.NewReplacer("# routers section\n", "begin routers\n", "# transports section\n", "begin transports\n",
		readmeCtlPath, publicCtl(t), readmeConfPath, conf)
	ex := startExim(t, r.Replace(snippet), eximUID, pop3svcUID)

	// Delivered by the pipe, as pop3svc.
	id := ex.send("bob@example.org", "alice@example.org", "through Exim")
	ex.waitLog("Exim delivering "+id, regexp.MustCompile(`(?m)^.* `+id+` => alice <alice@example\.org> R=pop3svc T=pop3svc_pipe.*$`))

	// An unknown mailbox: deliver exits 67, Exim fails the address and
	// sends bob a bounce, which the pipe delivers too.
	id = ex.send("bob@example.org", "nobody@example.org", "for nobody")
	line := ex.waitLog("Exim bouncing "+id, regexp.MustCompile(`(?m)^.* `+id+` \*\* nobody@example\.org R=pop3svc T=pop3svc_pipe.*$`))
	if !strings.Contains(line, "returned 67") {
		t.Fatalf("Exim did not fail the address on deliver's 67: %s", line)
	}
	ex.waitLog("the bounce for "+id+" delivered to bob", regexp.MustCompile(`(?m)^.* => bob <bob@example\.org> R=pop3svc T=pop3svc_pipe.*$`))

	// The mail root not writable: deliver exits 75, Exim defers; a queue
	// run once it is writable again delivers.
	if err := os.Chmod(mailRoot, 0); err != nil {
		t.Fatal(err)
	}
	id = ex.send("bob@example.org", "alice@example.org", "while the store failed")
	line = ex.waitLog("Exim deferring "+id, regexp.MustCompile(`(?m)^.* `+id+` == alice@example\.org R=pop3svc T=pop3svc_pipe defer.*$`))
	if !strings.Contains(line, "returned 75") {
		t.Fatalf("Exim did not defer on deliver's 75: %s", line)
	}
	if q := ex.mustRun("", "-bp"); !strings.Contains(q, id) || !strings.Contains(q, "alice@example.org") {
		t.Fatalf("Exim's queue does not hold %s:\n%s", id, q)
	}
	if err := os.Chmod(mailRoot, 0o700); err != nil {
		t.Fatal(err)
	}
	ex.mustRun("", "-qff")
	ex.waitLog("Exim delivering "+id+" on the queue run", regexp.MustCompile(`(?m)^.* `+id+` => alice <alice@example\.org> R=pop3svc T=pop3svc_pipe.*$`))
	if q := ex.mustRun("", "-bpc"); strings.TrimSpace(q) != "0" {
		t.Fatalf("Exim's queue after the queue run: %s\n%s", q, ex.mustRun("", "-bp"))
	}

	// What landed, read over POP3.
	cfg.Setup = nil
	srv = pop3dtest.Start(t, cfg)
	msgs := poplibMessages(t, srv, "alice@example.org", alicePw, 2)
	// deliver's Delivered-To comes first, then what Exim wrote after its
	// "From " line, which is gone: its Return-path, its Received.
	if len(msgs) != 2 || !strings.HasPrefix(msgs[0], "Delivered-To: alice@example.org\nReturn-path: <bob@example.org>\nReceived: ") ||
		!strings.Contains(msgs[0], "Subject: through Exim") ||
		!strings.Contains(msgs[0], "by mx.exim.test") ||
		!strings.Contains(msgs[0], "sent through Exim: through Exim") ||
		strings.Contains(msgs[0], "\nFrom bob@example.org") ||
		!strings.Contains(msgs[1], "Subject: while the store failed") {
		t.Fatalf("alice's mailbox over POP3: %q", msgs)
	}
	msgs = poplibMessages(t, srv, "bob@example.org", bobPw, 1)
	// return_fail_output: deliver's message is in the bounce.
	if len(msgs) != 1 || !strings.Contains(msgs[0], "Subject: Mail delivery failed") ||
		!strings.Contains(msgs[0], "X-Failed-Recipients: nobody@example.org") ||
		!strings.Contains(msgs[0], "pop3ctl: cannot deliver to nobody@example.org: mailbox nobody@example.org: no such mailbox") {
		t.Fatalf("bob's mailbox (the bounce) over POP3: %q", msgs)
	}
}

// chownTree gives every file under root to uid (and the group of the
// same number).
func chownTree(t *testing.T, root string, uid int) {
	t.Helper()
	err := filepath.Walk(root, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, uid)
	})
	if err != nil {
		t.Fatal(err)
	}
}
