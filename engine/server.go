package engine

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/panjf2000/ants/v2"
	"github.com/panjf2000/gnet/v2"

	"github.com/pop3svc/pop3svc/session"
)

// Options configure a Server.
type Options struct {
	Config  *Config         // listeners, pools, timeouts, limits (required)
	Factory session.Factory // makes the session of each connection (required)
	Logger  *slog.Logger    // nil: slog.Default()

	// Now is the clock of idle and backlog timeouts; nil: time.Now. Tests
	// set a manual clock and call Sweep.
	Now func() time.Time
	// SweepInterval is how often the idle sweep runs; 0: one second.
	SweepInterval time.Duration
	// RecheckInterval is how often parked streams and connections waiting
	// for their output to drain before closing are looked at; 0: 5ms.
	RecheckInterval time.Duration
	// Multicore runs one event loop per CPU (the default when Loops is 0).
	// Loops sets the number of event loops explicitly.
	Loops int

	// NewTransport, when set, is asked for a Transport for connections
	// accepted on the addresses in TLSListen (implicit TLS) and, on
	// Reply.StartTLS, for the connection's STLS upgrade. The TLS adapter
	// plugs in here; without it StartTLS closes the connection.
	NewTransport func(ci session.ConnInfo, implicit bool) (Transport, error)
	// TLSListen are additional listeners whose connections get a
	// Transport from NewTransport at accept (pop3.listen_tls).
	TLSListen []string
}

// Server is the POP3 network engine.
type Server struct {
	opts   Options
	log    *slog.Logger
	now    func() time.Time
	set    atomic.Pointer[settings]
	pool   *ants.Pool
	tasks  taskQueue // tasks waiting for a worker (pop3.task_queue)
	eng    gnet.Engine
	engOK  atomic.Bool
	booted chan struct{}
	done   chan struct{} // closed when gnet's Run returned
	runErr error

	addrs  []net.Addr
	listen []listenAddr // the listeners, port 0 resolved
	bound  map[int]bool // bound port → implicit TLS

	sockets  sockets
	registry registry
	waker    waker

	live     sync.Map // *conn → struct{}: sessions not yet closed
	draining atomic.Bool
	running  atomic.Bool // Start succeeded
	// peakOutbound is the largest outbound buffer seen after a streamed
	// chunk: it shows the backpressure works.
	peakOutbound atomic.Int64
	// sendfiles counts the sendfile streams running or about to start
	// (sendfile.go): at most pop3.threadcount.
	sendfiles atomic.Int64
	final     sync.WaitGroup // session Close tasks in flight
	started   time.Time
	stopOnce  sync.Once
}

// New prepares a server: the worker pool and the socket pool's contexts.
// Nothing listens before Start.
func New(opts Options) (*Server, error) {
	if opts.Config == nil || opts.Factory == nil {
		return nil, errors.New("engine: Config and Factory are required")
	}
	if len(opts.Config.Listen)+len(opts.TLSListen) == 0 {
		return nil, errors.New("engine: no listen address (pop3.listen)")
	}
	s := &Server{
		opts:   opts,
		log:    opts.Logger,
		now:    opts.Now,
		booted: make(chan struct{}),
		done:   make(chan struct{}),
		bound:  make(map[int]bool),
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.now == nil {
		s.now = time.Now
	}
	set := newSettings(opts.Config, opts.Factory)
	s.set.Store(set)
	pool, err := ants.NewPool(set.threadCount,
		ants.WithNonblocking(true),
		ants.WithExpiryDuration(10*time.Minute),
		ants.WithPanicHandler(func(v any) {
			mPanics.Inc()
			s.log.Error("panic in a worker", "panic", v)
		}))
	if err != nil {
		return nil, fmt.Errorf("engine: cannot create the worker pool: %w", err)
	}
	s.pool = pool
	s.tasks.max = set.taskQueue
	s.sockets.init(set.socketMin)
	s.registry.init()
	interval := opts.RecheckInterval
	if interval <= 0 {
		interval = 5 * time.Millisecond
	}
	s.waker.init(interval)
	return s, nil
}

func (s *Server) settings() *settings { return s.set.Load() }

// listenAddr is one listener: its address as gnet binds it.
type listenAddr struct {
	addr string
	tls  bool
}

// resolveListeners lists the listeners, remembering which are implicit
// TLS. A port 0 is replaced by a free port chosen now, so that every
// listener has a distinct address gnet can tell apart (DupListener finds a
// listener by its configured address). The chosen ports stay reserved
// until release is called, once gnet listens on them (see reservePort).
func (s *Server) resolveListeners() (addrs []string, release func(), err error) {
	var out []string
	var held []func()
	release = func() {
		for _, r := range held {
			r()
		}
	}
	add := func(a string, tls bool) error {
		host, port, err := net.SplitHostPort(a)
		if err != nil {
			return fmt.Errorf("listen address %q: %w", a, err)
		}
		if port == "0" {
			p, r, err := reservePort(host)
			if err != nil {
				return fmt.Errorf("cannot listen on %s (%s): %w", a, listenKey(tls), err)
			}
			held = append(held, r)
			a = net.JoinHostPort(host, fmt.Sprint(p))
		} else {
			// gnet's bind error does not say which address failed: try
			// each first, so that the error names it and its setting.
			l, err := net.Listen("tcp", a)
			if err != nil {
				return fmt.Errorf("cannot listen on %s (%s): %w", a, listenKey(tls), err)
			}
			l.Close()
		}
		s.listen = append(s.listen, listenAddr{addr: a, tls: tls})
		out = append(out, "tcp://"+a)
		return nil
	}
	for _, a := range s.opts.Config.Listen {
		if err := add(a, false); err != nil {
			release()
			return nil, nil, err
		}
	}
	for _, a := range s.opts.TLSListen {
		if err := add(a, true); err != nil {
			release()
			return nil, nil, err
		}
	}
	return out, release, nil
}

// Start listens on every address of pop3.listen and serves in the
// background. It returns once the listeners are bound, or the error that
// prevented it.
func (s *Server) Start() error {
	addrs, release, err := s.resolveListeners()
	if err != nil {
		s.pool.Release()
		return err
	}
	defer release() // gnet listens (or failed) once Start returns
	s.started = s.now()
	servers.Store(s, struct{}{})
	s.waker.start(s)
	loops := s.opts.Loops
	go func() {
		defer close(s.done)
		opts := []gnet.Option{
			gnet.WithReuseAddr(true),
			gnet.WithTicker(true),
			gnet.WithLogger(gnetLogger{s.log}),
		}
		if loops > 0 {
			opts = append(opts, gnet.WithNumEventLoop(loops))
		} else {
			opts = append(opts, gnet.WithMulticore(true))
		}
		s.runErr = gnet.Rotate(&handler{s: s}, addrs, opts...)
	}()
	select {
	case <-s.booted:
		s.running.Store(true)
		return nil
	case <-s.done:
		servers.Delete(s)
		s.waker.stop()
		s.pool.Release()
		if s.runErr == nil {
			s.runErr = errors.New("engine stopped before it started")
		}
		return fmt.Errorf("cannot listen on %s: %w", s.listenerNames(), s.runErr)
	}
}

// listenerNames lists every listener with its setting, for an error
// gnet gave without saying which address failed.
func (s *Server) listenerNames() string {
	var all []string
	for _, l := range s.listen {
		all = append(all, l.addr+" ("+listenKey(l.tls)+")")
	}
	return strings.Join(all, ", ")
}

func listenKey(tls bool) string {
	if tls {
		return "pop3.listen_tls"
	}
	return "pop3.listen"
}

// Addrs returns the bound listener addresses (useful with port 0).
func (s *Server) Addrs() []net.Addr { return s.addrs }

// Reload applies a changed configuration without dropping sessions: pool
// size, socket pool limits, timeouts, protocol limits, and a new session
// factory (greeting and session options) for connections accepted from now
// on. The listeners (pop3.listen, pop3.listen_tls, pop3.listen_backlog)
// stay as they were started: those are restart keys, which the service
// reports itself.
func (s *Server) Reload(cfg *Config, f session.Factory) error {
	if cfg == nil {
		return errors.New("engine: Reload without a configuration")
	}
	if f == nil {
		f = s.settings().factory
	}
	set := newSettings(cfg, f)
	s.set.Store(set)
	s.pool.Tune(set.threadCount)
	s.tasks.setMax(set.taskQueue)
	s.sockets.prepare(set)
	// A larger socketmax admits waiting connections at once.
	for {
		w := s.sockets.next(set)
		if w == nil {
			break
		}
		s.admitLater(w)
	}
	return nil
}

// Status is a snapshot for the admin API.
type Status struct {
	Connections int64       `json:"connections"`
	Sockets     SocketStats `json:"sockets"`
	Pool        PoolStatus  `json:"pool"`
	Uptime      string      `json:"uptime"`
	Draining    bool        `json:"draining"`
}

// PoolStatus is the worker pool's state.
type PoolStatus struct {
	Capacity int `json:"capacity"`
	Running  int `json:"running"`
	Waiting  int `json:"waiting"`
	Free     int `json:"free"`
}

// Status reports connections, the socket pool, the worker pool and uptime.
func (s *Server) Status() Status {
	return Status{
		Connections: int64(s.registry.count()),
		Sockets:     s.sockets.stats(),
		Pool:        PoolStatus{Capacity: s.pool.Cap(), Running: s.pool.Running(), Waiting: s.pool.Waiting() + s.tasks.length(), Free: s.pool.Free()},
		Uptime:      s.now().Sub(s.started).Round(time.Second).String(),
		Draining:    s.draining.Load(),
	}
}

// Sweep runs the idle and backlog sweep now (tests with a manual clock).
func (s *Server) Sweep() { s.sweep(s.now()) }

// gnetLogger routes gnet's own messages into slog.
type gnetLogger struct{ l *slog.Logger }

func (g gnetLogger) Debugf(f string, a ...any) { g.l.Debug("gnet: " + fmt.Sprintf(f, a...)) }
func (g gnetLogger) Infof(f string, a ...any)  { g.l.Debug("gnet: " + fmt.Sprintf(f, a...)) }
func (g gnetLogger) Warnf(f string, a ...any)  { g.l.Warn("gnet: " + fmt.Sprintf(f, a...)) }
func (g gnetLogger) Errorf(f string, a ...any) { g.l.Error("gnet: " + fmt.Sprintf(f, a...)) }
func (g gnetLogger) Fatalf(f string, a ...any) { g.l.Error("gnet: " + fmt.Sprintf(f, a...)) }
