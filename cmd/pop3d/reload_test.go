package main

import (
	"bufio"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pop3svc/pop3svc/cmd/internal/config"
	"github.com/pop3svc/pop3svc/cmd/pop3d/pop3dtest"
	"github.com/pop3svc/pop3svc/store/credential"
	"github.com/pop3svc/pop3svc/store/filestore"
)

// liveCase is one live key: a probe that looks at a new connection (or
// the admin listener) returns what it saw, which must be want after the
// change and something else before it.
type liveCase struct {
	key, value string
	prep       [][2]string // other keys set first (and put back after)
	want       string
	probe      func(t *testing.T, in *pop3dtest.Server, ip string) string
	// noBefore: the old value would make the probe wait for longer than
	// a test should (a timeout of an hour), so only the new one is looked at.
	noBefore bool
}

// TestReloadAppliesLiveKeys changes live keys on a running pop3d, one at
// a time, with pop3ctl set and a reload, and observes each on a new
// connection; then it puts the old value back. Each case dials from its
// own loopback address, so that bans and per-address limits of one case
// do not reach the next. The live keys without a case here have their
// own tests (liveKeyTests); TestEveryKeyHasReloadTest checks that every
// key has one.
func TestReloadAppliesLiveKeys(t *testing.T) {
	c := integrationConfig(t, "logging = 3", "", mailbox(1, 2000))
	c.TLS = true
	c.POP3 = `login_timeout = "1h"`
	c.Auth = `fail_delay = "20ms"
penalty = "0s"
penalty_max = "0s"
cache_ttl = "0s"
ban_window = "1ms"
ban_time = "1ms"`
	c.SMTPTable = "max_connections = 100\nmax_conns_per_ip = 50"
	c.Tables = "[tls]\nhandshake_timeout = \"1h\"\n"
	in := pop3dtest.Start(t, c)
	runLiveCases(t, in, liveCases(), func(i int) string { return fmt.Sprintf("127.0.0.%d", 10+i) })
}

// runLiveCases runs each case as a subtest on in: the keys of prep are
// set first, the probe must not see want, the key is set and reloaded,
// the probe must see want on a new connection; then every key is put
// back. ip gives the i-th case its client address.
func runLiveCases(t *testing.T, in *pop3dtest.Server, cases []liveCase, ip func(i int) string) {
	for i, lc := range cases {
		t.Run(lc.key, func(t *testing.T) {
			ip := ip(i)
			var undo [][2]string
			defer func() {
				for j := len(undo) - 1; j >= 0; j-- {
					setAndReload(t, in, undo[j][0], undo[j][1])
				}
			}()
			for _, p := range lc.prep {
				undo = append(undo, [2]string{p[0], getKey(t, in, p[0])})
				setAndReload(t, in, p[0], p[1])
			}
			if !lc.noBefore {
				waitNoConnections(t, in)
				if got := lc.probe(t, in, ip); got == lc.want {
					t.Fatalf("before the change the probe already sees %q", got)
				}
			}
			undo = append(undo, [2]string{lc.key, getKey(t, in, lc.key)})
			setAndReload(t, in, lc.key, lc.value)
			waitNoConnections(t, in)
			if got := lc.probe(t, in, ip); got != lc.want {
				t.Fatalf("after set %s %s and a reload the probe sees %q, want %q", lc.key, lc.value, got, lc.want)
			}
		})
	}
}

func liveCases() []liveCase {
	return append([]liveCase{
		{key: "greeting", value: "Changed hello", want: "+OK Changed hello", probe: func(t *testing.T, in *pop3dtest.Server, ip string) string {
			return strings.SplitN(greeting(t, in, ip), " <", 2)[0]
		}},
		{key: "logging", value: "4", want: "debug", probe: debugLogged},
		{key: "default_domain", value: "example.org", want: "+OK", probe: func(t *testing.T, in *pop3dtest.Server, ip string) string {
			return loginAs(t, in, ip, "alice", testPassword)
		}},
		{key: "auth.method", value: "directory", prep: [][2]string{{"ldap.url", "ldap://127.0.0.1:9"}, {"ldap.bind_dn", "uid=%u,dc=example,dc=org"}}, want: "lacks CRAM-MD5", probe: capaHas("CRAM-MD5")},
		{key: "auth.sparequired", value: "true", want: "lacks USER", probe: capaHas("USER")},
		{key: "auth.apop", value: "false", want: "no timestamp", probe: func(t *testing.T, in *pop3dtest.Server, ip string) string {
			if strings.Contains(greeting(t, in, ip), "<") {
				return "timestamp"
			}
			return "no timestamp"
		}},
		{key: "auth.ntlm", value: "false", want: "lacks NTLM", probe: capaHas("NTLM")},
		{key: "auth.fail_delay", value: "2s", want: "at least 2s", noBefore: true, probe: func(t *testing.T, in *pop3dtest.Server, ip string) string {
			start := time.Now()
			loginAs(t, in, ip, testAddr.String(), "wrong")
			if time.Since(start) >= 2*time.Second {
				return "at least 2s"
			}
			return "shorter"
		}},
		{key: "auth.cache_ttl", value: "10m", want: "hit", probe: func(t *testing.T, in *pop3dtest.Server, ip string) string {
			loginAs(t, in, ip, testAddr.String(), testPassword)
			n := metric(t, in, `store_auth_cache_total{result="hit"}`)
			loginAs(t, in, ip, testAddr.String(), testPassword)
			if metric(t, in, `store_auth_cache_total{result="hit"}`) > n {
				return "hit"
			}
			return "miss"
		}},
		{key: "auth.hash", value: "sha512-crypt", want: "sha512-crypt 5000", probe: storedHash},
		{key: "auth.sha512_rounds", value: "2000", prep: [][2]string{{"auth.hash", "sha512-crypt"}}, want: "sha512-crypt 2000", probe: storedHash},
		{key: "auth.bcrypt_cost", value: "4", prep: [][2]string{{"auth.hash", "bcrypt"}}, want: "bcrypt 4", probe: storedHash},
		{key: "auth.argon2_time", value: "1", want: "argon2id t=1 m=19456 p=1", probe: storedHash},
		{key: "auth.argon2_memory", value: "64KB", want: "argon2id t=3 m=64 p=1", probe: storedHash},
		{key: "auth.argon2_threads", value: "2", want: "argon2id t=3 m=19456 p=2", probe: storedHash},
		{key: "auth.penalty", value: "100ms", prep: [][2]string{{"auth.penalty_max", "1s"}}, want: "penalty", probe: penalised},
		{key: "auth.ban_after", value: "1", prep: [][2]string{{"auth.ban_time", "1h"}}, want: "-ERR [AUTH]", probe: banned(1)},
		{key: "auth.ban_time", value: "1h", prep: [][2]string{{"auth.ban_after", "1"}}, want: "-ERR [AUTH]", probe: banned(1)},
		{key: "auth.ban_window", value: "1h", prep: [][2]string{{"auth.ban_after", "2"}, {"auth.ban_time", "1h"}}, want: "-ERR [AUTH]", probe: banned(2)},

		{key: "pop3.stls", value: "false", want: "lacks STLS", probe: capaHas("STLS")},
		{key: "pop3.expire", value: "5", want: "has EXPIRE 5", probe: capaHas("EXPIRE 5")},
		{key: "pop3.login_delay", value: "7", want: "has LOGIN-DELAY 7", probe: capaHas("LOGIN-DELAY 7")},
		// refuse_delay 1s: the refused second connection is held 0.5-1.5s,
		// well inside the client's read timeout.
		{key: "pop3.socketmax", value: "1", prep: [][2]string{{"pop3.socketmin", "1"}, {"pop3.socketbacklog", "0"}, {"pop3.refuse_delay", "1s"}}, want: "-ERR [SYS/TEMP]", probe: secondConnection},
		{key: "pop3.socketbacklog", value: "0", prep: [][2]string{{"pop3.socketmin", "1"}, {"pop3.socketmax", "1"}, {"pop3.refuse_delay", "1s"}}, want: "-ERR [SYS/TEMP]", probe: secondConnection},
		{key: "limits.max_conns_per_ip", value: "1", want: "-ERR [SYS/TEMP]", probe: secondConnection},
		{key: "limits.prelogin_per_ip", value: "1", want: "-ERR [SYS/TEMP]", probe: secondWhileFirstWaits},
		{key: "pop3.backlog_wait", value: "1s", prep: [][2]string{{"pop3.socketmin", "1"}, {"pop3.socketmax", "1"}}, want: "-ERR [SYS/TEMP]", noBefore: true, probe: func(t *testing.T, in *pop3dtest.Server, ip string) string {
			c1 := pop3dtest.Dial(t, in.POP3, ip)
			defer c1.Close()
			c2 := pop3dtest.DialRaw(t, in.POP3, ip)
			defer c2.Close()
			return prefix(c2.Line()) // held beyond backlog_wait while c1 stays
		}},
		{key: "pop3.threadcount", value: "7", want: "7", probe: func(t *testing.T, in *pop3dtest.Server, ip string) string {
			var st struct {
				POP3 struct {
					Pool struct{ Capacity int } `json:"pool"`
				} `json:"pop3"`
			}
			adminJSON(t, in, "/api/status", &st)
			return strconv.Itoa(st.POP3.Pool.Capacity)
		}},
		{key: "pop3.socketthreshold", value: "60", want: "refilled", probe: func(t *testing.T, in *pop3dtest.Server, ip string) string {
			greeting(t, in, ip)
			var st struct {
				POP3 struct {
					Sockets struct{ Free int } `json:"sockets"`
				} `json:"pop3"`
			}
			adminJSON(t, in, "/api/status", &st)
			if st.POP3.Sockets.Free >= 50 {
				return "refilled"
			}
			return "few"
		}},
		{key: "pop3.login_timeout", value: "1s", want: "closed", noBefore: true, probe: func(t *testing.T, in *pop3dtest.Server, ip string) string {
			p := pop3dtest.Dial(t, in.POP3, ip)
			defer p.Close()
			return closedSoon(p)
		}},
		{key: "pop3.idle_timeout", value: "1s", want: "closed", noBefore: true, probe: func(t *testing.T, in *pop3dtest.Server, ip string) string {
			p := pop3dtest.Dial(t, in.POP3, ip)
			defer p.Close()
			p.Send("USER " + testAddr.String() + "\r\nPASS " + testPassword + "\r\n")
			p.Expect("+OK")
			p.Expect("+OK")
			return closedSoon(p)
		}},

		{key: "limits.max_line", value: "5000", want: "+OK", probe: func(t *testing.T, in *pop3dtest.Server, ip string) string {
			p := pop3dtest.Dial(t, in.POP3, ip)
			defer p.Close()
			return prefix(p.Cmd("USER " + strings.Repeat("x", 2000)))
		}},
		{key: "limits.max_auth_line", value: "16384", want: "-ERR [AUTH]", probe: func(t *testing.T, in *pop3dtest.Server, ip string) string {
			p := pop3dtest.Dial(t, in.POP3, ip)
			defer p.Close()
			p.Send("AUTH PLAIN\r\n")
			p.Expect("+ ")
			return prefix(p.Cmd(strings.Repeat("QUFB", 2500))) // 10000 octets of base64
		}},
		{key: "limits.max_bad_commands", value: "2", want: "-ERR too many bad commands, closing connection", probe: func(t *testing.T, in *pop3dtest.Server, ip string) string {
			p := pop3dtest.Dial(t, in.POP3, ip)
			defer p.Close()
			p.Cmd("BOGUS")
			return p.Cmd("BOGUS")
		}},
		{key: "limits.max_auth_failures", value: "1", want: "closed", probe: func(t *testing.T, in *pop3dtest.Server, ip string) string {
			p := pop3dtest.Dial(t, in.POP3, ip)
			defer p.Close()
			p.Send("USER " + testAddr.String() + "\r\nPASS wrong\r\n")
			p.Expect("+OK")
			p.Expect("-ERR [AUTH]")
			p.Send("NOOP\r\n")
			if _, ok := p.ReadLine(); !ok {
				return "closed"
			}
			return "open"
		}},

		{key: "smtp.hostname", value: "mx-changed.test", want: "220 mx-changed.test", probe: func(t *testing.T, in *pop3dtest.Server, ip string) string {
			c := dialSMTP(t, in, ip)
			defer c.Close()
			return strings.SplitN(c.greeting, " ", 3)[0] + " " + strings.SplitN(c.greeting, " ", 3)[1]
		}},
		{key: "smtp.max_message_size", value: "123456", want: "SIZE 123456", probe: ehloHas("SIZE 123456")},
		{key: "smtp.max_recipients", value: "7", want: "LIMITS RCPTMAX=7", probe: ehloHas("LIMITS RCPTMAX=7")},
		{key: "smtp.max_line", value: "1000", want: "500", probe: func(t *testing.T, in *pop3dtest.Server, ip string) string {
			c := dialSMTP(t, in, ip)
			defer c.Close()
			return c.cmd(t, "NOOP "+strings.Repeat("x", 1500))[:3]
		}},
		{key: "smtp.read_timeout", value: "1s", want: "421", noBefore: true, probe: func(t *testing.T, in *pop3dtest.Server, ip string) string {
			c := dialSMTP(t, in, ip)
			defer c.Close()
			return c.reply(t)[:3] // nothing sent: the idle timeout answers
		}},
		{key: "smtp.max_connections", value: "1", want: "421", probe: secondSMTP},
		{key: "smtp.max_conns_per_ip", value: "1", want: "421", probe: secondSMTP},
		{key: "smtp.max_conns_per_net", value: "1", want: "421", probe: secondSMTP},
		{key: "quota.domain_default", value: "1KB", want: "552 5.2.2", probe: func(t *testing.T, in *pop3dtest.Server, ip string) string {
			c := dialSMTP(t, in, ip)
			defer c.Close()
			c.cmd(t, "EHLO client.test")
			c.cmd(t, "MAIL FROM:<bob@remote.test>")
			c.cmd(t, "RCPT TO:<"+testAddr.String()+">")
			c.cmd(t, "DATA")
			r := c.cmd(t, "Subject: quota\r\n\r\n"+strings.Repeat("0123456789\r\n", 300)+".")
			return r[:min(len(r), 9)]
		}},

		{key: "tls.min_version", value: "1.3", want: "refused", probe: func(t *testing.T, in *pop3dtest.Server, ip string) string {
			d := &net.Dialer{Timeout: pop3dtest.DialTimeout, LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
			conn, err := tls.DialWithDialer(d, "tcp", in.POP3S, &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS12})
			if err != nil {
				return "refused"
			}
			conn.Close()
			return "accepted"
		}},
		{key: "tls.handshake_timeout", value: "1s", want: "closed", noBefore: true, probe: func(t *testing.T, in *pop3dtest.Server, ip string) string {
			p := pop3dtest.DialRaw(t, in.POP3S, ip) // sends no ClientHello
			defer p.Close()
			return closedSoon(p)
		}},

		{key: "admin.pprof", value: "true", want: "200", probe: func(t *testing.T, in *pop3dtest.Server, ip string) string {
			return strconv.Itoa(adminGet(t, in, "/debug/pprof/"))
		}},
		{key: "admin.console", value: "false", want: "404", probe: func(t *testing.T, in *pop3dtest.Server, ip string) string {
			return strconv.Itoa(adminGet(t, in, "/console/"))
		}},
	}, limitCases()...)
}

// TestReloadReportsRestartKeys changes each restart key with pop3ctl set
// on a service pop3ctl can reach: the reload applies what it can and says,
// in the same words in pop3ctl's output, its JSON and the log, which key
// needs a restart; putting the value back clears the report. A live key
// set the same way is applied at once (sparequired, which make run's
// embedded defaults leave off).
func TestReloadReportsRestartKeys(t *testing.T) {
	c := integrationConfig(t, "", "", mailbox(0, 0))
	c.POP3 = `login_timeout = "10m"` // no login timeout on a loaded machine
	c.AdminListen = freeLoopbackAddr(t)
	in := pop3dtest.Start(t, c)

	out := in.Ctl(t, "", "set", "sparequired", "true")
	if !strings.Contains(out, "was told and reloaded") || strings.Contains(out, "restart") {
		t.Fatalf("set sparequired:\n%s", out)
	}
	if got := capaHas("USER")(t, in, "127.0.0.1"); got != "lacks USER" {
		t.Fatalf("after set sparequired true the plaintext CAPA %s", got)
	}

	for _, rc := range restartCases {
		key, value := rc[0], rc[1]
		old := getKey(t, in, key)
		notice := config.RestartNotice([]string{key})
		out := in.Ctl(t, "", "set", key, value)
		if !strings.Contains(out, "was told and reloaded") || !strings.Contains(out, notice) {
			t.Errorf("set %s %s says:\n%s\nwant the restart notice %q", key, value, out, notice)
		}
		// The log is copied from pop3d's stderr by a goroutine of the
		// test's: it may lag the reply a moment.
		if !pop3dtest.Eventually(10*time.Second, func() bool { return strings.Contains(in.Log(), notice) }) {
			t.Errorf("the log lacks the restart notice of %s", key)
		}
		if key == "admin.listen" {
			// pop3ctl finds the service at the file's admin.listen, where
			// it is not until it restarts: put it back by hand.
			if err := config.Set(in.Conf, key, old); err != nil {
				t.Fatal(err)
			}
			if restart := reloadAPI(t, in); len(restart) != 0 {
				t.Errorf("admin.listen put back: restart %v", restart)
			}
			continue
		}
		// Put it back.
		var v map[string]any
		raw := in.Ctl(t, "", "-json", "set", key, old)
		if err := json.Unmarshal([]byte(raw), &v); err != nil {
			t.Fatalf("set -json: %v\n%s", err, raw)
		}
		if v["reloaded"] != true || fmt.Sprint(v["restart"]) != "[]" || v["restart_notice"] != nil {
			t.Errorf("set %s back to %q: %v; want reloaded and nothing to restart", key, old, v)
		}
	}
	// The service still serves on what it started with.
	if g := greeting(t, in, "127.0.0.1"); !strings.HasPrefix(g, "+OK") {
		t.Fatalf("greeting after the reloads: %q", g)
	}
}

// restartCases are the restart keys, each with a changed value, that
// TestReloadReportsRestartKeys sets on a running pop3d.
var restartCases = [][2]string{
	{"mailroot", "elsewhere"},
	{"node", "2"},
	{"lock_lease", "2m"},
	{"pop3.listen", "127.0.0.1:1"},
	{"pop3.listen_tls", "127.0.0.1:2"},
	{"pop3.listen_backlog", "7"},
	{"smtp.listen", "127.0.0.1:3"},
	{"smtp.lmtp_listen", "127.0.0.1:4"},
	{"admin.listen", "127.0.0.1:5"},
	{"submission.listen", "127.0.0.1:6"},
	{"submission.listen_tls", "127.0.0.1:7"},
	{"outbound.workers", "3"},
}

// --- probes -------------------------------------------------------------

func prefix(l string) string {
	if strings.HasPrefix(l, "-ERR [") {
		return l[:strings.IndexByte(l, ']')+1]
	}
	f := strings.Fields(l)
	if len(f) == 0 {
		return l
	}
	return f[0]
}

func greeting(t *testing.T, in *pop3dtest.Server, ip string) string {
	t.Helper()
	p := pop3dtest.DialRaw(t, in.POP3, ip)
	defer p.Close()
	g := p.Line()
	p.Cmd("QUIT")
	return g
}

// debugLogged fails a login and reports whether the session's debug line
// ("session start") was logged. The log comes through a pipe, so the
// probe waits for the failed login's line, which is always logged and
// comes after the session's start: once it is there, so is a debug line
// written before it.
func debugLogged(t *testing.T, in *pop3dtest.Server, ip string) string {
	t.Helper()
	p := pop3dtest.Dial(t, in.POP3, ip)
	defer p.Close()
	remote := "remote=" + p.C.LocalAddr().String()
	p.Send("USER logprobe\r\nPASS wrong\r\n")
	p.Expect("+OK")
	p.Expect("-ERR")
	p.Cmd("QUIT")
	lines := func() []string {
		var ls []string
		for _, l := range strings.Split(in.Log(), "\n") {
			if strings.Contains(l, remote+" ") || strings.HasSuffix(l, remote) {
				ls = append(ls, l)
			}
		}
		return ls
	}
	pop3dtest.WaitFor(t, 10*time.Second, "the failed login logged", func() bool {
		return slices.ContainsFunc(lines(), func(l string) bool { return strings.Contains(l, `msg="login failed"`) })
	})
	if slices.ContainsFunc(lines(), func(l string) bool { return strings.Contains(l, `msg="session start"`) }) {
		return "debug"
	}
	return "quiet"
}

// capaHas probes the plaintext listener's CAPA for a line containing x.
func capaHas(x string) func(*testing.T, *pop3dtest.Server, string) string {
	return func(t *testing.T, in *pop3dtest.Server, ip string) string {
		p := pop3dtest.Dial(t, in.POP3, ip)
		defer p.Close()
		p.Send("CAPA\r\n")
		p.Expect("+OK")
		lines := p.Multi()
		p.Cmd("QUIT")
		for _, l := range lines {
			if slices.Contains(strings.Fields(l), x) || l == x {
				return "has " + x
			}
		}
		return "lacks " + x
	}
}

// loginAs answers the reply prefix of USER name / PASS pw.
func loginAs(t *testing.T, in *pop3dtest.Server, ip, name, pw string) string {
	t.Helper()
	p := pop3dtest.Dial(t, in.POP3, ip)
	defer p.Close()
	p.Send("USER " + name + "\r\nPASS " + pw + "\r\n")
	p.Expect("+OK")
	r := prefix(p.Line())
	p.Cmd("QUIT")
	return r
}

// penalised fails two logins and reports whether the second was given a
// penalty (pop3_auth_penalty_total).
func penalised(t *testing.T, in *pop3dtest.Server, ip string) string {
	n := metric(t, in, "pop3_auth_penalty_total")
	loginAs(t, in, ip, testAddr.String(), "wrong")
	loginAs(t, in, ip, testAddr.String(), "wrong")
	if metric(t, in, "pop3_auth_penalty_total") > n {
		return "penalty"
	}
	return "none"
}

// banned fails n logins on one connection, then tries the right password.
func banned(n int) func(*testing.T, *pop3dtest.Server, string) string {
	return func(t *testing.T, in *pop3dtest.Server, ip string) string {
		p := pop3dtest.Dial(t, in.POP3, ip)
		defer p.Close()
		for range n {
			p.Send("USER " + testAddr.String() + "\r\nPASS wrong\r\n")
			p.Expect("+OK")
			p.Expect("-ERR [AUTH]")
		}
		p.Send("USER " + testAddr.String() + "\r\nPASS " + testPassword + "\r\n")
		p.Expect("+OK")
		return prefix(p.Line()) // the connection may close after a failure
	}
}

// secondConnection holds one session open and answers the first line of
// a second one, read once the first has quit: "-ERR" when it was refused.
func secondConnection(t *testing.T, in *pop3dtest.Server, ip string) string {
	c1 := pop3dtest.Dial(t, in.POP3, ip)
	defer c1.Close()
	n := metric(t, in, "pop3_connections_total")
	c2 := pop3dtest.DialRaw(t, in.POP3, ip)
	defer c2.Close()
	// The kernel accepts c2 before the engine sees it: let the engine
	// admit, hold or refuse it while c1 is still open.
	pop3dtest.WaitFor(t, 30*time.Second, "the engine to see the second connection", func() bool {
		return metric(t, in, "pop3_connections_total") > n
	})
	c1.Cmd("QUIT")
	return prefix(c2.Line())
}

// secondWhileFirstWaits opens a connection and, while it is still open
// and not logged in, a second one from the same address, and returns the
// start of the second's first line.
func secondWhileFirstWaits(t *testing.T, in *pop3dtest.Server, ip string) string {
	c1 := pop3dtest.Dial(t, in.POP3, ip)
	defer c1.Close()
	c2 := pop3dtest.DialRaw(t, in.POP3, ip)
	defer c2.Close()
	l := c2.Line()
	c1.Cmd("QUIT")
	return prefix(l)
}

// closedSoon reads until the server closes the connection (a timeout
// fails the test through pop3dtest.ReadTimeout).
func closedSoon(p *pop3dtest.Conn) string {
	for {
		if _, ok := p.ReadLine(); !ok {
			return "closed"
		}
	}
}

func metric(t *testing.T, in *pop3dtest.Server, name string) float64 {
	t.Helper()
	resp, err := adminClient(in).Get("http://" + in.Admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` (\S+)$`).FindSubmatch(b)
	if m == nil {
		return 0
	}
	v, _ := strconv.ParseFloat(string(m[1]), 64)
	return v
}

func adminGet(t *testing.T, in *pop3dtest.Server, path string) int {
	t.Helper()
	resp, err := adminClient(in).Get("http://" + in.Admin + path)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func adminJSON(t *testing.T, in *pop3dtest.Server, path string, v any) {
	t.Helper()
	resp, err := adminClient(in).Get("http://" + in.Admin + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
}

// waitNoConnections waits until the POP3 engine serves no connection and
// no session holds a mailbox, so that the socket pool limits of a case see
// only its own and its logins do not find the mailbox in use.
func waitNoConnections(t *testing.T, in *pop3dtest.Server) {
	t.Helper()
	pop3dtest.WaitFor(t, 30*time.Second, "the POP3 connections to close", func() bool {
		var st struct {
			POP3 struct {
				Connections int `json:"connections"`
				Sockets     struct {
					InUse   int `json:"in_use"`
					Waiting int `json:"waiting"`
				} `json:"sockets"`
			} `json:"pop3"`
		}
		adminJSON(t, in, "/api/status", &st)
		return st.POP3.Connections == 0 && st.POP3.Sockets.InUse == 0 && st.POP3.Sockets.Waiting == 0 &&
			metric(t, in, "pop3_sessions_logged_in") == 0
	})
}

type smtpConn struct {
	net.Conn
	r        *bufio.Reader
	greeting string
}

func dialSMTP(t *testing.T, in *pop3dtest.Server, ip string) *smtpConn {
	t.Helper()
	d := net.Dialer{Timeout: pop3dtest.DialTimeout, LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	conn, err := d.Dial("tcp", in.SMTP[0])
	if err != nil {
		t.Fatal(err)
	}
	c := &smtpConn{Conn: conn, r: bufio.NewReader(conn)}
	c.greeting = c.reply(t)
	return c
}

// reply reads one whole reply and returns its last line.
func (c *smtpConn) reply(t *testing.T) string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(pop3dtest.ReadTimeout))
	for {
		l, err := c.r.ReadString('\n')
		if err != nil {
			t.Fatalf("SMTP reply: %v (%q)", err, l)
		}
		if len(l) < 4 || l[3] != '-' {
			return strings.TrimRight(l, "\r\n")
		}
	}
}

// replyAll reads one whole reply, every line.
func (c *smtpConn) replyAll(t *testing.T) string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(pop3dtest.ReadTimeout))
	var b strings.Builder
	for {
		l, err := c.r.ReadString('\n')
		if err != nil {
			t.Fatalf("SMTP reply: %v (%q)", err, l)
		}
		b.WriteString(l)
		if len(l) < 4 || l[3] != '-' {
			return b.String()
		}
	}
}

func (c *smtpConn) cmd(t *testing.T, line string) string {
	t.Helper()
	c.SetWriteDeadline(time.Now().Add(pop3dtest.WriteTimeout))
	if _, err := io.WriteString(c, line+"\r\n"); err != nil {
		t.Fatal(err)
	}
	return c.reply(t)
}

func ehloHas(x string) func(*testing.T, *pop3dtest.Server, string) string {
	return func(t *testing.T, in *pop3dtest.Server, ip string) string {
		c := dialSMTP(t, in, ip)
		defer c.Close()
		io.WriteString(c, "EHLO client.test\r\n")
		if strings.Contains(c.replyAll(t), x) {
			return x
		}
		return "no " + x
	}
}

// secondSMTP holds one SMTP session open and answers the greeting code of
// a second one.
func secondSMTP(t *testing.T, in *pop3dtest.Server, ip string) string {
	c1 := dialSMTP(t, in, ip)
	defer c1.Close()
	c2 := dialSMTP(t, in, ip)
	defer c2.Close()
	return c2.greeting[:3]
}

// --- settings -----------------------------------------------------------

// getKey reads key from the service's configuration file, as pop3ctl
// get does.
func getKey(t *testing.T, in *pop3dtest.Server, key string) string {
	t.Helper()
	cfg, err := config.Load(in.Conf)
	if err != nil {
		t.Fatal(err)
	}
	v, err := config.Get(cfg, key)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// setAndReload changes key in the file as pop3ctl set does (pop3ctl
// itself is run by TestReloadReportsRestartKeys) and reloads through the
// admin API; a live key must leave nothing to restart.
func setAndReload(t *testing.T, in *pop3dtest.Server, key, value string) {
	t.Helper()
	if err := config.Set(in.Conf, key, value); err != nil {
		t.Fatalf("set %s %q: %v", key, value, err)
	}
	if restart := reloadAPI(t, in); len(restart) != 0 {
		t.Fatalf("reload after set %s %q: restart %v", key, value, restart)
	}
}

// reloadAPI posts /api/reload, which must succeed, and returns the
// restart keys it reports.
func reloadAPI(t *testing.T, in *pop3dtest.Server) []string {
	t.Helper()
	resp, err := adminClient(in).Post("http://"+in.Admin+"/api/reload", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var ans struct {
		OK      bool     `json:"ok"`
		Restart []string `json:"restart"`
		Error   string   `json:"error"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&ans); err != nil {
		t.Fatal(err)
	}
	if !ans.OK {
		t.Fatalf("reload: %s", ans.Error)
	}
	return ans.Restart
}

// freeLoopbackAddr returns a loopback address that was free a moment ago.
func freeLoopbackAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// storedHash logs in with the right password, which rehashes a stored
// password made with other hash settings than the running ones, and
// describes the hash the password file then holds.
func storedHash(t *testing.T, in *pop3dtest.Server, ip string) string {
	if got := loginAs(t, in, ip, testAddr.String(), testPassword); got != "+OK" {
		t.Fatalf("login: %s", got)
	}
	b, err := os.ReadFile(filepath.Join(in.Dir, "mailroot", testAddr.Domain, "P3_"+testAddr.Mailbox+".mbx", filestore.PasswdName))
	if err != nil {
		t.Fatal(err)
	}
	r, err := credential.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	switch r.Alg {
	case credential.AlgArgon2id:
		return fmt.Sprintf("argon2id t=%d m=%d p=%d", r.Params.Time, r.Params.MemoryKiB, r.Params.Threads)
	case credential.AlgSHA512Crypt:
		rounds := "5000"
		if rest, ok := strings.CutPrefix(r.Crypt, "$6$rounds="); ok {
			rounds, _, _ = strings.Cut(rest, "$")
		}
		return "sha512-crypt " + rounds
	case credential.AlgBcrypt:
		return "bcrypt " + strings.TrimLeft(strings.Split(r.Crypt, "$")[2], "0")
	}
	return r.Alg
}
