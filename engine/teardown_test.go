package engine

import (
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pop3svc/pop3svc/session"
)

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
		fd := ts.connOf(t, c.c).gc.Fd()
		name := fmt.Sprint("reset", i)
		g := ts.fx.gate(name)
		c.send("IHOLD " + name + "\r\nECHO after\r\n")
		g.waitEntered(t)
		// SO_LINGER 0: close sends RST, so the server's reply write fails
		// once the loop goes on.
		if err := c.c.(*net.TCPConn).SetLinger(0); err != nil {
			t.Fatal(err)
		}
		c.c.Close()
		eventually(t, "the server's socket reset", func() bool { return tcpState(fd) == tcpClose })
		g.open()
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

// tcpClose is Linux's TCP_CLOSE, the state of a socket that got a reset.
const tcpClose = 7

// tcpState is the kernel's TCP state of the socket fd (TCP_INFO).
func tcpState(fd int) uint8 {
	info, err := unix.GetsockoptTCPInfo(fd, unix.IPPROTO_TCP, unix.TCP_INFO)
	if err != nil {
		return 0
	}
	return info.State
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
				io.WriteString(c, "ECHO a\r\nWORK b\r\nWORK c\r\n")
				rst()
			case 2: // gone while a worker handles a command
				name := fmt.Sprint("churn", i)
				g := fx.gate(name)
				io.WriteString(c, "HOLD "+name+"\r\n")
				if !waitChan(g.entered) {
					t.Errorf("connection %d: the command never reached a worker", i)
					return
				}
				k := ts.findConn(c) // registered: its command runs
				c.Close()
				if k == nil || !poll(func() bool { return k.closed.Load() }) {
					t.Errorf("connection %d: the server did not see the close", i)
				}
				g.open()
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
