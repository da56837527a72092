package auth

import (
	"errors"
	"github.com/pop3svc/pop3svc/cmd/pop3d/pop3dtest"
	"testing"
	"time"
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
		if err := q.Submit(0, false, func() { <-block; done <- i }); err != nil {
			t.Fatalf("Submit %d: %v", i, err)
		}
	}
	if err := q.Submit(0, false, func() { t.Error("refused check ran") }); !errors.Is(err, ErrQueueFull) || !errors.Is(err, ErrUnavailable) {
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
		if err := q.Submit(40, false, func() { <-block }); err != nil {
			t.Fatal(err)
		}
	}
	if r, w := q.Len(); r != 2 || w != 2 {
		t.Fatalf("Len = %d running %d waiting, want 2 and 2 (100 / 40)", r, w)
	}
	close(block)
	waitFor(t, "the queue to empty", func() bool { r, w := q.Len(); return r == 0 && w == 0 })

	big := make(chan struct{})
	if err := q.Submit(500, false, func() { <-big }); err != nil {
		t.Fatal(err)
	}
	if r, _ := q.Len(); r != 1 {
		t.Fatalf("a check above the budget: %d running, want 1", r)
	}
	ran := make(chan struct{})
	if err := q.Submit(1, false, func() { close(ran) }); err != nil {
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
	if err := q.Submit(0, false, func() { <-hold }); err != nil {
		t.Fatal(err)
	}
	if err := q.Submit(0, false, func() {}); !errors.Is(err, ErrQueueFull) {
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
	if err := q.Submit(0, false, func() { <-block }); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"suspect-1", "suspect-2"} {
		if err := q.Submit(0, true, func() { order <- name }); err != nil {
			t.Fatalf("Submit %s: %v", name, err)
		}
	}
	if err := q.Submit(0, true, func() { t.Error("refused suspect check ran") }); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("third suspect check = %v, want ErrQueueFull", err)
	}
	for _, name := range []string{"clean-1", "clean-2"} {
		if err := q.Submit(0, false, func() { order <- name }); err != nil {
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
