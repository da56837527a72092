package engine

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pop3svc/pop3svc/session"
)

// sleepySession adds to the fixture protocol:
//
//	ISLEEP ms   +OK awake, after sleeping ms on the event loop (inline)
//	SASL        +OK, then LineLimit reports limitInSASL until the next line
type sleepySession struct {
	*lineSession
	inSASL      bool
	limitInSASL int
}

func (s *sleepySession) Inline(line []byte) bool {
	if strings.HasPrefix(string(line), "ISLEEP") || string(line) == "SASL" || s.inSASL {
		return true
	}
	return s.lineSession.Inline(line)
}

func (s *sleepySession) Handle(line []byte) session.Reply {
	if s.inSASL {
		s.inSASL = false
		return session.Reply{Out: []byte("+OK sasl " + strconv.Itoa(len(line)) + "\r\n")}
	}
	if ms, ok := strings.CutPrefix(string(line), "ISLEEP "); ok {
		n, _ := strconv.Atoi(ms)
		time.Sleep(time.Duration(n) * time.Millisecond)
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

// A write that fails on the event loop (the peer reset the connection
// while an inline command ran) makes gnet run OnClose from inside Write.
// The connection context must not be finalized and recycled while the
// loop is still inside OnTraffic using it (run with -race: the recycling
// worker's reset raced with the loop).
func TestResetDuringInlineReply(t *testing.T) {
	ts := startSleepyServer(t, nil)
	const n = 6
	for i := range n {
		c := ts.dial(t)
		c.expect("+OK ready")
		c.send("ISLEEP 60\r\nECHO after\r\n")
		time.Sleep(10 * time.Millisecond)
		// SO_LINGER 0: close sends RST, so the server's reply write fails.
		if err := c.c.(*net.TCPConn).SetLinger(0); err != nil {
			t.Fatal(err)
		}
		c.c.Close()
		_ = i
	}
	eventually(t, "sessions closed", func() bool { return ts.fx.closed.Load() == n })
	eventually(t, "sockets released", func() bool { return ts.Status().Sockets.InUse == 0 })
	// The recycled contexts serve new connections normally.
	for range 3 {
		c := ts.dial(t)
		c.expect("+OK ready")
		c.send("ECHO x\r\nQUIT\r\n")
		c.expect("+OK x")
		c.expect("+OK bye")
		c.expectClosed(5 * time.Second)
	}
}

// limits.max_line bounds command lines (RFC 2449 section 4: 255 octets
// is the least a server must accept); only a session that asks for more
// through session.LineLimiter (a SASL exchange, limits.max_auth_line) gets
// the longer limit.
func TestMaxLineForCommands(t *testing.T) {
	ts := startSleepyServer(t, func(cfg *Config) {
		cfg.MaxLine = 300
		cfg.MaxAuthLine = 4000
	})
	c := ts.dial(t)
	c.expect("+OK ready")
	// 298 octets + CRLF = 300: accepted; one more is too long.
	ok := "ECHO " + strings.Repeat("a", 293)
	c.send(ok + "\r\n")
	c.expect("+OK " + strings.Repeat("a", 293))
	c.send(ok + "b\r\nECHO next\r\n")
	c.expect("-ERR line too long")
	c.expect("+OK next")
	// A command line between max_line and max_auth_line is refused too.
	c.send("ECHO " + strings.Repeat("c", 2000) + "\r\n")
	c.expect("-ERR line too long")
	// In the SASL state the longer limit applies, also when the
	// continuation was pipelined behind the command.
	c.send("SASL\r\n" + strings.Repeat("d", 3000) + "\r\n")
	c.expect("+ go on")
	c.expect("+OK sasl 3000")
	c.send("SASL\r\n" + strings.Repeat("e", 4000) + "\r\nECHO end\r\n")
	c.expect("+ go on")
	c.expect("-ERR line too long")
	c.expect("+OK end")
}

// overlapSession records whether Close ever ran while Handle was running
// (session.Session promises one goroutine at a time) and how often Close
// ran.
type overlapSession struct {
	*sleepySession
	inHandle atomic.Bool
	overlaps *atomic.Int64
}

func (s *overlapSession) Handle(line []byte) session.Reply {
	s.inHandle.Store(true)
	defer s.inHandle.Store(false)
	return s.sleepySession.Handle(line)
}

func (s *overlapSession) Close() {
	if s.inHandle.Load() {
		s.overlaps.Add(1)
	}
	s.sleepySession.Close()
}

// Connections that go away in every phase (before the greeting is read,
// in the backlog, mid-command on a worker, mid-stream, with a reset, after
// QUIT) leave the socket pool's accounting exact, every session closed
// exactly once and never while its Handle still runs, and every reply
// body closed.
func TestChurnAccounting(t *testing.T) {
	ts := startServer(t, func(cfg *Config) {
		cfg.SocketMax = 8
		cfg.SocketBacklog = 400
		cfg.BacklogWait = time.Minute
		cfg.ThreadCount = 4
		cfg.TaskQueue = 64
	})
	var overlaps atomic.Int64
	fx := ts.fx
	if err := ts.Reload(ts.cfg, func(ci session.ConnInfo) session.Session {
		ls := fx.factory(ci).(*lineSession)
		return &overlapSession{sleepySession: &sleepySession{lineSession: ls}, overlaps: &overlaps}
	}); err != nil {
		t.Fatal(err)
	}
	const n = 240
	var wg sync.WaitGroup
	sem := make(chan struct{}, 24)
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c, err := net.DialTimeout("tcp", ts.addr, 5*time.Second)
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			rst := func() { c.(*net.TCPConn).SetLinger(0) }
			switch i % 6 {
			case 0: // gone at once, maybe still in the backlog
			case 1: // reset with commands queued
				io.WriteString(c, "ECHO a\r\nSLOW 5\r\n")
				rst()
			case 2: // gone while a worker handles a command
				io.WriteString(c, "SLOW 30\r\n")
				time.Sleep(10 * time.Millisecond)
			case 3: // gone mid-stream
				io.WriteString(c, "BODY 3000000\r\n")
				buf := make([]byte, 1000)
				io.ReadFull(c, buf)
				rst()
			case 4: // delayed reply pending
				io.WriteString(c, "DELAY 50\r\n")
			case 5: // a clean session
				io.WriteString(c, "ECHO x\r\nWORK y\r\nQUIT\r\n")
				io.Copy(io.Discard, c)
			}
		}()
	}
	wg.Wait()
	eventually(t, "every connection gone", func() bool {
		st := ts.Status()
		return st.Connections == 0 && st.Sockets.InUse == 0 && st.Sockets.Waiting == 0
	})
	eventually(t, "every session closed", func() bool { return fx.closed.Load() == fx.opened.Load() })
	fx.bodies.Wait()
	if o := overlaps.Load(); o != 0 {
		t.Fatalf("session Close ran %d times while Handle was running", o)
	}
	if fx.opened.Load() != n {
		t.Fatalf("%d sessions opened for %d connections", fx.opened.Load(), n)
	}
	// The pool still serves.
	c := ts.dial(t)
	c.expect("+OK ready")
	c.send("WORK z\r\n")
	c.expect("+OK z")
}

// connByOrder returns the contexts of open connections, oldest first.
func (ts *testServer) conns() []*conn {
	var out []*conn
	ts.registry.each(func(k *conn) { out = append(out, k) })
	slices.SortFunc(out, func(a, b *conn) int { return int(a.id) - int(b.id) })
	return out
}

// A backlogged connection refused for waiting too long must not be
// greeted when a slot frees before its close went through: the admission
// posted for it finds it closing.
func TestBacklogExpiryThenAdmit(t *testing.T) {
	ts := startSleepyServer(t, func(cfg *Config) {
		cfg.SocketMax = 2
		cfg.SocketBacklog = 1
		cfg.BacklogWait = 10 * time.Second
	})
	c1 := ts.dial(t)
	c1.expect("+OK ready")
	c2 := ts.dial(t)
	c2.expect("+OK ready")
	c3 := ts.dial(t)
	eventually(t, "third connection waiting", func() bool { return ts.Status().Sockets.Waiting == 1 })
	ks := ts.conns()
	if len(ks) != 3 {
		t.Fatalf("%d connections registered", len(ks))
	}
	if ks[0].gc.EventLoop() != ks[2].gc.EventLoop() || ks[1].gc.EventLoop() == ks[2].gc.EventLoop() {
		t.Skip("connections not spread over the loops as this test needs")
	}
	// Block the loop of c1 and c3, queue the backlog expiry of c3 and then
	// its admission (c2 leaves, on the other loop) behind it.
	c1.send("ISLEEP 300\r\n")
	time.Sleep(50 * time.Millisecond)
	ts.clock.Advance(11 * time.Second)
	ts.Sweep()
	c2.c.Close()
	c3.expect("-ERR [SYS/TEMP] no free connection slot, try again later")
	c3.expectClosed(5 * time.Second)
	c1.expect("+OK awake")
	eventually(t, "accounting back", func() bool {
		st := ts.Status()
		return st.Sockets.InUse == 1 && st.Sockets.Waiting == 0
	})
}

// A slow reader still taking the tail of a reply after QUIT (the
// connection waits for its output to drain before closing) is making
// progress: the idle sweep must not cut it off and drop what gnet still
// buffers, or a client that pipelined RETR, DELE, QUIT gets a truncated
// message whose deletion was committed.
func TestSlowReaderAfterQuitNotIdle(t *testing.T) {
	ts := startServer(t, func(cfg *Config) {
		cfg.IdleTimeout = 10 * time.Second
	})
	c := dialSlowReader(t, ts.addr)
	c.expect("+OK ready")
	const size = 12 << 20
	c.send(fmt.Sprintf("LOGIN\r\nBODY %d\r\nQUIT\r\n", size))
	c.expect("+OK logged in")
	c.expect("+OK body")
	want := make([]byte, 0, size+3)
	for i := int64(0); i < size; i++ {
		want = append(want, patternByte(i))
	}
	want = append(want, ".\r\n+OK bye\r\n"...)
	got := make([]byte, 0, len(want))
	buf := make([]byte, 256<<10)
	for len(got) < len(want) {
		c.c.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := io.ReadFull(c.r, buf[:min(len(buf), len(want)-len(got))])
		got = append(got, buf[:n]...)
		if err != nil {
			t.Fatalf("read after %d of %d octets: %v", len(got), len(want), err)
		}
		// Every 256 KiB read takes 4 s of the clock: the session is idle
		// by no measure, but its last reply was written long ago.
		time.Sleep(15 * time.Millisecond)
		ts.clock.Advance(4 * time.Second)
		ts.Sweep()
	}
	if !bytes.Equal(got, want) {
		t.Fatal("reply differs")
	}
	c.expectClosed(5 * time.Second)
}
