package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/pop3svc/pop3svc/engine/config"
)

func init() { register(func() service { return &adminService{} }) }

// adminService is the admin listener (admin.listen, loopback by default):
//
//	GET  /metrics     Prometheus text: every pop3_*/smtp_* metric plus process metrics
//	GET  /api/status  JSON: connections, socket and worker pools, uptime
//	POST /api/reload  reread the configuration, as SIGHUP does
//	GET  /debug/pprof/ Go's profiler, when admin.pprof is set (a restart applies it)
//	     /console/    the browser console (console.go), unless admin.console is false
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
	a.srv = &http.Server{
		Handler:           mux,
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
