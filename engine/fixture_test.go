package engine

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"github.com/pop3svc/pop3svc/cmd/pop3d/pop3dtest"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/panjf2000/gnet/v2"

	"github.com/pop3svc/pop3svc/session"
)

// lineSession is a small line protocol used to exercise the engine:
//
//	ECHO text     +OK text              (inline)
//	WORK text     +OK text              (on a worker)
//	HOLD name     +OK held, once the test opens the gate name (on a worker, blocks it)
//	BODY n        +OK then n octets of a pattern and ".\r\n" (streamed)
//	NOSPLICE n    the same from a session.FileBody whose SendFile fails with EINVAL
//	              (a file system that cannot splice): read instead
//	STALL n       the same from a session.FileBody whose SendFile waits at the gate
//	              "sendfile" (a disk that does not answer), then fails
//	COPY n        the same from a session.FileBody that is not Sendable (lines to
//	              stuff): a goroutine of its own copies it
//	COPYFAIL n    the same, whose Read fails after half the octets (a disk error)
//	COPYSTALL n   the same, whose first Read waits at the gate "read" (a disk that
//	              does not answer), then fails
//	COPYPANIC n   the same, whose Read panics after half the octets
//	SENDPANIC n   +OK then a Sendable session.FileBody whose SendFile panics
//	DELAY ms      -ERR delayed, ms later
//	LOGIN         +OK, Authenticated
//	PANIC         panics (on a worker); IPANIC panics in Inline
//	QUIT          +OK bye, Close
type lineSession struct {
	fx       *fixture
	greeting string
	loggedIn atomic.Bool
	renewing atomic.Bool
}

// RenewDue and Renew make lineSession a session.Renewer once logged in:
// every sweep asks for one renewal, counted in fixture.renewed.
func (s *lineSession) RenewDue(time.Time) bool {
	return s.loggedIn.Load() && s.renewing.CompareAndSwap(false, true)
}

// Renew clears the flag before counting: a test that sees the count go up
// and sweeps again finds the session ready for its next renewal.
func (s *lineSession) Renew() {
	s.renewing.Store(false)
	s.fx.renewed.Add(1)
}

type fixture struct {
	greeting atomic.Value // string
	closed   atomic.Int64
	opened   atomic.Int64
	renewed  atomic.Int64
	bodies   sync.WaitGroup

	mu    sync.Mutex
	gates map[string]*gate
}

func newFixture() *fixture {
	f := &fixture{gates: make(map[string]*gate)}
	f.greeting.Store("+OK ready")
	return f
}

// gate holds the commands that reach it until the test opens it: the test
// learns that a command is running (waitEntered) and decides when it ends
// (open), instead of guessing how long a sleep it needs.
type gate struct {
	entered chan struct{} // one value per command that reached the gate
	release chan struct{} // closed by open
	once    sync.Once
}

// gate returns the gate called name, made on first use (by the test or
// by the first command that reaches it).
func (f *fixture) gate(name string) *gate {
	f.mu.Lock()
	defer f.mu.Unlock()
	g := f.gates[name]
	if g == nil {
		g = &gate{entered: make(chan struct{}, 64), release: make(chan struct{})}
		f.gates[name] = g
	}
	return g
}

// openAll opens every gate, so that no worker stays blocked when the test
// ends.
func (f *fixture) openAll() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, g := range f.gates {
		g.open()
	}
}

// pass is what a held command runs: it says it arrived and waits.
func (g *gate) pass() {
	g.entered <- struct{}{}
	<-g.release
}

func (g *gate) open() { g.once.Do(func() { close(g.release) }) }

// waitEntered waits until a command reached the gate.
func (g *gate) waitEntered(t *testing.T) {
	t.Helper()
	select {
	case <-g.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("timed out waiting for a command to reach the gate")
	}
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
	case "HOLD":
		s.fx.gate(arg).pass()
		return session.Reply{Out: []byte("+OK held\r\n")}
	case "BODY":
		n, _ := strconv.Atoi(arg)
		s.fx.bodies.Add(1)
		return session.Reply{Out: []byte("+OK body\r\n"), Body: &patternBody{n: int64(n), fx: s.fx}}
	case "NOSPLICE":
		n, _ := strconv.Atoi(arg)
		s.fx.bodies.Add(1)
		return session.Reply{Out: []byte("+OK body\r\n"), Body: &noSpliceBody{patternBody{n: int64(n), fx: s.fx}}}
	case "STALL":
		n, _ := strconv.Atoi(arg)
		s.fx.bodies.Add(1)
		return session.Reply{Out: []byte("+OK body\r\n"), Body: &stallBody{noSpliceBody{patternBody{n: int64(n), fx: s.fx}}}}
	case "COPY", "COPYFAIL", "COPYSTALL", "COPYPANIC":
		n, _ := strconv.Atoi(arg)
		s.fx.bodies.Add(1)
		b := &copyBody{noSpliceBody: noSpliceBody{patternBody{n: int64(n), fx: s.fx}}, fail: -1}
		switch cmd {
		case "COPYFAIL":
			b.fail = int64(n / 2)
		case "COPYSTALL":
			b.fail, b.stall = 0, true
		case "COPYPANIC":
			b.fail, b.panic = int64(n/2), true
		}
		return session.Reply{Out: []byte("+OK body\r\n"), Body: b}
	case "SENDPANIC":
		n, _ := strconv.Atoi(arg)
		s.fx.bodies.Add(1)
		return session.Reply{Out: []byte("+OK body\r\n"), Body: &panicSendBody{noSpliceBody{patternBody{n: int64(n), fx: s.fx}}}}
	case "DELAY":
		ms, _ := strconv.Atoi(arg)
		return session.Reply{Out: []byte("-ERR delayed\r\n"), Delay: time.Duration(ms) * time.Millisecond}
	case "LOGIN":
		s.loggedIn.Store(true)
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

// noSpliceBody is a patternBody offered for sendfile by a file system
// that cannot splice its files.
type noSpliceBody struct{ patternBody }

func (b *noSpliceBody) Size() int64                    { return b.n }
func (b *noSpliceBody) Sendable() bool                 { return true }
func (b *noSpliceBody) SendFile(int, int) (int, error) { return 0, syscall.EINVAL }
func (b *noSpliceBody) Trailer() []byte                { return []byte(".\r\n") }

// stallBody is a body offered for sendfile whose SendFile blocks at the
// gate "sendfile", as sendfile blocks on a disk that does not answer; it
// is read like a patternBody.
type stallBody struct{ noSpliceBody }

func (b *stallBody) SendFile(int, int) (int, error) {
	b.fx.gate("sendfile").pass()
	return 0, io.ErrUnexpectedEOF
}

// panicSendBody is a body offered for sendfile whose SendFile panics (a
// bug in a store's or a session's code).
type panicSendBody struct{ noSpliceBody }

func (b *panicSendBody) SendFile(int, int) (int, error) { panic("SendFile panic") }

// copyBody is a file body that cannot be sent as it is (not Sendable),
// read like a patternBody; from octet fail on (fail >= 0) its Read fails,
// after waiting at the gate "read" when stall is set, or panics when
// panic is set.
type copyBody struct {
	noSpliceBody
	fail  int64
	stall bool
	panic bool
}

func (b *copyBody) Sendable() bool { return false }

func (b *copyBody) Read(p []byte) (int, error) {
	if b.fail >= 0 {
		if b.off >= b.fail {
			if b.stall {
				b.fx.gate("read").pass()
			}
			if b.panic {
				panic("body Read panic")
			}
			return 0, errors.New("read error from the fixture's disk")
		}
		p = p[:min(int64(len(p)), b.fail-b.off)]
	}
	return b.patternBody.Read(p)
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
	t.Cleanup(fx.openAll) // runs first: Shutdown waits for the workers
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

func eventually(t testing.TB, what string, f func() bool) {
	t.Helper()
	if !poll(f) {
		t.Fatalf("timed out waiting for %s", what)
	}
}

// waitChan waits up to ten seconds for a value on ch.
func waitChan(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	case <-time.After(10 * time.Second):
		return false
	}
}

// poll waits up to ten seconds for f to hold; it may run off the test's
// goroutine (it reports instead of failing the test).
func poll(f func() bool) bool { return pop3dtest.Eventually(10*time.Second, f) }

var _ = fmt.Sprint

// pace is a deliberate pause in a client's writing, part of a scenario
// (input split across many reads, a client sending octet by octet). It
// waits for no state: the tests pass whatever the pause turns out to be
// on a loaded machine, they only exercise more code paths with it.
func pace(d time.Duration) { time.Sleep(d) }

// connOf waits until the server registered the connection of the client
// socket c, and returns its context.
func (ts *testServer) connOf(t *testing.T, c net.Conn) *conn {
	t.Helper()
	var k *conn
	eventually(t, "connection registered", func() bool {
		k = ts.findConn(c)
		return k != nil
	})
	return k
}

// findConn returns the context of the client socket c, or nil when the
// server has not registered it.
func (ts *testServer) findConn(c net.Conn) *conn {
	var found *conn
	want := c.LocalAddr().String()
	ts.registry.each(func(k *conn) {
		if k.remote == want {
			found = k
		}
	})
	return found
}

// barrier returns once the event loop ran everything posted to it before:
// a loop runs its tasks and callbacks one at a time, in order.
func (ts *testServer) barrier(t *testing.T, loop gnet.EventLoop) {
	t.Helper()
	done := make(chan struct{})
	if err := loop.Execute(context.Background(), gnet.RunnableFunc(func(context.Context) error {
		close(done)
		return nil
	})); err != nil {
		t.Fatalf("cannot post to the event loop: %v", err)
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("timed out waiting for the event loop")
	}
}

// sleepySession adds to the fixture protocol:
//
//	IHOLD name  +OK awake, once the test opens the gate name; the event
//	            loop is blocked meanwhile (inline)
//	SASL        +OK, then LineLimit reports limitInSASL until the next line
type sleepySession struct {
	*lineSession
	inSASL      bool
	limitInSASL int
}

func (s *sleepySession) Inline(line []byte) bool {
	if strings.HasPrefix(string(line), "IHOLD ") || string(line) == "SASL" || s.inSASL {
		return true
	}
	return s.lineSession.Inline(line)
}

func (s *sleepySession) Handle(line []byte) session.Reply {
	if s.inSASL {
		s.inSASL = false
		return session.Reply{Out: []byte("+OK sasl " + strconv.Itoa(len(line)) + "\r\n")}
	}
	if name, ok := strings.CutPrefix(string(line), "IHOLD "); ok {
		s.fx.gate(name).pass()
		return session.Reply{Out: []byte("+OK awake\r\n")}
	}
	if string(line) == "SASL" {
		s.inSASL = true
		return session.Reply{Out: []byte("+ go on\r\n")}
	}
	return s.lineSession.Handle(line)
}

func (s *sleepySession) LineTooLong() session.Reply {
	s.inSASL = false
	return s.lineSession.LineTooLong()
}

func (s *sleepySession) LineLimit() int {
	if s.inSASL {
		return s.limitInSASL
	}
	return 0
}

func startSleepyServer(t *testing.T, edit func(cfg *Config)) *testServer {
	t.Helper()
	ts := startServer(t, edit)
	fx := ts.fx
	if err := ts.Reload(ts.cfg, func(ci session.ConnInfo) session.Session {
		ls := fx.factory(ci).(*lineSession)
		return &sleepySession{lineSession: ls, limitInSASL: ts.cfg.MaxAuthLine}
	}); err != nil {
		t.Fatal(err)
	}
	return ts
}

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
		LoginDeadline:    60 * time.Second,
		IdleTimeout:      10 * time.Minute,
		ShedAt:           90,
		MaxLine:          1024,
		MaxAuthLine:      8192,
		MaxInbound:       128 << 10,
		MaxPipelined:     10000,
		BacklogMaxInput:  1024,
		OutboundHighMark: 256 << 10,
		OutboundLowMark:  64 << 10,
	}
}
