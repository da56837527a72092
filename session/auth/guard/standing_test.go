package guard

import (
	"errors"
	"testing"
	"time"

	"github.com/pop3svc/pop3svc/session/auth"
)

// NetFailures failures from addresses of one /24 make every address of it
// suspect, not those of other networks; they decay as an address's do.
func TestNetworkFailuresMakeTheNetworkSuspect(t *testing.T) {
	g, c := newTest(t, Options{FailDelay: time.Second, Penalty: time.Second, PenaltyMax: time.Minute, NetFailures: 2})
	g.Failure("192.0.2.1")
	if g.Standing("192.0.2.9") != auth.Unknown || g.Standing("192.0.2.1") != auth.Suspect {
		t.Fatalf("after one failure: neighbour %v, failing address %v; want unknown, suspect",
			g.Standing("192.0.2.9"), g.Standing("192.0.2.1"))
	}
	g.Failure("192.0.2.2")
	if st := g.Standing("192.0.2.9"); st != auth.Suspect {
		t.Fatalf("after two failures in 192.0.2.0/24: a neighbour is %v, want suspect", st)
	}
	if st := g.Standing("198.51.100.9"); st != auth.Unknown {
		t.Fatalf("an address of another network is %v, want unknown", st)
	}
	c.Add(2 * DefaultDecay)
	if g.NetworkSuspect("192.0.2.9") {
		t.Fatal("the network is still suspect after its failures decayed")
	}
	g2, _ := newTest(t, Options{FailDelay: time.Second, Penalty: time.Second, PenaltyMax: time.Minute})
	g2.Failure("192.0.2.1")
	g2.Failure("192.0.2.2")
	if g2.NetworkSuspect("192.0.2.9") {
		t.Fatal("NetFailures 0: a network turned suspect")
	}
}

// A successful login makes its network trusted for NetTrust, unless it is
// suspect.
func TestNetworkTrust(t *testing.T) {
	g, c := newTest(t, Options{FailDelay: time.Second, Penalty: time.Second, PenaltyMax: time.Minute, NetFailures: 2, NetTrust: time.Hour})
	if st := g.Standing("198.51.100.9"); st != auth.Unknown {
		t.Fatalf("before any login: %v, want unknown", st)
	}
	g.Success("198.51.100.1")
	if st := g.Standing("198.51.100.9"); st != auth.Trusted {
		t.Fatalf("a neighbour of an address that logged in: %v, want trusted", st)
	}
	g.Failure("198.51.100.2")
	if st := g.Standing("198.51.100.2"); st != auth.Suspect {
		t.Fatalf("a failing address of a trusted network: %v, want suspect", st)
	}
	c.Add(time.Hour)
	if st := g.Standing("198.51.100.9"); st != auth.Unknown {
		t.Fatalf("NetTrust after the login: %v, want unknown", st)
	}
}

// A refusal by a full queue makes the address's next check wait, longer
// after each refusal in a row, never refuses it below PenaltyMax, and is
// no failure.
func TestBusyPacesTheAddress(t *testing.T) {
	g, c := newTest(t, Options{FailDelay: time.Second, Penalty: time.Second, PenaltyMax: 3 * time.Second, NetFailures: 1})
	if w, ok := g.Admit("192.0.2.1"); w != 0 || !ok {
		t.Fatalf("Admit before a refusal = %v, %v; want 0, true", w, ok)
	}
	g.Busy("192.0.2.1")
	if w, ok := g.Admit("192.0.2.1"); w != time.Second || !ok {
		t.Fatalf("Admit just after a refusal = %v, %v; want 1s, true", w, ok)
	}
	if w, ok := g.Admit("192.0.2.2"); w != 0 || !ok {
		t.Fatalf("another address: Admit = %v, %v; want 0, true", w, ok)
	}
	c.Add(time.Second)
	g.Busy("192.0.2.1")
	if w, _ := g.Admit("192.0.2.1"); w != 2*time.Second {
		t.Fatalf("Admit after a second refusal in a row = %v, want 2s", w)
	}
	for range 5 {
		g.Busy("192.0.2.1")
	}
	if w, ok := g.Admit("192.0.2.1"); w != 3*time.Second || !ok {
		t.Fatalf("after many refusals Admit = %v, %v; want PenaltyMax, true", w, ok)
	}
	if st := g.Standing("192.0.2.1"); st != auth.Unknown {
		t.Fatalf("refusals made the address %v, want unknown (they are no failures)", st)
	}
	c.Add(time.Hour)
	if w, ok := g.Admit("192.0.2.1"); w != 0 || !ok {
		t.Fatalf("an hour later Admit = %v, %v; want 0, true", w, ok)
	}
}

// The auth queue with the guard: once a flood network's addresses fail,
// its waiting checks move behind everyone else's and its new ones are
// refused when the suspect line is full, while a check of a normal
// address is admitted and runs first.
func TestFloodNetworkRefusedNormalAddressAdmitted(t *testing.T) {
	g, _ := newTest(t, Options{FailDelay: time.Second, Penalty: time.Second, PenaltyMax: time.Minute, NetFailures: 2})
	q := auth.NewHashQueue(auth.QueueOptions{Workers: 1, Length: 3})
	a := &auth.Authenticator{Guard: g, Queue: q}
	block := make(chan struct{})
	defer func() {
		select {
		case <-block:
		default:
			close(block)
		}
	}()
	if err := q.Submit(0, false, func(bool) { <-block }); err != nil {
		t.Fatal(err)
	}
	order := make(chan string, 10)
	submit := func(ip, name string) error {
		return q.Enqueue(auth.Check{Net: auth.Network(ip), Standing: a.Standing(ip), Run: func(bool) { order <- name }})
	}
	// The flood's first checks, before any of them failed.
	for i, ip := range []string{"192.0.2.10", "192.0.2.11", "192.0.2.12"} {
		if err := submit(ip, "flood-"+ip); err != nil {
			t.Fatalf("flood check %d: %v", i, err)
		}
	}
	// Two of its addresses fail elsewhere: the network turns suspect.
	a.Failure("192.0.2.1")
	a.Failure("192.0.2.2")
	if n := q.Waiting("192.0.2.0/24", auth.Suspect); n != 3 {
		t.Fatalf("the flood network's waiting checks: %d in the suspect line, want 3", n)
	}
	if err := submit("192.0.2.13", "flood-late"); !errors.Is(err, auth.ErrQueueFull) {
		t.Fatalf("a new flood check with the suspect line full = %v, want ErrQueueFull", err)
	}
	if err := submit("198.51.100.7", "user"); err != nil {
		t.Fatalf("a normal address's check was refused: %v", err)
	}
	close(block)
	select {
	case first := <-order:
		if first != "user" {
			t.Fatalf("first check to run: %s, want the normal address's", first)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no check ran")
	}
}
