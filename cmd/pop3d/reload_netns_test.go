package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"net/http"
	"os"
	"os/exec"
	goruntime "runtime"
	"sync"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/pop3svc/pop3svc/cmd/pop3d/pop3dtest"
)

// adminClients holds, for a pop3d in a network namespace of its own,
// the HTTP client that reaches its admin listener there.
var adminClients sync.Map // *pop3dtest.Server -> *http.Client

// adminClient is the HTTP client that reaches in's admin listener.
func adminClient(in *pop3dtest.Server) *http.Client {
	if c, ok := adminClients.Load(in); ok {
		return c.(*http.Client)
	}
	return http.DefaultClient
}

// TestReloadAppliesPreloginPerNet48 changes limits.prelogin_per_net48 on
// a running pop3d in a network namespace made for the test, whose
// loopback has two addresses in one IPv6 /48 and two /64s: with one
// unauthenticated connection allowed per address and per /64, only the
// /48 limit refuses the second (root needed, for the namespace).
func TestReloadAppliesPreloginPerNet48(t *testing.T) {
	if os.Geteuid() != 0 {
		pop3dtest.Unavailable(t, "a network namespace needs root", "iproute2, run as root")
	}
	ipTool := pop3dtest.NeedTool(t, "ip")
	var b [3]byte
	rand.Read(b[:])
	ns := "p3r" + hex.EncodeToString(b[:])
	ip := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(ipTool, args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v\n%s", args, err, out)
		}
	}
	ip("netns", "add", ns)
	t.Cleanup(func() { exec.Command(ipTool, "netns", "del", ns).Run() })
	ip("-n", ns, "link", "set", "lo", "up")
	const a1, a2 = "fd00:1:2:1::1", "fd00:1:2:2::1"
	for _, a := range []string{a1, a2} {
		ip("-n", ns, "-6", "addr", "add", a+"/128", "dev", "lo", "nodad")
	}

	c := reloadConfig(t, "", mailbox(0, 0))
	c.Host = "::1"
	c.Tables = "[limits]\nprelogin_per_ip = 1\nprelogin_per_net = 1\n"
	c.Command = func(name string, args ...string) *exec.Cmd {
		return exec.Command(ipTool, append([]string{"netns", "exec", ns, name}, args...)...)
	}
	in := pop3dtest.Start(t, c)
	adminClients.Store(in, &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) { return nsDial(ns, "", addr) },
	}})
	t.Cleanup(func() { adminClients.Delete(in) })

	runLiveCases(t, in, []liveCase{
		{key: "limits.prelogin_per_net48", value: "1", want: "-ERR [SYS/TEMP]", probe: func(t *testing.T, in *pop3dtest.Server, _ string) string {
			c1 := nsConn(t, ns, a1, in.POP3)
			defer c1.Close()
			if g := c1.Line(); g[:3] != "+OK" {
				t.Fatalf("greeting %q", g)
			}
			c2 := nsConn(t, ns, a2, in.POP3) // another /64 of the same /48
			defer c2.Close()
			l := c2.Line()
			c1.Cmd("QUIT")
			return prefix(l)
		}},
	}, func(int) string { return "" })
}

// nsConn dials addr from local inside the network namespace ns.
func nsConn(t *testing.T, ns, local, addr string) *pop3dtest.Conn {
	t.Helper()
	c, err := nsDial(ns, local, addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &pop3dtest.Conn{T: t, C: c, R: bufio.NewReader(c)}
}

// nsDial opens a TCP connection in the network namespace ns: on a thread
// of its own moved into ns, which ends with its goroutine (a socket stays
// in the namespace it was made in).
func nsDial(ns, local, addr string) (net.Conn, error) {
	type result struct {
		c   net.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		goruntime.LockOSThread() // never unlocked: the thread is discarded
		f, err := os.Open("/var/run/netns/" + ns)
		if err != nil {
			ch <- result{nil, err}
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			ch <- result{nil, err}
			return
		}
		d := net.Dialer{Timeout: pop3dtest.DialTimeout}
		if local != "" {
			d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(local)}
		}
		c, err := d.Dial("tcp", addr)
		ch <- result{c, err}
	}()
	r := <-ch
	return r.c, r.err
}
