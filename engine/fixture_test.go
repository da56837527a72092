package engine

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pop3svc/pop3svc/session"
)

// lineSession is a small line protocol used to exercise the engine:
//
//	ECHO text     +OK text              (inline)
//	WORK text     +OK text              (on a worker)
//	SLOW ms       +OK slow, after ms    (on a worker, blocks it)
//	BODY n        +OK then n octets of a pattern and ".\r\n" (streamed)
//	DELAY ms      -ERR delayed, ms later
//	LOGIN         +OK, Authenticated
//	PANIC         panics (on a worker); IPANIC panics in Inline
//	QUIT          +OK bye, Close
type lineSession struct {
	fx       *fixture
	greeting string
}

type fixture struct {
	greeting atomic.Value // string
	closed   atomic.Int64
	opened   atomic.Int64
	bodies   sync.WaitGroup
}

func newFixture() *fixture {
	f := &fixture{}
	f.greeting.Store("+OK ready")
	return f
}

func (f *fixture) factory(ci session.ConnInfo) session.Session {
	f.opened.Add(1)
	return &lineSession{fx: f, greeting: f.greeting.Load().(string)}
}

func (s *lineSession) Greeting() session.Reply {
	return session.Reply{Out: []byte(s.greeting + "\r\n")}
}

func (s *lineSession) Inline(line []byte) bool {
	l := string(line)
	if strings.HasPrefix(l, "IPANIC") {
		panic("inline panic")
	}
	return strings.HasPrefix(l, "ECHO") || l == "LOGIN" || l == "QUIT" || strings.HasPrefix(l, "DELAY")
}

func (s *lineSession) Handle(line []byte) session.Reply {
	cmd, arg, _ := strings.Cut(string(line), " ")
	switch cmd {
	case "ECHO", "WORK":
		return session.Reply{Out: []byte("+OK " + arg + "\r\n")}
	case "SLOW":
		ms, _ := strconv.Atoi(arg)
		time.Sleep(time.Duration(ms) * time.Millisecond)
		return session.Reply{Out: []byte("+OK slow\r\n")}
	case "BODY":
		n, _ := strconv.Atoi(arg)
		s.fx.bodies.Add(1)
		return session.Reply{Out: []byte("+OK body\r\n"), Body: &patternBody{n: int64(n), fx: s.fx}}
	case "DELAY":
		ms, _ := strconv.Atoi(arg)
		return session.Reply{Out: []byte("-ERR delayed\r\n"), Delay: time.Duration(ms) * time.Millisecond}
	case "LOGIN":
		return session.Reply{Out: []byte("+OK logged in\r\n"), Authenticated: true}
	case "PANIC":
		panic("handler panic")
	case "QUIT":
		return session.Reply{Out: []byte("+OK bye\r\n"), Close: true}
	}
	return session.Reply{Out: []byte("-ERR unknown command\r\n")}
}

func (s *lineSession) LineTooLong() session.Reply {
	return session.Reply{Out: []byte("-ERR line too long\r\n")}
}

func (s *lineSession) SetTLS() {}

func (s *lineSession) Close() { s.fx.closed.Add(1) }

// patternBody yields n octets of a fixed pattern then ".\r\n".
type patternBody struct {
	n, off int64
	fx     *fixture
	closed bool
}

func patternByte(i int64) byte { return byte('a' + i%23) }

func (b *patternBody) Read(p []byte) (int, error) {
	total := b.n + 3
	if b.off >= total {
		return 0, io.EOF
	}
	i := 0
	for ; i < len(p) && b.off < total; i++ {
		switch {
		case b.off < b.n:
			p[i] = patternByte(b.off)
		default:
			p[i] = ".\r\n"[b.off-b.n]
		}
		b.off++
	}
	return i, nil
}

func (b *patternBody) Close() error {
	if !b.closed {
		b.closed = true
		b.fx.bodies.Done()
	}
	return nil
}

// manualClock is a clock tests move by hand.
type manualClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *manualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *manualClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type testServer struct {
	*Server
	fx    *fixture
	addr  string
	clock *manualClock
	cfg   *Config
}

func startServer(t *testing.T, edit func(cfg *Config)) *testServer {
	t.Helper()
	cfg := defaultConfig()
	cfg.Listen = []string{"127.0.0.1:0"}
	cfg.ThreadCount = 8
	if edit != nil {
		edit(cfg)
	}
	fx := newFixture()
	clock := &manualClock{t: time.Unix(1_700_000_000, 0)}
	s, err := New(Options{
		Config:        cfg,
		Factory:       fx.factory,
		Now:           clock.Now,
		Logger:        testLogger(),
		SweepInterval: time.Hour, // tests sweep by hand
		Loops:         2,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	ts := &testServer{Server: s, fx: fx, addr: s.Addrs()[0].String(), clock: clock, cfg: cfg}
	t.Cleanup(func() {
		if err := s.Shutdown(t.Context()); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	return ts
}

type client struct {
	t *testing.T
	c net.Conn
	r *bufio.Reader
}

func (ts *testServer) dial(t *testing.T) *client {
	t.Helper()
	c, err := net.DialTimeout("tcp", ts.addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &client{t: t, c: c, r: bufio.NewReader(c)}
}

func (c *client) send(s string) {
	c.t.Helper()
	c.c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c.c, s); err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

func (c *client) line() string {
	c.t.Helper()
	c.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	l, err := c.r.ReadString('\n')
	if err != nil {
		c.t.Fatalf("read: %v (got %q)", err, l)
	}
	return strings.TrimRight(l, "\r\n")
}

func (c *client) expect(want string) {
	c.t.Helper()
	if got := c.line(); got != want {
		c.t.Fatalf("got %q, want %q", got, want)
	}
}

// expectClosed reads until EOF, failing on anything but want lines.
func (c *client) expectClosed(within time.Duration) {
	c.t.Helper()
	c.c.SetReadDeadline(time.Now().Add(within))
	rest, err := io.ReadAll(c.r)
	if err != nil {
		c.t.Fatalf("connection not closed: %v (read %q)", err, rest)
	}
	if len(rest) > 0 {
		c.t.Fatalf("unexpected data before close: %q", rest)
	}
}

// noData checks nothing arrives for a while.
func (c *client) noData(d time.Duration) {
	c.t.Helper()
	c.c.SetReadDeadline(time.Now().Add(d))
	b, err := c.r.ReadByte()
	if err == nil {
		c.t.Fatalf("unexpected data %q", b)
	}
	if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
		c.t.Fatalf("unexpected error: %v", err)
	}
}

func eventually(t *testing.T, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

var _ = fmt.Sprint

// testLogger discards engine logs unless the tests run with -v.
func testLogger() *slog.Logger {
	if testing.Verbose() {
		return slog.Default()
	}
	return slog.New(slog.DiscardHandler)
}

// defaultConfig is the engine's share of pop3d's default configuration.
func defaultConfig() *Config {
	return &Config{
		Listen:           []string{"127.0.0.1:1100"},
		SocketMin:        10,
		SocketThreshold:  5,
		SocketMax:        10000,
		SocketBacklog:    1000,
		BacklogWait:      30 * time.Second,
		ThreadCount:      64,
		TaskQueue:        4096,
		LoginTimeout:     60 * time.Second,
		IdleTimeout:      10 * time.Minute,
		MaxLine:          1024,
		MaxAuthLine:      8192,
		MaxInbound:       64 << 10,
		BacklogMaxInput:  1024,
		OutboundHighMark: 256 << 10,
		OutboundLowMark:  64 << 10,
	}
}
