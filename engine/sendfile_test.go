package engine

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/panjf2000/gnet/v2"

	"github.com/pop3svc/pop3svc/session/pop3/transcript"
	"github.com/pop3svc/pop3svc/store/filestore"
)

// cleanMessage is a message of about size octets in which no line begins
// with '.': the store marks it, and RETR sends it with sendfile.
func cleanMessage(size int) string {
	var b strings.Builder
	b.WriteString("Subject: attachment\r\nContent-Transfer-Encoding: base64\r\n\r\n")
	for i := 0; b.Len() < size; i++ {
		fmt.Fprintf(&b, "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5ej%05d\r\n", i%100000)
	}
	return b.String()
}

// dottedMessage is the same with a line beginning with '.' every 17th
// line: RETR reads and byte-stuffs it.
func dottedMessage(size int) string {
	var b strings.Builder
	b.WriteString("Subject: text\r\n\r\n")
	for i := 0; b.Len() < size; i++ {
		if i%17 == 0 {
			b.WriteString(". a line that begins with a dot\r\n")
		}
		fmt.Fprintf(&b, "line %d of a long text message\r\n", i)
	}
	return b.String()
}

// deliverAlice appends msgs to alice's mailbox and returns the message
// number the first of them gets in a new session.
func deliverAlice(t *testing.T, st *filestore.Store, msgs ...string) int {
	t.Helper()
	ctx := context.Background()
	info, err := st.Mailbox(ctx, aliceAddr(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs {
		if _, err := st.Deliver(ctx, aliceAddr(t), strings.NewReader(m)); err != nil {
			t.Fatal(err)
		}
	}
	return info.Messages + 1
}

// loginAlice reads the greeting and logs in as alice.
func loginAlice(c *client) {
	c.t.Helper()
	if l := c.line(); !strings.HasPrefix(l, "+OK") {
		c.t.Fatalf("greeting %q", l)
	}
	c.send(fmt.Sprintf("USER %s\r\nPASS %s\r\n", transcript.AliceUser, transcript.AlicePassword))
	c.expect("+OK send PASS")
	if l := c.line(); !strings.HasPrefix(l, "+OK") {
		c.t.Fatalf("PASS: %q", l)
	}
}

// retrBody reads a multi-line reply's body after its status line and
// returns it unstuffed (RFC 1939 section 3).
func retrBody(t *testing.T, c *client) string {
	t.Helper()
	var b strings.Builder
	for {
		c.c.SetReadDeadline(time.Now().Add(10 * time.Second))
		l, err := c.r.ReadString('\n')
		if err != nil {
			t.Fatalf("reading a body after %d octets: %v", b.Len(), err)
		}
		if l == ".\r\n" {
			return b.String()
		}
		b.WriteString(strings.TrimPrefix(l, "."))
	}
}

// openFDs counts this process's open file descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// stuffed is msg's wire form before the terminating line: a '.' more
// at the start of every line that begins with one (RFC 1939 section 3).
func stuffed(msg string) string {
	s := strings.ReplaceAll(msg, "\r\n.", "\r\n..")
	if strings.HasPrefix(s, ".") {
		s = "." + s
	}
	return s
}

// fewDotsMessage is cleanMessage with a few lines that begin with '.',
// the second line among them, and a line that is "." alone: the store
// records where they are, and RETR sends it with sendfile, stuffing them.
func fewDotsMessage(size int) string {
	m := cleanMessage(size)
	mid := strings.Index(m[len(m)/2:], "\r\n") + len(m)/2 + 2
	return "X-First: a header line\r\n.X-Second: one that begins with a dot\r\n" + m[:mid] + ".\r\n..\r\n" + m[mid:] + ". last\r\n"
}

// A RETR of a large message with few lines to stuff (or none) goes out
// with sendfile, a '.' written before each of them; one with many such
// lines is stuffed and copied by a goroutine of its own. All arrive whole
// and in order with what was pipelined after them, and the streams leave
// no descriptor behind.
func TestRetrFileStreamsInOrder(t *testing.T) {
	ts, st, _ := startPOP3(t)
	clean, dotted, few := cleanMessage(3<<20), dottedMessage(3<<20), fewDotsMessage(3<<20)
	n := deliverAlice(t, st, clean, dotted, few)
	fds := openFDs(t)
	sent, copied := mStreamSendfile.Get(), mStreamCopy.Get()

	c := ts.dial(t)
	loginAlice(c)
	c.send(fmt.Sprintf("RETR %d\r\nRETR %d\r\nRETR %d\r\nNOOP\r\n", n, n+1, n+2))
	for i, want := range []string{clean, dotted, few} {
		if l := c.line(); l != "+OK "+strconv.Itoa(len(want))+" octets" {
			t.Fatalf("RETR %d: %q", n+i, l)
		}
		if got := retrBody(t, c); got != want {
			t.Fatalf("RETR %d: %d octets differ from the %d delivered", n+i, len(got), len(want))
		}
	}
	c.expect("+OK")
	if got := mStreamSendfile.Get() - sent; got != 2 {
		t.Errorf("%d RETRs sent with sendfile, want 2 (the messages with no or few dot lines)", got)
	}
	if got := mStreamCopy.Get() - copied; got != 1 {
		t.Errorf("%d RETRs copied by a stream goroutine, want 1 (the message with dot lines)", got)
	}
	c.send("QUIT\r\n")
	if l := c.line(); !strings.HasPrefix(l, "+OK") {
		t.Fatalf("QUIT: %q", l)
	}
	c.expectClosed(10 * time.Second)
	c.c.Close()
	eventually(t, "the connection's descriptors closed", func() bool { return openFDs(t) <= fds })
}

// A client that reads slowly through a small receive buffer gets the whole
// message, sent with sendfile or copied: the stream's goroutine waits for
// room in the socket, and its progress keeps the connection from the idle
// timeout while the clock moves on far past it.
func TestRetrFileStreamSlowReaderNotIdle(t *testing.T) {
	ts, st, _ := startPOP3With(t, func(cfg *Config) { cfg.IdleTimeout = 10 * time.Second })
	few, dotted := fewDotsMessage(12<<20), dottedMessage(12<<20)
	n := deliverAlice(t, st, few, dotted)
	for i, msg := range []string{few, dotted} {
		slowRetr(t, ts, n+i, msg)
	}
}

// slowRetr reads RETR n of msg through a slow reader's socket, moving the
// clock 4 s (the idle limit being 10 s) each time the server's output
// queued up again.
func slowRetr(t *testing.T, ts *testServer, n int, msg string) {
	t.Helper()
	c := dialSlowReader(t, ts.addr)
	defer c.c.Close()
	loginAlice(c)
	loop, fd := ts.loopAndFD(t, c.c)
	before := mBytesSent.Get()
	c.send(fmt.Sprintf("RETR %d\r\n", n))
	c.expect("+OK " + strconv.Itoa(len(msg)) + " octets")
	want := stuffed(msg) + ".\r\n"
	got := make([]byte, 0, len(want))
	buf := make([]byte, 256<<10)
	// delivered is what the server handed to the kernel for this RETR and
	// left its socket queue: what its idle check counts as progress.
	delivered := func() int64 { return int64(mBytesSent.Get()-before) - int64(kernelUnsent(fd)) }
	lastDelivered := delivered()
	for len(got) < len(want) {
		c.c.SetReadDeadline(time.Now().Add(10 * time.Second))
		m, err := io.ReadFull(c.r, buf[:min(len(buf), len(want)-len(got))])
		got = append(got, buf[:m]...)
		if err != nil {
			t.Fatalf("read after %d of %d octets: %v", len(got), len(want), err)
		}
		if len(got) == len(want) {
			break
		}
		// The read moved octets out of the server's socket queue (the
		// kernel took in the window it opened) before the clock moves:
		// every read then takes 4 s of it, 10 s being the idle limit, and
		// each idle check finds output delivered since the last. On a
		// loaded machine that can lag the read; moving the clock before
		// it would test a client that stopped reading.
		eventually(t, fmt.Sprintf("the server's output to move on after %d octets read", len(got)), func() bool {
			return delivered() > lastDelivered || mBytesSent.Get()-before >= uint64(len(want)-3)
		})
		lastDelivered = delivered()
		if kernelUnsent(fd) == 0 {
			continue // all sent: the rest is on its way, nothing for the clock to test
		}
		ts.clock.Advance(4 * time.Second)
		ts.Sweep()
		ts.barrier(t, loop)
	}
	if string(got) != want {
		t.Fatal("the message differs")
	}
	c.send("NOOP\r\nQUIT\r\n")
	c.expect("+OK")
	if l := c.line(); !strings.HasPrefix(l, "+OK") {
		t.Fatalf("QUIT: %q", l)
	}
	c.expectClosed(10 * time.Second) // the mailbox is released for the next login
}

// A client that stops reading in the middle of a RETR sent with sendfile
// or copied is closed by the idle timeout: the goroutine waiting for room
// wakes, the socket closes, the mailbox is released and no descriptor is
// left open. One that resets the connection instead ends the same way.
func TestRetrFileStreamStoppedReader(t *testing.T) {
	ts, st, held := startPOP3With(t, func(cfg *Config) { cfg.IdleTimeout = 10 * time.Second })
	first := deliverAlice(t, st, cleanMessage(24<<20), dottedMessage(24<<20))
	fds := openFDs(t)
	for i := range 4 {
		n, reset := first+i/2, i%2 == 1
		opened := held.opened.Load()
		c := dialSlowReader(t, ts.addr)
		loginAlice(c)
		loop, fd := ts.loopAndFD(t, c.c)
		c.send(fmt.Sprintf("RETR %d\r\n", n))
		if l := c.line(); !strings.HasPrefix(l, "+OK ") {
			t.Fatalf("RETR: %q", l)
		}
		eventually(t, "the socket to fill", func() bool { return kernelUnsent(fd) > 0 })
		if reset {
			c.c.(*net.TCPConn).SetLinger(0)
			c.c.Close()
		} else {
			// The first sweep counts what the client took before it
			// stopped; the next finds no progress and closes.
			for i := 0; i < 5 && ts.findConn(c.c) != nil; i++ {
				ts.clock.Advance(11 * time.Second)
				ts.Sweep()
				ts.barrier(t, loop)
			}
			if ts.findConn(c.c) != nil {
				t.Fatal("a reader that stopped was not closed by the idle timeout")
			}
			c.c.SetReadDeadline(time.Now().Add(10 * time.Second))
			if _, err := io.Copy(io.Discard, c.r); err != nil {
				t.Fatalf("the server's side did not close: %v", err)
			}
			c.c.Close()
		}
		eventually(t, "the connection gone", func() bool { return ts.Status().Connections == 0 })
		eventually(t, "the mailbox released", func() bool {
			info, err := st.Mailbox(context.Background(), aliceAddr(t))
			return held.opened.Load() == opened+1 && err == nil && !info.InUse
		})
		eventually(t, "every descriptor closed", func() bool { return openFDs(t) <= fds })
	}
}

// A body offered for sendfile on a file system that cannot splice its
// files (sendfile fails with EINVAL before sending anything) is read and
// sent the usual way, whole, and the connection goes on.
func TestSendfileRefusedFallsBackToReading(t *testing.T) {
	ts := startServer(t, nil)
	c := ts.dial(t)
	c.expect("+OK ready")
	const size = 1 << 20
	sent := mStreamSendfile.Get()
	c.send(fmt.Sprintf("NOSPLICE %d\r\nECHO after\r\n", size))
	c.expect("+OK body")
	readPattern(t, c, size)
	c.expect("+OK after")
	if mStreamSendfile.Get() == sent {
		t.Fatal("the body was not offered to sendfile")
	}
	eventually(t, "body closed", func() bool { ts.fx.bodies.Wait(); return true })
}

// loopAndFD returns the event loop and the socket of the server's side of
// the client socket c, read under the registry's lock: a connection's
// context is recycled on a worker once it closes.
func (ts *testServer) loopAndFD(t *testing.T, c net.Conn) (loop gnet.EventLoop, fd int) {
	t.Helper()
	want := c.LocalAddr().String()
	eventually(t, "connection registered", func() bool {
		ts.registry.each(func(k *conn) {
			if k.remote == want {
				loop, fd = k.gc.EventLoop(), k.gc.Fd()
			}
		})
		return loop != nil
	})
	return loop, fd
}

// readPattern reads a BODY reply's n octets and its ".\r\n", and checks
// them.
func readPattern(t *testing.T, c *client, n int) {
	t.Helper()
	got := make([]byte, n+3)
	c.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(c.r, got); err != nil {
		t.Fatal(err)
	}
	for i := range int64(n) {
		if got[i] != patternByte(i) {
			t.Fatalf("octet %d differs", i)
		}
	}
	if string(got[n:]) != ".\r\n" {
		t.Fatalf("body ends with %q", got[n:])
	}
}

// At most pop3.threadcount file streams (sendfile or copy) run at once,
// so that threads blocked in sendfile or a read on a disk that does not
// answer stay bounded as the pool bounds the threads of file reads:
// beyond, a body is read by the pool. A stalled stream's connection ends
// when the server closes it (the idle timeout), though its sendfile or
// read still waits on the disk.
func TestSendfileStreamsBoundedAndClosable(t *testing.T) {
	ts := startServer(t, func(cfg *Config) {
		cfg.ThreadCount = 2
		cfg.IdleTimeout = 10 * time.Second
		cfg.LoginTimeout = 10 * time.Second
	})
	const size = 1 << 20
	busy := mStreamSendfileBusy.Get()
	g := ts.fx.gate("sendfile")
	gr := ts.fx.gate("read")
	var stalled []*client
	for _, cmd := range []string{"STALL", "COPYSTALL"} {
		c := ts.dial(t)
		c.expect("+OK ready")
		c.send(fmt.Sprintf("%s %d\r\n", cmd, size))
		c.expect("+OK body")
		if cmd == "STALL" {
			g.waitEntered(t)
		} else {
			gr.waitEntered(t)
		}
		stalled = append(stalled, c)
	}
	for range 3 {
		c := ts.dial(t)
		c.expect("+OK ready")
		c.send(fmt.Sprintf("STALL %d\r\nECHO after\r\n", size))
		c.expect("+OK body")
		readPattern(t, c, size)
		c.expect("+OK after")
	}
	if got := mStreamSendfileBusy.Get() - busy; got != 3 {
		t.Errorf("%d bodies read for want of a sendfile slot, want 3", got)
	}
	select {
	case <-g.entered:
		t.Fatal("a third sendfile stream started with pop3.threadcount 2")
	default:
	}
	// The idle timeout closes both stalled connections (the first sweep
	// may count the status line's delivery as progress; the next finds
	// none).
	loop, _ := ts.loopAndFD(t, stalled[0].c)
	loop2, _ := ts.loopAndFD(t, stalled[1].c)
	for i := 0; i < 5 && (ts.findConn(stalled[0].c) != nil || ts.findConn(stalled[1].c) != nil); i++ {
		ts.clock.Advance(11 * time.Second)
		ts.Sweep()
		ts.barrier(t, loop)
		ts.barrier(t, loop2)
	}
	for i, c := range stalled {
		c.c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.Copy(io.Discard, c.r); err != nil {
			t.Fatalf("stalled connection %d: the client saw no end: %v", i+1, err)
		}
	}
	eventually(t, "the connections gone", func() bool { return ts.Status().Connections == 0 })
	g.open()
	gr.open()
	eventually(t, "the sendfile slots given back", func() bool { return ts.sendfiles.Load() == 0 })
	eventually(t, "bodies closed", func() bool { ts.fx.bodies.Wait(); return true })
}

// onLoop runs f on loop, which owns the connections' state, and waits.
func onLoop(t *testing.T, loop gnet.EventLoop, f func()) {
	t.Helper()
	done := make(chan struct{})
	if err := loop.Execute(context.Background(), gnet.RunnableFunc(func(context.Context) error {
		f()
		close(done)
		return nil
	})); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("timed out waiting for the event loop")
	}
}

// A sendfile stream that waited for gnet's buffer to empty, and then
// cannot duplicate the socket (no descriptor left) while every worker is
// busy, falls back to reading and parks for a worker: the waker keeps it,
// and the body goes out once a worker is free.
func TestParkedSendfileFallbackResumes(t *testing.T) {
	ts := startServer(t, func(cfg *Config) { cfg.ThreadCount = 2; cfg.TaskQueue = 0; cfg.OutboundHighMark = 64 << 20 })
	a := dialSlowReader(t, ts.addr)
	a.expect("+OK ready")
	loop, _ := ts.loopAndFD(t, a.c)
	k := ts.connOf(t, a.c) // its fields are read on the loop only
	const first, size = 200000, 1 << 20
	onLoop(t, loop, func() { k.gc.SetWriteBuffer(16 << 10) }) // no send buffer autotuning
	a.send(fmt.Sprintf("BODY %d\r\nNOSPLICE %d\r\n", first, size))
	eventually(t, "the sendfile stream parked before its start", func() bool {
		var ok bool
		onLoop(t, loop, func() { ok = k.stream != nil && k.stream.file != nil && k.stream.parked })
		return ok
	})
	// Both workers busy. (Two, not one: with one, the worker that read
	// BODY's chunk may not be back in the pool when NOSPLICE comes, which
	// is then refused as busy.)
	var held []*client
	for range 2 {
		b := ts.dial(t)
		b.expect("+OK ready")
		b.send("HOLD g\r\n")
		ts.fx.gate("g").waitEntered(t)
		held = append(held, b)
	}

	// No descriptor left for the duplicate.
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &old); err != nil {
		t.Fatal(err)
	}
	fd, err := syscall.Dup(0)
	if err != nil {
		t.Fatal(err)
	}
	syscall.Close(fd)
	low := old
	low.Cur = uint64(fd)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}
	restored := false
	restore := func() {
		if !restored {
			restored = true
			syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old)
		}
	}
	defer restore()

	// The client takes what gnet held; the waker then starts the stream,
	// which falls back to reading and parks for a worker.
	a.expect("+OK body")
	readPattern(t, a, first)
	a.expect("+OK body")
	eventually(t, "the stream fallen back to reading and parked", func() bool {
		var ok bool
		onLoop(t, loop, func() { ok = k.stream != nil && k.stream.file == nil && k.stream.parked })
		return ok
	})
	restore()
	ts.barrier(t, loop) // the waker's look that parked it is over
	ts.waker.mu.Lock()
	_, watched := ts.waker.set[k]
	ts.waker.mu.Unlock()
	if !watched {
		t.Fatal("the parked stream left the waker: nothing would resume it")
	}
	ts.fx.gate("g").open()
	for _, b := range held {
		b.expect("+OK held")
	}
	readPattern(t, a, size)
}

// A copied body whose read fails half-way (a disk error) closes the
// connection after what was sent: the client cannot take a cut body for a
// whole one. The body is closed and the slot given back.
func TestCopyStreamReadErrorCloses(t *testing.T) {
	ts := startServer(t, nil)
	c := ts.dial(t)
	c.expect("+OK ready")
	const size = 1 << 20
	copied := mStreamCopy.Get()
	c.send(fmt.Sprintf("COPYFAIL %d\r\nECHO after\r\n", size))
	c.expect("+OK body")
	c.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	got, err := io.ReadAll(c.r)
	if err != nil {
		t.Fatalf("the connection did not end cleanly: %v", err)
	}
	if len(got) != size/2 {
		t.Fatalf("%d octets before the close, want the %d read before the error", len(got), size/2)
	}
	for i := range int64(len(got)) {
		if got[i] != patternByte(i) {
			t.Fatalf("octet %d differs", i)
		}
	}
	if mStreamCopy.Get() == copied {
		t.Fatal("the body was not copied by a stream goroutine")
	}
	eventually(t, "the connection gone", func() bool { return ts.Status().Connections == 0 })
	eventually(t, "the slot given back", func() bool { return ts.sendfiles.Load() == 0 })
	eventually(t, "body closed", func() bool { ts.fx.bodies.Wait(); return true })
}

// A body whose Read (copied) or SendFile (sent with sendfile) panics in
// its stream goroutine does not take the server down, as a panic on a
// worker does not: the panic is counted, the connection closes (the body
// is cut), the slot and the body are given back, and the server goes on
// serving.
func TestFileStreamPanicRecovered(t *testing.T) {
	ts := startServer(t, nil)
	const size = 1 << 20
	for _, cmd := range []string{"COPYPANIC", "SENDPANIC"} {
		before := mPanics.Get()
		c := ts.dial(t)
		c.expect("+OK ready")
		c.send(fmt.Sprintf("%s %d\r\nECHO after\r\n", cmd, size))
		c.expect("+OK body")
		c.c.SetReadDeadline(time.Now().Add(10 * time.Second))
		got, err := io.ReadAll(c.r)
		if err != nil {
			t.Fatalf("%s: the connection did not end cleanly: %v", cmd, err)
		}
		if len(got) > size {
			t.Fatalf("%s: %d octets, more than the body", cmd, len(got))
		}
		if bytes.Contains(got, []byte("+OK after")) {
			t.Fatalf("%s: the next command was answered after a cut body", cmd)
		}
		if d := mPanics.Get() - before; d != 1 {
			t.Fatalf("%s: pop3_panics_total grew by %d, want 1", cmd, d)
		}
		eventually(t, "the connection gone", func() bool { return ts.Status().Connections == 0 })
		eventually(t, "the slot given back", func() bool { return ts.sendfiles.Load() == 0 })
		eventually(t, "body closed", func() bool { ts.fx.bodies.Wait(); return true })
	}
	c := ts.dial(t)
	c.expect("+OK ready")
	c.send("ECHO still serving\r\n")
	c.expect("+OK still serving")
}
