package auth

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/pop3svc/pop3svc/cmd/pop3d/pop3dtest"
)

func waitFor(t *testing.T, what string, f func() bool) {
	t.Helper()
	pop3dtest.WaitFor(t, 10*time.Second, what, f)
}

// Workers checks run, Length wait, the next is refused at once; all the
// accepted ones run once the slots free.
func TestHashQueueBound(t *testing.T) {
	q := NewHashQueue(QueueOptions{Workers: 2, Length: 3})
	block := make(chan struct{})
	done := make(chan int, 5)
	for i := range 5 {
		if err := q.Submit(0, false, func(bool) { <-block; done <- i }); err != nil {
			t.Fatalf("Submit %d: %v", i, err)
		}
	}
	if err := q.Submit(0, false, func(bool) { t.Error("refused check ran") }); !errors.Is(err, ErrQueueFull) || !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Submit beyond the bound = %v, want ErrQueueFull (an ErrUnavailable)", err)
	}
	if r, w := q.Len(); r != 2 || w != 3 {
		t.Fatalf("Len = %d running %d waiting, want 2 and 3", r, w)
	}
	close(block)
	for range 5 {
		<-done
	}
	waitFor(t, "the queue to empty", func() bool { r, w := q.Len(); return r == 0 && w == 0 })
	if n := q.Started(); n != 5 {
		t.Fatalf("Started = %d, want 5", n)
	}
}

// The memory budget bounds the checks running at once below Workers:
// min(Workers, Memory/cost); a check costlier than the budget still runs
// alone.
func TestHashQueueMemoryBudget(t *testing.T) {
	q := NewHashQueue(QueueOptions{Workers: 8, Memory: 100, Length: 10})
	block := make(chan struct{})
	for range 4 {
		if err := q.Submit(40, false, func(bool) { <-block }); err != nil {
			t.Fatal(err)
		}
	}
	if r, w := q.Len(); r != 2 || w != 2 {
		t.Fatalf("Len = %d running %d waiting, want 2 and 2 (100 / 40)", r, w)
	}
	close(block)
	waitFor(t, "the queue to empty", func() bool { r, w := q.Len(); return r == 0 && w == 0 })

	big := make(chan struct{})
	if err := q.Submit(500, false, func(bool) { <-big }); err != nil {
		t.Fatal(err)
	}
	if r, _ := q.Len(); r != 1 {
		t.Fatalf("a check above the budget: %d running, want 1", r)
	}
	ran := make(chan struct{})
	if err := q.Submit(1, false, func(bool) { close(ran) }); err != nil {
		t.Fatal(err)
	}
	if r, w := q.Len(); r != 1 || w != 1 {
		t.Fatalf("Len = %d running %d waiting, want 1 and 1 behind the big check", r, w)
	}
	close(big)
	<-ran
	// ran's check has returned; its slot frees just after.
	waitFor(t, "the queue to empty", func() bool { r, w := q.Len(); return r == 0 && w == 0 })

	// A smaller bound applies live.
	q.SetOptions(QueueOptions{Workers: 1, Length: 0})
	hold := make(chan struct{})
	defer close(hold)
	if err := q.Submit(0, false, func(bool) { <-hold }); err != nil {
		t.Fatal(err)
	}
	if err := q.Submit(0, false, func(bool) {}); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("Submit after SetOptions = %v, want ErrQueueFull", err)
	}
}

// A suspect check (an address with recent failures) waits behind every
// check that is not, even one submitted after it; each line has its own
// Length, so a full suspect line does not refuse the others.
func TestHashQueueSuspectsWaitBehind(t *testing.T) {
	q := NewHashQueue(QueueOptions{Workers: 1, Length: 2})
	block := make(chan struct{})
	order := make(chan string, 4)
	if err := q.Submit(0, false, func(bool) { <-block }); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"suspect-1", "suspect-2"} {
		if err := q.Submit(0, true, func(bool) { order <- name }); err != nil {
			t.Fatalf("Submit %s: %v", name, err)
		}
	}
	if err := q.Submit(0, true, func(bool) { t.Error("refused suspect check ran") }); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("third suspect check = %v, want ErrQueueFull", err)
	}
	for _, name := range []string{"clean-1", "clean-2"} {
		if err := q.Submit(0, false, func(bool) { order <- name }); err != nil {
			t.Fatalf("Submit %s with the suspect line full: %v", name, err)
		}
	}
	close(block)
	want := []string{"clean-1", "clean-2", "suspect-1", "suspect-2"}
	for i, w := range want {
		if got := <-order; got != w {
			t.Fatalf("check %d to run = %s, want %s (order %v)", i, got, w, want)
		}
	}
}

// penaltyGuard keeps a penalty per address, as guard.Guard does.
type penaltyGuard map[string]time.Duration

func (penaltyGuard) Banned(string) bool                 { return false }
func (g penaltyGuard) Failure(ip string) time.Duration  { g[ip] += time.Second; return g[ip] }
func (penaltyGuard) Success(string)                     {}
func (penaltyGuard) Admit(string) (time.Duration, bool) { return 0, true }
func (g penaltyGuard) Penalty(ip string) time.Duration  { return g[ip] }

// An address is suspect from its first failure on, as long as the guard
// keeps a penalty for it; without a guard nobody is.
func TestSuspectFollowsThePenalty(t *testing.T) {
	g := penaltyGuard{}
	a := &Authenticator{Guard: g}
	if a.Suspect("192.0.2.1") {
		t.Fatal("an address without failures is suspect")
	}
	a.Failure("192.0.2.1")
	if !a.Suspect("192.0.2.1") || a.Suspect("192.0.2.2") {
		t.Fatalf("after one failure of 192.0.2.1: suspect %v, 192.0.2.2 suspect %v; want true, false",
			a.Suspect("192.0.2.1"), a.Suspect("192.0.2.2"))
	}
	if (&Authenticator{}).Suspect("192.0.2.1") {
		t.Fatal("suspect without a guard")
	}
}

// holdQueue returns a queue whose one slot is held until the returned
// function is called.
func holdQueue(t *testing.T, opt QueueOptions) (*HashQueue, func()) {
	t.Helper()
	q := NewHashQueue(opt)
	block := make(chan struct{})
	if err := q.Submit(0, false, func(bool) { <-block }); err != nil {
		t.Fatal(err)
	}
	var once bool
	release := func() {
		if !once {
			once = true
			close(block)
		}
	}
	t.Cleanup(release)
	return q, release
}

// expectOrder reads len(want) names from order and compares.
func expectOrder(t *testing.T, order <-chan string, want []string) {
	t.Helper()
	var got []string
	for range want {
		select {
		case n := <-order:
			got = append(got, n)
		case <-time.After(10 * time.Second):
			t.Fatalf("checks run %v, still waiting for the rest of %v", got, want)
		}
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("checks ran in the order %v, want %v", got, want)
		}
	}
}

// Networks take turns in a line: a network with many checks waiting holds
// back its own, and a check of another network, submitted last, waits for
// one of them only.
func TestHashQueueNetworksTakeTurns(t *testing.T) {
	q, release := holdQueue(t, QueueOptions{Workers: 1, Length: 100})
	order := make(chan string, 10)
	for i := range 4 {
		name := fmt.Sprintf("flood-%d", i)
		if err := q.Enqueue(Check{Net: "192.0.2.0/24", Run: func(bool) { order <- name }}); err != nil {
			t.Fatal(err)
		}
	}
	if err := q.Enqueue(Check{Net: "198.51.100.0/24", Run: func(bool) { order <- "user" }}); err != nil {
		t.Fatal(err)
	}
	release()
	expectOrder(t, order, []string{"flood-0", "user", "flood-1", "flood-2", "flood-3"})
}

// A full line refuses a check of the network that holds the most places,
// but a check of a network holding fewer takes the place of that
// network's newest check, which is told at once; one network cannot keep
// more than its share of a full line while another waits.
func TestHashQueueFullLineShared(t *testing.T) {
	q, release := holdQueue(t, QueueOptions{Workers: 1, Length: 4})
	const flood, user = "192.0.2.0/24", "198.51.100.0/24"
	order := make(chan string, 10)
	pushed := make(chan string, 10)
	submit := func(net, name string) error {
		return q.Enqueue(Check{Net: net, Run: func(bool) { order <- name }, Refused: func() { pushed <- name }})
	}
	for i := range 4 {
		if err := submit(flood, fmt.Sprintf("flood-%d", i)); err != nil {
			t.Fatalf("flood check %d: %v", i, err)
		}
	}
	if err := submit(flood, "flood-4"); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("a fifth check of the network filling the line = %v, want ErrQueueFull", err)
	}
	for i, want := range []string{"flood-3", "flood-2"} {
		if err := submit(user, fmt.Sprintf("user-%d", i)); err != nil {
			t.Fatalf("check %d of another network with the line full: %v", i, err)
		}
		select {
		case got := <-pushed:
			if got != want {
				t.Fatalf("pushed out %s, want %s (the newest of the biggest network)", got, want)
			}
		default:
			t.Fatalf("check %d of another network took a place, but no check was told it lost its own", i)
		}
	}
	// Two places each now: a third check of either network is refused.
	if err := submit(user, "user-2"); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("a third check with two places each = %v, want ErrQueueFull", err)
	}
	if w := q.Waiting(flood, Unknown); w != 2 {
		t.Fatalf("flood network waits with %d checks, want 2", w)
	}
	release()
	expectOrder(t, order, []string{"flood-0", "user-0", "flood-1", "user-1"})
	if len(pushed) != 0 {
		t.Fatalf("%d more checks told they lost their place", len(pushed))
	}
}

// Lines move in order: trusted, unknown, suspect. Demote moves a network's
// waiting checks behind every check that is not suspect.
func TestHashQueueStandingsAndDemote(t *testing.T) {
	q, release := holdQueue(t, QueueOptions{Workers: 1, Length: 10})
	const flood, other, known = "192.0.2.0/24", "203.0.113.0/24", "198.51.100.0/24"
	order := make(chan string, 10)
	add := func(net string, st Standing, name string) {
		t.Helper()
		if err := q.Enqueue(Check{Net: net, Standing: st, Run: func(bool) { order <- name }}); err != nil {
			t.Fatal(err)
		}
	}
	add(flood, Suspect, "flood-suspect")
	add(flood, Unknown, "flood-0")
	add(flood, Unknown, "flood-1")
	add(other, Unknown, "other")
	add(known, Trusted, "known")
	q.Demote(flood)
	if u, s := q.Waiting(flood, Unknown), q.Waiting(flood, Suspect); u != 0 || s != 3 {
		t.Fatalf("after Demote the network waits with %d unknown and %d suspect checks, want 0 and 3", u, s)
	}
	release()
	expectOrder(t, order, []string{"known", "other", "flood-suspect", "flood-0", "flood-1"})
}

// At most SuspectWorkers suspect checks run at once; the other slots stay
// free, so a check of an address that did not fail starts at once.
func TestHashQueueSuspectWorkers(t *testing.T) {
	q := NewHashQueue(QueueOptions{Workers: 2, Length: 10})
	if o := q.Options(); o.SuspectWorkers != 1 {
		t.Fatalf("SuspectWorkers of 2 workers = %d, want 1 (half, rounded up)", o.SuspectWorkers)
	}
	block := make(chan struct{})
	defer close(block)
	for i := range 3 {
		if err := q.Enqueue(Check{Net: fmt.Sprintf("192.0.%d.0/24", i), Standing: Suspect, Run: func(bool) { <-block }}); err != nil {
			t.Fatal(err)
		}
	}
	if r, w := q.Len(); r != 1 || w != 2 {
		t.Fatalf("three suspect checks: %d running, %d waiting; want 1 and 2", r, w)
	}
	ran := make(chan struct{})
	if err := q.Enqueue(Check{Net: "198.51.100.0/24", Run: func(bool) { close(ran) }}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ran:
	case <-time.After(10 * time.Second):
		t.Fatal("a check of an address that did not fail waited behind suspect checks")
	}
}

func TestNetwork(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.77":              "192.0.2.0/24",
		"192.0.2.77:110":          "192.0.2.0/24",
		"::ffff:192.0.2.1":        "192.0.2.0/24",
		"2001:db8:1:2:3::4":       "2001:db8:1::/48",
		"[2001:db8:1:2::4]:12345": "2001:db8:1::/48",
		"not an address":          "not an address",
	} {
		if got := Network(in); got != want {
			t.Errorf("Network(%q) = %q, want %q", in, got, want)
		}
	}
}

// A check runs low (its hash at low CPU priority) exactly when it runs
// from the Suspect line: submitted as suspect, or demoted while waiting.
func TestHashQueueSuspectChecksRunLow(t *testing.T) {
	q := NewHashQueue(QueueOptions{Workers: 1, Length: 10})
	block := make(chan struct{})
	if err := q.Enqueue(Check{Net: "203.0.113.0/24", Run: func(bool) { <-block }}); err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 3)
	for _, c := range []struct {
		name, net string
		st        Standing
	}{{"trusted", "198.51.100.0/24", Trusted}, {"suspect", "192.0.2.0/24", Suspect}, {"demoted", "192.0.3.0/24", Unknown}} {
		if err := q.Enqueue(Check{Net: c.net, Standing: c.st, Run: func(low bool) { got <- fmt.Sprintf("%s %v", c.name, low) }}); err != nil {
			t.Fatal(err)
		}
	}
	q.Demote("192.0.3.0/24")
	close(block)
	want := map[string]bool{"trusted false": true, "suspect true": true, "demoted true": true}
	for range 3 {
		select {
		case s := <-got:
			if !want[s] {
				t.Errorf("check ran as %q", s)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the waiting checks did not run")
		}
	}
}

// With SuspectApart, suspect checks run in slots of their own: they take
// none of the Workers slots, and start while others wait.
func TestHashQueueSuspectApart(t *testing.T) {
	q := NewHashQueue(QueueOptions{Workers: 1, SuspectWorkers: 1, SuspectApart: true, Length: 10})
	block := make(chan struct{})
	defer close(block)
	// A suspect check holds its own slot.
	if err := q.Enqueue(Check{Net: "192.0.2.0/24", Standing: Suspect, Run: func(bool) { <-block }}); err != nil {
		t.Fatal(err)
	}
	// An ordinary one still starts, and holds the one ordinary slot.
	if err := q.Enqueue(Check{Net: "198.51.100.0/24", Run: func(bool) { <-block }}); err != nil {
		t.Fatal(err)
	}
	if r, w := q.Len(); r != 2 || w != 0 {
		t.Fatalf("a suspect and an ordinary check: %d running, %d waiting; want both running", r, w)
	}
	// Another ordinary check waits; another suspect one waits for the
	// suspect slot, not behind the ordinary one.
	ran := make(chan struct{})
	if err := q.Enqueue(Check{Net: "203.0.113.0/24", Run: func(bool) { close(ran) }}); err != nil {
		t.Fatal(err)
	}
	if err := q.Enqueue(Check{Net: "192.0.3.0/24", Standing: Suspect, Run: func(bool) {}}); err != nil {
		t.Fatal(err)
	}
	if r, w := q.Len(); r != 2 || w != 2 {
		t.Fatalf("%d running, %d waiting; want 2 and 2", r, w)
	}
	select {
	case <-ran:
		t.Fatal("an ordinary check started beyond Workers")
	default:
	}
}

// Once the ordinary slots are busy and checks wait for them, a suspect
// check still starts in its own free slot.
func TestHashQueueSuspectApartMovesPastWaiting(t *testing.T) {
	q := NewHashQueue(QueueOptions{Workers: 1, SuspectWorkers: 1, SuspectApart: true, Length: 10})
	block := make(chan struct{})
	defer close(block)
	for i := range 2 {
		if err := q.Enqueue(Check{Net: fmt.Sprintf("198.51.%d.0/24", i), Run: func(bool) { <-block }}); err != nil {
			t.Fatal(err)
		}
	}
	ran := make(chan struct{})
	if err := q.Enqueue(Check{Net: "192.0.2.0/24", Standing: Suspect, Run: func(bool) { close(ran) }}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ran:
	case <-time.After(10 * time.Second):
		t.Fatal("a suspect check waited behind ordinary ones for a slot of its own")
	}
}

// Done runs once the check's slot is free: a client answered there and
// trying again at once finds the slot, even with no room to wait.
func TestHashQueueDoneAfterTheSlotIsFree(t *testing.T) {
	q := NewHashQueue(QueueOptions{Workers: 1, Length: 0})
	next := make(chan error, 1)
	if err := q.Enqueue(Check{Run: func(bool) {}, Done: func() {
		next <- q.Enqueue(Check{Run: func(bool) {}})
	}}); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-next:
		if err != nil {
			t.Fatalf("a check submitted from Done: %v, want it to start in the freed slot", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Done did not run")
	}
}
