package admin

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pop3svc/pop3svc/cmd/internal/config"
	"github.com/pop3svc/pop3svc/cmd/pop3d/internal/console"
	"github.com/pop3svc/pop3svc/store/filestore"
	"github.com/pop3svc/pop3svc/store/queue"
)

// adminEnv is an admin listener on a loopback port with the browser
// console over a real file store mounted, counting reloads.
type adminEnv struct {
	base    string
	console *console.Console
	reloads int
}

func startAdmin(t *testing.T) *adminEnv {
	t.Helper()
	root := t.TempDir()
	cfg := config.Default()
	cfg.MailRoot = root
	st, err := filestore.Open(root, filestore.Options{Node: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	q, err := queue.Open(root)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	e := &adminEnv{}
	e.console = console.New(console.Options{Store: st, Queue: q, Log: log, Started: time.Now()}, cfg)
	a, err := Start(Options{
		Listen:  "127.0.0.1:0",
		Console: e.console,
		Reload:  func() ([]string, error) { e.reloads++; return nil, nil },
		Started: time.Now(),
		Log:     log,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		a.Shutdown(ctx)
	})
	e.base = "http://" + a.Addr().String()
	return e
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
	e := startAdmin(t)
	base := e.base
	token := e.console.Token() // the console the listener mounted
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
	e := startAdmin(t)
	base := e.base
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
