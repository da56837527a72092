package pop3

import (
	"context"
	"encoding/base64"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pop3svc/pop3svc/session"
	"github.com/pop3svc/pop3svc/session/auth"
	"github.com/pop3svc/pop3svc/session/auth/guard"
	"github.com/pop3svc/pop3svc/session/pop3/transcript"
	"github.com/pop3svc/pop3svc/store/filestore"
)

// settle drives a pending reply as the engine does: it hands Pending a
// resume function and calls the finish it gets.
func settle(t *testing.T, r session.Reply) session.Reply {
	t.Helper()
	for r.Pending != nil {
		ch := make(chan func() session.Reply, 1)
		r.Pending(func(f func() session.Reply) { ch <- f })
		select {
		case f := <-ch:
			r = f()
		case <-time.After(30 * time.Second):
			t.Fatal("pending command never resumed")
		}
	}
	return r
}

// guardClock is a settable clock for the guard.
type guardClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *guardClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// queuedOptions are the test options with an auth queue and a real guard
// (one-minute penalty, ban after banAfter failures when > 0).
func queuedOptions(t *testing.T, q auth.QueueOptions, banAfter int) (*Options, *auth.HashQueue, *guard.Guard) {
	t.Helper()
	// The file store, for its verified-login cache (store.CredentialCache).
	st, err := filestore.Open(filepath.Join(t.TempDir(), "mailroot"), filestore.Options{Node: 1, Argon2: cheapArgon})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := transcript.Fixture(context.Background(), st); err != nil {
		t.Fatal(err)
	}
	o := testOptions(st)
	o.MaxAuthFailures = 0
	hq := auth.NewHashQueue(q)
	clock := &guardClock{t: time.Unix(1_700_000_000, 0)}
	g := guard.New(guard.Options{
		FailDelay: time.Second, Penalty: time.Minute, PenaltyMax: time.Minute,
		BanAfter: banAfter, BanWindow: time.Hour, BanTime: time.Hour, Now: clock.Now,
	})
	t.Cleanup(g.Close)
	o.Auth.Queue, o.Auth.Guard, o.Auth.HashCost = hq, g, 64<<10
	return o, hq, g
}

func ip() string { return strings.Split(ci.Remote, ":")[0] }

// A banned address is refused before any hash: the queue starts nothing.
func TestBannedAddressCostsNoHash(t *testing.T) {
	o, q, g := queuedOptions(t, auth.QueueOptions{Workers: 1, Length: 4}, 1)
	g.Failure(ip())
	if !g.Banned(ip()) {
		t.Fatal("address not banned after ban_after failures")
	}
	for _, cmds := range [][]string{
		{"USER " + transcript.AliceUser, "PASS " + transcript.AlicePassword},
		{"AUTH PLAIN " + base64.StdEncoding.EncodeToString([]byte("\x00"+transcript.AliceUser+"\x00"+transcript.AlicePassword))},
	} {
		s := New(o, ci)
		s.Greeting()
		var r session.Reply
		for _, c := range cmds {
			r = s.Handle([]byte(c))
		}
		s.Close()
		if r.Pending != nil || string(r.Out) != errBadCreds.Error()+"\r\n" {
			t.Fatalf("%v from a banned address: %q pending %v, want %q at once", cmds, r.Out, r.Pending != nil, errBadCreds.Error())
		}
	}
	if n := q.Started(); n != 0 {
		t.Fatalf("%d hashes ran for a banned address", n)
	}
}

// An address with recent failures gets one hash per penalty interval:
// an attempt whose turn is further off than penalty_max is refused
// without a hash, and one whose turn is later waits before its hash is
// queued.
func TestPenaltyAppliedBeforeHash(t *testing.T) {
	o, q, g := queuedOptions(t, auth.QueueOptions{Workers: 1, Length: 4}, 0)
	g.Failure(ip()) // one recent failure: a one-minute penalty
	if w, ok := g.Admit(ip()); !ok || w != 0 {
		t.Fatalf("first attempt after a failure: wait %v ok %v, want at once", w, ok)
	}

	// The next turn is a minute away: the check waits for it before the
	// queue sees it.
	s := New(o, ci)
	defer s.Close()
	s.Greeting()
	s.Handle([]byte("USER " + transcript.AliceUser))
	r := s.Handle([]byte("PASS " + transcript.AlicePassword))
	if r.Pending == nil {
		t.Fatalf("PASS during a penalty: %q, want a pending check", r.Out)
	}
	resumed := make(chan struct{}, 1)
	r.Pending(func(func() session.Reply) { resumed <- struct{}{} })
	if n := q.Started(); n != 0 {
		t.Fatalf("%d hashes started before the penalty's turn", n)
	}
	select {
	case <-resumed:
		t.Fatal("the check finished before its turn")
	default:
	}

	// The turn after that is two minutes away, beyond penalty_max:
	// refused at once, without a hash.
	s2 := New(o, ci)
	defer s2.Close()
	s2.Greeting()
	s2.Handle([]byte("USER " + transcript.AliceUser))
	r = s2.Handle([]byte("PASS " + transcript.AlicePassword))
	if r.Pending != nil || string(r.Out) != errBadCreds.Error()+"\r\n" {
		t.Fatalf("PASS beyond penalty_max: %q pending %v, want %q at once", r.Out, r.Pending != nil, errBadCreds.Error())
	}
	if n := q.Started(); n != 0 {
		t.Fatalf("%d hashes ran for throttled attempts", n)
	}
}

// A remembered success logs in without the queue, even when the queue is
// full; a check that needs a hash then gets [SYS/TEMP] at once. PLAIN
// goes through the queue like PASS.
func TestCachedLoginBypassesQueue(t *testing.T) {
	o, q, _ := queuedOptions(t, auth.QueueOptions{Workers: 1, Length: 0}, 0)
	plain := "AUTH PLAIN " + base64.StdEncoding.EncodeToString([]byte("\x00"+transcript.AliceUser+"\x00"+transcript.AlicePassword))
	s := New(o, ci)
	s.Greeting()
	r := s.Handle([]byte(plain))
	if r.Pending == nil {
		t.Fatalf("first PLAIN login: %q, want a pending check", r.Out)
	}
	if r = settle(t, r); !strings.HasPrefix(string(r.Out), "+OK") {
		t.Fatalf("PLAIN: %q", r.Out)
	}
	s.Close()
	if n := q.Started(); n != 1 {
		t.Fatalf("%d checks for one login, want 1", n)
	}

	block := make(chan struct{})
	defer close(block)
	if err := q.Submit(0, false, func(bool) { <-block }); err != nil {
		t.Fatal(err)
	}
	s = New(o, ci)
	s.Greeting()
	s.Handle([]byte("USER " + transcript.AliceUser))
	r = s.Handle([]byte("PASS " + transcript.AlicePassword))
	s.Close()
	if r.Pending != nil || !strings.HasPrefix(string(r.Out), "+OK") {
		t.Fatalf("cached login with the queue full: %q pending %v, want +OK at once", r.Out, r.Pending != nil)
	}

	s = New(o, ci)
	defer s.Close()
	s.Greeting()
	s.Handle([]byte("USER " + transcript.BobUser))
	r = settle(t, s.Handle([]byte("PASS "+transcript.BobPassword)))
	if string(r.Out) != errAuthBusy.Error()+"\r\n" {
		t.Fatalf("uncached login with the queue full: %q, want %q", r.Out, errAuthBusy.Error())
	}
	if n := q.Started(); n != 2 {
		t.Fatalf("%d checks started, want 2 (the login and the blocker)", n)
	}
}
