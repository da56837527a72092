package engine

import (
	"bufio"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestGreetingAndQuit(t *testing.T) {
	ts := startServer(t, nil)
	c := ts.dial(t)
	c.expect("+OK ready")
	c.send("ECHO hi\r\nQUIT\r\n")
	c.expect("+OK hi")
	c.expect("+OK bye")
	c.expectClosed(5 * time.Second)
	eventually(t, "session closed", func() bool { return ts.fx.closed.Load() == 1 })
}

func TestPipelinedRandomWrites(t *testing.T) {
	ts := startServer(t, nil)
	c := ts.dial(t)
	c.expect("+OK ready")
	rng := rand.New(rand.NewPCG(3, 4))
	const n = 400
	var b strings.Builder
	for i := range n {
		switch rng.IntN(3) {
		case 0:
			fmt.Fprintf(&b, "ECHO %d\r\n", i)
		case 1:
			fmt.Fprintf(&b, "WORK %d\n", i)
		default:
			fmt.Fprintf(&b, "DELAY 0\r\nECHO %d\r\n", i)
		}
	}
	in := b.String()
	go func() {
		for len(in) > 0 {
			k := min(1+rng.IntN(40), len(in))
			if _, err := io.WriteString(c.c, in[:k]); err != nil {
				return
			}
			in = in[k:]
			if rng.IntN(10) == 0 {
				pace(time.Millisecond)
			}
		}
	}()
	for i := range n {
		l := c.line()
		if l == "-ERR delayed" {
			l = c.line()
		}
		if want := fmt.Sprintf("+OK %d", i); l != want {
			t.Fatalf("reply %d = %q, want %q", i, l, want)
		}
	}
}

func TestSlowReaderLargeBody(t *testing.T) {
	ts := startServer(t, nil)
	// A small receive buffer and a reader that waits make the reader slow
	// for sure: the server's socket buffer fills and gnet's must hold the
	// rest.
	c := dialSlowReader(t, ts.addr)
	c.expect("+OK ready")
	const size = 6 << 20
	c.send(fmt.Sprintf("BODY %d\r\nQUIT\r\n", size))
	c.expect("+OK body")
	eventually(t, "the server to buffer output beyond the low mark", func() bool {
		return ts.peakOutbound.Load() > int64(ts.cfg.OutboundLowMark)
	})
	h := sha256.New()
	want := sha256.New()
	buf := make([]byte, chunkSize)
	for i := int64(0); i < size; i += int64(len(buf)) {
		n := min(int64(len(buf)), size-i)
		for j := range n {
			buf[j] = patternByte(i + j)
		}
		want.Write(buf[:n])
	}
	want.Write([]byte(".\r\n"))
	// Read in small pieces at first, so that the server parks the stream
	// and resumes it many times.
	small := make([]byte, 4096)
	got := 0
	for got < size+3 {
		c.c.SetReadDeadline(time.Now().Add(10 * time.Second))
		p := small
		if got > 1<<20 {
			p = buf
		}
		if rem := size + 3 - got; len(p) > rem {
			p = p[:rem]
		}
		n, err := c.r.Read(p)
		if err != nil {
			t.Fatalf("read after %d octets: %v", got, err)
		}
		h.Write(p[:n])
		got += n
	}
	if fmt.Sprintf("%x", h.Sum(nil)) != fmt.Sprintf("%x", want.Sum(nil)) {
		t.Fatal("body differs")
	}
	c.expect("+OK bye")
	c.expectClosed(5 * time.Second)
	limit := int64(ts.cfg.OutboundHighMark + 2*chunkSize)
	p := ts.peakOutbound.Load()
	if p > limit {
		t.Fatalf("server buffered %d octets for one connection, want at most %d", p, limit)
	}
	if p <= int64(ts.cfg.OutboundLowMark) {
		t.Fatalf("peak outbound %d: the reader was not slow enough to exercise backpressure", p)
	}
	t.Logf("peak outbound buffer %d octets", p)
	eventually(t, "body closed", func() bool { ts.fx.bodies.Wait(); return true })
}

func TestDroppedDuringBody(t *testing.T) {
	ts := startServer(t, nil)
	c := ts.dial(t)
	c.expect("+OK ready")
	c.send("BODY 50000000\r\n")
	c.expect("+OK body")
	io.ReadFull(c.r, make([]byte, 100000))
	c.c.Close()
	eventually(t, "session closed", func() bool { return ts.fx.closed.Load() == 1 })
	ts.fx.bodies.Wait() // the body reader was closed
}

func TestLineTooLong(t *testing.T) {
	ts := startServer(t, nil)
	c := ts.dial(t)
	c.expect("+OK ready")
	c.send("ECHO " + strings.Repeat("x", 10000) + "\r\nECHO after\r\n")
	c.expect("-ERR line too long")
	c.expect("+OK after")
	c.send("ECHO a\x00b\r\n")
	c.expect("+OK a\x00b")
}

// TestInboundLimit: input beyond limits.max_inbound is refused; what was
// queued before it is answered in order, then the client is told, then
// the connection closes.
func TestInboundLimit(t *testing.T) {
	ts := startServer(t, func(cfg *Config) { cfg.MaxInbound = 4096 })
	c := ts.dial(t)
	c.expect("+OK ready")
	g := ts.fx.gate("busy")
	c.send("HOLD busy\r\n") // in flight until the gate opens: what follows is queued
	g.waitEntered(t)
	before := mInboundOverflow.Get()
	var b strings.Builder
	for i := range 1000 {
		fmt.Fprintf(&b, "ECHO %d\r\n", i)
	}
	c.send(b.String())
	eventually(t, "the queue overflowed", func() bool { return mInboundOverflow.Get() > before })
	g.open()
	c.expect("+OK held")
	n := 0
	for {
		l := c.line()
		if l == "-ERR [SYS/PERM] too many pipelined commands" {
			break
		}
		if l != fmt.Sprintf("+OK %d", n) {
			t.Fatalf("reply %d: %q, want %q", n, l, fmt.Sprintf("+OK %d", n))
		}
		n++
	}
	// Each line costs its octets and a 4-octet length: "ECHO n" lines of
	// 6 to 8 octets, so 4096 octets hold between 341 and 409 of them.
	if n < 341 || n > 409 {
		t.Fatalf("%d of 1000 queued lines answered, want 341..409 (max_inbound 4096)", n)
	}
	c.expectClosed(5 * time.Second)
	// The server goes on serving others.
	c2 := ts.dial(t)
	c2.expect("+OK ready")
}

// TestPipelinedThousands: 5,000 commands in one write are all answered,
// in order (RFC 2449 PIPELINING).
func TestPipelinedThousands(t *testing.T) {
	ts := startServer(t, nil)
	c := ts.dial(t)
	c.expect("+OK ready")
	var b strings.Builder
	for i := range 5000 {
		if i%10 == 0 {
			fmt.Fprintf(&b, "WORK %d\r\n", i) // some on a worker
		} else {
			fmt.Fprintf(&b, "ECHO %d\r\n", i)
		}
	}
	c.send(b.String())
	for i := range 5000 {
		c.expect(fmt.Sprintf("+OK %d", i))
	}
	c.send("ECHO after\r\n")
	c.expect("+OK after")
}

// TestPipelinedLimit: beyond limits.max_pipelined waiting commands the
// client gets an error line before the close.
func TestPipelinedLimit(t *testing.T) {
	ts := startServer(t, func(cfg *Config) { cfg.MaxPipelined = 100 })
	c := ts.dial(t)
	c.expect("+OK ready")
	g := ts.fx.gate("busy")
	c.send("HOLD busy\r\n")
	g.waitEntered(t)
	before := mInboundOverflow.Get()
	c.send(strings.Repeat("ECHO x\r\n", 300))
	eventually(t, "the queue overflowed", func() bool { return mInboundOverflow.Get() > before })
	g.open()
	c.expect("+OK held")
	for range 100 {
		c.expect("+OK x")
	}
	c.expect("-ERR [SYS/PERM] too many pipelined commands")
	c.expectClosed(5 * time.Second)
}

func TestDelay(t *testing.T) {
	ts := startServer(t, nil)
	c := ts.dial(t)
	c.expect("+OK ready")
	start := time.Now()
	c.send("DELAY 150\r\nECHO next\r\n")
	c.expect("-ERR delayed")
	if d := time.Since(start); d < 140*time.Millisecond {
		t.Fatalf("delayed reply after %v, want >= 150ms", d)
	}
	c.expect("+OK next")
	// Other connections are served meanwhile.
	c.send("DELAY 400\r\n")
	c2 := ts.dial(t)
	c2.expect("+OK ready")
	c2.send("ECHO quick\r\n")
	c2.expect("+OK quick")
	c.expect("-ERR delayed")
}

func TestAdmission(t *testing.T) {
	ts := startServer(t, func(cfg *Config) {
		cfg.SocketMax = 2
		cfg.SocketBacklog = 1
		cfg.BacklogWait = 30 * time.Second
		cfg.BacklogMaxInput = 64
	})
	c1 := ts.dial(t)
	c1.expect("+OK ready")
	c2 := ts.dial(t)
	c2.expect("+OK ready")
	c3 := ts.dial(t) // held silent
	k3 := ts.connOf(t, c3.c)
	eventually(t, "c3 waiting", func() bool { return ts.sockets.stats().Waiting == 1 })
	// A greeting, had the engine sent one, was written on c3's loop
	// before the barrier returns; on loopback it is in c3's socket by the
	// time noData looks.
	ts.barrier(t, k3.gc.EventLoop())
	c3.noData(50 * time.Millisecond)
	c4 := ts.dial(t) // beyond the backlog
	c4.expect("-ERR [SYS/TEMP] too many connections, try again later")
	c4.expectClosed(5 * time.Second)
	if st := ts.sockets.stats(); st.InUse != 2 || st.Waiting != 1 {
		t.Fatalf("sockets = %+v, want 2 in use, 1 waiting", st)
	}
	c3.send("ECHO early\r\n") // pipelined before the greeting: kept
	c1.send("QUIT\r\n")
	c1.expect("+OK bye")
	c3.expect("+OK ready")
	c3.expect("+OK early")

	// A held connection that waits too long is refused. (Its first line
	// is the refusal: it was not greeted while it waited.)
	c5 := ts.dial(t)
	ts.connOf(t, c5.c)
	eventually(t, "c5 waiting", func() bool { return ts.sockets.stats().Waiting == 1 })
	ts.clock.Advance(31 * time.Second)
	ts.Sweep()
	c5.expect("-ERR [SYS/TEMP] no free connection slot, try again later")
	c5.expectClosed(5 * time.Second)

	// A held connection may not send more than backlog_max_input.
	c6 := ts.dial(t)
	eventually(t, "c6 waiting", func() bool { return ts.sockets.stats().Waiting == 1 })
	c6.send(strings.Repeat("x", 100))
	c6.expectClosed(5 * time.Second)
	eventually(t, "c6 gone", func() bool { return ts.sockets.stats().Waiting == 0 })
}

func TestMaxConnsPerIP(t *testing.T) {
	ts := startServer(t, func(cfg *Config) { cfg.MaxConnsPerIP = 1 })
	c1 := ts.dial(t)
	c1.expect("+OK ready")
	c2 := ts.dial(t)
	c2.expect("-ERR [SYS/TEMP] too many connections from your address")
	c2.expectClosed(5 * time.Second)
	c1.send("QUIT\r\n")
	c1.expect("+OK bye")
	c1.expectClosed(5 * time.Second)
	eventually(t, "slot freed", func() bool { return ts.sockets.stats().InUse == 0 })
	c3 := ts.dial(t)
	c3.expect("+OK ready")
}

func TestIdleTimeout(t *testing.T) {
	ts := startServer(t, func(cfg *Config) { cfg.LoginDeadline = time.Hour }) // login 60s, idle 10m
	c1 := ts.dial(t)
	c1.expect("+OK ready")
	c2 := ts.dial(t)
	c2.expect("+OK ready")
	c2.send("LOGIN\r\n")
	c2.expect("+OK logged in")
	// The loop marks the connection authenticated just after it wrote the
	// reply: from then on idle_timeout applies to it.
	k2 := ts.connOf(t, c2.c)
	eventually(t, "c2 authenticated", func() bool { return k2.authed.Load() })
	ts.clock.Advance(59 * time.Second)
	ts.Sweep()
	// The sweep marks a connection it expires before it posts the expiry:
	// no mark, nothing will happen to c1.
	if ts.connOf(t, c1.c).expiring.Load() {
		t.Fatal("a connection within login_timeout is being expired")
	}
	ts.clock.Advance(2 * time.Second)
	ts.Sweep()
	c1.expect("-ERR idle timeout")
	c1.expectClosed(5 * time.Second)
	c2.send("ECHO alive\r\n")
	c2.expect("+OK alive")
	ts.clock.Advance(9 * time.Minute)
	ts.Sweep()
	c2.send("ECHO still\r\n")
	c2.expect("+OK still")
	ts.clock.Advance(10*time.Minute + time.Second)
	ts.Sweep()
	c2.expect("-ERR idle timeout")
	c2.expectClosed(5 * time.Second)
	eventually(t, "sessions closed", func() bool { return ts.fx.closed.Load() == 2 })
}

// TestLeaseRenewal: the sweep renews the lease of every logged-in
// session, idle or with a command in flight, and of no other.
func TestLeaseRenewal(t *testing.T) {
	ts := startServer(t, nil)
	c1 := ts.dial(t)
	c1.expect("+OK ready")
	ts.Sweep()
	c1.send("ECHO x\r\n")
	c1.expect("+OK x") // the sweep ran before this reply was written
	if n := ts.fx.renewed.Load(); n != 0 {
		t.Fatalf("%d renewals before login", n)
	}
	c1.send("LOGIN\r\nECHO y\r\n")
	c1.expect("+OK logged in")
	c1.expect("+OK y") // the engine marked the connection authenticated before
	ts.Sweep()
	eventually(t, "renewal of an idle session", func() bool { return ts.fx.renewed.Load() >= 1 })
	if n := ts.fx.renewed.Load(); n != 1 {
		t.Fatalf("%d renewals after one sweep, want 1", n)
	}
	g := ts.fx.gate("busy")
	c1.send("HOLD busy\r\n")
	g.waitEntered(t)
	ts.Sweep()
	eventually(t, "renewal during a command", func() bool { return ts.fx.renewed.Load() == 2 })
	g.open()
	c1.expect("+OK held")
}

func TestPoolOverload(t *testing.T) {
	ts := startServer(t, func(cfg *Config) { cfg.ThreadCount = 1; cfg.TaskQueue = 0 })
	c1 := ts.dial(t)
	c1.expect("+OK ready")
	c2 := ts.dial(t)
	c2.expect("+OK ready")
	g := ts.fx.gate("busy")
	c1.send("HOLD busy\r\n")
	g.waitEntered(t)
	// The only worker is held until the gate opens: the refusal and the
	// inline reply come without waiting for it, or not at all.
	c2.send("WORK x\r\nECHO y\r\n")
	c2.expect("-ERR [SYS/TEMP] server busy, try again")
	c2.expect("+OK y")
	g.open()
	c1.expect("+OK held")
	// The reply to HOLD is posted before its worker is back in the pool:
	// for a moment the single worker may still count as busy.
	eventually(t, "the worker back in the pool", func() bool {
		c2.send("WORK z\r\n")
		switch l := c2.line(); l {
		case "+OK z":
			return true
		case "-ERR [SYS/TEMP] server busy, try again":
			return false
		default:
			t.Fatalf("got %q, want +OK z", l)
			return false
		}
	})
}

// TestPoolQueue: with every worker busy, commands wait in pop3.task_queue
// (in order, without stalling the loop) and run when a worker frees; only
// beyond the queue is a command refused.
func TestPoolQueue(t *testing.T) {
	ts := startServer(t, func(cfg *Config) { cfg.ThreadCount = 1; cfg.TaskQueue = 2 })
	c1 := ts.dial(t)
	c1.expect("+OK ready")
	c2 := ts.dial(t)
	c2.expect("+OK ready")
	c3 := ts.dial(t)
	c3.expect("+OK ready")
	c4 := ts.dial(t)
	c4.expect("+OK ready")
	g := ts.fx.gate("busy")
	c1.send("HOLD busy\r\n")
	g.waitEntered(t)
	queuedBefore := mTasksQueued.Get()
	c2.send("WORK a\r\n")
	c3.send("WORK b\r\n")
	eventually(t, "two tasks queued", func() bool { return mTasksQueued.Get()-queuedBefore == 2 })
	// The worker is held until the gate opens: the refusal and the inline
	// reply come without waiting for it, or not at all.
	c4.send("WORK c\r\nECHO d\r\n")
	c4.expect("-ERR [SYS/TEMP] server busy, try again")
	c4.expect("+OK d")
	g.open()
	c1.expect("+OK held")
	c2.expect("+OK a")
	c3.expect("+OK b")
	if n := ts.tasks.length(); n != 0 {
		t.Fatalf("%d tasks left in the queue", n)
	}
}

func TestPanicRecovered(t *testing.T) {
	ts := startServer(t, nil)
	before := mPanics.Get()
	for _, cmd := range []string{"PANIC", "IPANIC"} {
		c := ts.dial(t)
		c.expect("+OK ready")
		c.send(cmd + "\r\nECHO never\r\n")
		c.expect("-ERR [SYS/TEMP] internal error")
		c.expectClosed(5 * time.Second)
	}
	if got := mPanics.Get() - before; got != 2 {
		t.Fatalf("pop3_panics_total grew by %d, want 2", got)
	}
	c := ts.dial(t)
	c.expect("+OK ready")
	c.send("ECHO fine\r\n")
	c.expect("+OK fine")
	eventually(t, "sessions closed", func() bool { return ts.fx.closed.Load() == 2 })
}

func TestReload(t *testing.T) {
	ts := startServer(t, nil)
	c1 := ts.dial(t)
	c1.expect("+OK ready")
	c1.send("LOGIN\r\n")
	c1.expect("+OK logged in")

	cfg := defaultConfig()
	cfg.Listen = ts.cfg.Listen
	cfg.ThreadCount = 3
	cfg.MaxLine = 64
	cfg.MaxAuthLine = 64
	fx2 := newFixture()
	fx2.greeting.Store("+OK reloaded")
	if err := ts.Reload(cfg, fx2.factory); err != nil {
		t.Fatal(err)
	}
	if c := ts.pool.Cap(); c != 3 {
		t.Fatalf("pool capacity %d after reload, want 3", c)
	}
	c1.send("ECHO " + strings.Repeat("y", 100) + "\r\nWORK old\r\n")
	c1.expect("-ERR line too long")
	c1.expect("+OK old")
	c2 := ts.dial(t)
	c2.expect("+OK reloaded")
	c2.send("QUIT\r\n")
	c2.expect("+OK bye")
	c1.send("QUIT\r\n")
	c1.expect("+OK bye")
}

func TestShutdownDrains(t *testing.T) {
	ts := startServer(t, nil)
	c1 := ts.dial(t)
	c1.expect("+OK ready")
	c2 := ts.dial(t)
	c2.expect("+OK ready")
	g := ts.fx.gate("busy")
	c1.send("HOLD busy\r\n")
	g.waitEntered(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- ts.Shutdown(ctx) }()
	// The idle connection goes at once; the busy one gets its reply,
	// then goes.
	c2.expectClosed(5 * time.Second)
	g.open()
	c1.expect("+OK held")
	c1.expectClosed(5 * time.Second)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if o, c := ts.fx.opened.Load(), ts.fx.closed.Load(); o != c {
		t.Fatalf("%d sessions opened, %d closed", o, c)
	}
}

func TestStartFailsOnBusyPort(t *testing.T) {
	ts := startServer(t, nil)
	cfg := defaultConfig()
	cfg.Listen = []string{ts.addr}
	s, err := New(Options{Config: cfg, Factory: newFixture().factory, Logger: testLogger(), Loops: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err == nil {
		t.Fatal("Start on a port in use succeeded")
	}
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	c := ts.dial(t) // the first server is unaffected
	c.expect("+OK ready")
}

// dialSlowReader connects with a small receive buffer, so that the server's
// output backs up as soon as the test stops reading. The connection is
// closed when the test ends.
func dialSlowReader(t *testing.T, addr string) *client {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second, Control: func(_, _ string, rc syscall.RawConn) error {
		return rc.Control(func(fd uintptr) { syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 8192) })
	}}
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &client{t: t, c: nc, r: bufio.NewReaderSize(nc, 4096)}
}

// TestReturningWorkerNotCountedBusy: with one worker and a task queue,
// pipelined commands that each need the worker are all served. The reply
// to one is posted before its worker is back in ants' pool, and the next
// command is handed over at once: while the worker's task is still
// running the command is queued for it, and once the task has ended but
// the worker is not back yet, submit waits that moment out instead of
// refusing the command as busy.
func TestReturningWorkerNotCountedBusy(t *testing.T) {
	ts := startServer(t, func(cfg *Config) { cfg.ThreadCount = 1; cfg.TaskQueue = 1 })
	c := ts.dial(t)
	c.expect("+OK ready")
	const n = 2000
	c.send(strings.Repeat("WORK x\r\n", n))
	for i := range n {
		if l := c.line(); l != "+OK x" {
			t.Fatalf("command %d of %d: %q, want +OK x", i+1, n, l)
		}
	}
}
