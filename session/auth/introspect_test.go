package auth

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync/atomic"
	"testing"
	"time"
)

// introspector is an RFC 7662 endpoint: it answers the tokens it knows
// with their members, any other with {"active": false}, and refuses a
// caller without the right client credentials with 401. A token "hold"
// is answered only once release is closed.
type introspector struct {
	srv      *httptest.Server
	requests atomic.Int64
	answers  map[string]map[string]any
	release  chan struct{}
	held     chan struct{}
}

func newIntrospector(t *testing.T, answers map[string]map[string]any) *introspector {
	t.Helper()
	in := &introspector{answers: answers, release: make(chan struct{}), held: make(chan struct{}, 4)}
	in.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		in.requests.Add(1)
		// RFC 6749 section 2.3.1: the client id and secret are
		// form-urlencoded before they go into the Basic credentials.
		id, secret, ok := r.BasicAuth()
		id, err1 := url.QueryUnescape(id)
		secret, err2 := url.QueryUnescape(secret)
		if r.Method != http.MethodPost || !ok || err1 != nil || err2 != nil || id != "pop3d" || secret != "s3cret%" {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		if err := r.ParseForm(); err != nil || r.PostForm.Get("token_type_hint") != "access_token" {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		tok := r.PostForm.Get("token")
		if tok == "hold" {
			in.held <- struct{}{}
			<-in.release
		}
		if tok == "broken" {
			w.Write([]byte("not json"))
			return
		}
		a, ok := in.answers[tok]
		if !ok {
			a = map[string]any{"active": false}
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(a)
	}))
	t.Cleanup(in.srv.Close)
	t.Cleanup(func() {
		select {
		case <-in.release:
		default:
			close(in.release)
		}
	})
	return in
}

// Tokens checked by introspection (RFC 7662) against a real HTTP
// endpoint: an active token of the right audience names its mailbox;
// inactive, expired, not-yet-valid, foreign-issuer and wrong- or
// no-audience tokens fail like bad credentials; a broken or refusing
// endpoint is a temporary failure; what cannot be a bearer token costs
// no request; requests beyond MaxIntrospections are refused at once.
func TestIntrospection(t *testing.T) {
	now := time.Now()
	good := map[string]any{"active": true, "aud": []string{"other", "pop3.test"}, "iss": "https://idp.test",
		"exp": now.Add(time.Hour).Unix(), "email": "tim@example.com"}
	with := func(k string, v any) map[string]any {
		m := map[string]any{}
		for k, v := range good {
			m[k] = v
		}
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
		return m
	}
	ep := newIntrospector(t, map[string]map[string]any{
		"good":       good,
		"noiss":      with("iss", nil),
		"inactive":   with("active", false),
		"expired":    with("exp", now.Add(-time.Hour).Unix()),
		"future":     with("nbf", now.Add(time.Hour).Unix()),
		"foreign":    with("iss", "https://evil.test"),
		"wrongaud":   with("aud", "imap.test"),
		"noaud":      with("aud", nil),
		"noclaim":    with("email", nil),
		"activetext": with("active", "true"),
		"hold":       good,
	})
	o := &OAuth{Issuer: "https://idp.test", Audience: "pop3.test", IntrospectionURL: ep.srv.URL,
		ClientID: "pop3d", ClientSecret: "s3cret%", MaxIntrospections: 1, Leeway: time.Minute}
	ctx := context.Background()
	for _, tok := range []string{"good", "noiss"} {
		if name, err := o.Verify(ctx, tok); err != nil || name != "tim@example.com" {
			t.Errorf("Verify(%s) = %q, %v", tok, name, err)
		}
	}
	for _, tok := range []string{"inactive", "expired", "future", "foreign", "wrongaud", "noaud", "noclaim", "activetext", "unknown"} {
		if _, err := o.Verify(ctx, tok); !errors.Is(err, ErrAuthFailed) || errors.Is(err, ErrUnavailable) {
			t.Errorf("Verify(%s) = %v, want ErrAuthFailed", tok, err)
		}
	}
	if _, err := o.Verify(ctx, "broken"); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Verify with a broken answer = %v, want ErrUnavailable", err)
	}
	wrongClient := &OAuth{Issuer: o.Issuer, Audience: o.Audience, IntrospectionURL: o.IntrospectionURL,
		ClientID: o.ClientID, ClientSecret: "wrong"}
	if _, err := wrongClient.Verify(ctx, "good"); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Verify refused by the endpoint (401) = %v, want ErrUnavailable", err)
	}
	before := ep.requests.Load()
	for _, tok := range []string{"", "two words", "a\"quote", "=lead", "tail=x", string(make([]byte, maxBearerToken+1))} {
		if _, err := o.Verify(ctx, tok); !errors.Is(err, ErrAuthFailed) {
			t.Errorf("Verify(%.20q) = %v, want ErrAuthFailed", tok, err)
		}
	}
	if n := ep.requests.Load() - before; n != 0 {
		t.Errorf("malformed tokens made %d requests, want none", n)
	}

	// One request in flight fills MaxIntrospections = 1: the next is
	// refused without a request, and goes through once the first is done.
	done := make(chan error, 1)
	go func() { _, err := o.Verify(ctx, "hold"); done <- err }()
	select {
	case <-ep.held:
	case err := <-done:
		t.Fatalf("the held introspection returned at once: %v", err)
	}
	before = ep.requests.Load()
	if _, err := o.Verify(ctx, "good"); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Verify beyond MaxIntrospections = %v, want ErrUnavailable", err)
	}
	if n := ep.requests.Load() - before; n != 0 {
		t.Errorf("a refused introspection made %d requests", n)
	}
	close(ep.release)
	if err := <-done; err != nil {
		t.Errorf("the held introspection = %v", err)
	}
	if _, err := o.Verify(ctx, "good"); err != nil {
		t.Errorf("Verify after the slot was freed = %v", err)
	}
}

func TestB64Token(t *testing.T) {
	for s, want := range map[string]bool{
		"abc": true, "a-b._~+/": true, "abc==": true, "mF_9.B5f-4.1JqM": true,
		"": false, "=": false, "a=b": false, "a b": false, "a,b": false, "ä": false,
	} {
		if got := isB64Token(s); got != want {
			t.Errorf("isB64Token(%q) = %v, want %v", s, got, want)
		}
	}
}

// FuzzIntrospectionAnswer: any answer is parsed and checked without a
// panic, and only an active one with the audience passes.
func FuzzIntrospectionAnswer(f *testing.F) {
	f.Add([]byte(`{"active":true,"aud":"pop3.test","exp":4102444800,"email":"a@b"}`))
	f.Add([]byte(`{"active":false}`))
	f.Add([]byte(`{"active":true,"aud":["x",1,null],"nbf":"soon","exp":1e300}`))
	f.Add([]byte(`[]`))
	o := &OAuth{Issuer: "https://idp.test", Audience: "pop3.test"}
	f.Fuzz(func(t *testing.T, b []byte) {
		claims, err := parseIntrospection(b)
		if err != nil {
			return
		}
		if o.checkIntrospection(claims) == nil {
			if active, _ := claims["active"].(bool); !active || !audienceHas(claims["aud"], o.Audience) {
				t.Fatalf("accepted %s", b)
			}
		}
	})
}

// With IntrospectionCache an accepting answer stands in for asking again
// until the cache time passes, or the token's exp if sooner; a refused
// token is asked about every time; without it every login asks; at most
// IntrospectionCacheEntries answers are kept.
func TestIntrospectionCache(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	now := t0
	answer := func(email string, exp time.Time) map[string]any {
		return map[string]any{"active": true, "aud": "pop3.test", "exp": exp.Unix(), "email": email}
	}
	ep := newIntrospector(t, map[string]map[string]any{
		"long":  answer("tim@example.com", t0.Add(time.Hour)),
		"short": answer("ann@example.com", t0.Add(30*time.Second)),
		"a":     answer("a@example.com", t0.Add(time.Hour)),
		"b":     answer("b@example.com", t0.Add(time.Hour)),
		"c":     answer("c@example.com", t0.Add(time.Hour)),
	})
	newOAuth := func(cache time.Duration, entries int) *OAuth {
		return &OAuth{Issuer: "https://idp.test", Audience: "pop3.test", IntrospectionURL: ep.srv.URL,
			ClientID: "pop3d", ClientSecret: "s3cret%", Now: func() time.Time { return now },
			IntrospectionCache: cache, IntrospectionCacheEntries: entries}
	}
	ctx := context.Background()
	// asks reports how many requests verifying tok made.
	asks := func(o *OAuth, tok string, wantErr bool) int64 {
		t.Helper()
		before := ep.requests.Load()
		_, err := o.Verify(ctx, tok)
		if (err != nil) != wantErr {
			t.Fatalf("Verify(%s) at +%v = %v", tok, now.Sub(t0), err)
		}
		return ep.requests.Load() - before
	}

	o := newOAuth(time.Minute, 0)
	for _, step := range []struct {
		at      time.Duration // since t0
		tok     string
		refused bool
		asks    int64
		what    string
	}{
		{0, "long", false, 1, "the first login"},
		{59 * time.Second, "long", false, 0, "a login within the cache time"},
		{61 * time.Second, "long", false, 1, "a login past the cache time"},
		// The token's exp comes before the cache time: the answer
		// stands until then only.
		{0, "short", false, 1, "the first login with a token good for 30s"},
		{29 * time.Second, "short", false, 0, "a login before the token's exp"},
		{31 * time.Second, "short", true, 1, "a login past the token's exp"},
		// Refusals are not remembered.
		{0, "unknown", true, 1, "a refused token"},
		{0, "unknown", true, 1, "the refused token again"},
	} {
		now = t0.Add(step.at)
		if n := asks(o, step.tok, step.refused); n != step.asks {
			t.Errorf("%s asked %d times, want %d", step.what, n, step.asks)
		}
	}
	// Off: every login asks.
	off := newOAuth(0, 0)
	for range 2 {
		if n := asks(off, "long", false); n != 1 {
			t.Errorf("without a cache a login asked %d times, want 1", n)
		}
	}
	// Two entries at most: a third answer pushes one out.
	small := newOAuth(time.Minute, 2)
	for _, tok := range []string{"a", "b", "c"} {
		asks(small, tok, false)
	}
	small.cacheMu.Lock()
	kept := len(small.cache)
	small.cacheMu.Unlock()
	if kept != 2 {
		t.Errorf("%d answers kept, want IntrospectionCacheEntries = 2", kept)
	}
	if n := asks(small, "c", false); n != 0 {
		t.Errorf("the newest answer was not kept (%d requests)", n)
	}
}
