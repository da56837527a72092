package engine

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pop3svc/pop3svc/engine/certs"
	"github.com/pop3svc/pop3svc/session"
)

// stlsSession adds STLS to the engine tests' line protocol:
//
//	STLS    +OK begin TLS, StartTLS (inline, so a line pipelined behind it
//	        in the same packet is already split when the reply is sent)
//	TLS?    +OK tls | +OK plain
type stlsSession struct {
	*lineSession
	mu  sync.Mutex
	tls bool
}

func (s *stlsSession) Inline(line []byte) bool {
	if l := string(line); l == "STLS" || l == "TLS?" {
		return true
	}
	return s.lineSession.Inline(line)
}

func (s *stlsSession) Handle(line []byte) session.Reply {
	switch string(line) {
	case "STLS":
		return session.Reply{Out: []byte("+OK begin TLS\r\n"), StartTLS: true}
	case "TLS?":
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.tls {
			return session.Reply{Out: []byte("+OK tls\r\n")}
		}
		return session.Reply{Out: []byte("+OK plain\r\n")}
	}
	return s.lineSession.Handle(line)
}

func (s *stlsSession) SetTLS() {
	s.mu.Lock()
	s.tls = true
	s.mu.Unlock()
}

type tlsServer struct {
	*Server
	fx        *fixture
	plainAddr string
	tlsAddr   string
	roots     *x509.CertPool
}

var testCerts struct {
	once sync.Once
	m    *certs.Manager
	err  error
}

func testCertManager(t testing.TB) *certs.Manager {
	t.Helper()
	testCerts.once.Do(func() {
		dir, err := osMkdirTemp()
		if err != nil {
			testCerts.err = err
			return
		}
		testCerts.m, testCerts.err = certs.New(certs.Options{MailRoot: dir, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	})
	if testCerts.err != nil {
		t.Fatal(testCerts.err)
	}
	return testCerts.m
}

// startTLSServer runs an engine with a plaintext (STLS) and an implicit-TLS
// listener on the real clock.
func startTLSServer(t testing.TB, handshake time.Duration, edit func(*Config)) *tlsServer {
	t.Helper()
	return startTLSServerWith(t, testCertManager(t), handshake, edit)
}

func startTLSServerWith(t testing.TB, cm *certs.Manager, handshake time.Duration, edit func(*Config)) *tlsServer {
	t.Helper()
	cfg := defaultConfig()
	cfg.Listen = []string{"127.0.0.1:0"}
	cfg.ThreadCount = 16
	if edit != nil {
		edit(cfg)
	}
	fx := newFixture()
	s, err := New(Options{
		Config: cfg,
		Factory: func(ci session.ConnInfo) session.Session {
			ls := fx.factory(ci).(*lineSession)
			return &stlsSession{lineSession: ls, tls: ci.TLS}
		},
		Logger:       slog.New(slog.NewTextHandler(io.Discard, nil)),
		Loops:        2,
		NewTransport: TLSTransports(cm.TLSConfig(), handshake),
		TLSListen:    []string{"127.0.0.1:0"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Shutdown(t.Context()); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	ts := &tlsServer{Server: s, fx: fx, roots: x509.NewCertPool()}
	ts.roots.AddCert(cm.Certificate().Leaf)
	for _, a := range s.Addrs() {
		if s.bound[a.(*net.TCPAddr).Port] {
			ts.tlsAddr = a.String()
		} else {
			ts.plainAddr = a.String()
		}
	}
	if ts.tlsAddr == "" || ts.plainAddr == "" {
		t.Fatalf("listeners %v", s.Addrs())
	}
	return ts
}

func (ts *tlsServer) clientConfig() *tls.Config {
	return &tls.Config{RootCAs: ts.roots, ServerName: "localhost"}
}

type tclient struct {
	t *testing.T
	c net.Conn
	r *bufio.Reader
}

func (ts *tlsServer) dialTLS(t *testing.T) *tclient {
	t.Helper()
	raw, err := net.DialTimeout("tcp", ts.tlsAddr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c := tls.Client(raw, ts.clientConfig())
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(60 * time.Second))
	return &tclient{t: t, c: c, r: bufio.NewReader(c)}
}

// dialSTLS connects to the plaintext port, reads the greeting, sends STLS
// followed by extra (in the same packet) and upgrades.
func (ts *tlsServer) dialSTLS(t *testing.T, extra string) *tclient {
	t.Helper()
	raw, err := net.DialTimeout("tcp", ts.plainAddr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	raw.SetDeadline(time.Now().Add(60 * time.Second))
	pc := &tclient{t: t, c: raw, r: bufio.NewReader(raw)}
	pc.expect("+OK ready")
	pc.send("STLS\r\n" + extra)
	pc.expect("+OK begin TLS")
	if pc.r.Buffered() > 0 {
		t.Fatalf("plaintext after the STLS reply: %d octets", pc.r.Buffered())
	}
	c := tls.Client(raw, ts.clientConfig())
	c.SetDeadline(time.Now().Add(60 * time.Second))
	return &tclient{t: t, c: c, r: bufio.NewReader(c)}
}

func (c *tclient) send(s string) {
	c.t.Helper()
	if _, err := io.WriteString(c.c, s); err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

func (c *tclient) line() string {
	c.t.Helper()
	l, err := c.r.ReadString('\n')
	if err != nil {
		c.t.Fatalf("read: %v (got %q)", err, l)
	}
	return strings.TrimRight(l, "\r\n")
}

func (c *tclient) expect(want string) {
	c.t.Helper()
	if got := c.line(); got != want {
		c.t.Fatalf("got %q, want %q", got, want)
	}
}

// body reads a patternBody of n octets and its terminator.
func (c *tclient) body(n int) error {
	buf := make([]byte, n+3)
	if _, err := io.ReadFull(c.r, buf); err != nil {
		return fmt.Errorf("body: %w", err)
	}
	for i := 0; i < n; i++ {
		if buf[i] != patternByte(int64(i)) {
			return fmt.Errorf("body octet %d = %q", i, buf[i])
		}
	}
	if string(buf[n:]) != ".\r\n" {
		return fmt.Errorf("body ends %q", buf[n:])
	}
	return nil
}

func TestImplicitTLS(t *testing.T) {
	ts := startTLSServer(t, 0, nil)
	c := ts.dialTLS(t)
	c.expect("+OK ready")
	c.send("TLS?\r\nECHO one\r\nBODY 300000\r\nWORK two\r\n")
	c.expect("+OK tls")
	c.expect("+OK one")
	c.expect("+OK body")
	if err := c.body(300000); err != nil {
		t.Fatal(err)
	}
	c.expect("+OK two")
	c.send("QUIT\r\n")
	c.expect("+OK bye")
	// A clean close: close_notify, then EOF (not an unexpected EOF).
	if b, err := c.r.ReadByte(); err != io.EOF {
		t.Fatalf("after QUIT read %q, %v; want io.EOF", b, err)
	}
}

// TestSTLSInjection: a command pipelined behind STLS in the same packet is
// discarded, not executed over TLS (RFC 2595 section 4; CVE-2011-0411).
func TestSTLSInjection(t *testing.T) {
	ts := startTLSServer(t, 0, nil)
	c := ts.dialSTLS(t, "ECHO injected\r\n")
	c.send("TLS?\r\nECHO after\r\n")
	c.expect("+OK tls")
	c.expect("+OK after")
	c.send("QUIT\r\n")
	c.expect("+OK bye")
}

// slowWriter sends each octet in its own TCP segment.
type slowWriter struct{ c *net.TCPConn }

func (w slowWriter) Read(p []byte) (int, error) { return w.c.Read(p) }
func (w slowWriter) Write(p []byte) (int, error) {
	for i := range p {
		if _, err := w.c.Write(p[i : i+1]); err != nil {
			return i, err
		}
		pace(50 * time.Microsecond) // each octet in a segment of its own
	}
	return len(p), nil
}
func (w slowWriter) Close() error                       { return w.c.Close() }
func (w slowWriter) LocalAddr() net.Addr                { return w.c.LocalAddr() }
func (w slowWriter) RemoteAddr() net.Addr               { return w.c.RemoteAddr() }
func (w slowWriter) SetDeadline(t time.Time) error      { return w.c.SetDeadline(t) }
func (w slowWriter) SetReadDeadline(t time.Time) error  { return w.c.SetReadDeadline(t) }
func (w slowWriter) SetWriteDeadline(t time.Time) error { return w.c.SetWriteDeadline(t) }

// TestTLSByteAtATime: the server gets the client's ciphertext, handshake
// included, one octet per segment.
func TestTLSByteAtATime(t *testing.T) {
	ts := startTLSServer(t, 0, nil)
	raw, err := net.DialTimeout("tcp", ts.tlsAddr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	tc := raw.(*net.TCPConn)
	tc.SetNoDelay(true)
	cfg := ts.clientConfig()
	cfg.CurvePreferences = []tls.CurveID{tls.X25519} // a short ClientHello
	c := tls.Client(slowWriter{tc}, cfg)
	c.SetDeadline(time.Now().Add(60 * time.Second))
	cl := &tclient{t: t, c: c, r: bufio.NewReader(c)}
	cl.expect("+OK ready")
	cl.send("ECHO one\r\nWORK two\r\nBODY 70000\r\n")
	cl.expect("+OK one")
	cl.expect("+OK two")
	cl.expect("+OK body")
	if err := cl.body(70000); err != nil {
		t.Fatal(err)
	}
}

// TestTLSHandshakeLimit: a client that connects to the TLS port and sends
// nothing is closed after tls.handshake_timeout and frees its slot.
func TestTLSHandshakeLimit(t *testing.T) {
	// 2 s: the next client's own handshake, which starts at its accept
	// while it waits in the backlog, must finish within it on a loaded
	// machine.
	const limit = 2 * time.Second
	ts := startTLSServer(t, limit, func(cfg *Config) {
		cfg.SocketMax = 1
		cfg.SocketBacklog = 5
	})
	failed := mTLSHandshakeFailed.Get()
	start := time.Now() // before the accept, so no later than the server's clock starts
	silent, err := net.DialTimeout("tcp", ts.tlsAddr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	eventually(t, "the silent client to hold the slot", func() bool { return ts.Status().Sockets.InUse == 1 })
	// The next client waits in the backlog for the silent one's slot.
	next := ts.dialTLS(t)
	next.expect("+OK ready")
	if d := time.Since(start); d < limit-100*time.Millisecond {
		t.Errorf("second client greeted after %v, before the first timed out", d)
	}
	silent.SetReadDeadline(time.Now().Add(15 * time.Second))
	if n, err := io.Copy(io.Discard, silent); err != nil || n != 0 {
		t.Errorf("silent client: %d octets, %v; want a plain close", n, err)
	}
	if d := time.Since(start); d > 15*time.Second {
		t.Errorf("silent client closed after %v", d)
	}
	if got := mTLSHandshakeFailed.Get(); got <= failed {
		t.Errorf("pop3_tls_handshakes_total{result=failed} = %d, want > %d", got, failed)
	}
	next.send("QUIT\r\n")
	next.expect("+OK bye")
}

// TestTLSGarbage: plaintext on the TLS port fails the handshake at once
// and the server keeps serving.
func TestTLSGarbage(t *testing.T) {
	ts := startTLSServer(t, 0, nil)
	raw, err := net.DialTimeout("tcp", ts.tlsAddr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	raw.Write([]byte("USER alice\r\nPASS secret\r\n"))
	raw.SetReadDeadline(time.Now().Add(5 * time.Second))
	if b, err := io.ReadAll(raw); err != nil {
		t.Fatalf("garbage client: %v (read %q)", err, b)
	} else if strings.Contains(string(b), "+OK") {
		t.Fatalf("the server answered plaintext on the TLS port: %q", b)
	}
	// A TLS 1.1 client is refused (tls.min_version defaults to 1.2).
	old := ts.clientConfig()
	old.MaxVersion = tls.VersionTLS11
	if c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", ts.tlsAddr, old); err == nil {
		c.Close()
		t.Error("TLS 1.1 handshake succeeded")
	}
	c := ts.dialTLS(t)
	c.expect("+OK ready")
}

// TestTLSConcurrent: implicit-TLS and STLS sessions at once, pipelining,
// with large streamed replies (gnet's outbound buffer holds ciphertext, so
// the stream's backpressure applies unchanged).
func TestTLSConcurrent(t *testing.T) {
	const sessions = 200
	const big = 4 << 20
	// Two hundred handshakes at once take long on a loaded machine: the
	// timeouts, real time here, are far beyond what the test may take.
	ts := startTLSServer(t, 10*time.Minute, func(cfg *Config) {
		cfg.SocketMax = 1000
		cfg.ThreadCount = 2 * sessions // the pool refuses work beyond it
		cfg.LoginTimeout = 10 * time.Minute
	})
	okBefore, curBefore := mTLSHandshakeOK.Get(), mTLSCurrent.Get()
	var wg sync.WaitGroup
	errs := make(chan error, sessions)
	for i := range sessions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := 50000
			if i%20 == 0 {
				n = big // ten sessions stream 4 MiB
			}
			errs <- ts.session(i, n)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	eventually(t, "connections closed", func() bool { return ts.Status().Connections == 0 })
	if got := mTLSHandshakeOK.Get() - okBefore; got < sessions {
		t.Errorf("pop3_tls_handshakes_total{result=ok} grew by %d, want %d", got, sessions)
	}
	eventually(t, "pop3_tls_connections_current back", func() bool { return mTLSCurrent.Get() == curBefore })
}

// session runs one pipelined exchange; half use STLS, half implicit TLS.
func (ts *tlsServer) session(i, n int) error {
	var c net.Conn
	var r *bufio.Reader
	cfg := ts.clientConfig()
	if i%2 == 0 {
		raw, err := net.DialTimeout("tcp", ts.tlsAddr, 10*time.Second)
		if err != nil {
			return err
		}
		c = tls.Client(raw, cfg)
	} else {
		raw, err := net.DialTimeout("tcp", ts.plainAddr, 10*time.Second)
		if err != nil {
			return err
		}
		raw.SetDeadline(time.Now().Add(90 * time.Second))
		pr := bufio.NewReader(raw)
		if l, err := pr.ReadString('\n'); err != nil || l != "+OK ready\r\n" {
			raw.Close()
			return fmt.Errorf("session %d greeting %q, %v", i, l, err)
		}
		io.WriteString(raw, "STLS\r\n")
		if l, err := pr.ReadString('\n'); err != nil || l != "+OK begin TLS\r\n" {
			raw.Close()
			return fmt.Errorf("session %d STLS %q, %v", i, l, err)
		}
		c = tls.Client(raw, cfg)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(90 * time.Second))
	r = bufio.NewReader(c)
	cl := &tclient{c: c, r: r}
	if i%2 == 0 {
		if l, err := r.ReadString('\n'); err != nil || l != "+OK ready\r\n" {
			return fmt.Errorf("session %d greeting %q, %v", i, l, err)
		}
	}
	fmt.Fprintf(c, "ECHO %d\r\nBODY %d\r\nWORK %d\r\nTLS?\r\nQUIT\r\n", i, n, i)
	for _, want := range []string{fmt.Sprintf("+OK %d", i), "+OK body"} {
		if l, err := r.ReadString('\n'); err != nil || strings.TrimRight(l, "\r\n") != want {
			return fmt.Errorf("session %d: %q, %v; want %q", i, l, err, want)
		}
	}
	if err := cl.body(n); err != nil {
		return fmt.Errorf("session %d: %w", i, err)
	}
	for _, want := range []string{fmt.Sprintf("+OK %d", i), "+OK tls", "+OK bye"} {
		if l, err := r.ReadString('\n'); err != nil || strings.TrimRight(l, "\r\n") != want {
			return fmt.Errorf("session %d: %q, %v; want %q", i, l, err, want)
		}
	}
	if _, err := r.ReadByte(); !errors.Is(err, io.EOF) {
		return fmt.Errorf("session %d after QUIT: %v, want EOF", i, err)
	}
	return nil
}

func osMkdirTemp() (string, error) { return os.MkdirTemp("", "engine-tls-test") }

// TestTLSCertificateReload: a reload (SIGHUP) switches the certificate for
// new sessions while an established one carries on.
func TestTLSCertificateReload(t *testing.T) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	dir1, dir2 := t.TempDir(), t.TempDir()
	for _, d := range []string{dir1, dir2} {
		if _, err := certs.New(certs.Options{MailRoot: d, Log: quiet}); err != nil {
			t.Fatal(err)
		}
	}
	pair := func(d string) certs.Options {
		tlsDir := d + "/" + certs.SelfSignedDir
		return certs.Options{CertFile: tlsDir + "/cert.pem", KeyFile: tlsDir + "/key.pem", Log: quiet}
	}
	cm, err := certs.New(pair(dir1))
	if err != nil {
		t.Fatal(err)
	}
	first := cm.Fingerprint()
	ts := startTLSServerWith(t, cm, 0, nil)
	cfg := &tls.Config{InsecureSkipVerify: true}
	old, err := tls.Dial("tcp", ts.tlsAddr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	old.SetDeadline(time.Now().Add(30 * time.Second))
	oc := &tclient{t: t, c: old, r: bufio.NewReader(old)}
	oc.expect("+OK ready")
	if err := cm.Apply(pair(dir2)); err != nil {
		t.Fatal(err)
	}
	if cm.Fingerprint() == first {
		t.Fatal("Apply kept the certificate")
	}
	nc, err := tls.Dial("tcp", ts.tlsAddr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if got := nc.ConnectionState().PeerCertificates[0].Raw; string(got) != string(cm.Certificate().Leaf.Raw) {
		t.Error("a new session after the reload got the old certificate")
	}
	if got := old.ConnectionState().PeerCertificates[0].Raw; string(got) == string(cm.Certificate().Leaf.Raw) {
		t.Error("the old session reports the new certificate")
	}
	oc.send("ECHO still here\r\n")
	oc.expect("+OK still here")
}
