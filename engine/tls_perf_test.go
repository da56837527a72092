package engine

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkTLSFigures measures TLS handshakes per second, streaming
// throughput with and without TLS, and the memory of idle connections. It
// takes about a minute and reports with -v:
//
//	go test -run '^$' -bench BenchmarkTLSFigures -benchtime 1x -v ./engine
func BenchmarkTLSFigures(t *testing.B) {
	ts := startTLSServer(t, 0, func(cfg *Config) {
		cfg.SocketMax = 12000
		cfg.ThreadCount = 64
		cfg.LoginTimeout = 10 * time.Minute
	})
	t.Run("handshakes", func(t *testing.B) {
		for _, curves := range [][]tls.CurveID{nil, {tls.X25519}} {
			cfg := ts.clientConfig()
			cfg.CurvePreferences = curves
			var n atomic.Int64
			var wg sync.WaitGroup
			stop := time.Now().Add(3 * time.Second)
			for range 4 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for time.Now().Before(stop) {
						c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", ts.tlsAddr, cfg)
						if err != nil {
							t.Error(err)
							return
						}
						c.SetDeadline(time.Now().Add(5 * time.Second))
						if l, err := bufio.NewReader(c).ReadString('\n'); err != nil || l != "+OK ready\r\n" {
							t.Errorf("greeting %q, %v", l, err)
						}
						c.Close()
						n.Add(1)
					}
				}()
			}
			wg.Wait()
			name := "default (X25519MLKEM768)"
			if curves != nil {
				name = "X25519"
			}
			t.Logf("TLS handshakes, %s, 4 clients in the same process: %.0f/s (greeting included)", name, float64(n.Load())/3)
		}
	})
	t.Run("stream", func(t *testing.B) {
		const size = 64 << 20
		for _, clients := range []int{1, 4} {
			for _, secure := range []bool{false, true} {
				var wg sync.WaitGroup
				start := time.Now()
				for range clients {
					wg.Add(1)
					go func() {
						defer wg.Done()
						var c net.Conn
						var err error
						if secure {
							c, err = tls.Dial("tcp", ts.tlsAddr, ts.clientConfig())
						} else {
							c, err = net.Dial("tcp", ts.plainAddr)
						}
						if err != nil {
							t.Error(err)
							return
						}
						defer c.Close()
						c.SetDeadline(time.Now().Add(60 * time.Second))
						r := bufio.NewReaderSize(c, 64<<10)
						r.ReadString('\n')
						fmt.Fprintf(c, "BODY %d\r\n", size)
						r.ReadString('\n')
						if n, err := io.CopyN(io.Discard, r, size+3); err != nil {
							t.Errorf("read %d: %v", n, err)
						}
					}()
				}
				wg.Wait()
				d := time.Since(start)
				t.Logf("streamed reply, %d client(s), tls=%v: %.0f MB/s", clients, secure, float64(clients*size)/d.Seconds()/1e6)
			}
		}
	})
	t.Run("idle", func(t *testing.B) {
		const conns = 5000
		for _, mode := range []string{"plain", "tls"} {
			eventually(t, "no connections", func() bool { return ts.Status().Connections == 0 })
			base, baseRSS := serverMem()
			addr := ts.plainAddr
			if mode == "tls" {
				addr = ts.tlsAddr
			}
			child := exec.Command(os.Args[0]) // TestMain runs perfClients
			child.Env = append(os.Environ(), perfClientEnv+"="+mode+","+addr+","+strconv.Itoa(conns))
			stdin, _ := child.StdinPipe()
			stdout, _ := child.StdoutPipe()
			child.Stderr = os.Stderr
			if err := child.Start(); err != nil {
				t.Fatal(err)
			}
			line, err := bufio.NewReader(stdout).ReadString('\n')
			if err != nil || !strings.HasPrefix(line, "READY") {
				t.Fatalf("client process: %q, %v", line, err)
			}
			eventually(t, "connections", func() bool { return ts.Status().Connections == conns })
			used, usedRSS := serverMem()
			t.Logf("%d idle %s connections: Go heap+stacks %.0f B/conn, RSS %.0f B/conn",
				conns, mode, float64(used-base)/conns, float64(usedRSS-baseRSS)/conns)
			stdin.Close()
			child.Wait()
		}
	})
}

// serverMem returns the live heap plus stacks after a GC, and the RSS.
func serverMem() (live, rss int64) {
	var ms runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&ms)
	b, _ := os.ReadFile("/proc/self/status")
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			f := strings.Fields(l)
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			rss = kb << 10
		}
	}
	return int64(ms.HeapAlloc + ms.StackInuse), rss
}

// perfClientEnv, when set ("plain|tls,address,count"), makes the test
// binary the client process of BenchmarkTLSFigures' idle figure (see
// TestMain).
const perfClientEnv = "POP3_PERF_CLIENT"

// perfClients opens the connections, reads each greeting, says READY, and
// holds them until its stdin closes.
func perfClients(spec string) error {
	f := strings.Split(spec, ",")
	if len(f) != 3 {
		return fmt.Errorf("%s=%q: want mode,address,count", perfClientEnv, spec)
	}
	n, err := strconv.Atoi(f[2])
	if err != nil {
		return err
	}
	cfg := &tls.Config{InsecureSkipVerify: true}
	var conns []net.Conn
	for range n {
		var c net.Conn
		var err error
		if f[0] == "tls" {
			c, err = tls.Dial("tcp", f[1], cfg)
		} else {
			c, err = net.Dial("tcp", f[1])
		}
		if err != nil {
			return err
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if l, err := bufio.NewReader(c).ReadString('\n'); err != nil || !strings.HasPrefix(l, "+OK") {
			return fmt.Errorf("greeting %q, %v", l, err)
		}
		conns = append(conns, c)
	}
	fmt.Println("READY")
	io.Copy(io.Discard, os.Stdin)
	for _, c := range conns {
		c.Close()
	}
	return nil
}
