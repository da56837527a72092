package machines

import (
	"os"
	"strings"
	"testing"
)

// TestBuildAndClose: each machine runs programs under its own host name
// with its own address; Close removes the namespaces and the bridge, and
// a second Close finds nothing left to do.
func TestBuildAndClose(t *testing.T) {
	Need(t)
	nt, err := Build(2)
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	t.Cleanup(func() {
		if !closed {
			nt.Close()
		}
	})
	for _, m := range nt.Machines {
		out, err := m.Command("hostname").Output()
		if err != nil {
			t.Fatalf("%s: hostname: %v", m.Name, err)
		}
		if got := strings.TrimSpace(string(out)); got != m.Host {
			t.Errorf("%s: host name %q, want %q", m.Name, got, m.Host)
		}
		out, err = m.Command("ip", "-o", "-4", "addr", "show", "dev", "eth0").Output()
		if err != nil {
			t.Fatalf("%s: ip addr: %v", m.Name, err)
		}
		if !strings.Contains(string(out), " "+m.Addr+"/24 ") {
			t.Errorf("%s: eth0 has %q, want %s", m.Name, out, m.Addr)
		}
	}
	if err := nt.Close(); err != nil {
		t.Fatal(err)
	}
	closed = true
	for _, m := range nt.Machines {
		if _, err := os.Lstat("/run/netns/" + m.NS); err == nil {
			t.Errorf("namespace %s is left after Close", m.NS)
		}
	}
	if _, err := os.Lstat("/sys/class/net/" + nt.Bridge); err == nil {
		t.Errorf("bridge %s is left after Close", nt.Bridge)
	}
	if err := nt.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}
