package auth

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/pop3svc/pop3svc/store"
)

// OAuth 2.0 bearer token mechanisms: OAUTHBEARER (RFC 7628) and XOAUTH2.
const (
	MechOAuthBearer = "OAUTHBEARER"
	MechXOAuth2     = "XOAUTH2"
)

// Limits of OAuth input: a token, a JWKS document.
const (
	maxBearerToken = 8192
	maxJWKS        = 1 << 20
	// jwksRefetchAfter is the shortest time between two fetches of
	// jwks_url caused by a token whose key is unknown.
	jwksRefetchAfter = time.Minute
)

// OAuth validates bearer tokens as JWTs (RFC 7519) signed with RS256,
// RS384, RS512, ES256 or ES384 by a key of the issuer's JWKS (RFC 7517):
// the issuer (iss), the audience (aud), the expiry (exp, required) and
// not-before (nbf) are checked, and Claim names the mailbox. With
// IntrospectionURL the authorization server says instead whether a token
// is active and what its claims are (RFC 7662). It is safe for concurrent
// use.
type OAuth struct {
	Issuer   string
	Audience string
	Claim    string // the claim holding mailbox@domain; "" : "email"
	JWKSFile string // a local JWKS, read at start and when a token names an unknown key
	JWKSURL  string // or fetched over HTTP(S)
	Leeway   time.Duration
	Now      func() time.Time // nil: time.Now
	// Client fetches JWKSURL; nil: a client with a 10-second timeout.
	Client *http.Client
	// Config is the URL sent in RFC 7628's error JSON as
	// "openid-configuration"; "" leaves it out.
	Config string
	// IntrospectionURL, when set, validates tokens by asking the
	// authorization server (RFC 7662) instead of checking them as JWTs
	// against a JWKS; ClientID and ClientSecret authenticate the asking.
	// MaxIntrospections bounds the requests running at once (0:
	// DefaultMaxIntrospections).
	IntrospectionURL  string
	ClientID          string
	ClientSecret      string
	MaxIntrospections int
	semOnce           sync.Once
	sem               chan struct{}
	// IntrospectionCache, when positive, is how long an answer that
	// accepted a token is remembered (never past the token's exp), so
	// that the same token within it costs no request; at most
	// IntrospectionCacheEntries (0: DefaultIntrospectionCacheEntries)
	// answers are kept. A refused token is asked about every time.
	IntrospectionCache        time.Duration
	IntrospectionCacheEntries int
	cacheMu                   sync.Mutex
	cache                     map[[sha256.Size]byte]cachedAnswer

	mu      sync.Mutex
	keys    map[string]crypto.PublicKey // by kid
	fetched time.Time
}

// errToken wraps ErrAuthFailed: the token is not acceptable.
func errToken(why string) error { return fmt.Errorf("%w: bearer token: %s", ErrAuthFailed, why) }

func (o *OAuth) now() time.Time {
	if o.Now != nil {
		return o.Now()
	}
	return time.Now()
}

// Verify checks a token, as a JWT or by introspection (IntrospectionURL),
// and returns the mailbox name its claim holds.
func (o *OAuth) Verify(ctx context.Context, token string) (string, error) {
	var claims map[string]any
	var err error
	if o.IntrospectionURL != "" {
		claims, err = o.introspect(ctx, token)
	} else {
		claims, err = o.verifyJWT(ctx, token)
	}
	if err != nil {
		return "", err
	}
	claim := o.Claim
	if claim == "" {
		claim = "email"
	}
	name, ok := claims[claim].(string)
	if !ok || name == "" {
		return "", errToken("no " + claim + " claim")
	}
	return name, nil
}

type jwtHeader struct {
	Alg string `json:"alg"`
	Kid string `json:"kid"`
	Typ string `json:"typ"`
}

// parseJWT splits a compact JWS and decodes its header and claims; it
// checks no signature.
func parseJWT(token string) (h jwtHeader, claims map[string]any, signed string, sig []byte, err error) {
	if len(token) > maxBearerToken {
		return h, nil, "", nil, errToken("too long")
	}
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return h, nil, "", nil, errToken("not a compact JWS")
	}
	hb, err1 := base64.RawURLEncoding.Strict().DecodeString(parts[0])
	cb, err2 := base64.RawURLEncoding.Strict().DecodeString(parts[1])
	sig, err3 := base64.RawURLEncoding.Strict().DecodeString(parts[2])
	if err1 != nil || err2 != nil || err3 != nil {
		return h, nil, "", nil, errToken("not base64url")
	}
	if err := json.Unmarshal(hb, &h); err != nil {
		return h, nil, "", nil, errToken("bad header")
	}
	d := json.NewDecoder(strings.NewReader(string(cb)))
	d.UseNumber()
	if err := d.Decode(&claims); err != nil || claims == nil {
		return h, nil, "", nil, errToken("bad claims")
	}
	return h, claims, parts[0] + "." + parts[1], sig, nil
}

func (o *OAuth) verifyJWT(ctx context.Context, token string) (map[string]any, error) {
	h, claims, signed, sig, err := parseJWT(token)
	if err != nil {
		return nil, err
	}
	key, err := o.key(ctx, h.Kid)
	if err != nil {
		return nil, err
	}
	if err := verifySignature(h.Alg, key, signed, sig); err != nil {
		return nil, err
	}
	now := o.now()
	if iss, _ := claims["iss"].(string); iss != o.Issuer {
		return nil, errToken("wrong issuer")
	}
	if !audienceHas(claims["aud"], o.Audience) {
		return nil, errToken("wrong audience")
	}
	exp, ok := numericDate(claims["exp"])
	if !ok {
		return nil, errToken("no expiry")
	}
	if !now.Before(exp.Add(o.Leeway)) {
		return nil, errToken("expired")
	}
	if nbf, ok := numericDate(claims["nbf"]); ok && now.Add(o.Leeway).Before(nbf) {
		return nil, errToken("not valid yet")
	}
	return claims, nil
}

func audienceHas(aud any, want string) bool {
	switch a := aud.(type) {
	case string:
		return a == want
	case []any:
		for _, x := range a {
			if s, ok := x.(string); ok && s == want {
				return true
			}
		}
	}
	return false
}

func numericDate(v any) (time.Time, bool) {
	n, ok := v.(json.Number)
	if !ok {
		return time.Time{}, false
	}
	f, err := n.Float64()
	if err != nil || f < 0 || f > 1e11 {
		return time.Time{}, false
	}
	return time.Unix(int64(f), 0), true
}

// verifySignature checks a JWS signature (RFC 7518 section 3); "none" and
// the HMAC algorithms are refused: the key must fit the algorithm.
func verifySignature(alg string, key crypto.PublicKey, signed string, sig []byte) error {
	var hash crypto.Hash
	var sum []byte
	switch alg {
	case "RS256", "ES256":
		s := sha256.Sum256([]byte(signed))
		hash, sum = crypto.SHA256, s[:]
	case "RS384", "ES384":
		s := sha512.Sum384([]byte(signed))
		hash, sum = crypto.SHA384, s[:]
	case "RS512":
		s := sha512.Sum512([]byte(signed))
		hash, sum = crypto.SHA512, s[:]
	default:
		return errToken("algorithm " + alg + " not accepted")
	}
	switch k := key.(type) {
	case *rsa.PublicKey:
		if alg[0] != 'R' || rsa.VerifyPKCS1v15(k, hash, sum, sig) != nil {
			return errToken("bad signature")
		}
	case *ecdsa.PublicKey:
		size := (k.Curve.Params().BitSize + 7) / 8
		if alg[0] != 'E' || len(sig) != 2*size || (alg == "ES256") != (k.Curve == elliptic.P256()) {
			return errToken("bad signature")
		}
		r := new(big.Int).SetBytes(sig[:size])
		s := new(big.Int).SetBytes(sig[size:])
		if !ecdsa.Verify(k, sum, r, s) {
			return errToken("bad signature")
		}
	default:
		return errToken("bad key")
	}
	return nil
}

// key returns the issuer's key kid; an unknown kid reloads the JWKS, at
// most once a minute.
func (o *OAuth) key(ctx context.Context, kid string) (crypto.PublicKey, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if k, ok := o.lookup(kid); ok {
		return k, nil
	}
	if o.keys != nil && o.now().Sub(o.fetched) < jwksRefetchAfter {
		return nil, errToken("unknown key")
	}
	keys, err := o.loadJWKS(ctx)
	o.fetched = o.now()
	if err != nil {
		return nil, fmt.Errorf("%w: the issuer's keys: %w", ErrUnavailable, err)
	}
	o.keys = keys
	if k, ok := o.lookup(kid); ok {
		return k, nil
	}
	return nil, errToken("unknown key")
}

// lookup finds kid; a token without kid takes the only key there is.
func (o *OAuth) lookup(kid string) (crypto.PublicKey, bool) {
	if kid == "" && len(o.keys) == 1 {
		for _, k := range o.keys {
			return k, true
		}
	}
	k, ok := o.keys[kid]
	return k, ok
}

func (o *OAuth) loadJWKS(ctx context.Context) (map[string]crypto.PublicKey, error) {
	var b []byte
	var err error
	switch {
	case o.JWKSFile != "":
		f, ferr := os.Open(o.JWKSFile)
		if ferr != nil {
			return nil, ferr
		}
		b, err = io.ReadAll(io.LimitReader(f, maxJWKS+1))
		f.Close()
	case o.JWKSURL != "":
		c := o.Client
		if c == nil {
			c = &http.Client{Timeout: 10 * time.Second}
		}
		req, rerr := http.NewRequestWithContext(ctx, http.MethodGet, o.JWKSURL, nil)
		if rerr != nil {
			return nil, rerr
		}
		resp, herr := c.Do(req)
		if herr != nil {
			return nil, herr
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("%s: %s", o.JWKSURL, resp.Status)
		}
		b, err = io.ReadAll(io.LimitReader(resp.Body, maxJWKS+1))
	default:
		return nil, errors.New("neither jwks_file nor jwks_url is set")
	}
	if err != nil {
		return nil, err
	}
	if len(b) > maxJWKS {
		return nil, errors.New("JWKS larger than 1 MiB")
	}
	return ParseJWKS(b)
}

// ParseJWKS reads the RSA and EC (P-256, P-384) signature keys of a JWK
// Set (RFC 7517 section 5); other keys are skipped.
func ParseJWKS(b []byte) (map[string]crypto.PublicKey, error) {
	var set struct {
		Keys []struct {
			Kty string `json:"kty"`
			Kid string `json:"kid"`
			Use string `json:"use"`
			N   string `json:"n"`
			E   string `json:"e"`
			Crv string `json:"crv"`
			X   string `json:"x"`
			Y   string `json:"y"`
		} `json:"keys"`
	}
	if err := json.Unmarshal(b, &set); err != nil {
		return nil, fmt.Errorf("bad JWKS: %w", err)
	}
	keys := make(map[string]crypto.PublicKey)
	dec := base64.RawURLEncoding.DecodeString
	for _, k := range set.Keys {
		if k.Use != "" && k.Use != "sig" {
			continue
		}
		switch k.Kty {
		case "RSA":
			n, err1 := dec(k.N)
			e, err2 := dec(k.E)
			if err1 != nil || err2 != nil || len(n) < 256 || len(n) > 1024 || len(e) == 0 || len(e) > 4 {
				continue // RSA keys of 2048 to 8192 bits
			}
			ev := int(new(big.Int).SetBytes(e).Int64())
			if ev < 3 {
				continue
			}
			keys[k.Kid] = &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: ev}
		case "EC":
			var curve elliptic.Curve
			switch k.Crv {
			case "P-256":
				curve = elliptic.P256()
			case "P-384":
				curve = elliptic.P384()
			default:
				continue
			}
			x, err1 := dec(k.X)
			y, err2 := dec(k.Y)
			size := (curve.Params().BitSize + 7) / 8
			if err1 != nil || err2 != nil || len(x) != size || len(y) != size {
				continue
			}
			// The point must be on the curve: ecdh's parser checks it.
			pt := append(append([]byte{4}, x...), y...)
			pub, err := ecdsa.ParseUncompressedPublicKey(curve, pt)
			if err != nil {
				continue
			}
			keys[k.Kid] = pub
		}
	}
	return keys, nil
}

// oauthMech is OAUTHBEARER (RFC 7628) or XOAUTH2. A refused token gets
// the RFC 7628 error JSON as a challenge; the client's answer to it (a
// lone 0x01, or empty for XOAUTH2) ends the exchange with a failure.
type oauthMech struct {
	a      *Authenticator
	xoauth bool
	step   int
	addr   store.Address
	failed error
}

func (m *oauthMech) Address() store.Address { return m.addr }

func (m *oauthMech) Next(ctx context.Context, resp []byte) ([]byte, bool, error) {
	switch m.step {
	case 0:
		m.step = 1
		if resp == nil {
			return []byte{}, false, nil
		}
		fallthrough
	case 1:
		m.step = 2
		user, token, err := parseOAuthMessage(resp, m.xoauth)
		if err != nil {
			return nil, true, fmt.Errorf("%w: %w: %w", ErrAuthFailed, errProtocol, err)
		}
		addr, err := m.check(ctx, user, token)
		if err == nil {
			m.addr = addr
			return nil, true, nil
		}
		if errors.Is(err, ErrUnavailable) {
			return nil, true, err
		}
		m.failed = err
		return m.a.OAuth.errorJSON(), false, nil
	case 2:
		m.step = 3
		// RFC 7628 section 3.2.3: the client's dummy response to the
		// error; the server then fails the exchange.
		return nil, true, m.failed
	}
	return nil, true, ErrExchangeOver
}

func (m *oauthMech) check(ctx context.Context, user, token string) (store.Address, error) {
	name, err := m.a.OAuth.Verify(ctx, token)
	if err != nil {
		return store.Address{}, err
	}
	addr, err := m.a.Resolve(name)
	if err != nil {
		return store.Address{}, errToken("the claim names no valid mailbox")
	}
	if user != "" {
		if u, err := m.a.Resolve(user); err != nil || u != addr {
			return store.Address{}, errToken("the user named is not the token's")
		}
	}
	return addr, nil
}

// errorJSON is RFC 7628 section 3.2.2's failure message.
func (o *OAuth) errorJSON() []byte {
	v := map[string]string{"status": "invalid_token"}
	if o.Config != "" {
		v["openid-configuration"] = o.Config
	}
	b, _ := json.Marshal(v)
	return b
}

// parseOAuthMessage reads an OAUTHBEARER client message (RFC 7628
// section 3.1: gs2-header kvsep *(key=value kvsep) kvsep) or an XOAUTH2
// one ("user=" user ^A "auth=Bearer " token ^A ^A) and returns the user
// named (authzid or user=; "" when none) and the token.
func parseOAuthMessage(b []byte, xoauth bool) (user, token string, err error) {
	if len(b) > maxBearerToken+1024 {
		return "", "", errors.New("message too long")
	}
	s := string(b)
	if !xoauth {
		gs2, rest, ok := strings.Cut(s, "\x01")
		if !ok {
			return "", "", errors.New("no kvsep after the GS2 header")
		}
		f := strings.Split(gs2, ",")
		if len(f) != 3 || f[2] != "" || (f[0] != "n" && f[0] != "y") {
			return "", "", errors.New("bad GS2 header (channel binding is not supported)")
		}
		if f[1] != "" {
			a, ok := strings.CutPrefix(f[1], "a=")
			if !ok {
				return "", "", errors.New("bad authorization identity")
			}
			if user, err = decodeSASLName(a); err != nil {
				return "", "", err
			}
		}
		s = rest
	}
	if !strings.HasSuffix(s, "\x01\x01") {
		return "", "", errors.New("message does not end with two kvsep")
	}
	for _, kv := range strings.Split(strings.TrimSuffix(s, "\x01\x01"), "\x01") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return "", "", errors.New("bad key=value")
		}
		switch {
		case k == "auth":
			scheme, tok, ok := strings.Cut(v, " ")
			if !ok || !strings.EqualFold(scheme, "Bearer") || tok == "" || token != "" {
				return "", "", errors.New("bad auth value")
			}
			token = strings.TrimSpace(tok)
		case xoauth && k == "user":
			user = v
		}
	}
	if token == "" {
		return "", "", errors.New("no bearer token")
	}
	return user, token, nil
}
