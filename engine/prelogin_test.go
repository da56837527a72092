package engine

import (
	"bufio"
	"crypto/tls"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// dialFrom connects from a given loopback source address.
func (ts *testServer) dialFrom(t *testing.T, src string) *client {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	c, err := d.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &client{t: t, c: c, r: bufio.NewReader(c)}
}

// TestLoginDeadlineTrickledBytes: a client that sends a byte every 10 s
// (never idle by login_timeout) is closed at login_deadline.
func TestLoginDeadlineTrickledBytes(t *testing.T) {
	ts := startServer(t, nil) // login_timeout 60s, login_deadline 60s
	c := ts.dial(t)
	c.expect("+OK ready")
	for _, b := range "ECHO " {
		c.send(string(b))
		ts.clock.Advance(10 * time.Second)
		ts.Sweep()
	}
	// 50 s after connect, with input every 10 s: still open. The sweep's
	// work is posted to the loop; an ECHO completing the trickled line
	// is answered after anything the sweep posted, so its reply shows
	// that nothing was sent before it.
	c.send("x\r\n")
	c.expect("+OK x")
	c.send("E")
	ts.clock.Advance(11 * time.Second)
	ts.Sweep()
	c.expect("-ERR [SYS/TEMP] login not completed in time")
	c.expectClosed(5 * time.Second)
}

// TestLoginDeadlineTrickledCommands: a client that sends a command every
// 10 s without logging in is closed at login_deadline; a logged-in one
// is not.
func TestLoginDeadlineTrickledCommands(t *testing.T) {
	ts := startServer(t, func(cfg *Config) { cfg.LoginDeadline = 30 * time.Second })
	c := ts.dial(t)
	c.expect("+OK ready")
	in := ts.dial(t)
	in.expect("+OK ready")
	in.send("LOGIN\r\n")
	in.expect("+OK logged in")
	for range 2 {
		ts.clock.Advance(10 * time.Second)
		ts.Sweep()
		c.send("ECHO noop\r\n")
		c.expect("+OK noop")
	}
	ts.clock.Advance(11 * time.Second) // 31 s after connect
	ts.Sweep()
	c.expect("-ERR [SYS/TEMP] login not completed in time")
	c.expectClosed(5 * time.Second)
	in.send("ECHO alive\r\n")
	in.expect("+OK alive")
	if n := ts.sockets.stats().InUse; n != 1 {
		t.Fatalf("in use %d, want 1", n)
	}
}

// TestPreloginCaps: unauthenticated connections are capped per address
// and per /24; logging in frees the place.
func TestPreloginCaps(t *testing.T) {
	ts := startServer(t, func(cfg *Config) {
		cfg.PreloginPerIP = 2
		cfg.PreloginPerNet = 3
		cfg.PreloginPerNet48 = 3
	})
	a1 := ts.dialFrom(t, "127.0.0.1")
	a1.expect("+OK ready")
	a2 := ts.dialFrom(t, "127.0.0.1")
	a2.expect("+OK ready")
	a3 := ts.dialFrom(t, "127.0.0.1")
	a3.expect("-ERR [SYS/TEMP] too many connections from your address awaiting login")
	a3.expectClosed(5 * time.Second)
	b1 := ts.dialFrom(t, "127.0.0.2")
	b1.expect("+OK ready")
	c1 := ts.dialFrom(t, "127.0.0.3")
	c1.expect("-ERR [SYS/TEMP] too many connections from your network awaiting login")
	c1.expectClosed(5 * time.Second)
	d1 := ts.dialFrom(t, "127.0.1.1") // another /24
	d1.expect("+OK ready")
	a1.send("LOGIN\r\n")
	a1.expect("+OK logged in")
	a4 := ts.dialFrom(t, "127.0.0.1")
	a4.expect("+OK ready")
}

// TestSlowlorisShed: slow clients of one network fill a small socket
// pool; a client from another network still gets a slot (the oldest slow
// one is shed), and a logged-in session of the slow network is kept.
func TestSlowlorisShed(t *testing.T) {
	const max = 20
	ts := startServer(t, func(cfg *Config) {
		cfg.SocketMax = max
		cfg.SocketBacklog = 5
		cfg.ShedAt = 90 // from 18 served
	})
	user := ts.dialFrom(t, "127.0.0.1")
	user.expect("+OK ready")
	user.send("LOGIN\r\n")
	user.expect("+OK logged in")
	var slow []*client
	for i := range max - 1 {
		c := ts.dialFrom(t, "127.0.0."+string(rune('2'+i%5)))
		c.expect("+OK ready")
		c.send("E") // a byte of a command that never ends
		slow = append(slow, c)
	}
	// The pool is full; more from the same network wait in the backlog,
	// then are refused.
	var held []*client
	for i := range 5 {
		c := ts.dialFrom(t, "127.0.0."+string(rune('2'+i)))
		held = append(held, c)
	}
	eventually(t, "backlog filled", func() bool { return ts.sockets.stats().Waiting == 5 })
	over := ts.dialFrom(t, "127.0.0.9")
	over.expect("-ERR [SYS/TEMP] too many connections, try again later")
	// A client of another network is greeted at once.
	for i := range 3 {
		n := ts.dialFrom(t, "127.0.1.1")
		n.expect("+OK ready")
		n.send("LOGIN\r\nECHO served\r\n")
		n.expect("+OK logged in")
		n.expect("+OK served")
		// The oldest slow connections were told and closed.
		slow[i].expect("-ERR [SYS/TEMP] server busy, connection closed to serve others")
		slow[i].expectClosed(5 * time.Second)
	}
	user.send("ECHO still\r\n")
	user.expect("+OK still")
	for _, c := range held {
		c.noData(10 * time.Millisecond) // still waiting: no greeting
	}
	if st := ts.sockets.stats(); st.InUse != max {
		t.Fatalf("in use %d, want %d", st.InUse, max)
	}
}

// TestImplicitTLSRefusalCloses: a full pool on the implicit-TLS listener
// closes the connection instead of answering in plaintext.
func TestImplicitTLSRefusalCloses(t *testing.T) {
	ts := startTLSServer(t, 5*time.Second, func(cfg *Config) {
		cfg.SocketMax = 1
		cfg.SocketBacklog = 0
	})
	first := ts.dialTLS(t)
	first.expect("+OK ready")
	expectClosedWithoutPlaintext(t, ts.tlsAddr)
	// A TLS client sees a failed handshake, not a protocol error.
	c, err := tls.Dial("tcp", ts.tlsAddr, ts.clientConfig())
	if err == nil {
		c.Close()
		t.Fatal("handshake succeeded on a full pool")
	}
	if strings.Contains(err.Error(), "record") {
		t.Fatalf("the client read a plaintext reply as TLS: %v", err)
	}
}

func TestPreKeys(t *testing.T) {
	for _, tc := range []struct{ ip, addr, net, net48 string }{
		{"192.0.2.7", "192.0.2.7", "192.0.2.0", ""},
		{"::ffff:192.0.2.7", "192.0.2.7", "192.0.2.0", ""},
		{"2001:db8:1:2:3:4:5:6", "2001:db8:1:2:3:4:5:6", "2001:db8:1:2::", "2001:db8:1::"},
	} {
		a, n, n48 := preKeys(netip.MustParseAddr(tc.ip))
		got48 := ""
		if n48.addr.IsValid() {
			got48 = n48.addr.String()
		}
		if a.addr.String() != tc.addr || n.addr.String() != tc.net || got48 != tc.net48 {
			t.Errorf("preKeys(%s) = %v %v %v, want %s %s %s", tc.ip, a.addr, n.addr, got48, tc.addr, tc.net, tc.net48)
		}
	}
}

// TestPreloginIPv6Networks: the /64 and /48 caps, and shedding ranks IPv6
// by /48.
func TestPreloginIPv6Networks(t *testing.T) {
	set := &settings{preIP: 2, preNet: 3, preNet48: 4, socketMax: 100, shedAt: 100}
	var p sockets
	p.init(0)
	add := func(ip string) (admitResult, *conn) {
		k := &conn{ip: ip, addr: netip.MustParseAddr(ip)}
		k.refs.Store(1)
		return p.admit(k, set)
	}
	for _, tc := range []struct {
		ip   string
		want admitResult
	}{
		{"2001:db8:1:1::1", admitServe},
		{"2001:db8:1:1::1", admitServe},
		{"2001:db8:1:1::1", admitPreIP},
		{"2001:db8:1:1::2", admitServe},
		{"2001:db8:1:1::3", admitPreNet}, // /64 full
		{"2001:db8:1:2::1", admitServe},
		{"2001:db8:1:3::1", admitPreNet}, // /48 full
		{"2001:db8:2::1", admitServe},
	} {
		if got, _ := add(tc.ip); got != tc.want {
			t.Errorf("admit %s = %v, want %v", tc.ip, got, tc.want)
		}
	}
	// Nearly full: a newcomer from another /48 sheds the oldest of the
	// /48 that holds the most.
	set.shedAt = 1
	res, v := add("2001:db8:3::1")
	if res != admitServe || v == nil || v.addr.String() != "2001:db8:1:1::1" {
		t.Fatalf("admit with shedding = %v, victim %v; want serve, 2001:db8:1:1::1", res, v)
	}
}

// A connection refused for a full pool is held silent for refuse_delay,
// then refused; refuse_hold bounds how many are held, and beyond it the
// refusal is at once.
func TestDelayedRefusal(t *testing.T) {
	ts := startServer(t, func(cfg *Config) {
		cfg.SocketMax = 1
		cfg.SocketBacklog = 0
		cfg.RefuseDelay = 10 * time.Second // held 5 to 15 s
		cfg.RefuseHold = 1
		cfg.BacklogMaxInput = 64
	})
	c1 := ts.dial(t)
	c1.expect("+OK ready")
	c2 := ts.dial(t) // held for its refusal
	k2 := ts.connOf(t, c2.c)
	eventually(t, "c2 held", func() bool { return ts.sockets.stats().Refusing == 1 })
	c2.send("USER x\r\n") // dropped: a refused connection is not served
	c3 := ts.dial(t)      // beyond refuse_hold
	c3.expect("-ERR [SYS/TEMP] too many connections, try again later")
	c3.expectClosed(5 * time.Second)

	// Before the delay, the sweep leaves it alone (the barrier: what the
	// sweep posted to its loop has run).
	ts.clock.Advance(4 * time.Second)
	ts.Sweep()
	ts.barrier(t, k2.gc.EventLoop())
	c2.noData(50 * time.Millisecond)
	ts.clock.Advance(12 * time.Second)
	ts.Sweep()
	c2.expect("-ERR [SYS/TEMP] too many connections, try again later")
	c2.expectClosed(5 * time.Second)
	eventually(t, "no connection held", func() bool { return ts.sockets.stats().Refusing == 0 })
	if st := ts.sockets.stats(); st.InUse != 1 {
		t.Fatalf("sockets = %+v, want the first connection still served", st)
	}

	// A held connection that hangs up leaves the hold; one that sends
	// more than backlog_max_input is closed.
	c4 := ts.dial(t)
	eventually(t, "c4 held", func() bool { return ts.sockets.stats().Refusing == 1 })
	c4.c.Close()
	eventually(t, "c4 gone", func() bool { return ts.sockets.stats().Refusing == 0 })
	c5 := ts.dial(t)
	eventually(t, "c5 held", func() bool { return ts.sockets.stats().Refusing == 1 })
	c5.send(strings.Repeat("x", 100))
	c5.expectClosed(5 * time.Second)
	eventually(t, "c5 gone", func() bool { return ts.sockets.stats().Refusing == 0 })

	// The served connection never noticed.
	c1.send("ECHO still\r\n")
	c1.expect("+OK still")
}

// On the implicit-TLS listener a held refusal ends in a close, never a
// plaintext line.
func TestDelayedRefusalOnImplicitTLSCloses(t *testing.T) {
	ts := startTLSServer(t, 5*time.Second, func(cfg *Config) {
		cfg.SocketMax = 1
		cfg.SocketBacklog = 0
		cfg.RefuseDelay = 10 * time.Millisecond
		cfg.RefuseHold = 10
	})
	first := ts.dialTLS(t)
	first.expect("+OK ready")
	expectClosedWithoutPlaintext(t, ts.tlsAddr)
}

// expectClosedWithoutPlaintext dials addr (an implicit-TLS listener) and
// expects the server to close without writing anything.
func expectClosedWithoutPlaintext(t *testing.T, addr string) {
	t.Helper()
	raw, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	raw.SetReadDeadline(time.Now().Add(10 * time.Second))
	b, err := io.ReadAll(raw)
	if err != nil || len(b) != 0 {
		t.Fatalf("refused TLS connection read %q, %v; want a close without plaintext", b, err)
	}
}

// A held refusal due before the next sweep is refused at its own time (a
// timer the sweep sets), not at the sweep after it, so that the refusals
// of one interval are spread over it instead of sent in one burst.
func TestDelayedRefusalBetweenSweeps(t *testing.T) {
	ts := startServer(t, func(cfg *Config) {
		cfg.SocketMax = 1
		cfg.SocketBacklog = 0
		cfg.RefuseDelay = 10 * time.Second
		cfg.RefuseHold = 1
	})
	c1 := ts.dial(t)
	c1.expect("+OK ready")
	c2 := ts.dial(t)
	k2 := ts.connOf(t, c2.c)
	eventually(t, "c2 held", func() bool { return ts.sockets.stats().Refusing == 1 })
	// The clock to 50 ms before the refusal: the sweep arms a timer, and
	// the refusal comes without another sweep.
	ts.clock.Advance(time.Duration(k2.waitSince.Load()-ts.clock.Now().UnixNano()) - 50*time.Millisecond)
	ts.Sweep()
	c2.expect("-ERR [SYS/TEMP] too many connections, try again later")
	c2.expectClosed(5 * time.Second)
}
