package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pop3svc/pop3svc/cmd/pop3d/pop3dtest"
)

// idpEndpoint is an RFC 7662 introspection endpoint on loopback: tokens
// it knows are active for a mailbox; it answers 401 to any client but
// the one it expects, and 500 while failing. A token starting "hold"
// waits for release.
type idpEndpoint struct {
	srv *httptest.Server

	mu       sync.Mutex
	tokens   map[string]string // token -> mailbox
	id, sec  string
	failing  bool
	release  chan struct{}
	arrivals chan string
}

func newIdPEndpoint(t *testing.T, id, secret string) *idpEndpoint {
	t.Helper()
	e := &idpEndpoint{tokens: map[string]string{}, id: id, sec: secret, release: make(chan struct{}), arrivals: make(chan string, 16)}
	e.srv = httptest.NewServer(http.HandlerFunc(e.serve))
	t.Cleanup(e.srv.Close)
	t.Cleanup(e.releaseAll)
	return e
}

func (e *idpEndpoint) serve(w http.ResponseWriter, r *http.Request) {
	e.mu.Lock()
	wantID, wantSec, failing, release := e.id, e.sec, e.failing, e.release
	e.mu.Unlock()
	id, sec, ok := r.BasicAuth()
	id, _ = url.QueryUnescape(id)
	sec, _ = url.QueryUnescape(sec)
	if failing {
		http.Error(w, "down", http.StatusInternalServerError)
		return
	}
	if !ok || id != wantID || sec != wantSec || r.ParseForm() != nil {
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	tok := r.PostForm.Get("token")
	if strings.HasPrefix(tok, "hold") {
		e.arrivals <- tok
		<-release
	}
	e.mu.Lock()
	box, known := e.tokens[tok]
	e.mu.Unlock()
	a := map[string]any{"active": false}
	if known {
		a = map[string]any{"active": true, "iss": "https://idp.test", "aud": "pop3.test",
			"exp": time.Now().Add(time.Hour).Unix(), "email": box}
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(a)
}

func (e *idpEndpoint) set(f func(e *idpEndpoint)) {
	e.mu.Lock()
	defer e.mu.Unlock()
	f(e)
}

// releaseAll lets every held request go on, and holds the next ones again.
func (e *idpEndpoint) releaseAll() {
	e.mu.Lock()
	defer e.mu.Unlock()
	close(e.release)
	e.release = make(chan struct{})
}

func introspectionTable(url, id, secret string) string {
	return fmt.Sprintf("[oauth]\nissuer = \"https://idp.test\"\naudience = \"pop3.test\"\nclaim = \"email\"\n"+
		"introspection_url = %q\nclient_id = %q\nclient_secret = %q\n", url, id, secret)
}

// curl --oauth2-bearer against POP3 with opaque tokens that pop3d checks
// by asking an RFC 7662 endpoint the test runs: an active token logs in
// (OAUTHBEARER and XOAUTH2); an inactive one gets the RFC 7628 error JSON
// and -ERR [AUTH]; an endpoint that fails gives -ERR [SYS/TEMP].
func TestOAuthIntrospectionWithCurl(t *testing.T) {
	t.Parallel()
	idp := newIdPEndpoint(t, "pop3d", "s3cret&=")
	idp.set(func(e *idpEndpoint) { e.tokens["opaque-token-1"] = testAddr.String() })
	c := integrationConfig(t, "", "", mailbox(2, 300))
	c.Tables = introspectionTable(idp.srv.URL+"/introspect", "pop3d", "s3cret&=")
	in := pop3dtest.Start(t, c)
	url := "pop3://" + in.POP3 + "/1"
	user := testAddr.String() + ":"
	curl := func(mech, token string) (string, error) {
		return runCurl(t, "-v", "--user", user, "--oauth2-bearer", token, "--login-options", "AUTH="+mech, url)
	}
	for _, mech := range []string{"OAUTHBEARER", "XOAUTH2"} {
		if out, err := curl(mech, "opaque-token-1"); err != nil || !strings.Contains(out, "Subject: message 1") {
			t.Fatalf("curl %s with an active token: %v\n%.2000s", mech, err, out)
		}
	}
	out, err := curl("OAUTHBEARER", "opaque-token-2")
	if want := "< + " + base64.StdEncoding.EncodeToString([]byte(`{"status":"invalid_token"}`)); err == nil ||
		!strings.Contains(out, want) || !strings.Contains(out, "< -ERR [AUTH]") {
		t.Fatalf("curl with an inactive token: %v (want %q, then -ERR [AUTH])\n%.2000s", err, want, out)
	}
	idp.set(func(e *idpEndpoint) { e.failing = true })
	if out, err := curl("OAUTHBEARER", "opaque-token-1"); err == nil || !strings.Contains(out, "< -ERR [SYS/TEMP]") {
		t.Fatalf("curl while the endpoint fails: %v (want -ERR [SYS/TEMP])\n%.2000s", err, out)
	}
}

// startOAuthLogin sends AUTH OAUTHBEARER with token as initial response
// and returns the connection without reading the answer.
func startOAuthLogin(t *testing.T, in *pop3dtest.Server, ip, token string) *pop3dtest.Conn {
	t.Helper()
	p := pop3dtest.Dial(t, in.POP3, ip)
	p.Send("AUTH OAUTHBEARER " + base64.StdEncoding.EncodeToString([]byte("n,a="+testAddr.String()+",\x01auth=Bearer "+token+"\x01\x01")) + "\r\n")
	return p
}

// TestReloadAppliesIntrospectionKeys changes oauth.introspection_url,
// oauth.client_id, oauth.client_secret, oauth.max_introspections,
// oauth.introspection_cache and oauth.introspection_cache_entries on a
// running pop3d and logs in with a token that only the new value lets
// through: refused before the reload, accepted after.
func TestReloadAppliesIntrospectionKeys(t *testing.T) {
	t.Parallel()
	idp1 := newIdPEndpoint(t, "id1", "sec1")
	idp2 := newIdPEndpoint(t, "id1", "sec1")
	user := testAddr.String()
	for _, e := range []*idpEndpoint{idp1, idp2} {
		e.set(func(e *idpEndpoint) { e.tokens["hold-1"], e.tokens["hold-2"], e.tokens["held-free"] = user, user, user })
	}
	idp2.set(func(e *idpEndpoint) { e.tokens["t2"] = user })
	c := reloadConfig(t, "", mailbox(1, 300))
	c.Tables = introspectionTable(idp1.srv.URL, "id1", "sec1") + "max_introspections = 1\nintrospection_cache_entries = 1\n"
	in := pop3dtest.Start(t, c)

	// cacheProbe logs in with tokens (new ones each time, known to
	// idp2), then revokes the first and logs in with it again: +OK only
	// when its accepting answer is still remembered.
	probes := 0
	cacheProbe := func(tokens int) func(t *testing.T, ip string) string {
		return func(t *testing.T, ip string) string {
			t.Helper()
			probes++
			var toks []string
			for i := range tokens {
				tok := fmt.Sprintf("cache-%d-%d", probes, i)
				idp2.set(func(e *idpEndpoint) { e.tokens[tok] = user })
				if got := oauthLogin(t, in, ip, user, tok); got != "+OK" {
					t.Fatalf("login with the known token %s: %q", tok, got)
				}
				toks = append(toks, tok)
			}
			idp2.set(func(e *idpEndpoint) { delete(e.tokens, toks[0]) })
			return oauthLogin(t, in, ip, user, toks[0])
		}
	}

	// maxProbe holds one login at the endpoint and tries a second: +OK
	// when two introspections may run at once, [SYS/TEMP] with one.
	maxProbe := func(t *testing.T, ip string) string {
		t.Helper()
		held := startOAuthLogin(t, in, ip, "hold-1")
		defer held.Close()
		select {
		case <-idp2.arrivals:
		case <-time.After(30 * time.Second):
			t.Fatal("the held login did not reach the endpoint in 30s")
		}
		got := oauthLogin(t, in, ip, user, "held-free")
		idp2.releaseAll()
		if strings.HasPrefix(held.Line(), "+OK") {
			// QUIT answers once the mailbox is released, so the next
			// step's login cannot find it in use; a close would release
			// it only after the connection is gone.
			held.Cmd("QUIT")
		}
		return got
	}
	for i, step := range []struct {
		name   string
		change []string
		before func(*idpEndpoint) // applied to idp2 before the probe that must fail
		token  string
		probe  func(t *testing.T, ip string) string
	}{
		{name: "oauth.introspection_url", change: []string{"oauth.introspection_url", idp2.srv.URL}, token: "t2"},
		{name: "oauth.client_id", change: []string{"oauth.client_id", "id2"}, token: "t2",
			before: func(e *idpEndpoint) { e.id = "id2" }},
		{name: "oauth.client_secret", change: []string{"oauth.client_secret", "sec 2%"}, token: "t2",
			before: func(e *idpEndpoint) { e.sec = "sec 2%" }},
		{name: "oauth.max_introspections", change: []string{"oauth.max_introspections", "2"}, probe: maxProbe},
		// Off, a revoked token is refused at once; remembered, it logs in.
		{name: "oauth.introspection_cache", change: []string{"oauth.introspection_cache", "1m"}, probe: cacheProbe(1)},
		// One entry: a second token pushes the first out; two keep both.
		{name: "oauth.introspection_cache_entries", change: []string{"oauth.introspection_cache_entries", "2"}, probe: cacheProbe(2)},
	} {
		t.Run(step.name, func(t *testing.T) {
			ip := fmt.Sprintf("127.0.6.%d", 10+i)
			probe := step.probe
			if probe == nil {
				probe = func(t *testing.T, ip string) string { return oauthLogin(t, in, ip, user, step.token) }
			}
			if step.before != nil {
				idp2.set(step.before)
			}
			if got := probe(t, ip); got == "+OK" {
				t.Fatal("before the change the login is accepted")
			}
			waitNoConnections(t, in)
			setKeys(t, in, step.change...)
			if got := probe(t, ip); got != "+OK" {
				t.Fatalf("after the change the login gets %q, want +OK", got)
			}
			waitNoConnections(t, in)
		})
	}
}
