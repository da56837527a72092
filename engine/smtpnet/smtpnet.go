// Package smtpnet is the network side of the SMTP and LMTP service: it
// binds the listeners, refuses connections beyond smtp.max_connections and
// smtp.max_conns_per_ip with "421 4.7.0", turns the protocol's read
// deadlines into inactivity limits bounded by smtp.data_timeout, and on
// Close stops the listeners and ends the sessions still open at the
// deadline. The protocol itself (session/smtp, on go-smtp) serves the
// connections each listener hands it.
//
// Metrics: smtp_connections_refused_total.
package smtpnet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
)

// DefaultDataTimeout bounds a whole message transfer that keeps
// trickling in, when Options.DataTimeout is 0.
const DefaultDataTimeout = time.Hour

var mConnsRefused = metrics.GetOrCreateCounter(`smtp_connections_refused_total`)

// Protocol serves the connections of one listener until Shutdown; go-smtp's
// *Server is one. Serve returns nil once Shutdown was called.
type Protocol interface {
	Serve(l net.Listener) error
	Shutdown(ctx context.Context) error
}

// Options are the network limits. SetOptions changes them for connections
// accepted afterwards; DataTimeout applies to listeners started afterwards.
type Options struct {
	MaxConnections int           // sessions open at once on all listeners; 0: no limit
	MaxConnsPerIP  int           // sessions open at once from one address; 0: no limit
	DataTimeout    time.Duration // longest one command or message may take while data keeps coming; 0: DefaultDataTimeout
	Logger         *slog.Logger  // nil: discard
}

func (o Options) withDefaults() Options {
	if o.DataTimeout <= 0 {
		o.DataTimeout = DefaultDataTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// Server runs the SMTP and LMTP listeners of one service.
type Server struct {
	protocol func(lmtp bool) Protocol
	opts     atomic.Pointer[Options]

	mu     sync.Mutex
	protos []Protocol
	lns    []net.Listener // closed by Close itself too (see there)
	addrs  []net.Addr
	wg     sync.WaitGroup
	closed bool
	conns  sync.Map // *trackedConn → struct{}
	limits connLimits
}

// New makes a server; protocol is asked for the protocol of each listener
// (lmtp selects LMTP).
func New(protocol func(lmtp bool) Protocol, opts Options) *Server {
	s := &Server{protocol: protocol}
	o := opts.withDefaults()
	s.opts.Store(&o)
	return s
}

// SetOptions applies changed limits to connections accepted from now on.
func (s *Server) SetOptions(opts Options) {
	o := opts.withDefaults()
	s.opts.Store(&o)
}

func (s *Server) o() *Options { return s.opts.Load() }

// Listen binds the SMTP and LMTP listeners and serves them in the
// background. Addresses are host:port; LMTP also accepts "unix:PATH".
func (s *Server) Listen(smtpAddrs, lmtpAddrs []string) error {
	var ls []net.Listener
	var kinds []bool
	closeAll := func() {
		for _, l := range ls {
			l.Close()
		}
	}
	for _, group := range []struct {
		addrs []string
		lmtp  bool
	}{{smtpAddrs, false}, {lmtpAddrs, true}} {
		for _, a := range group.addrs {
			network, addr := "tcp", a
			if p, ok := strings.CutPrefix(a, "unix:"); ok && group.lmtp {
				network, addr = "unix", p
			}
			l, err := net.Listen(network, addr)
			if err != nil {
				closeAll()
				return fmt.Errorf("cannot listen on %s: %w", a, err)
			}
			ls = append(ls, l)
			kinds = append(kinds, group.lmtp)
		}
	}
	for i, l := range ls {
		if err := s.Serve(l, kinds[i]); err != nil {
			closeAll()
			return err
		}
	}
	return nil
}

// Serve serves one listener in the background; lmtp selects LMTP.
func (s *Server) Serve(l net.Listener, lmtp bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("the SMTP service is stopped")
	}
	p := s.protocol(lmtp)
	s.protos = append(s.protos, p)
	s.addrs = append(s.addrs, l.Addr())
	tl := &trackingListener{Listener: l, conns: &s.conns, dataTimeout: s.o().DataTimeout, limits: &s.limits, opts: s.o}
	s.lns = append(s.lns, l)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := p.Serve(tl); err != nil {
			s.o().Logger.Error("SMTP listener stopped", "addr", l.Addr().String(), "err", err)
		}
	}()
	return nil
}

// Addrs returns the addresses served, in the order they were started.
func (s *Server) Addrs() []net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]net.Addr(nil), s.addrs...)
}

// Close stops listening and waits, until ctx ends, for the sessions to
// finish; then it closes them.
func (s *Server) Close(ctx context.Context) error {
	s.mu.Lock()
	s.closed = true
	protos, lns := s.protos, s.lns
	s.protos, s.lns = nil, nil
	s.mu.Unlock()
	var first error
	for _, p := range protos {
		if err := p.Shutdown(ctx); err != nil && first == nil {
			first = err
		}
	}
	// go-smtp's Shutdown closes only the listeners its Serve has already
	// registered: one whose Serve goroutine had not yet started would
	// accept for ever, and the wait below with it.
	for _, l := range lns {
		_ = l.Close()
	}
	if first != nil {
		// Past the deadline: close whatever is still open.
		s.conns.Range(func(k, _ any) bool {
			k.(net.Conn).Close()
			return true
		})
	}
	s.wg.Wait()
	return first
}

// trackingListener records the open connections so that Close can end
// them after its deadline, and enforces the connection limits.
type trackingListener struct {
	net.Listener
	conns       *sync.Map
	dataTimeout time.Duration
	limits      *connLimits
	opts        func() *Options
}

// replyTooMany is sent to a connection over smtp.max_connections or
// smtp.max_conns_per_ip (RFC 5321 §3.8: a server may refuse with 421).
const replyTooMany = "421 4.7.0 Too many connections, try again later\r\n"

func (l *trackingListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		o := l.opts()
		ip := remoteIP(c)
		if !l.limits.take(ip, o.MaxConnections, o.MaxConnsPerIP) {
			mConnsRefused.Inc()
			_ = c.SetWriteDeadline(time.Now().Add(time.Second))
			_, _ = io.WriteString(c, replyTooMany)
			_ = c.Close()
			continue
		}
		tc := &trackedConn{Conn: c, conns: l.conns, dataTimeout: l.dataTimeout, limits: l.limits, ip: ip}
		l.conns.Store(tc, struct{}{})
		return tc, nil
	}
}

// connLimits counts the open SMTP and LMTP sessions, in all and per
// address, for smtp.max_connections and smtp.max_conns_per_ip.
type connLimits struct {
	mu    sync.Mutex
	total int
	perIP map[string]int
}

func (c *connLimits) take(ip string, maxTotal, maxPerIP int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if maxTotal > 0 && c.total >= maxTotal {
		return false
	}
	if maxPerIP > 0 && c.perIP[ip] >= maxPerIP {
		return false
	}
	if c.perIP == nil {
		c.perIP = make(map[string]int)
	}
	c.total++
	c.perIP[ip]++
	return true
}

func (c *connLimits) release(ip string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.total--
	if c.perIP[ip]--; c.perIP[ip] <= 0 {
		delete(c.perIP, ip)
	}
}

func remoteIP(c net.Conn) string {
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		return a.IP.String()
	}
	return c.RemoteAddr().String()
}

// trackedConn is an accepted connection. It also turns go-smtp's read
// deadlines into inactivity limits: go-smtp sets one deadline before each
// command line and lets it run through the DATA that follows, which would
// bound a whole message transfer by smtp.read_timeout (a 50 MB message on
// a slow link would never arrive). Here every read that returns data moves
// the deadline forward by the same amount (RFC 5321 §4.5.3.2.6 asks for a
// timeout per data block), but never past dataTimeout after it was set, so
// a client dribbling data still ends.
type trackedConn struct {
	net.Conn
	conns       *sync.Map
	once        sync.Once
	dataTimeout time.Duration
	limits      *connLimits
	ip          string

	mu    sync.Mutex
	idle  time.Duration // the inactivity limit; 0: no deadline
	until time.Time     // no extension beyond this
}

func (c *trackedConn) SetReadDeadline(t time.Time) error {
	c.setIdle(t)
	return c.Conn.SetReadDeadline(t)
}

func (c *trackedConn) SetDeadline(t time.Time) error {
	c.setIdle(t)
	return c.Conn.SetDeadline(t)
}

func (c *trackedConn) setIdle(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t.IsZero() {
		c.idle = 0
		return
	}
	now := time.Now()
	c.idle = t.Sub(now)
	c.until = now.Add(max(c.dataTimeout, c.idle))
}

func (c *trackedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.mu.Lock()
		idle, until := c.idle, c.until
		c.mu.Unlock()
		if idle > 0 {
			d := time.Now().Add(idle)
			if d.After(until) {
				d = until
			}
			_ = c.Conn.SetReadDeadline(d)
		}
	}
	return n, err
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.conns.Delete(c)
		c.limits.release(c.ip)
	})
	return c.Conn.Close()
}
