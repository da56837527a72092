package sdnotify

import (
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// listen opens a datagram socket as systemd does for $NOTIFY_SOCKET.
func listen(t *testing.T, name string) *net.UnixConn {
	t.Helper()
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func recv(t *testing.T, c *net.UnixConn) map[string]string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 4096)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatalf("no datagram: %v", err)
	}
	m := map[string]string{}
	for _, l := range strings.Split(strings.TrimSuffix(string(buf[:n]), "\n"), "\n") {
		k, v, ok := strings.Cut(l, "=")
		if !ok {
			t.Fatalf("line %q of %q is not VAR=value", l, buf[:n])
		}
		m[k] = v
	}
	return m
}

func TestReadyReloadingStopping(t *testing.T) {
	for _, tc := range []struct{ name, path string }{
		{"file", filepath.Join(t.TempDir(), "notify")},
		{"abstract", "@pop3d-sdnotify-test-" + strconv.Itoa(int(time.Now().UnixNano()))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bind := tc.path
			if strings.HasPrefix(bind, "@") {
				bind = "\x00" + bind[1:]
			}
			c := listen(t, bind)
			n := New(tc.path)
			if !n.Enabled() {
				t.Fatal("New with a path is not enabled")
			}
			if err := n.Ready("serving"); err != nil {
				t.Fatal(err)
			}
			if m := recv(t, c); m["READY"] != "1" || m["STATUS"] != "serving" {
				t.Fatalf("Ready sent %v", m)
			}
			before := monotonicUsec()
			if err := n.Reloading(); err != nil {
				t.Fatal(err)
			}
			m := recv(t, c)
			us, err := strconv.ParseInt(m["MONOTONIC_USEC"], 10, 64)
			if m["RELOADING"] != "1" || err != nil || us < before || us > monotonicUsec() {
				t.Fatalf("Reloading sent %v (monotonic clock %d before)", m, before)
			}
			if err := n.Ready(""); err != nil {
				t.Fatal(err)
			}
			if m := recv(t, c); m["READY"] != "1" || len(m) != 1 {
				t.Fatalf("Ready after reload sent %v", m)
			}
			if err := n.Stopping(); err != nil {
				t.Fatal(err)
			}
			if m := recv(t, c); m["STOPPING"] != "1" {
				t.Fatalf("Stopping sent %v", m)
			}
		})
	}
}

func TestWithoutSocket(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	n := FromEnv()
	if n.Enabled() {
		t.Fatal("enabled without $NOTIFY_SOCKET")
	}
	if err := n.Ready(""); err != nil {
		t.Fatalf("Ready without a socket: %v", err)
	}
}

func TestMissingSocketIsAnError(t *testing.T) {
	n := New(filepath.Join(t.TempDir(), "absent"))
	if err := n.Ready(""); err == nil {
		t.Fatal("Ready to a socket that does not exist returned no error")
	}
}
