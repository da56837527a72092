package guard

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// clock is a settable clock for tests.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newTest(t *testing.T, opt Options) (*Guard, *clock) {
	t.Helper()
	c := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	opt.Now = c.Now
	g := New(opt)
	t.Cleanup(g.Close)
	return g, c
}

func TestPenaltyGrowsToCap(t *testing.T) {
	g, _ := newTest(t, Options{FailDelay: 2 * time.Second, Penalty: time.Second, PenaltyMax: 5 * time.Second})
	want := []time.Duration{2, 3, 4, 5, 6, 7, 7, 7}
	for i, w := range want {
		if got := g.Failure("192.0.2.1"); got != w*time.Second {
			t.Fatalf("failure %d: delay %v, want %v", i+1, got, w*time.Second)
		}
	}
	// Another address is not slowed.
	if got := g.Failure("192.0.2.2"); got != 2*time.Second {
		t.Fatalf("other address: delay %v, want 2s", got)
	}
}

func TestDecayAndSuccess(t *testing.T) {
	g, c := newTest(t, Options{FailDelay: time.Second, Penalty: time.Second, PenaltyMax: time.Hour, Decay: time.Minute})
	for range 5 {
		g.Failure("192.0.2.1")
	}
	if p := g.Penalty("192.0.2.1"); p != 5*time.Second {
		t.Fatalf("penalty after 5 failures = %v, want 5s", p)
	}
	c.Add(3 * time.Minute)
	if p := g.Penalty("192.0.2.1"); p != 2*time.Second {
		t.Fatalf("penalty 3 minutes later = %v, want 2s", p)
	}
	if d := g.Failure("192.0.2.1"); d != 3*time.Second {
		t.Fatalf("delay after decay = %v, want 3s", d)
	}
	c.Add(time.Hour)
	if p := g.Penalty("192.0.2.1"); p != 0 {
		t.Fatalf("penalty an hour later = %v, want 0", p)
	}
	for range 4 {
		g.Failure("192.0.2.1")
	}
	// A success does not forgive the failures (see
	// TestSuccessDoesNotResetPenalty); only time does.
	g.Success("192.0.2.1")
	if d := g.Failure("192.0.2.1"); d != 5*time.Second {
		t.Fatalf("delay after a success = %v, want 1s + 4 × 1s", d)
	}
	// An address whose failures have all decayed is dropped on success.
	c.Add(time.Hour)
	g.Success("192.0.2.1")
	if n := g.Len(); n != 0 {
		t.Fatalf("table holds %d addresses after a success with no recent failure, want 0", n)
	}
}

// TestSuccessDoesNotResetPenalty: an attacker who holds any account (their
// own) must not be able to wipe the address's penalty and ban count by
// logging in to it between guesses at another mailbox.
func TestSuccessDoesNotResetPenalty(t *testing.T) {
	g, _ := newTest(t, Options{FailDelay: time.Second, Penalty: time.Second, PenaltyMax: time.Hour,
		BanAfter: 10, BanWindow: time.Hour, BanTime: time.Hour})
	const ip = "192.0.2.7"
	var last time.Duration
	for i := range 10 {
		last = g.Failure(ip) // a guess at the victim's password
		g.Success(ip)        // a login to the attacker's own mailbox
		if i < 9 && g.Banned(ip) {
			t.Fatalf("banned after %d failures, ban_after is 10", i+1)
		}
	}
	if want := 10 * time.Second; last != want {
		t.Fatalf("10th failure interleaved with successes delayed %v, want %v", last, want)
	}
	if !g.Banned(ip) {
		t.Fatal("10 failures in the window interleaved with successes did not ban the address")
	}
}

func TestBan(t *testing.T) {
	g, c := newTest(t, Options{FailDelay: 0, Penalty: 0, BanAfter: 3, BanWindow: time.Minute, BanTime: 10 * time.Minute})
	g.Failure("192.0.2.1")
	g.Failure("192.0.2.1")
	c.Add(2 * time.Minute) // the window ends: counting starts again
	g.Failure("192.0.2.1")
	g.Failure("192.0.2.1")
	if g.Banned("192.0.2.1") {
		t.Fatal("banned after 2 failures in the window")
	}
	before := bannedTotal.Get()
	g.Failure("192.0.2.1")
	if !g.Banned("192.0.2.1") {
		t.Fatal("not banned after 3 failures in the window")
	}
	if bannedTotal.Get() != before+1 {
		t.Fatalf("pop3_auth_banned_total went from %d to %d", before, bannedTotal.Get())
	}
	if n := g.BannedCount(); n != 1 {
		t.Fatalf("BannedCount = %d, want 1", n)
	}
	if g.Banned("192.0.2.2") {
		t.Fatal("another address is banned")
	}
	g.Success("192.0.2.1") // a success does not lift a ban
	if !g.Banned("192.0.2.1") {
		t.Fatal("a success lifted the ban")
	}
	c.Add(10 * time.Minute)
	if g.Banned("192.0.2.1") {
		t.Fatal("still banned after ban_time")
	}
	if g.Unban("192.0.2.1") {
		t.Fatal("Unban of an expired ban reported a ban")
	}
}

func TestNoBanWhenDisabled(t *testing.T) {
	g, _ := newTest(t, Options{BanAfter: 0, BanWindow: time.Minute, BanTime: time.Hour})
	for range 1000 {
		g.Failure("192.0.2.1")
	}
	if g.Banned("192.0.2.1") {
		t.Fatal("banned with ban_after = 0")
	}
}

func TestBoundedTable(t *testing.T) {
	g, c := newTest(t, Options{FailDelay: time.Second, Penalty: time.Second, PenaltyMax: time.Minute, MaxAddresses: 100})
	g.Failure("10.0.0.1")
	g.Failure("10.0.0.1")
	for i := range 1000 {
		c.Add(time.Millisecond)
		g.Failure(fmt.Sprintf("10.1.%d.%d", i/256, i%256))
		if i%10 == 0 {
			g.Failure("10.0.0.1") // kept fresh: never the oldest
		}
	}
	if n := g.Len(); n != 100 {
		t.Fatalf("table holds %d addresses, want the cap 100", n)
	}
	if p := g.Penalty("10.0.0.1"); p == 0 {
		t.Fatal("an address in active use was evicted")
	}
	if p := g.Penalty("10.1.0.0"); p != 0 {
		t.Fatal("the oldest address was not evicted")
	}
}

func TestKey(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"127.0.0.1", "127.0.0.1"},
		{"127.0.0.1:5000", "127.0.0.1"},
		{"[2001:db8::1]:110", "2001:db8::/64"},
		{"2001:db8::ffff:1", "2001:db8::/64"},
		{"::ffff:192.0.2.7", "192.0.2.7"},
		{"fe80::1%eth0", "fe80::/64"},
		{"not an address", "not an address"},
	} {
		if got := Key(c.in); got != c.want {
			t.Errorf("Key(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestConcurrent(t *testing.T) {
	g := New(Options{FailDelay: time.Millisecond, Penalty: time.Millisecond, PenaltyMax: time.Second, BanAfter: 50, BanWindow: time.Minute, BanTime: time.Minute, MaxAddresses: 64})
	defer g.Close()
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 500 {
				ip := fmt.Sprintf("10.0.%d.%d", w, i%100)
				g.Failure(ip)
				g.Banned(ip)
				if i%7 == 0 {
					g.Success(ip)
				}
			}
		}()
	}
	wg.Wait()
	if g.Len() > 64 {
		t.Fatalf("table holds %d addresses, cap 64", g.Len())
	}
}

// TestSetOptionsWhileInUse changes the settings (as a reload does) while
// logins fail, succeed and are checked for bans; under -race it shows that
// no method reads the settings outside the lock. The last settings apply.
func TestSetOptionsWhileInUse(t *testing.T) {
	g := New(Options{FailDelay: time.Millisecond, Penalty: time.Millisecond, PenaltyMax: time.Second})
	defer g.Close()
	stop := make(chan struct{})
	var ops atomic.Int64
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				ip := fmt.Sprintf("10.1.%d.%d", w, i%50)
				g.Failure(ip)
				g.Banned(ip)
				g.Penalty(ip)
				g.BannedCount()
				ops.Add(1)
				if i%5 == 0 {
					g.Success(ip)
				}
			}
		}()
	}
	// Reload until the workers have run many times while reloads went on.
	for i := 0; i < 200 || ops.Load() < 2000; i++ {
		g.SetOptions(Options{FailDelay: time.Duration(i) * time.Millisecond, Penalty: time.Millisecond, PenaltyMax: time.Second, BanAfter: 1000, BanWindow: time.Minute, BanTime: time.Minute})
	}
	g.SetOptions(Options{FailDelay: 7 * time.Second})
	close(stop)
	wg.Wait()
	if d := g.Failure("192.0.2.1"); d != 7*time.Second {
		t.Fatalf("Failure after the last SetOptions = %v, want 7s", d)
	}
}

// Admit spaces the hashes of an address with recent failures one penalty
// apart and refuses attempts whose turn is beyond penalty_max; an address
// without failures and one whose failures decayed are admitted at once; a
// banned address is refused.
func TestAdmitBeforeHash(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	g := New(Options{FailDelay: time.Second, Penalty: 2 * time.Second, PenaltyMax: 5 * time.Second,
		BanAfter: 10, BanWindow: time.Hour, BanTime: time.Hour, Now: func() time.Time { return now }})
	defer g.Close()
	const a = "198.51.100.7"
	if w, ok := g.Admit(a); w != 0 || !ok {
		t.Fatalf("Admit(fresh) = %v, %v; want 0, true", w, ok)
	}
	g.Failure(a) // penalty 2s
	for i, want := range []time.Duration{0, 2 * time.Second, 4 * time.Second} {
		if w, ok := g.Admit(a); w != want || !ok {
			t.Fatalf("Admit #%d = %v, %v; want %v, true", i, w, ok, want)
		}
	}
	if w, ok := g.Admit(a); ok {
		t.Fatalf("Admit beyond penalty_max = %v, true; want refused", w)
	}
	if w, ok := g.Admit("198.51.100.8"); w != 0 || !ok {
		t.Fatalf("Admit(other address) = %v, %v; want 0, true", w, ok)
	}
	now = now.Add(time.Hour) // the failure decays
	if w, ok := g.Admit(a); w != 0 || !ok {
		t.Fatalf("Admit after decay = %v, %v; want 0, true", w, ok)
	}
	for range 10 {
		g.Failure(a)
	}
	if _, ok := g.Admit(a); ok {
		t.Fatal("Admit(banned) admitted")
	}
}
