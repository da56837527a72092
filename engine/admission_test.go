package engine

import (
	"testing"
	"time"
)

// A backlogged connection refused for waiting too long must not be
// greeted when a slot frees before its close went through: the admission
// posted for it finds it closing.
func TestBacklogExpiryThenAdmit(t *testing.T) {
	ts := startSleepyServer(t, func(cfg *Config) {
		cfg.SocketMax = 2
		cfg.SocketBacklog = 1
		cfg.BacklogWait = 10 * time.Second
	})
	// The engine accepts on one reactor that hands the connections to its
	// two loops in turn (gnet's round robin, the default): c1 and c3,
	// dialled first and third, share a loop; c2 has the other one.
	c1 := ts.dial(t)
	c1.expect("+OK ready")
	c2 := ts.dial(t)
	c2.expect("+OK ready")
	c3 := ts.dial(t)
	k3 := ts.connOf(t, c3.c)
	eventually(t, "third connection waiting", func() bool { return ts.Status().Sockets.Waiting == 1 })
	k1, k2 := ts.findConn(c1.c), ts.findConn(c2.c)
	if k1.gc.EventLoop() != k3.gc.EventLoop() || k2.gc.EventLoop() == k3.gc.EventLoop() {
		t.Fatal("the loops did not get the connections in turn: the test's arrangement does not hold")
	}
	// Block the loop of c1 and c3, then queue on it the backlog expiry of
	// c3 and, behind it, c3's admission (c2 leaves, on the other loop).
	g := ts.fx.gate("loop")
	c1.send("IHOLD loop\r\n")
	g.waitEntered(t)
	// The loop is blocked: from now on only what the test does adds to
	// k3's references, one per task posted to it.
	refs := k3.refs.Load()
	ts.clock.Advance(11 * time.Second)
	ts.Sweep()
	if !k3.expiring.Load() {
		t.Fatal("the sweep did not post the backlog expiry")
	}
	c2.c.Close()
	eventually(t, "the admission posted behind the expiry", func() bool { return k3.refs.Load() == refs+2 })
	g.open()
	c3.expect("-ERR [SYS/TEMP] no free connection slot, try again later")
	c3.expectClosed(5 * time.Second)
	c1.expect("+OK awake")
	eventually(t, "accounting back", func() bool {
		st := ts.Status()
		return st.Sockets.InUse == 1 && st.Sockets.Waiting == 0
	})
}

// A reload's socket pool settings reach the free list at once: a larger
// socketmin prepares contexts (never beyond socketmax in use plus free), a
// smaller socketmin+socketthreshold trims it.
func TestSocketsPrepareOnReload(t *testing.T) {
	var p sockets
	p.init(10)
	p.inUse = 3
	set := newSettings(&Config{SocketMin: 40, SocketThreshold: 5, SocketMax: 100}, nil)
	p.prepare(set)
	if n := p.stats().Free; n != 40 {
		t.Fatalf("socketmin 40: %d free, want 40", n)
	}
	p.prepare(newSettings(&Config{SocketMin: 50, SocketThreshold: 5, SocketMax: 45}, nil))
	if n := p.stats().Free; n != 42 {
		t.Fatalf("socketmin 50, socketmax 45, 3 in use: %d free, want 42", n)
	}
	p.prepare(newSettings(&Config{SocketMin: 4, SocketThreshold: 2, SocketMax: 100}, nil))
	if n := p.stats().Free; n != 6 {
		t.Fatalf("socketmin 4, socketthreshold 2: %d free, want 6", n)
	}
}
