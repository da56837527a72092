package engine

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pop3svc/pop3svc/cmd/pop3d/pop3dtest"
	"github.com/pop3svc/pop3svc/engine/certs"
	"github.com/pop3svc/pop3svc/session/auth"
	"github.com/pop3svc/pop3svc/session/pop3"
	"github.com/pop3svc/pop3svc/session/pop3/transcript"
	"github.com/pop3svc/pop3svc/store/filestore"
)

// pop3TLSServer is the engine with real POP3 sessions over a file store
// holding the transcript fixture (alice has the fixture messages).
type pop3TLSServer struct {
	plainAddr, tlsAddr string
	caFile             string // the self-signed certificate, for clients
}

func startPOP3TLS(t *testing.T, spaRequired bool) *pop3TLSServer {
	t.Helper()
	root := filepath.Join(t.TempDir(), "mailroot")
	st, err := filestore.Open(root, filestore.Options{Node: 1,
		Argon2: filestore.Argon2Params{Time: 1, MemoryKiB: 64, Threads: 1, KeyLen: 32}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := transcript.Fixture(context.Background(), st); err != nil {
		t.Fatal(err)
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	cm, err := certs.New(certs.Options{MailRoot: root, Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	opts := &pop3.Options{
		Store:           st,
		Auth:            &auth.Authenticator{Method: auth.PasswordFile{Store: st}, Store: st, FailDelay: 10 * time.Millisecond, Hostname: "localhost"},
		Greeting:        "POP3 service ready",
		Hostname:        "localhost",
		SPARequired:     spaRequired,
		TLSAvailable:    true,
		MaxBadCommands:  10,
		MaxAuthFailures: 3,
		Node:            1,
		Logger:          quiet,
	}
	cfg := defaultConfig()
	cfg.Listen = []string{"127.0.0.1:0"}
	cfg.ThreadCount = 16
	s, err := New(Options{
		Config:       cfg,
		Factory:      pop3.NewFactory(opts),
		Logger:       quiet,
		Loops:        2,
		NewTransport: TLSTransports(cm.TLSConfig(), 5*time.Second),
		TLSListen:    []string{"127.0.0.1:0"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Shutdown(t.Context()) })
	ps := &pop3TLSServer{caFile: filepath.Join(root, ".pop3", "tls", "cert.pem")}
	for _, a := range s.Addrs() {
		if s.bound[a.(*net.TCPAddr).Port] {
			ps.tlsAddr = a.String()
		} else {
			ps.plainAddr = a.String()
		}
	}
	return ps
}

func run(t *testing.T, stdin string, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return string(out)
}

func TestCurlTLS(t *testing.T) {
	curl := pop3dtest.NeedTool(t, "curl")
	ps := startPOP3TLS(t, true)
	user := transcript.AliceUser + ":" + transcript.AlicePassword
	for _, url := range []string{"pop3://" + ps.plainAddr + "/1", "pop3s://" + ps.tlsAddr + "/1"} {
		out := run(t, "", curl, "-sS", "--ssl-reqd", "--cacert", ps.caFile, "--connect-to", "localhost:"+port(url)+":"+hostport(url),
			"-u", user, strings.Replace(url, "127.0.0.1", "localhost", 1))
		if !strings.Contains(out, "Subject: first") {
			t.Errorf("curl %s: %q", url, out)
		}
	}
}

func TestPythonPoplibTLS(t *testing.T) {
	py := pop3dtest.NeedTool(t, "python3")
	ps := startPOP3TLS(t, true)
	script := `
import poplib, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[1])
host, port = sys.argv[2].rsplit(":", 1)
p = poplib.POP3(host, int(port), timeout=20)
caps = p.capa()
assert "STLS" in caps and "USER" not in caps, caps
try:
    p.user(sys.argv[4]); print("USER accepted before STLS"); sys.exit(1)
except poplib.error_proto as e:
    print("before STLS:", e)
p.stls(context=ctx)
caps = p.capa()
assert "STLS" not in caps and "USER" in caps, caps
p.user(sys.argv[4]); p.pass_(sys.argv[5])
print("stls stat", p.stat())
p.quit()
host, port = sys.argv[3].rsplit(":", 1)
s = poplib.POP3_SSL(host, int(port), context=ctx, timeout=20)
s.user(sys.argv[4]); s.pass_(sys.argv[5])
resp, lines, octets = s.retr(1)
assert b"Subject: first" in b"\n".join(lines), lines
print("ssl retr", octets)
s.quit()
`
	out := run(t, "", py, "-c", script, ps.caFile, strings.Replace(ps.plainAddr, "127.0.0.1", "localhost", 1),
		strings.Replace(ps.tlsAddr, "127.0.0.1", "localhost", 1), transcript.AliceUser, transcript.AlicePassword)
	for _, want := range []string{"before STLS: b'-ERR", "stls stat", "ssl retr"} {
		if !strings.Contains(out, want) {
			t.Errorf("poplib output lacks %q:\n%s", want, out)
		}
	}
}

func TestOpenSSLStartTLS(t *testing.T) {
	openssl := pop3dtest.NeedTool(t, "openssl")
	ps := startPOP3TLS(t, false)
	out := run(t, "CAPA\r\nSTLS\r\nQUIT\r\n", openssl, "s_client", "-starttls", "pop3", "-connect", ps.plainAddr,
		"-CAfile", ps.caFile, "-verify_return_error", "-servername", "localhost", "-quiet")
	// After TLS: CAPA without STLS, a second STLS refused, QUIT answered.
	if !strings.Contains(out, "USER") || strings.Contains(out, "\nSTLS") {
		t.Errorf("CAPA over TLS:\n%s", out)
	}
	if !strings.Contains(out, "-ERR") || !strings.Contains(out, "+OK") {
		t.Errorf("openssl s_client session:\n%s", out)
	}
	t.Log(out)
}

func port(url string) string {
	hp := hostport(url)
	return hp[strings.LastIndexByte(hp, ':')+1:]
}

func hostport(url string) string {
	rest := url[strings.Index(url, "://")+3:]
	return rest[:strings.IndexByte(rest, '/')]
}

// capa reads a CAPA listing.
func (c *tclient) capa() []string {
	c.t.Helper()
	c.send("CAPA\r\n")
	if l := c.line(); !strings.HasPrefix(l, "+OK") {
		c.t.Fatalf("CAPA: %q", l)
	}
	var caps []string
	for l := c.line(); l != "."; l = c.line() {
		caps = append(caps, strings.Fields(l)[0])
	}
	return caps
}

func hasCap(caps []string, name string) bool {
	for _, c := range caps {
		if c == name {
			return true
		}
	}
	return false
}

// TestSPARequiredOverSTLS: with auth.sparequired, USER/PASS is neither
// offered nor accepted in plaintext, and works once STLS succeeded; CAPA
// over TLS drops STLS and a second STLS is refused (RFC 2595 section 4).
func TestSPARequiredOverSTLS(t *testing.T) {
	ps := startPOP3TLS(t, true)
	raw, err := net.DialTimeout("tcp", ps.plainAddr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	raw.SetDeadline(time.Now().Add(30 * time.Second))
	pc := &tclient{t: t, c: raw, r: bufio.NewReader(raw)}
	if l := pc.line(); !strings.HasPrefix(l, "+OK") {
		t.Fatalf("greeting %q", l)
	}
	caps := pc.capa()
	if hasCap(caps, "USER") || !hasCap(caps, "STLS") {
		t.Errorf("plaintext CAPA with sparequired: %v", caps)
	}
	pc.send("USER " + transcript.AliceUser + "\r\n")
	if l := pc.line(); !strings.HasPrefix(l, "-ERR") {
		t.Fatalf("USER before STLS: %q", l)
	}
	pc.send("STLS\r\n")
	if l := pc.line(); !strings.HasPrefix(l, "+OK") {
		t.Fatalf("STLS: %q", l)
	}
	pool := x509.NewCertPool()
	pem, err := os.ReadFile(ps.caFile)
	if err != nil || !pool.AppendCertsFromPEM(pem) {
		t.Fatalf("cannot read %s: %v", ps.caFile, err)
	}
	tc := tls.Client(raw, &tls.Config{RootCAs: pool, ServerName: "localhost"})
	c := &tclient{t: t, c: tc, r: bufio.NewReader(tc)}
	caps = c.capa()
	if !hasCap(caps, "USER") || hasCap(caps, "STLS") {
		t.Errorf("CAPA over TLS: %v", caps)
	}
	c.send("STLS\r\n")
	if l := c.line(); !strings.HasPrefix(l, "-ERR") {
		t.Errorf("second STLS: %q", l)
	}
	c.send("USER " + transcript.AliceUser + "\r\nPASS " + transcript.AlicePassword + "\r\nSTAT\r\nQUIT\r\n")
	for i, want := range []string{"+OK", "+OK", fmt.Sprintf("+OK %d ", len(transcript.FixtureMessages)), "+OK"} {
		if l := c.line(); !strings.HasPrefix(l, want) {
			t.Errorf("reply %d: %q, want %q...", i, l, want)
		}
	}
}
