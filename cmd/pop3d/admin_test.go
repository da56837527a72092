package main

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// startAdmin starts the admin listener of a console test environment on
// a loopback port and returns its base URL.
func startAdmin(t *testing.T, e *consoleEnv) string {
	t.Helper()
	e.rt.cfg.Admin.Listen = "127.0.0.1:0"
	a := &adminService{}
	if err := a.Start(e.rt); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		consoles.Delete(e.rt)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		a.Stop(ctx)
	})
	return "http://" + a.ln.Addr().String()
}

func adminDo(t *testing.T, method, url, host string, hdr map[string]string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(""))
	if err != nil {
		t.Fatal(err)
	}
	if host != "" {
		req.Host = host
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestAdminRefusesForeignHost: a web page whose host name is made to
// resolve to 127.0.0.1 (DNS rebinding) is same-origin with the admin
// listener as far as the browser knows; it could read the console's
// anti-CSRF token and /metrics and then post with a matching Origin. The
// listener therefore answers only requests addressed to an IP literal,
// "localhost" or the host of admin.listen.
func TestAdminRefusesForeignHost(t *testing.T) {
	e := newConsoleEnv(t, "")
	base := startAdmin(t, e)
	token := consoleFor(e.rt).token // the console the listener mounted
	for _, path := range []string{"/console/", "/metrics", "/api/status"} {
		code, body := adminDo(t, http.MethodGet, base+path, "rebind.evil.example:8110", nil)
		if code != http.StatusMisdirectedRequest {
			t.Errorf("GET %s with a foreign Host: status %d, want 421", path, code)
		}
		if strings.Contains(body, token) {
			t.Errorf("GET %s with a foreign Host gave out the anti-CSRF token", path)
		}
	}
	before := e.reloads
	code, _ := adminDo(t, http.MethodPost, base+"/api/reload", "rebind.evil.example:8110",
		map[string]string{"Origin": "http://rebind.evil.example:8110"})
	if code != http.StatusMisdirectedRequest || e.reloads != before {
		t.Errorf("POST /api/reload with a foreign Host: status %d, reloads %d→%d; want 421 and no reload", code, before, e.reloads)
	}
	// The addresses an administrator uses still work.
	for _, host := range []string{"", "localhost:8110", "[::1]:8110", "127.0.0.1"} {
		if code, body := adminDo(t, http.MethodGet, base+"/console/", host, nil); code != http.StatusOK || !strings.Contains(body, token) {
			t.Errorf("GET /console/ with Host %q: status %d, want 200 with the page", host, code)
		}
	}
}

// TestAdminReloadRefusesCrossSite: POST /api/reload is a state change; a
// browser's cross-site form post must not reach it, while pop3ctl (no
// Origin, no Sec-Fetch-Site) still does.
func TestAdminReloadRefusesCrossSite(t *testing.T) {
	e := newConsoleEnv(t, "")
	base := startAdmin(t, e)
	for _, hdr := range []map[string]string{
		{"Sec-Fetch-Site": "cross-site"},
		{"Origin": "http://evil.example"},
	} {
		before := e.reloads
		code, _ := adminDo(t, http.MethodPost, base+"/api/reload", "", hdr)
		if code != http.StatusForbidden || e.reloads != before {
			t.Errorf("cross-site POST /api/reload %v: status %d, reloads %d→%d; want 403 and no reload", hdr, code, before, e.reloads)
		}
	}
	before := e.reloads
	if code, body := adminDo(t, http.MethodPost, base+"/api/reload", "", nil); code != http.StatusOK || e.reloads != before+1 {
		t.Errorf("POST /api/reload as pop3ctl sends it: status %d (%s), reloads %d→%d", code, body, before, e.reloads)
	}
	// GET never reloads.
	before = e.reloads
	if code, _ := adminDo(t, http.MethodGet, base+"/api/reload", "", nil); code == http.StatusOK || e.reloads != before {
		t.Errorf("GET /api/reload: status %d, reloads %d→%d", code, before, e.reloads)
	}
}
