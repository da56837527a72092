package main

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pop3svc/pop3svc/cmd/internal/config"
	"github.com/pop3svc/pop3svc/cmd/pop3d/pop3dtest"
	"github.com/pop3svc/pop3svc/session/auth/jwttest"
)

// policyCases change auth.scram, auth.reversible_secrets and the per-domain and per-mailbox EXPIRE
// and LOGIN-DELAY keys; TestReloadAppliesPolicyKeys runs them. The pop3d
// starts with no EXPIRE and no LOGIN-DELAY. login_delay_domains is last:
// its probe records logins of alice.
func policyCases() []liveCase {
	return []liveCase{
		{key: "auth.scram", value: "off", want: "lacks SCRAM-SHA-256", probe: capaHas("SCRAM-SHA-256")},
		{key: "auth.reversible_secrets", value: "false", want: "no challenge mechanisms", probe: challengeOffers},
		{key: "pop3.expire_domains", value: "example.org=5", want: "EXPIRE 5", probe: expireAfterLogin},
		{key: "pop3.expire_mailboxes", value: "alice@example.org=7", prep: [][2]string{{"pop3.expire_domains", "example.org=5"}},
			want: "EXPIRE 7", probe: expireAfterLogin},
		{key: "pop3.login_delay_domains", value: "example.org=3600", want: "-ERR [LOGIN-DELAY]", probe: func(t *testing.T, in *pop3dtest.Server, ip string) string {
			loginAs(t, in, ip, testAddr.String(), testPassword)
			waitNoConnections(t, in)
			return loginAs(t, in, ip, testAddr.String(), testPassword)
		}},
	}
}

// expireAfterLogin logs alice in and returns CAPA's EXPIRE line ("no
// EXPIRE" without one).
func expireAfterLogin(t *testing.T, in *pop3dtest.Server, ip string) string {
	t.Helper()
	c, r := popLoginFrom(t, in.POP3, ip, testAddr.String(), testPassword)
	defer c.Close()
	if !strings.HasPrefix(r, "+OK") {
		t.Fatalf("login: %q", r)
	}
	if r := c.Cmd("CAPA"); !strings.HasPrefix(r, "+OK") {
		t.Fatalf("CAPA: %q", r)
	}
	got := "no EXPIRE"
	for _, l := range c.Multi() {
		if strings.HasPrefix(l, "EXPIRE ") {
			got = l
		}
	}
	c.Cmd("QUIT")
	return got
}

func popLoginFrom(t *testing.T, addr, ip, user, pass string) (*pop3dtest.Conn, string) {
	t.Helper()
	c := pop3dtest.Dial(t, addr, ip)
	if r := c.Cmd("USER " + user); !strings.HasPrefix(r, "+OK") {
		t.Fatalf("USER %s: %q", user, r)
	}
	return c, c.Cmd("PASS " + pass)
}

// TestReloadAppliesPolicyKeys changes auth.scram, pop3.expire_domains,
// pop3.expire_mailboxes and pop3.login_delay_domains on a running pop3d
// and looks at CAPA (SASL line before login, EXPIRE after) and at a
// second login of alice.
func TestReloadAppliesPolicyKeys(t *testing.T) {
	t.Parallel()
	in := pop3dtest.Start(t, reloadConfig(t, "", mailbox(1, 300)))
	runLiveCases(t, in, policyCases(), func(i int) string { return fmt.Sprintf("127.0.4.%d", 10+i) })
}

// TestReloadAppliesExpireSweep turns pop3.expire_sweep on for a running
// pop3d whose retention (pop3.expire = "0") already covers a message
// retrieved in an earlier session: the sweeper deletes it though no
// session of alice's ends. The shortest period allowed is a minute, so
// this waits that long (in parallel with the other tests); the old value
// (0: no sweep) is not probed, as that would mean waiting for nothing.
func TestReloadAppliesExpireSweep(t *testing.T) {
	t.Parallel()
	c := reloadConfig(t, "", mailbox(3, 300))
	c.POP3 += "\nexpire = \"1\""
	in := pop3dtest.Start(t, c)
	stat := func() string {
		t.Helper()
		p, r := popLoginFrom(t, in.POP3, "127.0.0.1", testAddr.String(), testPassword)
		defer p.Close()
		if !strings.HasPrefix(r, "+OK") {
			t.Fatalf("login: %q", r)
		}
		st := p.Cmd("STAT")
		if r := p.Cmd("QUIT"); !strings.HasPrefix(r, "+OK") {
			t.Fatalf("QUIT: %q", r)
		}
		waitNoConnections(t, in)
		return strings.Join(strings.Fields(st)[:2], " ")
	}
	// Retrieve message 2 with a day's retention: its first retrieval is
	// recorded and it stays.
	p, r := popLoginFrom(t, in.POP3, "127.0.0.1", testAddr.String(), testPassword)
	if !strings.HasPrefix(r, "+OK") {
		t.Fatalf("login: %q", r)
	}
	p.Send("RETR 2\r\n")
	p.Expect("+OK")
	p.Multi()
	if r := p.Cmd("QUIT"); !strings.HasPrefix(r, "+OK") {
		t.Fatalf("QUIT: %q", r)
	}
	p.Close()
	waitNoConnections(t, in)
	if got := stat(); got != "+OK 3" {
		t.Fatalf("after retrieving message 2 with a day's retention: STAT %q, want 3 messages", got)
	}
	// With no sweep, nothing deletes it until a session of alice's ends;
	// the test opens none, and looks at the mailbox only after the sweep.
	setAndReload(t, in, "pop3.expire", "0")
	setAndReload(t, in, "pop3.expire_sweep", "1m")
	// The sweep runs a minute after the reload.
	swept := regexp.MustCompile(`msg="expire sweep" .*expired=1`)
	pop3dtest.WaitFor(t, 3*time.Minute, "the expire sweep to delete the retrieved message", func() bool {
		return swept.MatchString(in.Log())
	})
	if got := stat(); got != "+OK 2" {
		t.Fatalf("after the sweep: STAT %q, want 2 messages", got)
	}
}

// newOAuthKey makes a P-256 key and a JWK Set holding it (kid
// kid), which it returns with the key.
func newOAuthKey(t *testing.T, kid string) (*ecdsa.PrivateKey, []byte) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k, jwttest.JWKS(map[string]crypto.PublicKey{kid: &k.PublicKey})
}

// oauthLogin logs in with AUTH OAUTHBEARER (RFC 7628) and returns the
// reply's prefix ("+OK" or "-ERR [AUTH]"). On a refusal the server's
// error challenge is answered with %x01.
func oauthLogin(t *testing.T, in *pop3dtest.Server, ip, user, token string) string {
	t.Helper()
	p := pop3dtest.Dial(t, in.POP3, ip)
	defer p.Close()
	r := p.Cmd("AUTH OAUTHBEARER")
	if !strings.HasPrefix(r, "+") {
		return prefix(r) // OAuth off: the mechanism is unknown
	}
	r = p.Cmd(base64.StdEncoding.EncodeToString([]byte("n,a=" + user + ",\x01auth=Bearer " + token + "\x01\x01")))
	if strings.HasPrefix(r, "+ ") {
		r = p.Cmd("AQ==")
	}
	p.Cmd("QUIT")
	return prefix(r)
}

// setKeys sets the keys in order (each step a valid configuration) and
// reloads once.
func setKeys(t *testing.T, in *pop3dtest.Server, kv ...string) {
	t.Helper()
	for i := 0; i < len(kv); i += 2 {
		if err := config.Set(in.Conf, kv[i], kv[i+1]); err != nil {
			t.Fatalf("set %s %q: %v", kv[i], kv[i+1], err)
		}
	}
	if restart := reloadAPI(t, in); len(restart) != 0 {
		t.Fatalf("reload after %v: restart %v", kv, restart)
	}
}

// TestReloadAppliesOAuthKeys changes each [oauth] key on a running pop3d
// and logs in with OAUTHBEARER a token that only the new value accepts:
// refused before the reload, accepted after. oauth.issuer is first turned
// on from off (CAPA's SASL line gains OAUTHBEARER), then changed.
func TestReloadAppliesOAuthKeys(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	key1, set1 := newOAuthKey(t, "k1")
	key2, set2 := newOAuthKey(t, "k2")
	key3, set3 := newOAuthKey(t, "k3")
	file1, file2 := filepath.Join(dir, "jwks1.json"), filepath.Join(dir, "jwks2.json")
	for f, s := range map[string][]byte{file1: set1, file2: set2} {
		if err := os.WriteFile(f, s, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	idp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(set3)
	}))
	t.Cleanup(idp.Close)

	c := reloadConfig(t, "", mailbox(1, 300))
	c.Tables = fmt.Sprintf("[oauth]\njwks_file = %q\naudience = \"pop3.test\"\nclaim = \"email\"\n", file1)
	in := pop3dtest.Start(t, c)
	user := testAddr.String()
	// cur is the configuration in force; a token is made for it with one
	// field changed.
	cur := map[string]any{"iss": "https://idp1.test", "aud": "pop3.test", "email": user}
	token := func(key *ecdsa.PrivateKey, kid string, mod map[string]any) string {
		claims := map[string]any{"exp": time.Now().Add(time.Hour).Unix()}
		for k, v := range cur {
			claims[k] = v
		}
		for k, v := range mod {
			if v == nil {
				delete(claims, k)
			} else {
				claims[k] = v
			}
		}
		return signJWT(t, key, kid, claims)
	}
	for i, step := range []struct {
		name   string
		change []string          // keys and values, set in order, one reload
		key    *ecdsa.PrivateKey // the token's signer
		kid    string
		mod    map[string]any // the token's claims over cur (nil: left out), and cur from now on
	}{
		{name: "oauth.issuer on", change: []string{"oauth.issuer", "https://idp1.test"}, key: key1, kid: "k1"},
		{name: "oauth.issuer", change: []string{"oauth.issuer", "https://idp2.test"}, key: key1, kid: "k1",
			mod: map[string]any{"iss": "https://idp2.test"}},
		{name: "oauth.audience", change: []string{"oauth.audience", "pop3-2.test"}, key: key1, kid: "k1",
			mod: map[string]any{"aud": "pop3-2.test"}},
		{name: "oauth.claim", change: []string{"oauth.claim", "mailbox"}, key: key1, kid: "k1",
			mod: map[string]any{"email": nil, "mailbox": user}},
		{name: "oauth.jwks_file", change: []string{"oauth.jwks_file", file2}, key: key2, kid: "k2"},
		// Exactly one of jwks_file and jwks_url may be set while the
		// issuer is: it is turned off for the edit and on again before
		// the one reload.
		{name: "oauth.jwks_url", change: []string{"oauth.issuer", "", "oauth.jwks_file", "", "oauth.jwks_url", idp.URL + "/jwks", "oauth.issuer", "https://idp2.test"},
			key: key3, kid: "k3"},
	} {
		t.Run(step.name, func(t *testing.T) {
			ip := fmt.Sprintf("127.0.5.%d", 10+i)
			tok := token(step.key, step.kid, step.mod)
			if i == 0 {
				if got := capaHas("OAUTHBEARER")(t, in, ip); got != "lacks OAUTHBEARER" {
					t.Fatalf("with oauth.issuer empty CAPA %s", got)
				}
			}
			if got := oauthLogin(t, in, ip, user, tok); got == "+OK" {
				t.Fatalf("before the change the token is accepted")
			}
			waitNoConnections(t, in)
			setKeys(t, in, step.change...)
			if i == 0 {
				if got := capaHas("OAUTHBEARER")(t, in, ip); got != "has OAUTHBEARER" {
					t.Fatalf("with oauth.issuer set CAPA %s", got)
				}
			}
			if got := oauthLogin(t, in, ip, user, tok); got != "+OK" {
				t.Fatalf("after the change the token gets %q, want +OK", got)
			}
			waitNoConnections(t, in)
			for k, v := range step.mod {
				if v == nil {
					delete(cur, k)
				} else {
					cur[k] = v
				}
			}
		})
	}
}

// queueCases change the keys of the auth queue's lines (auth.net_failures,
// auth.suspect_workers, auth.net_trust) and the collector's room
// (auth.hash_gc_room); TestReloadAppliesAuthQueueKeys runs them. Each
// case dials from a /24 of its own, so the guard's memory of one network
// does not reach the next case.
func queueCases() []liveCase {
	narrow := [][2]string{{"auth.hash_workers", "4"}, {"auth.queue", "0"}}
	return append(hashProcessCases(), []liveCase{
		// One failure makes the network suspect (default: two), and its
		// checks then get one slot of four.
		{key: "auth.net_failures", value: "1", prep: append(narrow, [2]string{"auth.suspect_workers", "1"}),
			want: "refused", probe: failThenBurst},
		// The network is suspect after one failure; two of its checks at
		// once fit half of four slots (the default), not one.
		{key: "auth.suspect_workers", value: "1", prep: append(narrow, [2]string{"auth.net_failures", "1"}),
			want: "refused", probe: failThenBurst},
		// With one slot and one waiting place per line, another network's
		// flood of wrong passwords (neither suspect nor banned: no
		// network count, no bans, no penalty) keeps the line of networks
		// not seen logging in full: a login from a network that logged in
		// lately waits in the trusted line (net_trust, default an hour),
		// and once trust is off it is refused like the flood's.
		{key: "auth.net_trust", value: "0s", prep: [][2]string{{"auth.hash_workers", "1"}, {"auth.queue", "1"},
			{"auth.net_failures", "0"}, {"auth.ban_after", "0"}},
			want: "refused", probe: trustedDuringFlood},
		// The room is an allocation the queue holds (never touched, so
		// address space rather than memory): the Go heap pop3d reports in
		// its metrics grows by it. Only for hashes computed in pop3d.
		{key: "auth.hash_gc_room", value: "512MB", prep: [][2]string{{"auth.hash_processes", "false"}}, want: "heap holds the room", probe: func(t *testing.T, in *pop3dtest.Server, ip string) string {
			if h := metric(t, in, "go_memstats_heap_alloc_bytes"); h >= 512<<20 {
				return "heap holds the room"
			} else if h == 0 {
				t.Fatal("no go_memstats_heap_alloc_bytes in /metrics")
			}
			return "heap below the room"
		}},
	}...)
}

// failThenBurst fails a login from ip, then logs in twice at once from
// ip (authBurst): "refused" when the auth queue refused one of them.
func failThenBurst(t *testing.T, in *pop3dtest.Server, ip string) string {
	if r := loginAs(t, in, ip, testAddr.String(), "wrong"); r != "-ERR [AUTH]" {
		t.Fatalf("wrong password: %q", r)
	}
	return authBurst(2)(t, in, ip)
}

// trustedDuringFlood logs in once from ip (its network is then trusted
// for auth.net_trust), then, while six clients of another network try
// wrong passwords over and over, logs in from ip up to 12 times:
// "refused" when the auth queue refused one of those logins, else "all
// served".
func trustedDuringFlood(t *testing.T, in *pop3dtest.Server, ip string) string {
	if r := loginAs(t, in, ip, testAddr.String(), testPassword); r != "+OK" {
		t.Fatalf("first login: %q", r)
	}
	waitNoConnections(t, in)
	login := "USER " + testAddr.String() + "\r\nPASS " + testPassword + "\r\nQUIT\r\n"
	// The flood's passwords are wrong: a network with a successful login
	// would be trusted too.
	floodLogin := "USER " + testAddr.String() + "\r\nPASS wrong\r\nQUIT\r\n"
	stop := make(chan struct{})
	var wg sync.WaitGroup
	// Each flood client goes round the addresses of its network: an
	// address the full queue refused is paced by the guard (Busy).
	flood := net.ParseIP(otherNet(ip)).To4()
	for c := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				from := net.IPv4(flood[0], flood[1], flood[2], byte(10+c*40+n%40)).String()
				script(in.POP3, from, floodLogin, 4) // refusals and errors are the flood's own
			}
		}()
	}
	defer wg.Wait()
	defer close(stop)
	// The flood is on once the queue has refused one of its checks.
	refused := metric(t, in, "pop3_auth_queue_refused_total")
	pop3dtest.WaitFor(t, 30*time.Second, "the flood to fill the auth queue", func() bool {
		return metric(t, in, "pop3_auth_queue_refused_total") > refused
	})
	for range 12 {
		lines, err := script(in.POP3, ip, login, 4)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range lines {
			if strings.HasPrefix(l, "-ERR [SYS/TEMP]") {
				t.Logf("refused: %q", l)
				return "refused"
			}
		}
	}
	return "all served"
}

// TestReloadAppliesAuthQueueKeys changes the auth queue's line keys and
// the collector's room on a running pop3d: the lines show in which logins
// the queue refuses, the room in the heap size pop3d reports.
func TestReloadAppliesAuthQueueKeys(t *testing.T) {
	t.Parallel()
	c := reloadConfig(t, "", mailbox(1, 300))
	c.Auth += "\ncache_ttl = \"0s\"" // every login a password check
	in := pop3dtest.Start(t, c)
	runLiveCases(t, in, queueCases(), func(i int) string { return fmt.Sprintf("127.0.%d.5", 60+2*i) })
}
