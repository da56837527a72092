// Package pop3dtest runs the built pop3d and pop3ctl for end-to-end tests.
//
// It builds both programs once per test binary (with the race detector
// when the tests run with it), starts pop3d with a configuration written
// per test in which every listener is on port 0, and learns the bound
// addresses from pop3d's log. A package using it calls Main from its
// TestMain (or Cleanup at the end of its own TestMain).
//
// When the programs cannot be built, or a client tool is missing, the
// test is skipped, except when the environment variable CI is set, where
// it fails.
//
// The package only runs the programs; it imports nothing of the service,
// so any package's tests may use it.
package pop3dtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
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
)

const (
	// StartTimeout bounds the wait for the "pop3d ready" log line.
	StartTimeout = 30 * time.Second
	// StopTimeout bounds the wait for pop3d to exit after SIGTERM; then it
	// is killed.
	StopTimeout = 20 * time.Second
	// CtlTimeout bounds one pop3ctl run.
	CtlTimeout = 60 * time.Second
)

// ErrKilled is returned by Stop when pop3d ignored SIGTERM.
var ErrKilled = errors.New("pop3d was killed")

var (
	buildOnce sync.Once
	binDir    string // folder holding pop3d and pop3ctl
	buildErr  error
)

// Main runs the tests and removes the built programs; call it from
// TestMain when there is nothing else to do there.
func Main(m *testing.M) {
	code := m.Run()
	Cleanup()
	os.Exit(code)
}

// Cleanup removes the built programs; call it at the end of TestMain.
func Cleanup() {
	if binDir != "" {
		os.RemoveAll(binDir)
	}
}

// inCI reports whether a missing prerequisite is a failure.
func inCI() bool { return os.Getenv("CI") != "" }

func build() {
	dir, err := os.MkdirTemp("", "pop3dtest-")
	if err != nil {
		buildErr = err
		return
	}
	binDir = dir
	root, err := moduleRoot()
	if err != nil {
		buildErr = err
		return
	}
	args := []string{"build", "-o", dir + string(os.PathSeparator)}
	if raceEnabled {
		args = append(args, "-race")
	}
	cmd := exec.Command("go", append(args, "./cmd/pop3d", "./cmd/pop3ctl")...)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		buildErr = fmt.Errorf("go build ./cmd/pop3d ./cmd/pop3ctl: %v\n%s", err, out)
	}
}

// moduleRoot is the folder holding go.mod, above the test's folder.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod above the test folder")
		}
		dir = parent
	}
}

// Binary returns the path of a built program, "pop3d" or "pop3ctl",
// building both on first use; it skips (fails in CI) when they cannot be
// built.
func Binary(t testing.TB, name string) string {
	t.Helper()
	buildOnce.Do(build)
	if buildErr != nil {
		Unavailable(t, fmt.Sprintf("cannot build the programs: %v", buildErr), "golang-go or Go from go.dev, build-essential, libpam0g-dev")
	}
	return filepath.Join(binDir, name)
}

// NeedTool returns the path of a client program; it skips the test when
// the program is missing, except in CI where that is a failure naming the
// Debian package to install.
func NeedTool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		Unavailable(t, name+" is not installed", debianPackage(name))
	}
	return p
}

// Unavailable ends a test that cannot run here: a skip on a developer's
// machine, a failure in CI (the environment variable CI set), where the
// message names the Debian package that provides what is missing.
func Unavailable(t testing.TB, why, debPkg string) {
	t.Helper()
	if inCI() {
		t.Fatalf("%s (CI must install the Debian package %s)", why, debPkg)
	}
	t.Skipf("%s (Debian package %s)", why, debPkg)
}

// debianPackage names the Debian 12 package of a program the tests run.
func debianPackage(program string) string {
	switch program {
	case "ss":
		return "iproute2"
	case "python3":
		return "python3"
	case "slapd", "slapadd":
		return "slapd"
	case "ldapsearch", "ldapadd":
		return "ldap-utils"
	case "openssl":
		return "openssl"
	case "dovecot":
		return "dovecot-pop3d"
	case "getmail":
		return "getmail6"
	default: // curl, fetchmail, swaks, chromium
		return program
	}
}

// Config describes one pop3d run. Every listener is on 127.0.0.1:0.
type Config struct {
	Top string // top-level keys, before the first table
	// Auth is the body of the [auth] table. Unless it sets suspect_nice,
	// suspect_nice = 0 is added: a test's own failed logins make the
	// loopback network suspect, and at the default nice 19 a suspect's
	// password check can take many seconds on a machine busy with other
	// tests. A test of suspect_nice sets it.
	Auth   string
	POP3   string // lines added to the [pop3] table
	Tables string // further tables, at the end of the file
	SMTP   bool   // an SMTP listener (otherwise smtp.listen = [])
	// SMTPTable are lines added to the [smtp] table.
	SMTPTable string
	TLS       bool // an implicit-TLS POP3 listener (otherwise pop3.listen_tls = [])
	// Submission makes a STARTTLS and an implicit-TLS submission listener
	// (otherwise both lists are empty); SubmissionTable are lines added
	// to the [submission] table.
	Submission      bool
	SubmissionTable string
	// Setup are pop3ctl argument lists run, in order, before the start.
	Setup [][]string
	// Prepare, when set, runs before Setup with the server's folder (the
	// mail root is its "mailroot" subfolder).
	Prepare func(dir string)
	// AdminListen is admin.listen; empty: 127.0.0.1:0. A fixed port lets
	// pop3ctl, which finds the service there, reach it.
	AdminListen string
	// Host is the address every listener binds, IPv4 or IPv6 ("::1");
	// empty: 127.0.0.1.
	Host string
	// POP3Listen is the plaintext POP3 listener's address; empty: Host:0.
	// A fixed port lets a test put pop3d where another server was.
	POP3Listen string
	// MailRoot is the mail root; empty: "mailroot" in the server's folder.
	// Servers sharing a store (test machines) give the same absolute path.
	MailRoot string
	// Args are flags added to pop3d's command line (for example -demo).
	Args []string
	// Command, when set, makes the command that runs pop3d (for example on
	// a test machine, see package machines); nil: exec.Command.
	Command func(name string, args ...string) *exec.Cmd
}

// Server is a running pop3d.
type Server struct {
	Dir   string   // the working folder, holding the configuration
	Conf  string   // the configuration file
	POP3  string   // plaintext POP3 listener, host:port
	POP3S string   // implicit-TLS POP3 listener, when Config.TLS
	Admin string   // admin HTTP listener
	SMTP  []string // SMTP listeners, when Config.SMTP
	// Submission and SubmissionTLS are the submission listeners (STARTTLS
	// and implicit TLS), when Config.Submission.
	Submission    string
	SubmissionTLS string
	Cmd           *exec.Cmd

	t      testing.TB
	log    *LogBuffer // standard error: the log
	stdout *LogBuffer
	audit  *LogBuffer    // pop3ctl's audit lines (its syslog socket)
	sysLog string        // that socket's path
	exited chan struct{} // closed when the process ended
	err    error         // the exit status, set before exited is closed
}

// LogBuffer is an output sink safe for concurrent writers: a process's
// log, or a handler's logger in a test.
type LogBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *LogBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *LogBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func tomlList(addrs ...string) string {
	q := make([]string, len(addrs))
	for i, a := range addrs {
		q[i] = fmt.Sprintf("%q", a)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// Text is the configuration file for c.
func (c Config) Text() string {
	host := c.Host
	if host == "" {
		host = "127.0.0.1"
	}
	any := net.JoinHostPort(host, "0")
	root := c.MailRoot
	if root == "" {
		root = "mailroot"
	}
	var tlsListen, smtpListen []string
	if c.TLS {
		tlsListen = append(tlsListen, any)
	}
	if c.SMTP {
		smtpListen = append(smtpListen, any)
	}
	admin := c.AdminListen
	if admin == "" {
		admin = any
	}
	pop3Listen := c.POP3Listen
	if pop3Listen == "" {
		pop3Listen = any
	}
	var subListen []string
	if c.Submission {
		subListen = append(subListen, any)
	}
	auth := c.Auth
	if !suspectNiceRe.MatchString(auth) {
		// First: some tests' Auth goes on with tables of their own.
		auth = "suspect_nice = 0\n" + auth
	}
	return fmt.Sprintf(`mailroot = %q
%s
[auth]
%s
[pop3]
listen = [%q]
listen_tls = %s
%s
[smtp]
listen = %s
%s
[submission]
listen = %s
listen_tls = %s
%s
[admin]
listen = %q
%s
`, root, c.Top, auth, pop3Listen, tomlList(tlsListen...), c.POP3, tomlList(smtpListen...), c.SMTPTable,
		tomlList(subListen...), tomlList(subListen...), c.SubmissionTable, admin, c.Tables)
}

var suspectNiceRe = regexp.MustCompile(`(?m)^\s*suspect_nice\s*=`)

var (
	popRe   = regexp.MustCompile(`msg="POP3 listening".* addr=(\S+) tls=false`)
	popsRe  = regexp.MustCompile(`msg="POP3 listening".* addr=(\S+) tls=true`)
	adminRe = regexp.MustCompile(`msg="admin listening".* addr=(\S+)`)
	smtpRe  = regexp.MustCompile(`msg="SMTP service listening".* addr=(\S+)`)
	subRe   = regexp.MustCompile(`msg="submission listening".* addr=(\S+) tls=false`)
	subsRe  = regexp.MustCompile(`msg="submission listening".* addr=(\S+) tls=true`)
)

// Start writes the configuration, runs the setup and starts pop3d, then
// waits until it logged "pop3d ready" and every listener's address. The
// server is stopped when the test ends; its log is shown if the test
// failed, and a data race it reported fails the test.
func Start(t testing.TB, c Config) *Server {
	t.Helper()
	pop3d := Binary(t, "pop3d")
	s := &Server{Dir: t.TempDir(), t: t, log: &LogBuffer{}, stdout: &LogBuffer{}, audit: &LogBuffer{}, exited: make(chan struct{})}
	s.listenSyslog()
	s.Conf = filepath.Join(s.Dir, "pop3d.toml")
	if err := os.WriteFile(s.Conf, []byte(c.Text()), 0o600); err != nil {
		t.Fatal(err)
	}
	if c.Prepare != nil {
		c.Prepare(s.Dir)
	}
	for _, args := range c.Setup {
		s.Ctl(t, "", args...)
	}
	args := append([]string{"-config", s.Conf}, c.Args...)
	if c.Command != nil {
		s.Cmd = c.Command(pop3d, args...)
	} else {
		s.Cmd = exec.Command(pop3d, args...)
	}
	s.Cmd.Dir = s.Dir
	s.Cmd.Stderr = s.log
	s.Cmd.Stdout = s.stdout
	if err := s.Cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { s.err = s.Cmd.Wait(); close(s.exited) }()
	t.Cleanup(func() {
		if err := s.Stop(); errors.Is(err, ErrKilled) {
			t.Error(err)
		}
		l := s.Log()
		if strings.Contains(l, "DATA RACE") {
			t.Errorf("pop3d reported a data race")
		}
		if t.Failed() {
			t.Logf("pop3d log:\n%s", l)
		}
	})
	var l string
	ready := Eventually(StartTimeout, func() bool {
		l = s.Log()
		if m := popRe.FindStringSubmatch(l); m != nil {
			s.POP3 = m[1]
		}
		if m := popsRe.FindStringSubmatch(l); m != nil {
			s.POP3S = m[1]
		}
		if m := adminRe.FindStringSubmatch(l); m != nil {
			s.Admin = m[1]
		}
		if m := subRe.FindStringSubmatch(l); m != nil {
			s.Submission = m[1]
		}
		if m := subsRe.FindStringSubmatch(l); m != nil {
			s.SubmissionTLS = m[1]
		}
		s.SMTP = s.SMTP[:0]
		for _, m := range smtpRe.FindAllStringSubmatch(l, -1) {
			s.SMTP = append(s.SMTP, m[1])
		}
		if strings.Contains(l, `msg="pop3d ready"`) {
			return true
		}
		select {
		case <-s.exited:
			t.Fatalf("pop3d exited at start: %v\n%s", s.err, s.Log())
		default:
		}
		return false
	})
	switch {
	case !ready:
		t.Fatalf("pop3d was not ready within %v:\n%s", StartTimeout, l)
	case s.POP3 == "":
		t.Fatalf("pop3d is ready but logged no POP3 listener:\n%s", l)
	case c.TLS && s.POP3S == "":
		t.Fatalf("pop3d is ready but logged no implicit-TLS POP3 listener:\n%s", l)
	case s.Admin == "":
		t.Fatalf("pop3d is ready but logged no admin listener:\n%s", l)
	case c.SMTP && len(s.SMTP) == 0:
		t.Fatalf("pop3d is ready but logged no SMTP listener:\n%s", l)
	case c.Submission && (s.Submission == "" || s.SubmissionTLS == ""):
		t.Fatalf("pop3d is ready but logged no submission listeners:\n%s", l)
	}
	return s
}

// Audit is what pop3ctl, run by Ctl, sent to syslog: its audit lines.
func (s *Server) Audit() string { return s.audit.String() }

// listenSyslog opens the datagram socket that stands for syslog for the
// pop3ctl runs of Ctl, and collects what arrives until the test ends.
func (s *Server) listenSyslog() {
	path := filepath.Join(s.Dir, "syslog.sock")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return // pop3ctl then writes its audit lines on stderr
	}
	s.sysLog = path
	s.t.Cleanup(func() { c.Close() })
	go func() {
		buf := make([]byte, 64<<10)
		for {
			n, err := c.Read(buf)
			if err != nil {
				return
			}
			s.audit.Write(append(buf[:n:n], '\n'))
		}
	}()
}

// Log is what pop3d wrote to its standard error so far.
func (s *Server) Log() string { return s.log.String() }

// Stdout is what pop3d wrote to its standard output so far.
func (s *Server) Stdout() string { return s.stdout.String() }

// Signal sends sig to pop3d.
func (s *Server) Signal(sig os.Signal) error { return s.Cmd.Process.Signal(sig) }

// Wait waits up to d for pop3d to exit and returns its exit status; ok
// is false when it is still running.
func (s *Server) Wait(d time.Duration) (err error, ok bool) {
	select {
	case <-s.exited:
		return s.err, true
	default:
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-s.exited:
		return s.err, true
	case <-timer.C:
		return nil, false
	}
}

// Stop sends SIGTERM and waits up to StopTimeout for the exit, then
// kills pop3d. It returns the exit status, or an error saying it had to
// be killed. Stopping a stopped server returns its exit status again.
func (s *Server) Stop() error {
	if err, ok := s.Wait(0); ok {
		return err
	}
	_ = s.Cmd.Process.Signal(syscall.SIGTERM)
	if err, ok := s.Wait(StopTimeout); ok {
		return err
	}
	_ = s.Cmd.Process.Kill()
	<-s.exited
	return fmt.Errorf("%w: no exit within %v after SIGTERM", ErrKilled, StopTimeout)
}

// Ctl runs pop3ctl with the server's configuration and stdin as its
// input; it fails the test when pop3ctl fails and returns its output.
func (s *Server) Ctl(t testing.TB, stdin string, args ...string) string {
	t.Helper()
	out, err := s.TryCtl(stdin, args...)
	if err != nil {
		t.Fatalf("pop3ctl %v: %v: %s", args, err, out)
	}
	return out
}

// TryCtl runs pop3ctl like Ctl and returns its combined output and error.
func (s *Server) TryCtl(stdin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), CtlTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, Binary(s.t, "pop3ctl"), append([]string{"-config", s.Conf}, args...)...)
	cmd.Dir = s.Dir
	cmd.Stdin = strings.NewReader(stdin)
	if os.Getenv("POP3CTL_SYSLOG") == "" && s.sysLog != "" {
		// pop3ctl's audit lines go to the server's syslog socket, not
		// into the output the caller parses.
		cmd.Env = append(os.Environ(), "POP3CTL_SYSLOG="+s.sysLog)
	}
	out, err := cmd.CombinedOutput()
	return string(out), err
}
