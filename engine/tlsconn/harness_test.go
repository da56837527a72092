package tlsconn

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/pop3svc/pop3svc/engine/certs"
)

var (
	certOnce sync.Once
	certMgr  *certs.Manager
	certErr  error
	certDir  string
)

// serverConfig returns a server configuration with a self-signed certificate
// made once per test binary.
func serverConfig(tb testing.TB) *tls.Config {
	tb.Helper()
	certOnce.Do(func() {
		var err error
		certDir, err = osMkdirTemp()
		if err != nil {
			certErr = err
			return
		}
		certMgr, certErr = certs.New(certs.Options{MailRoot: certDir, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	})
	if certErr != nil {
		tb.Fatal(certErr)
	}
	return certMgr.TLSConfig()
}

// clientConfig trusts the test certificate.
func clientConfig(tb testing.TB, maxVer uint16) *tls.Config {
	serverConfig(tb)
	pool := x509.NewCertPool()
	pool.AddCert(certMgr.Certificate().Leaf)
	return &tls.Config{RootCAs: pool, ServerName: "localhost", MaxVersion: maxVer}
}

// writeQueue stands in for gnet's AsyncWrite: Output appends and returns at
// once; a writer goroutine sends in order and runs the callbacks.
type writeQueue struct {
	mu     sync.Mutex
	cond   sync.Cond
	items  []qitem
	closed bool
}

type qitem struct {
	b    []byte
	done func(error)
}

func newWriteQueue() *writeQueue {
	q := &writeQueue{}
	q.cond.L = &q.mu
	return q
}

func (q *writeQueue) output(b []byte, done func(error)) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return net.ErrClosed
	}
	q.items = append(q.items, qitem{b, done})
	q.cond.Signal()
	return nil
}

// run writes to w until close; then it drains what is queued and returns.
func (q *writeQueue) run(w io.Writer) {
	for {
		q.mu.Lock()
		for len(q.items) == 0 && !q.closed {
			q.cond.Wait()
		}
		items := q.items
		q.items = nil
		closed := q.closed
		q.mu.Unlock()
		for _, it := range items {
			_, err := w.Write(it.b)
			if it.done != nil {
				it.done(err)
			}
		}
		if closed && len(items) == 0 {
			return
		}
	}
}

func (q *writeQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.cond.Broadcast()
	q.mu.Unlock()
}

// loopServer serves one socket the way the engine will: a reader goroutine
// plays the event loop (Feed, then ReadPlain until it would block, under the
// loop lock), the handshake runs on its own goroutine with a deadline, and
// writes go through a queue.
type loopServer struct {
	c       *Conn
	sock    net.Conn
	q       *writeQueue
	loop    sync.Mutex
	chunk   int                               // octets read from the socket per Feed; 0: 16 KiB
	onPlain func(s *loopServer, plain []byte) // called on the loop
	hsErr   chan error                        // Handshake's result
	readErr chan error                        // why the loop stopped
}

func startLoopServer(tb testing.TB, sock net.Conn, cfg *tls.Config, chunk int, hsTimeout time.Duration, onPlain func(*loopServer, []byte)) *loopServer {
	s := &loopServer{sock: sock, q: newWriteQueue(), chunk: chunk, onPlain: onPlain,
		hsErr: make(chan error, 1), readErr: make(chan error, 1)}
	s.c = New(Options{Config: cfg, Output: s.q.output})
	go s.q.run(sock)
	hsDone := make(chan struct{})
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), hsTimeout)
		defer cancel()
		err := s.c.Handshake(ctx)
		if err == nil {
			s.loop.Lock()
			err = s.drain()
			s.loop.Unlock()
		}
		s.hsErr <- err
		close(hsDone)
		if err != nil {
			s.q.close()
			sock.Close()
		}
	}()
	go func() {
		n := s.chunk
		if n <= 0 {
			n = 16 << 10
		}
		buf := make([]byte, n)
		var err error
		defer func() { s.readErr <- err; s.q.close(); sock.Close() }()
		for {
			var m int
			m, err = sock.Read(buf)
			pending := buf[:m]
			for len(pending) > 0 {
				s.loop.Lock()
				k, ferr := s.c.Feed(pending)
				pending = pending[k:]
				var derr error
				if s.c.HandshakeComplete() {
					derr = s.drain()
				}
				s.loop.Unlock()
				if ferr != nil {
					err = ferr
					return
				}
				if derr != nil {
					err = derr
					return
				}
				if k == 0 {
					// Full during the handshake: wait for it to consume.
					select {
					case <-hsDone:
					case <-time.After(time.Millisecond):
					}
				}
			}
			if err != nil {
				return
			}
		}
	}()
	return s
}

// drain reads plaintext until it would block; called with the loop lock.
func (s *loopServer) drain() error {
	buf := make([]byte, 4096)
	for {
		n, err := s.c.ReadPlain(buf)
		if n > 0 && s.onPlain != nil {
			s.onPlain(s, buf[:n])
		}
		if errors.Is(err, ErrWouldBlock) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// tcpPair returns both ends of a loopback TCP connection.
func tcpPair(tb testing.TB) (client, server net.Conn) {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	ch := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		ch <- c
	}()
	client, err = net.DialTimeout("tcp", ln.Addr().String(), 5*time.Second)
	if err != nil {
		tb.Fatal(err)
	}
	server = <-ch
	if server == nil {
		tb.Fatal("accept failed")
	}
	tb.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

// memPair connects a client Conn and a server Conn in memory: each side's
// Output feeds the other in pieces of chunk octets (0: whole). feedErr
// records Feed refusing input, which the tests treat as a failure.
type memPair struct {
	cli, srv *Conn
	mu       sync.Mutex
	feedErr  error
}

func newMemPair(tb testing.TB, scfg, ccfg *tls.Config, chunk int) *memPair {
	p := &memPair{}
	feed := func(dst **Conn) Output {
		return func(b []byte, done func(error)) error {
			for len(b) > 0 {
				n := len(b)
				if chunk > 0 && n > chunk {
					n = chunk
				}
				k, err := (*dst).Feed(b[:n])
				if err == nil && k < n {
					err = errors.New("receiver full")
				}
				if err != nil {
					p.mu.Lock()
					if p.feedErr == nil {
						p.feedErr = err
					}
					p.mu.Unlock()
					break
				}
				b = b[n:]
			}
			if done != nil {
				done(nil)
			}
			return nil
		}
	}
	p.srv = New(Options{Config: scfg, Output: feed(&p.cli), MaxPending: 1 << 20})
	p.cli = New(Options{Config: ccfg, Output: feed(&p.srv), Client: true, MaxPending: 1 << 20})
	return p
}

// handshake runs both handshakes concurrently.
func (p *memPair) handshake(tb testing.TB) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- p.cli.Handshake(ctx) }()
	if err := p.srv.Handshake(ctx); err != nil {
		tb.Fatalf("server handshake: %v", err)
	}
	if err := <-errc; err != nil {
		tb.Fatalf("client handshake: %v", err)
	}
}

// readAll reads plaintext from c until it would block.
func readAll(c *Conn) ([]byte, error) {
	var out []byte
	buf := make([]byte, 8192)
	for {
		n, err := c.ReadPlain(buf)
		out = append(out, buf[:n]...)
		if errors.Is(err, ErrWouldBlock) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
	}
}
