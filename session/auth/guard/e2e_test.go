package guard

import (
	"bufio"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pop3svc/pop3svc/cmd/pop3d/pop3dtest"
)

// TestE2EBruteForce: 200 failed logins from 127.0.0.1 slow that address
// down to the penalty cap, while a correct login from 127.0.0.2, made in
// the middle of the attack, completes in normal time.
func TestE2EBruteForce(t *testing.T) {
	const (
		failures   = 200
		penaltyMax = 2 * time.Second
	)
	s := pop3dtest.Start(t, pop3dtest.Config{
		Auth: `method = "passwordfile"
fail_delay = "5ms"
penalty = "20ms"
penalty_max = "2s"`,
		POP3: "threadcount = 256", // room for the 200 simultaneous attackers
		// The 200 attackers come from one address: the pre-login caps
		// would refuse all but 20 of them before their guesses.
		Tables: "[limits]\nprelogin_per_ip = 1000\nprelogin_per_net = 1000\nprelogin_per_net48 = 1000\n",
		Setup: [][]string{
			{"add", "example.com"},
			{"add", "alice@example.com", "-password", "Right-1"},
		},
	})

	login := func(ip, pw string) (string, time.Duration) {
		p := pop3dtest.Dial(t, s.POP3, ip)
		defer p.Cmd("QUIT")
		if r := p.Cmd("USER alice@example.com"); !strings.HasPrefix(r, "+OK") {
			t.Fatalf("USER = %q", r)
		}
		start := time.Now()
		r := p.Cmd("PASS " + pw)
		return r, time.Since(start)
	}

	// Before the attack: the normal time of a correct login.
	r, normal := login("127.0.0.2", "Right-1")
	if !strings.HasPrefix(r, "+OK") {
		t.Fatalf("correct login = %q", r)
	}

	// The attack uses CRAM-MD5 with wrong digests: each failure costs the
	// server an HMAC, not a password hash, so what slows the attacker is
	// the guard and not the CPU. One failure per connection, all at once.
	var done atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan string, failures)
	for i := range failures {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := pop3dtest.Dial(t, s.POP3, "127.0.0.1")
			r := p.Cmd("AUTH CRAM-MD5")
			if !strings.HasPrefix(r, "+ ") {
				errs <- "AUTH CRAM-MD5: " + r
				return
			}
			resp := fmt.Sprintf("alice@example.com %032x", i)
			if r := p.Cmd(base64.StdEncoding.EncodeToString([]byte(resp))); !strings.HasPrefix(r, "-ERR [AUTH]") {
				errs <- "wrong CRAM-MD5 digest: " + r
				return
			}
			done.Add(1)
		}()
	}

	// In the middle of the attack, a correct login from another address.
	pop3dtest.Eventually(60*time.Second, func() bool { return done.Load() >= failures/4 })
	r, during := login("127.0.0.2", "Right-1")
	if !strings.HasPrefix(r, "+OK") {
		t.Fatalf("correct login from 127.0.0.2 during the attack = %q", r)
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	if n := done.Load(); n != failures {
		t.Fatalf("%d wrong passwords answered, want %d", n, failures)
	}

	// The attacking address is now slowed down to the cap.
	r, slowed := login("127.0.0.1", "wrong-again")
	if !strings.HasPrefix(r, "-ERR") {
		t.Fatalf("wrong PASS = %q", r)
	}
	if slowed < penaltyMax {
		t.Errorf("wrong password from 127.0.0.1 after %d failures answered in %v, want at least %v", failures, slowed, penaltyMax)
	}
	// A fresh address is not.
	r, fresh := login("127.0.0.3", "wrong")
	if !strings.HasPrefix(r, "-ERR") {
		t.Fatalf("wrong PASS = %q", r)
	}
	t.Logf("correct login: %v before, %v during the attack; wrong password: %v from the attacker, %v from a fresh address", normal, during, slowed, fresh)
	// Other addresses are not slowed: the server's log says what wait (fixed
	// delay plus the address's penalty) each failed login got, and the fresh
	// address got the fixed delay alone,
	// however long the loaded machine took to answer. The test copies the
	// log from pop3d's stderr on a goroutine of its own: wait for the line.
	var freshDelay string
	pop3dtest.Eventually(10*time.Second, func() bool {
		for _, line := range strings.Split(s.Log(), "\n") {
			if strings.Contains(line, `msg="login failed"`) && strings.Contains(line, "remote=127.0.0.3:") {
				_, freshDelay, _ = strings.Cut(line, " wait=")
				freshDelay, _, _ = strings.Cut(freshDelay, " ")
				return true
			}
		}
		return false
	})
	if freshDelay != "5ms" {
		t.Errorf("the failed login from a fresh address got wait %q in the log, want 5ms (fail_delay alone, no penalty)", freshDelay)
	}

	// The penalties are counted.
	resp, err := http.Get("http://" + s.Admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	found := false
	sc := bufio.NewScanner(io.LimitReader(resp.Body, 4<<20))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "pop3_auth_penalty_total "); ok {
			found = true
			if n, _ := strconv.Atoi(v); n < failures-1 {
				t.Errorf("pop3_auth_penalty_total = %s, want at least %d", v, failures-1)
			}
		}
	}
	if !found {
		t.Error("no pop3_auth_penalty_total in /metrics")
	}
}
