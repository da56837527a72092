package pop3

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/pop3svc/pop3svc/store"
)

// clock is a time the test moves.
type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }

const alicePass = "tanstaaf with spaces"

func policyOptions(t *testing.T, p *Policy) (*Options, *clock, store.Store) {
	t.Helper()
	st := testStore(t)
	o := testOptions(st)
	c := &clock{t: time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)}
	o.Now = c.now
	o.Policy = p
	return o, c, st
}

func quitLeft(t *testing.T, s *Session) string {
	t.Helper()
	out := mustOK(t, s, "QUIT")
	i := strings.LastIndex(out, "(")
	return strings.TrimSpace(out[i:])
}

func capaLines(t *testing.T, s *Session, prefix string) []string {
	t.Helper()
	var got []string
	for _, l := range strings.Split(mustOK(t, s, "CAPA"), "\r\n") {
		if strings.HasPrefix(l, prefix) {
			got = append(got, l)
		}
	}
	return got
}

func TestExpireAfterRetrieval(t *testing.T) {
	three := Retention{Days: 3}
	o, c, _ := policyOptions(t, &Policy{Expire: &three})
	day := 24 * time.Hour

	// Day 0: message 1 retrieved, 2 retrieved and deleted, 3 only read with TOP.
	s := login(t, o, "alice@example.com", alicePass)
	if got := capaLines(t, s, "EXPIRE"); len(got) != 1 || got[0] != "EXPIRE 3" {
		t.Fatalf("CAPA after login: %q", got)
	}
	mustOK(t, s, "RETR 1")
	mustOK(t, s, "RETR 2")
	mustOK(t, s, "DELE 2")
	mustOK(t, s, "TOP 3 0")
	if got := quitLeft(t, s); got != "(2 messages left)" {
		t.Fatalf("day 0 QUIT: %s", got)
	}
	// Day 2: nothing is old enough; message 3 (now 2) is retrieved.
	c.advance(2 * day)
	s = login(t, o, "alice@example.com", alicePass)
	mustOK(t, s, "RETR 2")
	if got := quitLeft(t, s); got != "(2 messages left)" {
		t.Fatalf("day 2 QUIT: %s", got)
	}
	// Day 3, a second early: still nothing.
	c.advance(day - time.Second)
	s = login(t, o, "alice@example.com", alicePass)
	if got := quitLeft(t, s); got != "(2 messages left)" {
		t.Fatalf("day 3 less a second QUIT: %s", got)
	}
	// Day 3: message 1 has been kept three days since its retrieval.
	c.advance(time.Second)
	s = login(t, o, "alice@example.com", alicePass)
	if got := mustOK(t, s, "STAT"); got != "+OK 2 136\r\n" {
		t.Fatalf("day 3 STAT: %q", got)
	}
	if got := quitLeft(t, s); got != "(1 messages left)" {
		t.Fatalf("day 3 QUIT: %s", got)
	}
	s = login(t, o, "alice@example.com", alicePass)
	if got := mustOK(t, s, "UIDL 1"); !strings.HasPrefix(got, "+OK 1 ") {
		t.Fatalf("UIDL 1: %q", got)
	}
	if got := mustOK(t, s, "TOP 1 0"); !strings.Contains(got, "Subject: third") {
		t.Fatalf("the message left is not the third: %q", got)
	}
	mustOK(t, s, "RSET")
	quitLeft(t, s)
	// Day 5: the third message's three days are over.
	c.advance(2 * day)
	s = login(t, o, "alice@example.com", alicePass)
	if got := quitLeft(t, s); got != "(0 messages left)" {
		t.Fatalf("day 5 QUIT: %s", got)
	}
}

func TestExpireZeroDeletesRetrievedAtQuit(t *testing.T) {
	zero := Retention{Days: 0}
	o, _, _ := policyOptions(t, &Policy{Expire: &zero})
	s := login(t, o, "alice@example.com", alicePass)
	mustOK(t, s, "RETR 1")
	mustOK(t, s, "TOP 2 1")
	if got := quitLeft(t, s); got != "(2 messages left)" {
		t.Fatalf("QUIT: %s", got)
	}
	// A session that ends without QUIT expires nothing.
	s = login(t, o, "alice@example.com", alicePass)
	mustOK(t, s, "RETR 1")
	s.Close()
	s = login(t, o, "alice@example.com", alicePass)
	if got := mustOK(t, s, "STAT"); !strings.HasPrefix(got, "+OK 2 ") {
		t.Fatalf("after a dropped session: %q", got)
	}
	quitLeft(t, s)
}

func TestExpireNeverAndOverrides(t *testing.T) {
	thirty := Retention{Days: 30}
	p := &Policy{
		Expire:          &thirty,
		ExpireDomains:   map[string]Retention{"example.com": {Days: 0}},
		ExpireMailboxes: map[string]Retention{"bob@example.com": {Never: true}},
	}
	o, c, st := policyOptions(t, p)
	s := New(o, ci)
	s.Greeting()
	if got := capaLines(t, s, "EXPIRE"); len(got) != 1 || got[0] != "EXPIRE 0 USER" {
		t.Fatalf("CAPA before login: %q", got)
	}
	s.Close()
	// bob: never.
	if _, err := st.Deliver(context.Background(), addr("bob@example.com"), strings.NewReader("Subject: b\r\n\r\nb\r\n")); err != nil {
		t.Fatal(err)
	}
	s = login(t, o, "bob@example.com", "bobpass")
	if got := capaLines(t, s, "EXPIRE"); len(got) != 1 || got[0] != "EXPIRE NEVER" {
		t.Fatalf("bob's CAPA: %q", got)
	}
	mustOK(t, s, "RETR 1")
	quitLeft(t, s)
	c.advance(1000 * 24 * time.Hour)
	s = login(t, o, "bob@example.com", "bobpass")
	if got := quitLeft(t, s); got != "(1 messages left)" {
		t.Fatalf("bob after 1000 days: %s", got)
	}
	// alice: her domain's 0.
	s = login(t, o, "alice@example.com", alicePass)
	if got := capaLines(t, s, "EXPIRE"); len(got) != 1 || got[0] != "EXPIRE 0" {
		t.Fatalf("alice's CAPA: %q", got)
	}
	mustOK(t, s, "RETR 3")
	if got := quitLeft(t, s); got != "(2 messages left)" {
		t.Fatalf("alice QUIT: %s", got)
	}
	// Nothing configured: no EXPIRE line, nothing expires.
	o.Policy = nil
	s = login(t, o, "alice@example.com", alicePass)
	if got := capaLines(t, s, "EXPIRE"); len(got) != 0 {
		t.Fatalf("CAPA without a policy: %q", got)
	}
	mustOK(t, s, "RETR 1")
	if got := quitLeft(t, s); got != "(2 messages left)" {
		t.Fatalf("QUIT without a policy: %s", got)
	}
}

func TestExpireSweep(t *testing.T) {
	one := Retention{Days: 1}
	p := &Policy{Expire: &one}
	o, c, st := policyOptions(t, p)
	ctx := context.Background()
	s := login(t, o, "alice@example.com", alicePass)
	mustOK(t, s, "RETR 1")
	mustOK(t, s, "RETR 2")
	quitLeft(t, s)

	c.advance(12 * time.Hour)
	rep, err := SweepExpired(ctx, st, p, c.now(), "sweep", quietLogger)
	if err != nil || rep.Expired != 0 {
		t.Fatalf("sweep after 12 hours: %+v, %v", rep, err)
	}
	c.advance(12 * time.Hour)
	// A mailbox in use is left to its session.
	s = login(t, o, "alice@example.com", alicePass)
	rep, err = SweepExpired(ctx, st, p, c.now(), "sweep", quietLogger)
	if err != nil || rep.Expired != 0 {
		t.Fatalf("sweep of a mailbox in use: %+v, %v", rep, err)
	}
	s.Close()
	rep, err = SweepExpired(ctx, st, p, c.now(), "sweep", quietLogger)
	if err != nil || rep.Expired != 2 {
		t.Fatalf("sweep after a day: %+v, %v", rep, err)
	}
	if n, _, _ := st.Usage(ctx, addr("alice@example.com")); n != 1 {
		t.Fatalf("%d messages left after the sweep, want 1", n)
	}
	// Without a retention the sweep deletes nothing.
	rep, err = SweepExpired(ctx, st, &Policy{}, c.now().Add(1000*24*time.Hour), "sweep", quietLogger)
	if err != nil || rep.Expired != 0 {
		t.Fatalf("sweep without a policy: %+v, %v", rep, err)
	}
}

func TestLoginDelay(t *testing.T) {
	p := &Policy{LoginDelay: 60, LoginDelayDomains: map[string]int{"example.com": 120, "example.net": 60}}
	o, c, _ := policyOptions(t, p)
	s := New(o, ci)
	s.Greeting()
	if got := capaLines(t, s, "LOGIN-DELAY"); len(got) != 1 || got[0] != "LOGIN-DELAY 60 USER" {
		t.Fatalf("CAPA before login: %q", got)
	}
	s.Close()
	s = login(t, o, "alice@example.com", alicePass)
	if got := capaLines(t, s, "LOGIN-DELAY"); len(got) != 1 || got[0] != "LOGIN-DELAY 120" {
		t.Fatalf("CAPA after login: %q", got)
	}
	quitLeft(t, s)

	tooSoon := func(when string) {
		t.Helper()
		s := New(o, ci)
		defer s.Close()
		s.Greeting()
		mustOK(t, s, "USER alice@example.com")
		r, out := do(t, s, "PASS "+alicePass)
		if out != "-ERR [LOGIN-DELAY] too soon after the last login, try again later\r\n" || r.Authenticated || r.Delay != 0 {
			t.Fatalf("%s: %q (authenticated %v, delay %v)", when, out, r.Authenticated, r.Delay)
		}
		if s.state != stateAuthorization {
			t.Fatalf("%s: state %s", when, s.state)
		}
	}
	c.advance(119 * time.Second)
	tooSoon("119 s after")
	// The refused attempt did not count as a login.
	c.advance(time.Second)
	s = login(t, o, "alice@example.com", alicePass)
	quitLeft(t, s)
	c.advance(time.Second)
	tooSoon("1 s after")

	// Another mailbox is not held up by alice's logins.
	s = login(t, o, "bob@example.com", "bobpass")
	quitLeft(t, s)
}
