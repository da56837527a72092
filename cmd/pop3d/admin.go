package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"strings"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/pop3svc/pop3svc/cmd/internal/config"
)

func init() { register(func() service { return &adminService{} }) }

// adminService is the admin listener (admin.listen, loopback by default):
//
//	GET  /metrics     Prometheus text: every pop3_*/smtp_* metric plus process metrics
//	GET  /api/status  JSON: connections, socket and worker pools, uptime
//	POST /api/reload  reread the configuration, as SIGHUP does
//	GET  /debug/pprof/ Go's profiler, when admin.pprof is set (a restart applies it)
//	     /console/    the browser console (console.go), unless admin.console is false
//
// The listener asks for no password: admin.listen must stay on loopback
// (the default 127.0.0.1:8110), or behind a proxy that authenticates.
// Anyone who reaches it can reload the service, read /metrics, change
// settings and passwords through the console and, with admin.pprof, read
// the process's profiles. Start logs a warning when it is not on loopback.
// Two checks guard it against web pages opened by the administrator's
// browser (adminProtect): requests must be addressed to an IP literal,
// "localhost" or the host of admin.listen (a page whose host name is made
// to resolve to 127.0.0.1, "DNS rebinding", is refused), and state changes
// (POST) must not come cross-site (Sec-Fetch-Site, Origin).
type adminService struct {
	rt  *runtime
	srv *http.Server
	ln  net.Listener
}

func (a *adminService) Name() string { return "admin" }

func (a *adminService) Start(rt *runtime) error {
	a.rt = rt
	if rt.cfg.Admin.Listen == "" {
		return nil
	}
	ln, err := net.Listen("tcp", rt.cfg.Admin.Listen)
	if err != nil {
		return fmt.Errorf("admin: cannot listen on %s: %w", rt.cfg.Admin.Listen, err)
	}
	a.ln = ln
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		metrics.WritePrometheus(w, true)
	})
	mux.HandleFunc("GET /api/status", a.status)
	mux.Handle("/console/", consoleFor(rt)) // the browser console (console.go); admin.console turns it off
	if rt.cfg.Admin.Pprof {
		mux.HandleFunc("GET /debug/pprof/", pprof.Index)
		mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	}
	mux.HandleFunc("POST /api/reload", func(w http.ResponseWriter, _ *http.Request) {
		if err := rt.reload(); err != nil {
			writeJSON(w, http.StatusUnprocessableEntity, map[string]any{"ok": false, "error": err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"ok": true})
	})
	if !loopbackListen(ln.Addr()) {
		rt.log.Warn("admin listener is not on loopback: it asks for no password; keep admin.listen on 127.0.0.1 or put an authenticating proxy in front",
			"addr", ln.Addr().String())
	}
	a.srv = &http.Server{
		Handler:           adminProtect(rt.cfg.Admin.Listen, mux),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		ErrorLog:          nil,
	}
	go func() {
		if err := a.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			rt.log.Error("admin listener failed", "err", err)
		}
	}()
	rt.log.Info("admin listening", "addr", ln.Addr().String())
	return nil
}

func (a *adminService) status(w http.ResponseWriter, _ *http.Request) {
	out := map[string]any{
		"uptime": time.Since(a.rt.started).Round(time.Second).String(),
	}
	if s := a.rt.pop3; s != nil {
		out["pop3"] = s.Status()
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

// Reload: a change of admin.listen takes a restart.
func (a *adminService) Reload(cfg *config.Config) error {
	if a.rt != nil && cfg.Admin.Listen != a.rt.cfg.Admin.Listen {
		return errors.New("admin: admin.listen changed: restart the service to apply it")
	}
	return nil
}

func (a *adminService) Stop(ctx context.Context) error {
	if a.srv == nil {
		return nil
	}
	return a.srv.Shutdown(ctx)
}

// adminProtect wraps the admin listener's handler with its checks against
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
func adminProtect(listen string, h http.Handler) http.Handler {
	listenHost, _, err := net.SplitHostPort(listen)
	if err != nil {
		listenHost = ""
	}
	cop := http.NewCrossOriginProtection()
	inner := cop.Handler(h)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !adminHostAllowed(r.Host, listenHost) {
			http.Error(w, "refused: the admin listener answers only requests addressed to an IP address, localhost or the host of admin.listen", http.StatusMisdirectedRequest)
			return
		}
		inner.ServeHTTP(w, r)
	})
}

// adminHostAllowed reports whether a request's Host header may reach the
// admin listener (see adminProtect).
func adminHostAllowed(hostport, listenHost string) bool {
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
