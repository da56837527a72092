package main

import (
	"bufio"
	"io"
	"net"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pop3svc/pop3svc/cmd/pop3d/pop3dtest"
)

// limitCases are the live keys of the pools, buffers, budgets and the auth
// queue, run by TestReloadAppliesLiveKeys after liveCases' own.
func limitCases() []liveCase {
	return []liveCase{
		{key: "auth.penalty_max", value: "2s", prep: [][2]string{{"auth.penalty_max", "500ms"}, {"auth.penalty", "500ms"}}, want: "beyond 600ms", probe: thirdFailureWait},
		// The queue's size cases: net_failures = 0, or the failures of
		// earlier cases on this loopback network could make it suspect,
		// and a suspect network's checks get only half of the workers.
		{key: "auth.queue", value: "0", prep: [][2]string{{"auth.net_failures", "0"}, {"auth.hash_workers", "1"}}, want: "refused", probe: authBurst(3)},
		{key: "auth.hash_workers", value: "1", prep: [][2]string{{"auth.net_failures", "0"}, {"auth.hash_workers", "4"}, {"auth.queue", "0"}}, want: "refused", probe: authBurst(3)},
		{key: "auth.hash_memory", value: "20MB", prep: [][2]string{{"auth.net_failures", "0"}, {"auth.hash_workers", "4"}, {"auth.queue", "0"}}, want: "refused", probe: authBurst(2)},

		{key: "pop3.socketmin", value: "40", want: "40 prepared", probe: func(t *testing.T, in *pop3dtest.Server, ip string) string {
			greeting(t, in, ip)
			waitNoConnections(t, in)
			var st struct {
				POP3 struct {
					Sockets struct{ Free int } `json:"sockets"`
				} `json:"pop3"`
			}
			// The greeted connection's context returns to the free list
			// once a worker has finalized it, a moment after it closed.
			if pop3dtest.Eventually(5*time.Second, func() bool {
				adminJSON(t, in, "/api/status", &st)
				return st.POP3.Sockets.Free >= 40
			}) {
				return "40 prepared"
			}
			return strconv.Itoa(st.POP3.Sockets.Free) + " prepared"
		}},
		{key: "pop3.task_queue", value: "0", prep: [][2]string{{"pop3.threadcount", "1"}}, want: "busy", probe: poolBurst},
		{key: "pop3.login_deadline", value: "1s", noBefore: true, want: "closed", probe: func(t *testing.T, in *pop3dtest.Server, ip string) string {
			p := pop3dtest.Dial(t, in.POP3, ip) // login_timeout is an hour: only the deadline ends it
			defer p.Close()
			return closedSoon(p)
		}},
		{key: "pop3.shed_at", value: "10", prep: [][2]string{{"pop3.socketmax", "10"}}, want: "shed", probe: func(t *testing.T, in *pop3dtest.Server, ip string) string {
			n := metric(t, in, "pop3_connections_shed_total")
			c1 := pop3dtest.Dial(t, in.POP3, ip)
			defer c1.Close()
			c2 := pop3dtest.Dial(t, in.POP3, ip)
			defer c2.Close()
			// A newcomer from another /24: its greeting comes after the
			// engine admitted it, and shed (or not) on the way.
			c3 := pop3dtest.Dial(t, in.POP3, otherNet(ip))
			defer c3.Close()
			if metric(t, in, "pop3_connections_shed_total") > n {
				return "shed"
			}
			return "kept"
		}},

		// A pool of one: the second connection is refused (refuse_delay
		// 10s by default: held first); the third is beyond refuse_hold 1.
		{key: "pop3.refuse_delay", value: "0s", prep: [][2]string{{"pop3.socketmin", "1"}, {"pop3.socketmax", "1"}, {"pop3.socketbacklog", "0"}}, want: "refused at once", probe: refusalOf(2)},
		{key: "pop3.refuse_hold", value: "1", prep: [][2]string{{"pop3.socketmin", "1"}, {"pop3.socketmax", "1"}, {"pop3.socketbacklog", "0"}}, want: "refused at once", probe: refusalOf(3)},

		{key: "limits.prelogin_per_net", value: "1", prep: [][2]string{{"limits.prelogin_per_ip", "1"}}, want: "-ERR [SYS/TEMP]", probe: func(t *testing.T, in *pop3dtest.Server, ip string) string {
			c1 := pop3dtest.Dial(t, in.POP3, ip)
			defer c1.Close()
			c2 := pop3dtest.DialRaw(t, in.POP3, sameNet(ip)) // another address of the same /24
			defer c2.Close()
			l := c2.Line()
			c1.Cmd("QUIT")
			return prefix(l)
		}},
		{key: "limits.max_pipelined", value: "5", want: "refused", probe: pipelined(20, "NOOP")},
		{key: "limits.max_inbound", value: "1024", want: "refused", probe: pipelined(200, "NOOP")}, // 1200 octets
		{key: "limits.backlog_max_input", value: "100", prep: [][2]string{{"pop3.socketmin", "1"}, {"pop3.socketmax", "1"}, {"pop3.socketbacklog", "5"}}, want: "closed", probe: func(t *testing.T, in *pop3dtest.Server, ip string) string {
			c1 := pop3dtest.Dial(t, in.POP3, ip)
			defer c1.Close()
			n := metric(t, in, "pop3_bytes_received_total")
			c2 := pop3dtest.DialRaw(t, in.POP3, ip) // held in the backlog while c1 stays
			defer c2.Close()
			c2.Send(strings.Repeat("NOOP\r\n", 50))
			pop3dtest.WaitFor(t, 30*time.Second, "the engine to read what the held connection sent", func() bool {
				return metric(t, in, "pop3_bytes_received_total") >= n+300
			})
			c1.Cmd("QUIT")
			l, ok := c2.ReadLine()
			if !ok {
				return "closed"
			}
			return prefix(l)
		}},

		{key: "smtp.transaction_deadline", value: "1s", noBefore: true, want: "421", probe: func(t *testing.T, in *pop3dtest.Server, ip string) string {
			c := dialSMTP(t, in, ip)
			defer c.Close()
			c.cmd(t, "EHLO client.test")
			return c.reply(t)[:3] // read_timeout is five minutes: only the deadline answers
		}},
		{key: "smtp.data_timeout", value: "10s", prep: [][2]string{{"smtp.read_timeout", "5s"}}, want: "closed", probe: dribble},
		{key: "smtp.write_timeout", value: "1s", noBefore: true, want: "closed", probe: func(t *testing.T, in *pop3dtest.Server, ip string) string {
			// A client that sends commands and never reads the replies:
			// once the socket buffers are full the server's write waits,
			// and write_timeout ends the connection, which the client
			// sees as a failed write.
			d := net.Dialer{Timeout: pop3dtest.DialTimeout, LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Control: smallReceiveBuffer}
			conn, err := d.Dial("tcp", in.SMTP[0])
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			batch := []byte(strings.Repeat("NOOP\r\n", 1000))
			deadline := time.Now().Add(60 * time.Second)
			for time.Now().Before(deadline) {
				conn.SetWriteDeadline(deadline)
				if _, err := conn.Write(batch); err != nil {
					if ne, ok := err.(net.Error); ok && ne.Timeout() {
						break
					}
					return "closed"
				}
			}
			return "still open after a minute"
		}},
	}
}

// sameNet is another loopback address of ip's /24; otherNet one of
// another /24.
func sameNet(ip string) string {
	a := net.ParseIP(ip).To4()
	return net.IPv4(a[0], a[1], a[2], a[3]+100).String()
}

func otherNet(ip string) string {
	a := net.ParseIP(ip).To4()
	return net.IPv4(a[0], a[1]+1, a[2], a[3]).String()
}

// smallReceiveBuffer makes a client socket's receive buffer small before
// it connects, so that a client that does not read stops the server's
// writes early.
func smallReceiveBuffer(network, address string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
	})
	if err != nil {
		return err
	}
	return serr
}

// thirdFailureWait fails three logins from ip, each on its own
// connection, and says whether the third's penalty, as the log reports
// it (the fixed delay plus the penalty), went beyond 600ms: with
// penalty 500ms it does only when penalty_max lets it.
func thirdFailureWait(t *testing.T, in *pop3dtest.Server, ip string) string {
	for range 3 {
		loginAs(t, in, ip, testAddr.String(), "wrong")
	}
	re := regexp.MustCompile(`msg="login failed".* remote=` + regexp.QuoteMeta(ip) + `:\d+ .*\bwait=(\S+)`)
	m := re.FindAllStringSubmatch(in.Log(), -1)
	if len(m) == 0 {
		t.Fatalf("no failed login from %s in the log", ip)
	}
	wait, err := time.ParseDuration(m[len(m)-1][1])
	if err != nil {
		t.Fatal(err)
	}
	if wait > 600*time.Millisecond {
		return "beyond 600ms"
	}
	return "within 600ms"
}

// script dials addr from ip, sends script at once and reads n lines
// (the greeting first), or fewer when the server closes. It reports
// errors instead of failing, so that goroutines may run it.
func script(addr, ip, script string, n int) ([]string, error) {
	d := net.Dialer{Timeout: pop3dtest.DialTimeout, LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(60 * time.Second))
	if _, err := io.WriteString(c, script); err != nil {
		return nil, err
	}
	r := bufio.NewReader(c)
	var lines []string
	for range n {
		l, err := r.ReadString('\n')
		if err != nil {
			if err == io.EOF {
				return lines, nil
			}
			return lines, err
		}
		lines = append(lines, strings.TrimRight(l, "\r\n"))
	}
	return lines, nil
}

// burst runs fn k times at once and returns their results.
func burst(t *testing.T, k int, fn func() ([]string, error)) [][]string {
	t.Helper()
	out := make([][]string, k)
	errs := make([]error, k)
	var wg sync.WaitGroup
	for i := range k {
		wg.Add(1)
		go func() { defer wg.Done(); out[i], errs[i] = fn() }()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// authBurst logs in k times at once, in up to 6 rounds, until a login is
// refused with [SYS/TEMP] because the auth queue is full: "refused", or
// "all served".
func authBurst(k int) func(*testing.T, *pop3dtest.Server, string) string {
	return func(t *testing.T, in *pop3dtest.Server, ip string) string {
		login := "USER " + testAddr.String() + "\r\nPASS " + testPassword + "\r\nQUIT\r\n"
		for range 6 {
			for _, lines := range burst(t, k, func() ([]string, error) { return script(in.POP3, ip, login, 4) }) {
				for _, l := range lines {
					if strings.HasPrefix(l, "-ERR [SYS/TEMP]") {
						return "refused"
					}
				}
			}
		}
		return "all served"
	}
}

// poolBurst logs in and out six times at once, in up to 30 rounds, until
// a command found every worker busy: "queued" when it waited in the task
// queue, "busy" when it was refused.
func poolBurst(t *testing.T, in *pop3dtest.Server, ip string) string {
	session := "USER " + testAddr.String() + "\r\nPASS " + testPassword + "\r\nSTAT\r\nQUIT\r\n"
	for range 30 {
		busy, queued := metric(t, in, "pop3_pool_overload_total"), metric(t, in, "pop3_pool_queued_total")
		burst(t, 6, func() ([]string, error) { return script(in.POP3, ip, session, 5) })
		switch {
		case metric(t, in, "pop3_pool_overload_total") > busy:
			return "busy"
		case metric(t, in, "pop3_pool_queued_total") > queued:
			return "queued"
		}
	}
	return "no command found the workers busy"
}

// pipelined logs in and sends n copies of cmd and QUIT in one write:
// "answered" when every command got +OK, "refused" when the server
// refused the input and closed.
func pipelined(n int, cmd string) func(*testing.T, *pop3dtest.Server, string) string {
	return func(t *testing.T, in *pop3dtest.Server, ip string) string {
		s := "USER " + testAddr.String() + "\r\nPASS " + testPassword + "\r\n" + strings.Repeat(cmd+"\r\n", n) + "QUIT\r\n"
		lines, err := script(in.POP3, ip, s, n+4)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range lines {
			if !strings.HasPrefix(l, "+OK") {
				return "refused"
			}
		}
		if len(lines) < n+4 {
			return "refused"
		}
		return "answered"
	}
}

// dribble starts a message and sends a short line every 100ms for up to
// 25s: "closed" when the server ends the transfer meanwhile, "open" when
// it let it go on.
func dribble(t *testing.T, in *pop3dtest.Server, ip string) string {
	c := dialSMTP(t, in, ip)
	defer c.Close()
	c.cmd(t, "EHLO client.test")
	c.cmd(t, "MAIL FROM:<bob@remote.test>")
	c.cmd(t, "RCPT TO:<"+testAddr.String()+">")
	if r := c.cmd(t, "DATA"); !strings.HasPrefix(r, "354") {
		t.Fatalf("DATA: %s", r)
	}
	closed := make(chan struct{})
	go func() {
		defer close(closed)
		c.SetReadDeadline(time.Now().Add(time.Minute))
		io.Copy(io.Discard, c) // a 421, then the end
	}()
	tick := time.NewTicker(100 * time.Millisecond) // the client's pace: part of the scenario
	defer tick.Stop()
	end := time.After(25 * time.Second)
	for {
		select {
		case <-closed:
			return "closed"
		case <-end:
			return "open"
		case <-tick.C:
			c.SetWriteDeadline(time.Now().Add(pop3dtest.WriteTimeout))
			if _, err := io.WriteString(c, "x\r\n"); err != nil {
				<-closed
				return "closed"
			}
		}
	}
}

// refusalOf fills a pool of one with a logged-out connection from ip, opens
// n-1 more, and reports how the last is refused: "refused at once" when
// its -ERR comes within two seconds (a held refusal waits
// pop3.refuse_delay, 10s here), "held" otherwise. The ones before it are
// held (the admin API shows them) before it dials.
func refusalOf(n int) func(t *testing.T, in *pop3dtest.Server, ip string) string {
	return func(t *testing.T, in *pop3dtest.Server, ip string) string {
		c1 := pop3dtest.Dial(t, in.POP3, ip)
		defer c1.Close()
		refusing := func() int {
			var st struct {
				POP3 struct {
					Sockets struct{ Refusing int } `json:"sockets"`
				} `json:"pop3"`
			}
			adminJSON(t, in, "/api/status", &st)
			return st.POP3.Sockets.Refusing
		}
		for i := 2; i < n; i++ {
			c := pop3dtest.DialRaw(t, in.POP3, ip)
			defer c.Close()
			pop3dtest.WaitFor(t, 30*time.Second, "a refused connection held", func() bool { return refusing() >= i-1 })
		}
		last := pop3dtest.DialRaw(t, in.POP3, ip)
		defer last.Close()
		last.C.SetReadDeadline(time.Now().Add(2 * time.Second))
		l, err := last.R.ReadString('\n')
		if err != nil {
			return "held"
		}
		if strings.HasPrefix(l, "-ERR [SYS/TEMP]") {
			return "refused at once"
		}
		return prefix(l)
	}
}
