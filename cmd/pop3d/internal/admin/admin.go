// Package admin is pop3d's admin listener (admin.listen, loopback by
// default):
//
//	GET  /metrics     Prometheus text: every pop3_*/smtp_* metric plus process metrics
//	GET  /api/status  JSON: connections, socket and worker pools, uptime
//	GET  /api/queue   JSON: the entries of the mail queue and the outbound
//	                  queue (?queue=inbound|outbound for one), see store.QueueItem
//	POST /api/queue/retry?queue=Q&id=ID   make a postponed entry due now
//	POST /api/queue/delete?queue=Q&id=ID  remove an entry without delivering it
//	POST /api/reload  reread the configuration, as SIGHUP does; the answer
//	                  lists the restart keys found changed (config.RestartNotice)
//	GET  /debug/pprof/ Go's profiler, when admin.pprof is set (a reload applies it)
//	     /console/    the browser console (package console), unless admin.console is false
//
// The listener asks for no password: admin.listen must stay on loopback
// (the default 127.0.0.1:8110), or behind a proxy that authenticates.
// Anyone who reaches it can reload the service, read /metrics, change
// settings and passwords through the console and, with admin.pprof, read
// the process's profiles. Start logs a warning when it is not on loopback.
// Two checks guard it against web pages opened by the administrator's
// browser (protect): requests must be addressed to an IP literal,
// "localhost" or the host of admin.listen (a page whose host name is made
// to resolve to 127.0.0.1, "DNS rebinding", is refused), and state changes
// (POST) must not come cross-site (Sec-Fetch-Site, Origin).
package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"strings"
	"sync/atomic"
	"time"

	"github.com/pop3svc/pop3svc/cmd/internal/audit"
	"github.com/pop3svc/pop3svc/cmd/internal/config"
	"github.com/pop3svc/pop3svc/engine"
	"github.com/pop3svc/pop3svc/store"
)

// Options configure the admin listener.
type Options struct {
	Listen  string       // admin.listen: host:port
	Pprof   bool         // admin.pprof: serve /debug/pprof/ (SetPprof changes it)
	Console http.Handler // served under /console/; nil: not mounted
	// Reload rereads the configuration and reloads every service
	// (POST /api/reload); it returns the restart keys it found changed.
	Reload func() (restart []string, err error)
	// ConfigFile is the file the service reads on reload, shown by
	// /api/status ("" when it runs on its built-in defaults): pop3ctl set
	// checks it before writing.
	ConfigFile string
	// Started is the service's start, for the uptime in /api/status.
	Started time.Time
	// Status returns the POP3 engine's status for /api/status; nil, or a
	// nil result: left out.
	Status func() *engine.Status
	// Queues are the queues by name (store.QueueInbound, QueueOutbound)
	// for GET /api/queue and POST /api/queue/retry|delete; Retried tells
	// the delivery service of a queue that an entry is due now.
	Queues  map[string]store.Queue
	Retried func(queue, id string)
	Log     *slog.Logger // nil: slog.Default()
}

// Server is a running admin listener.
type Server struct {
	opts  Options
	srv   *http.Server
	ln    net.Listener
	pprof atomic.Bool // admin.pprof; the profiler's handlers answer 404 while it is off
}

// SetPprof turns the profiler's handlers on or off (admin.pprof on reload).
func (a *Server) SetPprof(on bool) { a.pprof.Store(on) }

// Start listens on opts.Listen and serves in the background.
func Start(opts Options) (*Server, error) {
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	ln, err := net.Listen("tcp", opts.Listen)
	if err != nil {
		return nil, fmt.Errorf("admin: cannot listen on %s: %w", opts.Listen, err)
	}
	a := &Server{opts: opts, ln: ln}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		writeMetrics(w)
	})
	mux.HandleFunc("GET /api/status", a.status)
	if opts.Console != nil {
		mux.Handle("/console/", opts.Console) // admin.console turns it off inside
	}
	a.pprof.Store(opts.Pprof)
	for pattern, h := range map[string]http.HandlerFunc{
		"GET /debug/pprof/":        pprof.Index,
		"GET /debug/pprof/cmdline": pprof.Cmdline,
		"GET /debug/pprof/profile": pprof.Profile,
		"GET /debug/pprof/symbol":  pprof.Symbol,
		"GET /debug/pprof/trace":   pprof.Trace,
	} {
		mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			if !a.pprof.Load() {
				http.NotFound(w, r)
				return
			}
			h(w, r)
		})
	}
	mux.HandleFunc("GET /api/queue", a.queueList)
	mux.HandleFunc("POST /api/queue/retry", a.queueRetry)
	mux.HandleFunc("POST /api/queue/delete", a.queueDelete)
	mux.HandleFunc("POST /api/reload", func(w http.ResponseWriter, r *http.Request) {
		restart, err := opts.Reload()
		e := audit.FromRequest("api", r)
		e.Action, e.Object, e.New = "reload", "configuration", "applied"
		if err != nil {
			e.New = "refused: " + err.Error()
		} else if len(restart) > 0 {
			e.New = "applied; restart needed for " + strings.Join(restart, ",")
		}
		audit.Record(opts.Log, e)
		if restart == nil {
			restart = []string{}
		}
		out := map[string]any{"ok": err == nil, "restart": restart}
		if n := config.RestartNotice(restart); n != "" {
			out["notice"] = n
		}
		code := http.StatusOK
		if err != nil {
			out["error"] = err.Error()
			code = http.StatusUnprocessableEntity
		}
		writeJSON(w, code, out)
	})
	if !loopbackListen(ln.Addr()) {
		opts.Log.Warn("admin listener is not on loopback: it asks for no password; keep admin.listen on 127.0.0.1 or put an authenticating proxy in front",
			"addr", ln.Addr().String())
	}
	a.srv = &http.Server{
		Handler:           protect(opts.Listen, mux),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		ErrorLog:          nil,
	}
	go func() {
		if err := a.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			opts.Log.Error("admin listener failed", "err", err)
		}
	}()
	opts.Log.Info("admin listening", "addr", ln.Addr().String())
	return a, nil
}

// Addr returns the bound address (useful with port 0).
func (a *Server) Addr() net.Addr { return a.ln.Addr() }

func (a *Server) status(w http.ResponseWriter, _ *http.Request) {
	out := map[string]any{
		"uptime": time.Since(a.opts.Started).Round(time.Second).String(),
		// The file the service reads on reload; "" when it runs on its
		// built-in defaults. pop3ctl set checks it before writing.
		"config_file": a.opts.ConfigFile,
	}
	if a.opts.Status != nil {
		if st := a.opts.Status(); st != nil {
			out["pop3"] = st
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// Shutdown stops the listener, waiting until ctx ends for requests in
// flight.
func (a *Server) Shutdown(ctx context.Context) error { return a.srv.Shutdown(ctx) }

// protect wraps the admin listener's handler with its checks against
// web pages in the administrator's browser:
//   - the Host header must name an IP literal, "localhost" (or a name
//     under .localhost, RFC 6761 section 6.3) or the host of admin.listen;
//     otherwise a page whose name an attacker makes resolve to 127.0.0.1
//     (DNS rebinding) would be same-origin with the listener and could
//     read the console's anti-CSRF token, /metrics or the profiles, and
//     post with a matching Origin. Refused with 421 Misdirected Request
//     (RFC 9110 section 15.5.20);
//   - unsafe methods (POST /api/reload, the console's forms) coming
//     cross-site by Sec-Fetch-Site or Origin are refused with 403, as
//     http.CrossOriginProtection does. pop3ctl sends neither header.
func protect(listen string, h http.Handler) http.Handler {
	listenHost, _, err := net.SplitHostPort(listen)
	if err != nil {
		listenHost = ""
	}
	cop := http.NewCrossOriginProtection()
	inner := cop.Handler(h)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !hostAllowed(r.Host, listenHost) {
			http.Error(w, "refused: the admin listener answers only requests addressed to an IP address, localhost or the host of admin.listen", http.StatusMisdirectedRequest)
			return
		}
		inner.ServeHTTP(w, r)
	})
}

// hostAllowed reports whether a request's Host header may reach the
// admin listener (see protect).
func hostAllowed(hostport, listenHost string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if host == "" {
		return false
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return true
	}
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	return listenHost != "" && strings.EqualFold(host, strings.TrimSuffix(listenHost, "."))
}

// loopbackListen reports whether the listener's address is a loopback one.
func loopbackListen(a net.Addr) bool {
	ta, ok := a.(*net.TCPAddr)
	return ok && ta.IP.IsLoopback()
}
