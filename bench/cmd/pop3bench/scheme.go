package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// pairing is the password hash both servers of a comparison use, with the
// same parameters, so that neither pays for a costlier hash than the other.
// Both remember a verified password for the same time (an operator's
// setting: Dovecot's auth_cache_size with auth_cache_ttl, pop3d's
// auth.cache_ttl).
type pairing struct {
	Scheme      string        // sha512-crypt | argon2id
	DovecotHash string        // Dovecot's passwd-file entry: {SCHEME}hash
	DovecotDesc string        // e.g. "SHA512-CRYPT rounds=5000"
	Pop3dAuth   string        // the [auth] lines of pop3d.toml
	Pop3dDesc   string        // e.g. "sha512-crypt rounds=5000"
	CacheTTL    time.Duration // both servers' auth cache lifetime
}

// Schemes maps the comparison's -scheme to Dovecot's scheme name.
var Schemes = map[string]string{"sha512-crypt": "SHA512-CRYPT", "argon2id": "ARGON2ID"}

// DovecotAuthCacheSize is the peer's auth cache: room for every mailbox of
// the corpus many times over.
const DovecotAuthCacheSize = "10M"

// String names both sides, for the report.
func (p pairing) String() string {
	return fmt.Sprintf("pop3d %s, auth.cache_ttl %v / Dovecot %s, auth_cache_size %s, auth_cache_ttl %v",
		p.Pop3dDesc, p.CacheTTL, p.DovecotDesc, DovecotAuthCacheSize, p.CacheTTL)
}

// pairScheme hashes the password with Dovecot's tool in scheme and derives
// pop3d's settings from the parameters of that hash. Without Dovecot (bin
// empty) it uses Dovecot 2.3's defaults for the scheme.
func pairScheme(ctx context.Context, bin, scheme, password string, ttl time.Duration) (pairing, error) {
	dname, ok := Schemes[scheme]
	if !ok {
		return pairing{}, fmt.Errorf("-scheme %q: want sha512-crypt or argon2id", scheme)
	}
	var hash string
	switch {
	case bin != "":
		h, err := hashPassword(ctx, bin, dname, password)
		if err != nil {
			return pairing{}, err
		}
		hash = h
	case scheme == "argon2id":
		hash = "{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=1$"
	default:
		hash = "{SHA512-CRYPT}$6$"
	}
	p, err := pairFromHash(hash, ttl)
	if err != nil {
		return pairing{}, err
	}
	if bin == "" {
		p.DovecotHash = ""
	}
	return p, nil
}

// pairFromHash reads the scheme and parameters of a Dovecot passwd-file
// hash and writes pop3d's matching [auth] settings.
func pairFromHash(hash string, ttl time.Duration) (pairing, error) {
	p := pairing{DovecotHash: hash, CacheTTL: ttl}
	cache := fmt.Sprintf("cache_ttl = %q\n", ttl.String())
	switch {
	case strings.HasPrefix(hash, "{SHA512-CRYPT}$6$"):
		rounds := 5000 // crypt(3)'s default when the hash names none
		rest := strings.TrimPrefix(hash, "{SHA512-CRYPT}$6$")
		if r, ok := strings.CutPrefix(rest, "rounds="); ok {
			n, _, _ := strings.Cut(r, "$")
			v, err := strconv.Atoi(n)
			if err != nil {
				return p, fmt.Errorf("SHA512-CRYPT hash with bad rounds %q", n)
			}
			rounds = v
		}
		p.Scheme = "sha512-crypt"
		p.DovecotDesc = fmt.Sprintf("SHA512-CRYPT rounds=%d", rounds)
		p.Pop3dDesc = fmt.Sprintf("sha512-crypt rounds=%d", rounds)
		p.Pop3dAuth = fmt.Sprintf("hash = \"sha512-crypt\"\nsha512_rounds = %d\n%s", rounds, cache)
	case strings.HasPrefix(hash, "{ARGON2ID}$argon2id$"):
		// $argon2id$v=19$m=65536,t=3,p=1$salt$key
		f := strings.Split(strings.TrimPrefix(hash, "{ARGON2ID}"), "$")
		if len(f) < 4 {
			return p, fmt.Errorf("ARGON2ID hash without parameters: %q", hash)
		}
		var m, t, par int
		for _, kv := range strings.Split(f[3], ",") {
			k, v, _ := strings.Cut(kv, "=")
			n, err := strconv.Atoi(v)
			if err != nil {
				return p, fmt.Errorf("ARGON2ID hash with bad parameter %q", kv)
			}
			switch k {
			case "m":
				m = n
			case "t":
				t = n
			case "p":
				par = n
			}
		}
		if m == 0 || t == 0 || par == 0 {
			return p, fmt.Errorf("ARGON2ID hash without m, t and p: %q", f[3])
		}
		p.Scheme = "argon2id"
		p.DovecotDesc = fmt.Sprintf("ARGON2ID m=%dKiB t=%d p=%d", m, t, par)
		p.Pop3dDesc = fmt.Sprintf("argon2id m=%dKiB t=%d p=%d", m, t, par)
		p.Pop3dAuth = fmt.Sprintf("hash = \"argon2id\"\nargon2_time = %d\nargon2_memory = \"%dKB\"\nargon2_threads = %d\n%s", t, m, par, cache)
	default:
		return p, fmt.Errorf("hash scheme not paired with pop3d: %.30q", hash)
	}
	return p, nil
}
