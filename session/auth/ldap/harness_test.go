package ldap

// The end-to-end harness: builds pop3d and pop3ctl once (TestMain), then
// runs servers on loopback ports with a configuration written per test.
// When the binaries cannot be built the end-to-end tests skip, except in
// CI (CI=true), where that is a failure.

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

var (
	binDir   string // folder holding pop3d and pop3ctl
	buildErr error
)

// setupBinaries builds the binaries into a temporary folder and returns
// the function that removes it; called from TestMain.
func setupBinaries() func() {
	dir, err := os.MkdirTemp("", "ldap-e2e-")
	if err != nil {
		buildErr = err
		return func() {}
	}
	buildErr = buildBinaries(dir)
	binDir = dir
	return func() { os.RemoveAll(dir) }
}

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

func buildBinaries(out string) error {
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	cmd := exec.Command("go", "build", "-o", out+string(os.PathSeparator), "./cmd/pop3d", "./cmd/pop3ctl")
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./cmd/pop3d ./cmd/pop3ctl: %v\n%s", err, b)
	}
	return nil
}

func needBinaries(t *testing.T) {
	t.Helper()
	if buildErr != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("cannot build the binaries: %v", buildErr)
		}
		t.Skipf("cannot build the binaries: %v", buildErr)
	}
}

func needTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is required in CI (Debian package %s)", name, name)
		}
		t.Skipf("%s not installed", name)
	}
	return p
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// server is a running pop3d.
type server struct {
	dir, conf, pop3, admin string
}

// startServer writes a configuration with authTOML as the body of the
// [auth] table and pop3TOML added to the [pop3] table, runs setup (pop3ctl argument lists), then starts pop3d and
// waits until it accepts connections. The server is stopped when the test
// ends.
func startServer(t *testing.T, authTOML, pop3TOML string, setup ...[]string) *server {
	t.Helper()
	needBinaries(t)
	s := &server{dir: t.TempDir(), pop3: freeAddr(t), admin: freeAddr(t)}
	s.conf = filepath.Join(s.dir, "pop3d.toml")
	conf := fmt.Sprintf(`mailroot = "mailroot"
[auth]
%s
[pop3]
listen = [%q]
listen_tls = []
%s
[smtp]
listen = []
[admin]
listen = %q
`, authTOML, s.pop3, pop3TOML, s.admin)
	if err := os.WriteFile(s.conf, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range setup {
		s.ctl(t, "", args...)
	}
	cmd := exec.Command(filepath.Join(binDir, "pop3d"), "-config", s.conf)
	cmd.Dir = s.dir
	logf, err := os.Create(filepath.Join(s.dir, "pop3d.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); logf.Close(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(s.dir, "pop3d.log"))
			t.Logf("pop3d log:\n%s", b)
		}
	})
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", s.pop3, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return s
		}
		select {
		case <-exited:
			b, _ := os.ReadFile(filepath.Join(s.dir, "pop3d.log"))
			t.Fatalf("pop3d exited at start:\n%s", b)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("pop3d did not listen within 15s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ctl runs pop3ctl with the server's configuration.
func (s *server) ctl(t *testing.T, stdin string, args ...string) {
	t.Helper()
	cmd := exec.Command(filepath.Join(binDir, "pop3ctl"), append([]string{"-config", s.conf}, args...)...)
	cmd.Dir = s.dir
	cmd.Stdin = strings.NewReader(stdin)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("pop3ctl %v: %v: %s", args, err, out)
	}
}

// pop3Conn is a minimal POP3 client.
type pop3Conn struct {
	t *testing.T
	c net.Conn
	r *bufio.Reader
}

func dialPOP3(t *testing.T, addr, localIP string) *pop3Conn {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second}
	if localIP != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(localIP)}
	}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	p := &pop3Conn{t: t, c: c, r: bufio.NewReader(c)}
	if g := p.line(); !strings.HasPrefix(g, "+OK") {
		t.Fatalf("greeting %q", g)
	}
	return p
}

func (p *pop3Conn) line() string {
	p.t.Helper()
	p.c.SetReadDeadline(time.Now().Add(20 * time.Second))
	l, err := p.r.ReadString('\n')
	if err != nil {
		p.t.Fatalf("reading a reply: %v (got %q)", err, l)
	}
	return strings.TrimRight(l, "\r\n")
}

func (p *pop3Conn) cmd(line string) string {
	p.t.Helper()
	if _, err := fmt.Fprintf(p.c, "%s\r\n", line); err != nil {
		p.t.Fatal(err)
	}
	return p.line()
}
