package tlsconn

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"
)

// BenchmarkHandshake: full handshakes in memory, client and server in the
// same process (the figure counts both sides' CPU).
func BenchmarkHandshake(b *testing.B) {
	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		b.Run(tls.VersionName(v), func(b *testing.B) {
			scfg, ccfg := serverConfig(b), clientConfig(b, v)
			ccfg.ClientSessionCache = nil
			start := time.Now()
			for b.Loop() {
				p := newMemPair(b, scfg, ccfg, 0)
				p.handshake(b)
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "handshakes/s")
		})
	}
}

// BenchmarkWritePlain: encryption of 64 KiB chunks (a RETR stream) into an
// Output that drops the ciphertext.
func BenchmarkWritePlain(b *testing.B) {
	p := newMemPair(b, serverConfig(b), clientConfig(b, 0), 0)
	p.handshake(b)
	p.srv.tr.out = func([]byte, func(error)) error { return nil }
	chunk := make([]byte, 64<<10)
	b.SetBytes(int64(len(chunk)))
	for b.Loop() {
		if err := p.srv.WritePlain(chunk, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRoundTrip: encrypt on one side, Feed and ReadPlain on the other.
func BenchmarkRoundTrip(b *testing.B) {
	p := newMemPair(b, serverConfig(b), clientConfig(b, 0), 0)
	p.handshake(b)
	chunk := make([]byte, 64<<10)
	buf := make([]byte, 64<<10)
	b.SetBytes(int64(len(chunk)))
	for b.Loop() {
		if err := p.srv.WritePlain(chunk, nil); err != nil {
			b.Fatal(err)
		}
		for got := 0; got < len(chunk); {
			n, err := p.cli.ReadPlain(buf)
			if err != nil {
				b.Fatal(err)
			}
			got += n
		}
	}
}

// liveBytes is the heap in use plus goroutine stacks after a full GC.
func liveBytes() uint64 {
	var ms runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc + ms.StackInuse
}

const idleConns = 2000

// BenchmarkIdleAdapterMemory: memory held by a server-side Conn after the
// handshake, with one command exchanged, idle. Measured as the drop in live
// memory when the server sides are released while the clients stay.
func BenchmarkIdleAdapterMemory(b *testing.B) {
	for b.Loop() {
		scfg, ccfg := serverConfig(b), clientConfig(b, 0)
		pairs := make([]*memPair, idleConns)
		for i := range pairs {
			p := newMemPair(b, scfg, ccfg, 0)
			p.handshake(b)
			p.cli.WritePlain([]byte("NOOP\r\n"), nil)
			readAll(p.srv)
			p.srv.WritePlain([]byte("+OK\r\n"), nil)
			readAll(p.cli)
			pairs[i] = p
		}
		both := liveBytes()
		for _, p := range pairs {
			p.srv = nil
		}
		clients := liveBytes()
		b.ReportMetric(float64(both-clients)/idleConns, "B/idle-conn")
		runtime.KeepAlive(pairs)
	}
}

// BenchmarkIdleHandoffMemory: the alternative design, a goroutine per TLS
// session blocked in crypto/tls Read on its own socket (what the engine
// would run after dup()ing the fd out of gnet), measured the same way.
func BenchmarkIdleHandoffMemory(b *testing.B) {
	for b.Loop() {
		scfg, ccfg := serverConfig(b), clientConfig(b, 0)
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		var wg sync.WaitGroup
		servers := make(chan net.Conn, idleConns)
		accepting := make(chan struct{})
		go func() {
			defer close(accepting)
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				servers <- c
				wg.Add(1)
				go func() {
					defer wg.Done()
					tc := tls.Server(c, scfg)
					buf := make([]byte, 4096) // the session's read buffer
					for {
						n, err := tc.Read(buf)
						if err != nil {
							return
						}
						tc.Write([]byte("+OK\r\n"))
						_ = n
					}
				}()
			}
		}()
		clients := make([]*tls.Conn, idleConns)
		for i := range clients {
			c, err := tls.Dial("tcp", ln.Addr().String(), ccfg)
			if err != nil {
				b.Fatal(err)
			}
			c.Write([]byte("NOOP\r\n"))
			io.ReadFull(c, make([]byte, 5))
			clients[i] = c
		}
		ln.Close()
		<-accepting // the accept loop is over before memory is counted
		both := liveBytes()
		close(servers)
		for s := range servers {
			s.Close()
		}
		wg.Wait()
		only := liveBytes()
		b.ReportMetric(float64(both-only)/idleConns, "B/idle-conn")
		for _, c := range clients {
			c.Close()
		}
	}
}

var _ = context.Background

// BenchmarkSeal: sealing on the caller's goroutine, as the engine's TLS
// writes on the event loop do, for a RETR chunk (256 KiB) and a one-line
// reply. "new" is Seal (a new slice per write); "reused" is SealAppend
// into one buffer kept across writes, as the engine's pool gives it.
func BenchmarkSeal(b *testing.B) {
	for _, size := range []int{256 << 10, 24} {
		for _, reuse := range []bool{false, true} {
			name := fmt.Sprintf("%dB/new", size)
			if reuse {
				name = fmt.Sprintf("%dB/reused", size)
			}
			b.Run(name, func(b *testing.B) {
				p := newMemPair(b, serverConfig(b), clientConfig(b, 0), 0)
				p.handshake(b)
				chunk := make([]byte, size)
				var buf []byte
				b.SetBytes(int64(size))
				b.ReportAllocs()
				for b.Loop() {
					var out []byte
					var err error
					if reuse {
						out, err = p.srv.SealAppend(buf, chunk)
						buf = out
					} else {
						out, err = p.srv.Seal(chunk)
					}
					if err != nil || len(out) <= size {
						b.Fatalf("sealed %d octets of %d: %v", len(out), size, err)
					}
				}
			})
		}
	}
}
