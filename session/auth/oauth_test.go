package auth

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pop3svc/pop3svc/session/auth/jwttest"
	"github.com/pop3svc/pop3svc/store"
)

var b64u = base64.RawURLEncoding

// mintJWT signs claims with key, naming alg in the header.
func mintJWT(t testing.TB, key crypto.Signer, kid, alg string, claims map[string]any) string {
	t.Helper()
	tok, err := jwttest.Sign(key, kid, alg, claims)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func jwks(keys map[string]crypto.PublicKey) []byte { return jwttest.JWKS(keys) }

type oauthFixture struct {
	a        *Authenticator
	rsaKey   *rsa.PrivateKey
	ecKey    *ecdsa.PrivateKey
	now      time.Time
	jwksPath string
}

func newOAuthFixture(t *testing.T) *oauthFixture {
	a, _ := newAuth(t)
	f := &oauthFixture{a: a, now: time.Unix(1_900_000_000, 0)}
	var err error
	if f.rsaKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		t.Fatal(err)
	}
	if f.ecKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		t.Fatal(err)
	}
	f.jwksPath = filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(f.jwksPath, jwks(map[string]crypto.PublicKey{"r1": &f.rsaKey.PublicKey, "e1": &f.ecKey.PublicKey}), 0o600); err != nil {
		t.Fatal(err)
	}
	a.OAuth = &OAuth{Issuer: "https://idp.example", Audience: "pop3", JWKSFile: f.jwksPath, Now: func() time.Time { return f.now }}
	return f
}

func (f *oauthFixture) claims(mods map[string]any) map[string]any {
	c := map[string]any{"iss": "https://idp.example", "aud": "pop3", "exp": f.now.Add(time.Hour).Unix(), "email": "tim@example.com"}
	for k, v := range mods {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	return c
}

func bearer(user, token string) []byte {
	gs2 := "n,,"
	if user != "" {
		gs2 = "n,a=" + user + ","
	}
	return []byte(gs2 + "\x01host=pop.example.com\x01port=110\x01auth=Bearer " + token + "\x01\x01")
}

func TestOAuthBearer(t *testing.T) {
	f := newOAuthFixture(t)
	other, _ := rsa.GenerateKey(rand.Reader, 2048)
	good := mintJWT(t, f.rsaKey, "r1", "RS256", f.claims(nil))
	for _, c := range []struct {
		name string
		msg  []byte
		ok   bool
	}{
		{"RS256", bearer("", good), true},
		{"ES256", bearer("", mintJWT(t, f.ecKey, "e1", "ES256", f.claims(nil))), true},
		{"authzid", bearer("tim@example.com", good), true},
		{"audience list", bearer("", mintJWT(t, f.rsaKey, "r1", "RS256", f.claims(map[string]any{"aud": []string{"other", "pop3"}}))), true},
		{"other authzid", bearer("mrose@example.com", good), false},
		{"expired", bearer("", mintJWT(t, f.rsaKey, "r1", "RS256", f.claims(map[string]any{"exp": f.now.Add(-time.Second).Unix()}))), false},
		{"no expiry", bearer("", mintJWT(t, f.rsaKey, "r1", "RS256", f.claims(map[string]any{"exp": nil}))), false},
		{"not yet", bearer("", mintJWT(t, f.rsaKey, "r1", "RS256", f.claims(map[string]any{"nbf": f.now.Add(time.Hour).Unix()}))), false},
		{"wrong audience", bearer("", mintJWT(t, f.rsaKey, "r1", "RS256", f.claims(map[string]any{"aud": "imap"}))), false},
		{"wrong issuer", bearer("", mintJWT(t, f.rsaKey, "r1", "RS256", f.claims(map[string]any{"iss": "https://evil.example"}))), false},
		{"wrongly signed", bearer("", mintJWT(t, other, "r1", "RS256", f.claims(nil))), false},
		{"unknown key", bearer("", mintJWT(t, other, "r9", "RS256", f.claims(nil))), false},
		{"RSA key for ES256", bearer("", mintJWT(t, f.rsaKey, "r1", "ES256", f.claims(nil))), false},
		{"alg none", bearer("", strings.Join(strings.Split(good, ".")[:2], ".")+"."), false},
		{"tampered claims", bearer("", func() string {
			p := strings.Split(good, ".")
			c, _ := json.Marshal(f.claims(map[string]any{"email": "mrose@example.com"}))
			return p[0] + "." + b64u.EncodeToString(c) + "." + p[2]
		}()), false},
		{"no such mailbox", bearer("", mintJWT(t, f.rsaKey, "r1", "RS256", f.claims(map[string]any{"email": "../x"}))), false},
	} {
		t.Run(c.name, func(t *testing.T) {
			m, ok := f.a.NewMechanism("OAUTHBEARER", true, true)
			if !ok {
				t.Fatal("OAUTHBEARER not offered over TLS")
			}
			ch, done, err := m.Next(context.Background(), c.msg)
			if c.ok {
				if !done || err != nil || m.Address() != (store.Address{Mailbox: "tim", Domain: "example.com"}) {
					t.Fatalf("done %v err %v address %v", done, err, m.Address())
				}
				return
			}
			// RFC 7628 section 3.2.2: the error JSON, then a failure after
			// the client's dummy response.
			var v map[string]string
			if done || json.Unmarshal(ch, &v) != nil || v["status"] != "invalid_token" {
				t.Fatalf("refusal: challenge %q done %v err %v", ch, done, err)
			}
			if _, done, err = m.Next(context.Background(), []byte{1}); !done || !errors.Is(err, ErrAuthFailed) {
				t.Fatalf("after the dummy response: done %v err %v", done, err)
			}
		})
	}
	if _, ok := f.a.NewMechanism("OAUTHBEARER", false, true); ok {
		t.Fatal("OAUTHBEARER offered without TLS under sparequired")
	}
}

func TestXOAuth2(t *testing.T) {
	f := newOAuthFixture(t)
	tok := mintJWT(t, f.ecKey, "e1", "ES256", f.claims(nil))
	m, _ := f.a.NewMechanism("XOAUTH2", true, false)
	if _, done, err := m.Next(context.Background(), []byte("user=tim@example.com\x01auth=Bearer "+tok+"\x01\x01")); !done || err != nil {
		t.Fatalf("XOAUTH2: %v", err)
	}
	m, _ = f.a.NewMechanism("XOAUTH2", true, false)
	ch, done, _ := m.Next(context.Background(), []byte("user=mrose@example.com\x01auth=Bearer "+tok+"\x01\x01"))
	if done || !strings.Contains(string(ch), "invalid_token") {
		t.Fatalf("XOAUTH2 for another user: %q", ch)
	}
	if _, done, err := m.Next(context.Background(), []byte{}); !done || !errors.Is(err, ErrAuthFailed) {
		t.Fatalf("XOAUTH2 end: %v", err)
	}
}

// jwks_url: the keys are fetched, and fetched again (at most once a
// minute) for a token signed by a key the set did not have.
func TestOAuthJWKSURL(t *testing.T) {
	f := newOAuthFixture(t)
	newKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	keys := map[string]crypto.PublicKey{"r1": &f.rsaKey.PublicKey}
	fetches := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches++
		w.Write(jwks(keys))
	}))
	defer srv.Close()
	f.a.OAuth.JWKSFile, f.a.OAuth.JWKSURL = "", srv.URL
	o := f.a.OAuth
	ctx := context.Background()
	if _, err := o.Verify(ctx, mintJWT(t, f.rsaKey, "r1", "RS256", f.claims(nil))); err != nil {
		t.Fatal(err)
	}
	keys["e2"] = &newKey.PublicKey
	tok := mintJWT(t, newKey, "e2", "ES256", f.claims(nil))
	if _, err := o.Verify(ctx, tok); !errors.Is(err, ErrAuthFailed) || fetches != 1 {
		t.Fatalf("a new key within a minute: %v, %d fetches", err, fetches)
	}
	f.now = f.now.Add(jwksRefetchAfter)
	if _, err := o.Verify(ctx, tok); err != nil || fetches != 2 {
		t.Fatalf("a new key after a minute: %v, %d fetches", err, fetches)
	}
}

func FuzzOAuthMessage(f *testing.F) {
	f.Add([]byte("n,a=user@example.com,\x01host=server.example.com\x01port=143\x01auth=Bearer vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==\x01\x01"), false)
	f.Add([]byte("user=someuser@example.com\x01auth=Bearer ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg\x01\x01"), true)
	f.Add([]byte("y,,\x01auth=bearer x\x01\x01"), false)
	f.Fuzz(func(t *testing.T, msg []byte, xoauth bool) {
		user, token, err := parseOAuthMessage(msg, xoauth)
		if err == nil && (token == "" || strings.Contains(token, "\x01") || strings.Contains(user, "\x01")) {
			t.Fatalf("accepted user %q token %q", user, token)
		}
	})
}

func FuzzJWT(f *testing.F) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	o := &OAuth{Issuer: "i", Audience: "a", Now: func() time.Time { return time.Unix(1_900_000_000, 0) }}
	o.keys = map[string]crypto.PublicKey{"k": &key.PublicKey}
	o.fetched = o.now()
	good := mintJWT(f, key, "k", "ES256", map[string]any{"iss": "i", "aud": "a", "exp": 1_900_000_100, "email": "x@example.com"})
	f.Add(good)
	f.Add("eyJhbGciOiJub25lIn0.eyJpc3MiOiJpIn0.")
	f.Add("a.b.c")
	f.Fuzz(func(t *testing.T, token string) {
		name, err := o.Verify(context.Background(), token)
		if err == nil && (token != good || name != "x@example.com") {
			t.Fatalf("accepted %q as %q", token, name)
		}
	})
}
