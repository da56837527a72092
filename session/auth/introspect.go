package auth

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Limits of token introspection (RFC 7662).
const (
	// maxIntrospection bounds the authorization server's answer.
	maxIntrospection = 64 << 10
	// DefaultMaxIntrospections is how many introspection requests run at
	// once when OAuth.MaxIntrospections is 0.
	DefaultMaxIntrospections = 16
	// DefaultIntrospectionCacheEntries is how many accepting answers are
	// remembered when OAuth.IntrospectionCacheEntries is 0.
	DefaultIntrospectionCacheEntries = 10000
)

// cachedAnswer is an introspection answer that accepted a token, and
// until when it may stand in for asking again.
type cachedAnswer struct {
	claims map[string]any
	until  time.Time
}

// introspect asks the authorization server at IntrospectionURL whether
// token is active (RFC 7662 section 2), authenticating with ClientID and
// ClientSecret (HTTP Basic, RFC 6749 section 2.3.1), and returns the
// answer's members. The cheap checks come first: a token that cannot be
// a bearer token (RFC 6750 section 2.1) costs no request. At most
// MaxIntrospections requests run at once; beyond that, and when the
// server cannot be asked or answers anything but 200 with JSON, the
// error wraps ErrUnavailable (a temporary failure, not a wrong token).
func (o *OAuth) introspect(ctx context.Context, token string) (map[string]any, error) {
	if token == "" || len(token) > maxBearerToken || !isB64Token(token) {
		return nil, errToken("not a bearer token")
	}
	var key [sha256.Size]byte
	if o.IntrospectionCache > 0 {
		key = sha256.Sum256([]byte(token))
		if claims, ok := o.cachedIntrospection(key); ok {
			return claims, nil
		}
	}
	sem := o.introspectionSlots()
	select {
	case sem <- struct{}{}:
		defer func() { <-sem }()
	default:
		return nil, fmt.Errorf("%w: %d token introspections already running (oauth.max_introspections)", ErrUnavailable, cap(sem))
	}
	form := url.Values{"token": {token}, "token_type_hint": {"access_token"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, o.IntrospectionURL, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, fmt.Errorf("%w: token introspection: %w", ErrUnavailable, err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	req.SetBasicAuth(url.QueryEscape(o.ClientID), url.QueryEscape(o.ClientSecret))
	c := o.Client
	if c == nil {
		c = &http.Client{Timeout: 10 * time.Second}
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: token introspection: %w", ErrUnavailable, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%w: token introspection: %s answered %s", ErrUnavailable, o.IntrospectionURL, resp.Status)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxIntrospection+1))
	if err != nil {
		return nil, fmt.Errorf("%w: token introspection: %w", ErrUnavailable, err)
	}
	if len(b) > maxIntrospection {
		return nil, fmt.Errorf("%w: token introspection: answer larger than %d octets", ErrUnavailable, maxIntrospection)
	}
	claims, err := parseIntrospection(b)
	if err != nil {
		return nil, fmt.Errorf("%w: token introspection: %w", ErrUnavailable, err)
	}
	if err := o.checkIntrospection(claims); err != nil {
		return nil, err
	}
	if o.IntrospectionCache > 0 {
		o.rememberIntrospection(key, claims)
	}
	return claims, nil
}

// cachedIntrospection returns the remembered answer for the token whose
// SHA-256 is key, if it is still to stand (RFC 7662 section 4: never past
// the token's expiry) and its checks still hold at this time.
func (o *OAuth) cachedIntrospection(key [sha256.Size]byte) (map[string]any, bool) {
	now := o.now()
	o.cacheMu.Lock()
	a, ok := o.cache[key]
	if ok && !now.Before(a.until) {
		delete(o.cache, key)
		ok = false
	}
	o.cacheMu.Unlock()
	if !ok || o.checkIntrospection(a.claims) != nil {
		return nil, false
	}
	return a.claims, true
}

// rememberIntrospection keeps an accepting answer for IntrospectionCache,
// or until the token's exp if sooner. When IntrospectionCacheEntries are
// kept, the stale ones go, and if none was stale one more is dropped.
func (o *OAuth) rememberIntrospection(key [sha256.Size]byte, claims map[string]any) {
	now := o.now()
	until := now.Add(o.IntrospectionCache)
	if v, ok := claims["exp"]; ok {
		if exp, ok := numericDate(v); ok && exp.Before(until) {
			until = exp
		}
	}
	if !now.Before(until) {
		return
	}
	limit := o.IntrospectionCacheEntries
	if limit <= 0 {
		limit = DefaultIntrospectionCacheEntries
	}
	o.cacheMu.Lock()
	defer o.cacheMu.Unlock()
	if o.cache == nil {
		o.cache = make(map[[sha256.Size]byte]cachedAnswer)
	}
	if _, ok := o.cache[key]; !ok && len(o.cache) >= limit {
		for k, a := range o.cache {
			if !now.Before(a.until) {
				delete(o.cache, k)
			}
		}
		for k := range o.cache {
			if len(o.cache) < limit {
				break
			}
			delete(o.cache, k) // an arbitrary one: map order
		}
	}
	o.cache[key] = cachedAnswer{claims: claims, until: until}
}

// parseIntrospection reads an introspection answer: a JSON object.
func parseIntrospection(b []byte) (map[string]any, error) {
	d := json.NewDecoder(strings.NewReader(string(b)))
	d.UseNumber()
	var claims map[string]any
	if err := d.Decode(&claims); err != nil || claims == nil {
		return nil, fmt.Errorf("the answer is not a JSON object")
	}
	return claims, nil
}

// checkIntrospection applies RFC 7662 section 2.2: the token must be
// active; the expiry and not-before times, when given, must hold; the
// issuer, when given, must be Issuer; the audience must hold Audience,
// as for a JWT (an answer without aud names no audience and is refused).
func (o *OAuth) checkIntrospection(claims map[string]any) error {
	if active, _ := claims["active"].(bool); !active {
		return errToken("not active")
	}
	now := o.now()
	if v, ok := claims["exp"]; ok {
		exp, ok := numericDate(v)
		if !ok || !now.Before(exp.Add(o.Leeway)) {
			return errToken("expired")
		}
	}
	if v, ok := claims["nbf"]; ok {
		if nbf, ok := numericDate(v); !ok || now.Add(o.Leeway).Before(nbf) {
			return errToken("not valid yet")
		}
	}
	if v, ok := claims["iss"]; ok {
		if iss, _ := v.(string); iss != o.Issuer {
			return errToken("wrong issuer")
		}
	}
	if !audienceHas(claims["aud"], o.Audience) {
		return errToken("wrong audience")
	}
	return nil
}

// introspectionSlots is the semaphore of running introspections, made
// at first use with MaxIntrospections places.
func (o *OAuth) introspectionSlots() chan struct{} {
	o.semOnce.Do(func() {
		n := o.MaxIntrospections
		if n <= 0 {
			n = DefaultMaxIntrospections
		}
		o.sem = make(chan struct{}, n)
	})
	return o.sem
}

// isB64Token reports whether s is an RFC 6750 b64token: letters, digits,
// "-._~+/" and trailing "=".
func isB64Token(s string) bool {
	i := 0
	for ; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-._~+/", c) >= 0) {
			break
		}
	}
	if i == 0 {
		return false
	}
	for ; i < len(s); i++ {
		if s[i] != '=' {
			return false
		}
	}
	return true
}
