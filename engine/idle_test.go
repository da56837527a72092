package engine

import (
	"bytes"
	"fmt"
	"io"
	"testing"
	"time"
)

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
	k := ts.connOf(t, c.c)
	loop, fd := k.gc.EventLoop(), k.gc.Fd()
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
		// A slow reader is slower than the server: the server has output
		// waiting for it again before the clock moves on, or it handed the
		// rest to the kernel and closed (the sweep no longer sees it).
		eventually(t, "the server's output to queue up again", func() bool {
			return kernelUnsent(fd) > 0 || ts.findConn(c.c) == nil
		})
		// Every 256 KiB read takes 4 s of the clock: the session is idle
		// by no measure, but its last reply was written long ago. The
		// expiry check the sweep posts runs before the next read, so that
		// each check sees the 256 KiB read since the one before.
		ts.clock.Advance(4 * time.Second)
		ts.Sweep()
		ts.barrier(t, loop)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("reply differs")
	}
	c.expectClosed(5 * time.Second)
}
