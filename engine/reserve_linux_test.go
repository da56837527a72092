package engine

import (
	"fmt"
	"net"
	"testing"
)

// TestReservePort: while a port is reserved, port-0 binds elsewhere get
// other ports, and a listener (SO_REUSEADDR, as gnet's) can still bind
// and listen on it.
func TestReservePort(t *testing.T) {
	const probes = 2000
	port, release, err := reservePort("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range probes {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		if l.Addr().(*net.TCPAddr).Port == port {
			t.Fatalf("port %d was handed out while reserved", port)
		}
	}
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatalf("cannot listen on the reserved port: %v", err)
	}
	release()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatalf("dial after release: %v", err)
	}
	c.Close()
	l.Close()
}
