package main

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pop3svc/pop3svc/store"
)

// BenchmarkFigures measures server CPU per full session and memory per
// idle connection. It is slow and opens 10,000 connections; it reports
// with -v:
//
//	go test ./cmd/pop3d -run '^$' -bench BenchmarkFigures -benchtime 1x -v -timeout 10m
func BenchmarkFigures(t *testing.B) {
	const (
		messages  = 50
		size      = 32 << 10
		mailboxes = 4
		sessions  = 200
		idleConns = 10000
	)
	in := startPop3d(t, "logging = 3", "socketmax = 20000\nthreadcount = 16", func(ctx context.Context, st store.Store) {
		if err := st.CreateDomain(ctx, "example.org"); err != nil {
			panic(err)
		}
		for m := range mailboxes {
			a := store.Address{Mailbox: fmt.Sprintf("u%d", m), Domain: "example.org"}
			if err := st.CreateMailbox(ctx, a, testPassword); err != nil {
				panic(err)
			}
			for i := range messages {
				if _, err := st.Deliver(ctx, a, strings.NewReader(testMessage(i, size))); err != nil {
					panic(err)
				}
			}
		}
	})
	pid := in.Cmd.Process.Pid

	for _, mode := range []string{"USER/PASS", "APOP"} {
		cpu0 := procCPU(t, pid)
		start := time.Now()
		var wg sync.WaitGroup
		errs := make(chan error, mailboxes)
		var octets int64
		var mu sync.Mutex
		for m := range mailboxes {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range sessions / mailboxes {
					n, err := fullSession(in.POP3, fmt.Sprintf("u%d@example.org", m), mode == "APOP", messages)
					if err != nil {
						errs <- err
						return
					}
					mu.Lock()
					octets += n
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		el := time.Since(start)
		cpu := procCPU(t, pid) - cpu0
		t.Logf("%s: %d sessions (login, STAT, UIDL, LIST, RETR x%d of %d KiB, QUIT) in %v: server CPU %.2f ms/session, %.0f MiB/s",
			mode, sessions, messages, size>>10, el.Round(time.Millisecond), float64(cpu.Microseconds())/1000/sessions,
			float64(octets)/el.Seconds()/(1<<20))
	}

	rss0 := procRSS(t, pid)
	conns := make([]net.Conn, 0, idleConns)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	buf := make([]byte, 512)
	for range idleConns {
		c, err := net.DialTimeout("tcp", in.POP3, 5*time.Second)
		if err != nil {
			t.Fatalf("after %d connections: %v", len(conns), err)
		}
		conns = append(conns, c)
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if n, err := c.Read(buf); err != nil || !strings.HasPrefix(string(buf[:n]), "+OK") {
			t.Fatalf("greeting %d: %q %v", len(conns), buf[:n], err)
		}
	}
	time.Sleep(time.Second) // a measurement: the server's memory settles after the burst; no state to wait for
	rss1 := procRSS(t, pid)
	t.Logf("%d idle connections: server RSS %d -> %d KiB, %.2f KiB per connection",
		idleConns, rss0, rss1, float64(rss1-rss0)/idleConns)
}

// fullSession runs one POP3 session and returns the octets retrieved.
func fullSession(addr, user string, apop bool, messages int) (int64, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(60 * time.Second))
	p := &rawPOP{c: c, buf: make([]byte, 0, 64<<10)}
	g, err := p.line()
	if err != nil {
		return 0, err
	}
	if apop {
		ts := g[strings.IndexByte(g, '<'):]
		sum := md5.Sum([]byte(ts + testPassword))
		if err := p.cmd("APOP " + user + " " + hex.EncodeToString(sum[:])); err != nil {
			return 0, err
		}
	} else {
		if err := p.cmd("USER " + user); err != nil {
			return 0, err
		}
		if err := p.cmd("PASS " + testPassword); err != nil {
			return 0, err
		}
	}
	if err := p.cmd("STAT"); err != nil {
		return 0, err
	}
	for _, m := range []string{"UIDL", "LIST"} {
		if _, err := p.multi(m); err != nil {
			return 0, err
		}
	}
	var total int64
	for i := 1; i <= messages; i++ {
		n, err := p.multi("RETR " + strconv.Itoa(i))
		if err != nil {
			return 0, err
		}
		total += n
	}
	return total, p.cmd("QUIT")
}

type rawPOP struct {
	c   net.Conn
	buf []byte
	r   []byte
}

func (p *rawPOP) fill() error {
	if len(p.r) == 0 {
		p.r = p.buf[:cap(p.buf)]
		n, err := p.c.Read(p.r)
		p.r = p.r[:n]
		if err != nil && n == 0 {
			return err
		}
	}
	return nil
}

func (p *rawPOP) line() (string, error) {
	var out []byte
	for {
		if err := p.fill(); err != nil {
			return "", err
		}
		if i := indexByte(p.r, '\n'); i >= 0 {
			out = append(out, p.r[:i+1]...)
			p.r = p.r[i+1:]
			return strings.TrimRight(string(out), "\r\n"), nil
		}
		out = append(out, p.r...)
		p.r = p.r[:0]
	}
}

func indexByte(b []byte, c byte) int {
	for i, x := range b {
		if x == c {
			return i
		}
	}
	return -1
}

func (p *rawPOP) cmd(s string) error {
	if _, err := p.c.Write([]byte(s + "\r\n")); err != nil {
		return err
	}
	l, err := p.line()
	if err != nil {
		return err
	}
	if !strings.HasPrefix(l, "+OK") {
		return fmt.Errorf("%s: %s", s, l)
	}
	return nil
}

// multi sends a command and reads its multi-line answer, returning octets.
func (p *rawPOP) multi(s string) (int64, error) {
	if err := p.cmd(s); err != nil {
		return 0, err
	}
	var n int64
	for {
		l, err := p.line()
		if err != nil {
			return n, err
		}
		if l == "." {
			return n, nil
		}
		n += int64(len(l) + 2)
	}
}

// procCPU is the user+system CPU time of a process.
func procCPU(t testing.TB, pid int) time.Duration {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / 100 // USER_HZ
}

// procRSS is the resident set of a process in KiB.
func procRSS(t testing.TB, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			n, _ := strconv.ParseInt(strings.Fields(l)[1], 10, 64)
			return n
		}
	}
	t.Fatal("no VmRSS")
	return 0
}
