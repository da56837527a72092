package engine

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
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

// A RETR of a large message without a line to stuff goes out with
// sendfile; one with such lines is read and stuffed. Both arrive whole and
// in order with what was pipelined after them, and the sendfile stream
// leaves no descriptor behind.
func TestRetrSendfileAndStuffedInOrder(t *testing.T) {
	ts, st, _ := startPOP3(t)
	clean, dotted := cleanMessage(3<<20), dottedMessage(3<<20)
	n := deliverAlice(t, st, clean, dotted, clean)
	fds := openFDs(t)
	sent := mStreamSendfile.Get()

	c := ts.dial(t)
	loginAlice(c)
	c.send(fmt.Sprintf("RETR %d\r\nRETR %d\r\nRETR %d\r\nNOOP\r\n", n, n+1, n+2))
	for i, want := range []string{clean, dotted, clean} {
		if l := c.line(); l != "+OK "+strconv.Itoa(len(want))+" octets" {
			t.Fatalf("RETR %d: %q", n+i, l)
		}
		if got := retrBody(t, c); got != want {
			t.Fatalf("RETR %d: %d octets differ from the %d delivered", n+i, len(got), len(want))
		}
	}
	c.expect("+OK")
	if got := mStreamSendfile.Get() - sent; got != 2 {
		t.Errorf("%d RETRs sent with sendfile, want 2 (the messages without dot lines)", got)
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
// message: the sendfile goroutine waits for room in the socket, and its
// progress keeps the connection from the idle timeout while the clock
// moves on far past it.
func TestRetrSendfileSlowReaderNotIdle(t *testing.T) {
	ts, st, _ := startPOP3With(t, func(cfg *Config) { cfg.IdleTimeout = 10 * time.Second })
	msg := cleanMessage(12 << 20)
	n := deliverAlice(t, st, msg)
	c := dialSlowReader(t, ts.addr)
	loginAlice(c)
	loop, fd := ts.loopAndFD(t, c.c)
	before := mBytesSent.Get()
	c.send(fmt.Sprintf("RETR %d\r\n", n))
	c.expect("+OK " + strconv.Itoa(len(msg)) + " octets")
	want := msg + ".\r\n"
	got := make([]byte, 0, len(want))
	buf := make([]byte, 256<<10)
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
		// The server has output waiting again before the clock moves:
		// every read then takes 4 s of it, 10 s being the idle limit.
		eventually(t, fmt.Sprintf("the server's output to queue up again after %d octets read", len(got)), func() bool {
			return kernelUnsent(fd) > 0 || mBytesSent.Get()-before >= uint64(len(msg))
		})
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
	c.send("NOOP\r\n")
	c.expect("+OK")
}

// A client that stops reading in the middle of a sendfile RETR is closed
// by the idle timeout: the goroutine waiting for room wakes, the socket
// closes, the mailbox is released and no descriptor is left open. One
// that resets the connection instead ends the same way.
func TestRetrSendfileStoppedReader(t *testing.T) {
	ts, st, held := startPOP3With(t, func(cfg *Config) { cfg.IdleTimeout = 10 * time.Second })
	n := deliverAlice(t, st, cleanMessage(24<<20))
	fds := openFDs(t)
	for _, reset := range []bool{false, true} {
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
	got := make([]byte, size+3)
	c.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(c.r, got); err != nil {
		t.Fatal(err)
	}
	for i := range int64(size) {
		if got[i] != patternByte(i) {
			t.Fatalf("octet %d differs", i)
		}
	}
	if string(got[size:]) != ".\r\n" {
		t.Fatalf("body ends with %q", got[size:])
	}
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
