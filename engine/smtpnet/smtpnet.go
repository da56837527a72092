// Package smtpnet is the network side of the SMTP and LMTP service: it
// binds the listeners, refuses connections beyond smtp.max_connections,
// smtp.max_conns_per_ip and smtp.max_conns_per_net(48) with "421 4.7.0",
// turns the protocol's read deadlines into inactivity limits bounded by
// smtp.data_timeout, bounds the time to the first mail transaction
// (smtp.transaction_deadline) and a STARTTLS handshake
// (tls.handshake_timeout), ends a session whose STARTTLS handshake failed,
// and on Close stops the listeners and ends the sessions still open at
// the deadline. The protocol itself (session/smtp, on go-smtp) serves the
// connections each listener hands it.
//
// It also serves implicit-TLS listeners (RFC 8314), whose handshake is
// bounded by tls.handshake_timeout.
//
// Metrics: smtp_connections_refused_total, smtp_starttls_failed_total,
// smtp_tls_handshake_failed_total.
package smtpnet

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
)

// Defaults for zero Options.
const (
	// DefaultDataTimeout bounds a whole message transfer that keeps
	// trickling in.
	DefaultDataTimeout = time.Hour
	// DefaultTransactionDeadline is the time a client has from connect to
	// its first MAIL FROM.
	DefaultTransactionDeadline = 2 * time.Minute
	// DefaultHandshakeTimeout bounds a STARTTLS handshake.
	DefaultHandshakeTimeout = 15 * time.Second
)

var (
	mConnsRefused = metrics.GetOrCreateCounter(`smtp_connections_refused_total`)
	mStartTLSFail = metrics.GetOrCreateCounter(`smtp_starttls_failed_total`)
	mTLSFail      = metrics.GetOrCreateCounter(`smtp_tls_handshake_failed_total`)
)

// Protocol serves the connections of one listener until Shutdown; go-smtp's
// *Server is one. Serve returns nil once Shutdown was called.
type Protocol interface {
	Serve(l net.Listener) error
	Shutdown(ctx context.Context) error
}

// Options are the network limits. SetOptions changes them for connections
// accepted afterwards.
type Options struct {
	MaxConnections int           // sessions open at once on all listeners; 0: no limit
	MaxConnsPerIP  int           // sessions open at once from one address; 0: no limit
	DataTimeout    time.Duration // longest one command or message may take while data keeps coming; 0: DefaultDataTimeout
	// MaxConnsPerNet bounds the sessions from one IPv4 /24 or IPv6 /64,
	// MaxConnsPerNet48 those from one IPv6 /48; 0: no limit.
	MaxConnsPerNet   int
	MaxConnsPerNet48 int
	// TransactionDeadline is the whole time from connect to the first
	// accepted MAIL FROM, whatever the client sends meanwhile; 0:
	// DefaultTransactionDeadline.
	TransactionDeadline time.Duration
	// HandshakeTimeout bounds a STARTTLS handshake from the protocol's
	// "220 Ready to start TLS" to its end; 0: DefaultHandshakeTimeout.
	HandshakeTimeout time.Duration
	Logger           *slog.Logger // nil: discard
}

func (o Options) withDefaults() Options {
	if o.DataTimeout <= 0 {
		o.DataTimeout = DefaultDataTimeout
	}
	if o.TransactionDeadline <= 0 {
		o.TransactionDeadline = DefaultTransactionDeadline
	}
	if o.HandshakeTimeout <= 0 {
		o.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// Server runs the SMTP and LMTP listeners of one service.
//
// A protocol (go-smtp's Server) reads its settings (line length, timeouts,
// size and recipient limits) for the whole life of each connection it
// serves, so that changing them takes a new one: the Server keeps a
// generation of protocols, one SMTP and one LMTP, and its accept loops hand
// every new connection to the current generation. Renew starts a new
// generation after the protocol's options changed (on reload); a
// connection keeps the generation it started in.
type Server struct {
	protocol func(lmtp bool) Protocol
	opts     atomic.Pointer[Options]

	mu     sync.Mutex
	gen    *generation    // serves new connections; nil before the first Serve
	lns    []net.Listener // closed by Close itself too (see there)
	addrs  []net.Addr
	wg     sync.WaitGroup // accept loops, protocols' Serve calls, retiring generations
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

// Renew serves the connections accepted from now on with new protocols,
// asked of the protocol function again (whose options changed on reload).
// The sessions already open go on with the protocols they started with.
func (s *Server) Renew() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.gen == nil {
		return
	}
	old := s.gen
	s.gen = s.startGeneration()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		old.retire()
	}()
}

func (s *Server) o() *Options { return s.opts.Load() }

// generation is the protocols, SMTP and LMTP, made with one set of
// options, each serving the connections handed to it.
type generation struct {
	servers [2]Protocol // [0] SMTP, [1] LMTP
	in      [2]*handoff
}

func kind(lmtp bool) int {
	if lmtp {
		return 1
	}
	return 0
}

// startGeneration makes the servers of the current options and serves
// them. s.mu is held.
func (s *Server) startGeneration() *generation {
	g := &generation{}
	for i, lmtp := range []bool{false, true} {
		srv := s.protocol(lmtp)
		in := newHandoff()
		g.servers[i], g.in[i] = srv, in
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			// A handoff closed before the protocol's Shutdown (see
			// closeHandoffs) ends Serve with net.ErrClosed.
			if err := srv.Serve(in); err != nil && !errors.Is(err, net.ErrClosed) {
				s.o().Logger.Error("SMTP protocol stopped", "lmtp", lmtp, "err", err)
			}
		}()
	}
	return g
}

// retire stops g taking connections and waits for those it serves to end.
func (g *generation) retire() {
	g.closeHandoffs()
	for _, srv := range g.servers {
		_ = srv.Shutdown(context.Background())
	}
}

// shutdown is Close's share for the current generation.
func (g *generation) shutdown(ctx context.Context) error {
	g.closeHandoffs()
	var first error
	for _, srv := range g.servers {
		if err := srv.Shutdown(ctx); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// closeHandoffs ends the servers' Serve calls. go-smtp's Shutdown closes
// only the listeners its Serve has already registered: a Serve goroutine
// that had not started yet would wait for ever.
func (g *generation) closeHandoffs() {
	for _, in := range g.in {
		_ = in.Close()
	}
}

// handoff is the listener a generation's go-smtp server serves: Accept
// returns the connections the service's accept loops hand over.
type handoff struct {
	ch        chan net.Conn
	done      chan struct{}
	closeOnce sync.Once
}

func newHandoff() *handoff {
	return &handoff{ch: make(chan net.Conn), done: make(chan struct{})}
}

// put hands c over; false when the handoff is closed (the generation was
// replaced meanwhile).
func (h *handoff) put(c net.Conn) bool {
	select {
	case <-h.done:
		return false
	default:
	}
	select {
	case h.ch <- c:
		return true
	case <-h.done:
		return false
	}
}

func (h *handoff) Accept() (net.Conn, error) {
	select {
	case c := <-h.ch:
		return c, nil
	case <-h.done:
		return nil, net.ErrClosed
	}
}

func (h *handoff) Close() error {
	h.closeOnce.Do(func() { close(h.done) })
	return nil
}

func (h *handoff) Addr() net.Addr { return handoffAddr{} }

type handoffAddr struct{}

func (handoffAddr) Network() string { return "handoff" }
func (handoffAddr) String() string  { return "handoff" }

// dispatch hands an accepted connection to the current generation.
func (s *Server) dispatch(c net.Conn, lmtp bool) {
	for {
		s.mu.Lock()
		g, closed := s.gen, s.closed
		s.mu.Unlock()
		if closed || g == nil {
			_ = c.Close()
			return
		}
		if g.in[kind(lmtp)].put(c) {
			return
		}
	}
}

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

// ListenTLS binds implicit-TLS SMTP listeners (RFC 8314 §3.3: the TLS
// handshake comes first, then the SMTP session) and serves them in the
// background.
func (s *Server) ListenTLS(addrs []string, cfg *tls.Config) error {
	var ls []net.Listener
	for _, a := range addrs {
		l, err := net.Listen("tcp", a)
		if err != nil {
			for _, l := range ls {
				l.Close()
			}
			return fmt.Errorf("cannot listen on %s: %w", a, err)
		}
		ls = append(ls, l)
	}
	for i, l := range ls {
		if err := s.ServeTLS(l, cfg); err != nil {
			for _, l := range ls[i:] {
				l.Close()
			}
			return err
		}
	}
	return nil
}

// ServeTLS serves one implicit-TLS listener in the background: each
// connection's handshake runs on a goroutine of its own, bounded by
// tls.handshake_timeout, before the SMTP session starts. A failed
// handshake closes the connection and counts in smtp_tls_handshake_failed_total.
func (s *Server) ServeTLS(l net.Listener, cfg *tls.Config) error {
	return s.serve(l, false, cfg)
}

// Serve serves one listener in the background; lmtp selects LMTP.
func (s *Server) Serve(l net.Listener, lmtp bool) error {
	return s.serve(l, lmtp, nil)
}

func (s *Server) serve(l net.Listener, lmtp bool, tlsCfg *tls.Config) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("the SMTP service is stopped")
	}
	if s.gen == nil {
		s.gen = s.startGeneration()
	}
	s.addrs = append(s.addrs, l.Addr())
	tl := &trackingListener{Listener: l, conns: &s.conns, limits: &s.limits, opts: s.o}
	s.lns = append(s.lns, l)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.acceptLoop(tl, lmtp, tlsCfg)
	}()
	return nil
}

// acceptLoop accepts connections until the listener is closed, backing
// off on temporary errors as net/http does.
func (s *Server) acceptLoop(tl *trackingListener, lmtp bool, tlsCfg *tls.Config) {
	var delay time.Duration
	for {
		c, err := tl.Accept()
		if err != nil {
			if isTemporary(err) {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				s.o().Logger.Warn("SMTP accept failed, retrying", "addr", tl.Addr().String(), "err", err, "in", delay)
				time.Sleep(delay)
				continue
			}
			s.mu.Lock()
			closed := s.closed
			s.mu.Unlock()
			if !closed {
				s.o().Logger.Error("SMTP listener stopped", "addr", tl.Addr().String(), "err", err)
			}
			return
		}
		delay = 0
		if tlsCfg != nil {
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				s.handshake(c, tlsCfg)
			}()
			continue
		}
		s.dispatch(c, lmtp)
	}
}

// handshake runs the TLS handshake of an implicit-TLS connection within
// tls.handshake_timeout (and the pre-transaction budget), then hands the
// session to the protocol.
func (s *Server) handshake(c net.Conn, cfg *tls.Config) {
	o := s.o()
	tc := tls.Server(c, cfg)
	// The deadline is set on the socket itself: the tracked connection's
	// would move forward with every read.
	raw := c
	if t, ok := c.(*trackedConn); ok {
		raw = t.Conn
	}
	_ = raw.SetDeadline(time.Now().Add(o.HandshakeTimeout))
	if err := tc.Handshake(); err != nil {
		mTLSFail.Inc()
		o.Logger.Info("TLS handshake failed", "remote", c.RemoteAddr().String(), "err", err)
		_ = c.Close()
		return
	}
	_ = raw.SetDeadline(time.Time{})
	s.dispatch(tc, false)
}

// isTemporary reports an accept error worth retrying (out of file
// descriptors, a connection aborted before it was accepted).
func isTemporary(err error) bool {
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
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
	g, lns := s.gen, s.lns
	s.lns = nil
	s.mu.Unlock()
	for _, l := range lns {
		_ = l.Close()
	}
	var first error
	if g != nil {
		first = g.shutdown(ctx)
	}
	// Wait for the accept loops and for the sessions of the generations
	// reloads replaced, within the same deadline.
	waited := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(waited)
	}()
	if first == nil {
		select {
		case <-waited:
			return nil
		case <-ctx.Done():
			first = ctx.Err()
		}
	}
	// Past the deadline: close whatever is still open.
	s.conns.Range(func(k, _ any) bool {
		k.(net.Conn).Close()
		return true
	})
	<-waited
	return first
}

// trackingListener records the open connections so that Close can end
// them after its deadline, and enforces the connection limits.
type trackingListener struct {
	net.Listener
	conns  *sync.Map
	limits *connLimits
	opts   func() *Options
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
		if !l.limits.take(ip, o) {
			mConnsRefused.Inc()
			_ = c.SetWriteDeadline(time.Now().Add(time.Second))
			_, _ = io.WriteString(c, replyTooMany)
			_ = c.Close()
			continue
		}
		tc := &trackedConn{Conn: c, conns: l.conns, dataTimeout: o.DataTimeout, limits: l.limits, ip: ip,
			handshake: o.HandshakeTimeout, log: o.Logger}
		tc.budget = time.Now().Add(o.TransactionDeadline)
		l.conns.Store(tc, struct{}{})
		return tc, nil
	}
}

// connLimits counts the open SMTP and LMTP sessions, in all, per address
// and per network (IPv4 /24, IPv6 /64 and /48), for smtp.max_connections,
// max_conns_per_ip, max_conns_per_net and max_conns_per_net48.
type connLimits struct {
	mu    sync.Mutex
	total int
	perIP map[string]int
	nets  map[netip.Prefix]int
}

// networks returns the networks a connection from ip counts under: the /24
// or /64, and for IPv6 the /48 (invalid otherwise, and both for a peer
// that is not IP, such as a unix socket).
func networks(ip string) (net, net48 netip.Prefix) {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return
	}
	a = a.Unmap().WithZone("")
	if a.Is4() {
		net, _ = a.Prefix(24)
		return net, netip.Prefix{}
	}
	net, _ = a.Prefix(64)
	net48, _ = a.Prefix(48)
	return net, net48
}

func (c *connLimits) take(ip string, o *Options) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if o.MaxConnections > 0 && c.total >= o.MaxConnections {
		return false
	}
	if o.MaxConnsPerIP > 0 && c.perIP[ip] >= o.MaxConnsPerIP {
		return false
	}
	n, n48 := networks(ip)
	if n.IsValid() && o.MaxConnsPerNet > 0 && c.nets[n] >= o.MaxConnsPerNet {
		return false
	}
	if n48.IsValid() && o.MaxConnsPerNet48 > 0 && c.nets[n48] >= o.MaxConnsPerNet48 {
		return false
	}
	if c.perIP == nil {
		c.perIP = make(map[string]int)
		c.nets = make(map[netip.Prefix]int)
	}
	c.total++
	c.perIP[ip]++
	for _, p := range []netip.Prefix{n, n48} {
		if p.IsValid() {
			c.nets[p]++
		}
	}
	return true
}

func (c *connLimits) release(ip string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.total--
	if c.perIP[ip]--; c.perIP[ip] <= 0 {
		delete(c.perIP, ip)
	}
	n, n48 := networks(ip)
	for _, p := range []netip.Prefix{n, n48} {
		if p.IsValid() {
			if c.nets[p]--; c.nets[p] <= 0 {
				delete(c.nets, p)
			}
		}
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
//
// Two budgets bound a client that keeps sending: until the protocol calls
// TransactionStarted (its first MAIL FROM accepted), no deadline reaches
// past smtp.transaction_deadline from connect; and a STARTTLS handshake,
// from go-smtp's "220 Ready to start TLS" on, has tls.handshake_timeout in
// all. A handshake that fails ends the session: go-smtp (v0.25) would
// answer 550 and go on in plaintext with the session's EHLO state.
type trackedConn struct {
	net.Conn
	conns       *sync.Map
	once        sync.Once
	dataTimeout time.Duration
	limits      *connLimits
	ip          string
	handshake   time.Duration
	log         *slog.Logger

	mu          sync.Mutex
	idle        time.Duration // the inactivity limit; 0: no deadline
	until       time.Time     // no extension beyond this
	budget      time.Time     // before the first transaction, no deadline beyond this
	started     bool          // a transaction was started: budget no longer applies
	handshaking bool          // between STARTTLS's 220 and the handshake's end
}

// go-smtp's replies around STARTTLS (conn.go handleStartTLS, v0.25); the
// STARTTLS tests fail if a new version changes them.
var (
	replyReadyTLS   = []byte("220 2.0.0 Ready to start TLS\r\n")
	replyHandshakeE = []byte("550 ")
)

// budgetWriteGrace is how long after the pre-transaction budget the
// closing reply may take to write.
const budgetWriteGrace = 5 * time.Second

// capLocked applies the pre-transaction budget to a read deadline.
func (c *trackedConn) capLocked(t time.Time) time.Time {
	if c.started || c.budget.IsZero() {
		return t
	}
	if t.IsZero() || t.After(c.budget) {
		return c.budget
	}
	return t
}

func (c *trackedConn) SetReadDeadline(t time.Time) error {
	return c.Conn.SetReadDeadline(c.setIdle(t))
}

// SetWriteDeadline caps writes at the pre-transaction budget plus
// budgetWriteGrace, so that go-smtp's 421 after the budget's read timeout
// still goes out.
func (c *trackedConn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	if !c.started && !c.budget.IsZero() {
		if end := c.budget.Add(budgetWriteGrace); t.IsZero() || t.After(end) {
			t = end
		}
	}
	c.mu.Unlock()
	return c.Conn.SetWriteDeadline(t)
}

func (c *trackedConn) SetDeadline(t time.Time) error {
	return c.Conn.SetDeadline(c.setIdle(t))
}

// setIdle records the inactivity limit a new read deadline t stands for
// and returns the deadline to set. go-smtp sets one before reading each
// command, so one after STARTTLS means the handshake is over.
func (c *trackedConn) setIdle(t time.Time) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.handshaking = false
	if t.IsZero() {
		c.idle = 0
		c.until = c.capLocked(time.Time{})
		return c.until
	}
	now := time.Now()
	c.idle = t.Sub(now)
	c.until = c.capLocked(now.Add(max(c.dataTimeout, c.idle)))
	return c.capLocked(t)
}

// TransactionStarted lifts the pre-transaction budget from the next
// deadline on; the protocol calls it when it accepts a MAIL FROM.
func (c *trackedConn) TransactionStarted() {
	c.mu.Lock()
	c.started = true
	c.mu.Unlock()
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

func (c *trackedConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	hs := c.handshaking
	c.mu.Unlock()
	if hs && bytes.HasPrefix(p, replyHandshakeE) {
		// The handshake failed (or timed out): end the session rather
		// than go on in plaintext.
		mStartTLSFail.Inc()
		c.log.Info("STARTTLS handshake failed, closing", "remote", c.RemoteAddr().String())
		_ = c.Conn.Close()
		return len(p), nil
	}
	n, err := c.Conn.Write(p)
	if err != nil {
		// go-smtp (v0.25) ignores a reply it could not write and reads
		// on: a client that stopped reading past smtp.write_timeout
		// would have its next commands carried out unanswered. End the
		// session instead.
		c.log.Info("reply not written, closing", "remote", c.RemoteAddr().String(), "err", err)
		_ = c.Conn.Close()
		return n, err
	}
	if !hs && bytes.Equal(p, replyReadyTLS) {
		c.startHandshake()
	}
	return n, err
}

// startHandshake gives the STARTTLS handshake tls.handshake_timeout in
// all: reads during it extend nothing.
func (c *trackedConn) startHandshake() {
	c.mu.Lock()
	c.handshaking = true
	d := c.capLocked(time.Now().Add(c.handshake))
	c.idle, c.until = 0, d
	c.mu.Unlock()
	_ = c.Conn.SetReadDeadline(d)
	_ = c.Conn.SetWriteDeadline(d)
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.conns.Delete(c)
		c.limits.release(c.ip)
	})
	return c.Conn.Close()
}
