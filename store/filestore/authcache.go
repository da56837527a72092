package filestore

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/pop3svc/pop3svc/store/credential"
)

// DefaultAuthCacheTTL is how long a verified password is remembered.
const DefaultAuthCacheTTL = 10 * time.Minute

// authCacheMax bounds the number of remembered logins.
const authCacheMax = 200000

var (
	authCacheHits   = metrics.NewCounter(`store_auth_cache_total{result="hit"}`)
	authCacheMisses = metrics.NewCounter(`store_auth_cache_total{result="miss"}`)
)

// authCache remembers successful plaintext verifications so that a client
// polling every minute does not pay for an argon2id computation each time.
// It keeps, per mailbox, an HMAC of the password under a key that lives only
// in this process's memory, and a digest of the password-file record it was
// verified against: a changed password (a new record, with a new salt)
// invalidates the entry at once, on every server sharing the store, since
// the record is read from disk on every login. Only successes are kept:
// a wrong password always costs a full argon2id computation, exactly like
// an unknown mailbox, so the cache gives a guesser nothing.
type authCache struct {
	key [32]byte
	mu  sync.Mutex
	ttl time.Duration // guarded by mu: a reload changes it
	m   map[string]authCacheEntry
}

type authCacheEntry struct {
	record  [32]byte // sha256 of the record's salt and hash
	mac     [32]byte // HMAC-SHA256(key, password)
	expires time.Time
}

func newAuthCache(ttl time.Duration) *authCache {
	if ttl < 0 {
		return nil
	}
	if ttl == 0 {
		ttl = DefaultAuthCacheTTL
	}
	c := &authCache{ttl: ttl, m: make(map[string]authCacheEntry)}
	if _, err := rand.Read(c.key[:]); err != nil {
		return nil
	}
	return c
}

func (c *authCache) mac(password string) [32]byte {
	h := hmac.New(sha256.New, c.key[:])
	h.Write([]byte(password))
	var d [32]byte
	h.Sum(d[:0])
	return d
}

// check reports whether password was verified against record r for addr
// within the TTL.
func (c *authCache) check(addr string, r *credential.Record, password string, now time.Time) bool {
	if c == nil {
		return false
	}
	c.mu.Lock()
	e, ok := c.m[addr]
	c.mu.Unlock()
	if !ok || now.After(e.expires) || e.record != r.Digest() {
		authCacheMisses.Inc()
		return false
	}
	m := c.mac(password)
	if !hmac.Equal(m[:], e.mac[:]) {
		authCacheMisses.Inc()
		return false
	}
	authCacheHits.Inc()
	return true
}

// may reports whether an entry for addr within the TTL matches password,
// without reading the record: false means check would fail, so a wrong
// password costs no read of the password file. true still needs check,
// which also compares the record.
func (c *authCache) may(addr, password string, now time.Time) bool {
	if c == nil {
		return false
	}
	c.mu.Lock()
	e, ok := c.m[addr]
	c.mu.Unlock()
	if !ok || now.After(e.expires) {
		return false
	}
	m := c.mac(password)
	return hmac.Equal(m[:], e.mac[:])
}

// remember records a successful verification.
func (c *authCache) remember(addr string, r *credential.Record, password string, now time.Time) {
	if c == nil {
		return
	}
	e := authCacheEntry{record: r.Digest(), mac: c.mac(password)}
	c.mu.Lock()
	defer c.mu.Unlock()
	e.expires = now.Add(c.ttl)
	if len(c.m) >= authCacheMax {
		for k, old := range c.m {
			if now.After(old.expires) {
				delete(c.m, k)
			}
		}
		if len(c.m) >= authCacheMax {
			clear(c.m)
		}
	}
	c.m[addr] = e
}

// setTTL changes the TTL of entries remembered from now on; 0 means
// DefaultAuthCacheTTL.
func (c *authCache) setTTL(ttl time.Duration) {
	if ttl == 0 {
		ttl = DefaultAuthCacheTTL
	}
	c.mu.Lock()
	c.ttl = ttl
	c.mu.Unlock()
}

// forget drops the entry of addr (password changed or removed here).
func (c *authCache) forget(addr string) {
	if c == nil {
		return
	}
	c.mu.Lock()
	delete(c.m, addr)
	c.mu.Unlock()
}
