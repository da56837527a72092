package delivery

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pop3svc/pop3svc/store"
	"github.com/pop3svc/pop3svc/store/filestore"
	"github.com/pop3svc/pop3svc/store/queue"
)

type fixture struct {
	t    *testing.T
	root string
	st   *filestore.Store
	q    *queue.Queue
}

func newFixture(t *testing.T, mailboxes ...string) *fixture {
	t.Helper()
	root := t.TempDir()
	st, err := filestore.Open(root, filestore.Options{Node: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	q, err := queue.Open(root)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := st.CreateDomain(ctx, "example.com"); err != nil {
		t.Fatal(err)
	}
	for _, m := range mailboxes {
		if err := st.CreateMailbox(ctx, addr(t, m), ""); err != nil {
			t.Fatal(err)
		}
	}
	return &fixture{t: t, root: root, st: st, q: q}
}

func addr(t *testing.T, s string) store.Address {
	t.Helper()
	a, err := store.ParseAddress(s, "")
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func (f *fixture) start(st store.Store, o Options) *Service {
	f.t.Helper()
	if o.RetryMin == 0 {
		o.RetryMin = 20 * time.Millisecond
		o.RetryMax = 50 * time.Millisecond
	}
	o.Hostname = "mx.test"
	s := New(st, f.q, o)
	s.Start()
	f.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Stop(ctx); err != nil {
			f.t.Error(err)
		}
	})
	return s
}

func (f *fixture) wait(s *Service) {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := s.WaitIdle(ctx); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) messages(m string) [][]byte {
	f.t.Helper()
	sess, err := f.st.OpenSession(context.Background(), addr(f.t, m), "test")
	if err != nil {
		f.t.Fatal(err)
	}
	defer sess.Close()
	var out [][]byte
	for i := range sess.Messages() {
		rc, err := sess.Open(i)
		if err != nil {
			f.t.Fatal(err)
		}
		b, _ := io.ReadAll(rc)
		rc.Close()
		out = append(out, b)
	}
	return out
}

// A process died after a copy landed but before it recorded it: the next
// attempt finds the copy and does not deliver a second one.
func TestRecoveryFindsEarlierCopy(t *testing.T) {
	f := newFixture(t, "a@example.com", "b@example.com")
	env := store.Envelope{From: "s@remote.test", Rcpts: []string{"a@example.com", "b@example.com"}}
	id, err := f.q.Enqueue(env, strings.NewReader("Subject: once\r\n\r\nbody\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	e, err := f.q.Lock(id)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start("dead-process"); err != nil {
		t.Fatal(err)
	}
	// Some other message first, so the search has to look past it.
	if _, err := f.st.Deliver(context.Background(), addr(t, "a@example.com"), strings.NewReader("Subject: other\r\n\r\nx\r\n")); err != nil {
		t.Fatal(err)
	}
	if _, err := f.st.Deliver(context.Background(), addr(t, "a@example.com"),
		io.MultiReader(strings.NewReader(copyHeader(env.From, id)), strings.NewReader("Subject: once\r\n\r\nbody\r\n"))); err != nil {
		t.Fatal(err)
	}
	if _, err := f.st.Deliver(context.Background(), addr(t, "a@example.com"), strings.NewReader("Subject: later\r\n\r\nx\r\n")); err != nil {
		t.Fatal(err)
	}
	e.Close() // the "process" dies here

	s := f.start(f.st, Options{})
	f.wait(s)
	count := func(m string) int {
		n := 0
		for _, b := range f.messages(m) {
			if bytes.Contains(b, []byte("Subject: once")) {
				n++
			}
		}
		return n
	}
	if n := count("a@example.com"); n != 1 {
		t.Errorf("a has %d copies, want 1", n)
	}
	if n := count("b@example.com"); n != 1 {
		t.Errorf("b has %d copies, want 1", n)
	}
}

// The recovery check reads the mailbox without its lock: while a POP3
// session holds it, a copy that landed before a crash is found (no
// duplicate), and a missing copy is delivered at once (no wait).
func TestRecoveryCheckWhileSessionHeld(t *testing.T) {
	for _, landed := range []bool{true, false} {
		t.Run(fmt.Sprintf("landed=%v", landed), func(t *testing.T) {
			f := newFixture(t, "a@example.com")
			id, err := f.q.Enqueue(store.Envelope{From: "s@remote.test", Rcpts: []string{"a@example.com"}}, strings.NewReader("Subject: w\r\n\r\nx\r\n"))
			if err != nil {
				t.Fatal(err)
			}
			e, err := f.q.Lock(id)
			if err != nil {
				t.Fatal(err)
			}
			e.Start("dead-process")
			e.Close()
			if landed {
				// The dead attempt's copy, with its marker, before its "done".
				if _, err := f.st.Deliver(context.Background(), addr(t, "a@example.com"), strings.NewReader(copyHeader("s@remote.test", id)+"Subject: w\r\n\r\nx\r\n")); err != nil {
					t.Fatal(err)
				}
			}
			sess, err := f.st.OpenSession(context.Background(), addr(t, "a@example.com"), "pop3 user")
			if err != nil {
				t.Fatal(err)
			}
			defer sess.Close()
			s := f.start(f.st, Options{})
			f.wait(s) // the queue empties while the session holds the mailbox
			sess.Close()
			if n := len(f.messages("a@example.com")); n != 1 {
				t.Fatalf("%d copies, want 1", n)
			}
		})
	}
}

// A mailbox held by a POP3 session still receives mail, visible in the
// next session.
func TestDeliveryWhileSessionHeld(t *testing.T) {
	f := newFixture(t, "a@example.com")
	sess, err := f.st.OpenSession(context.Background(), addr(t, "a@example.com"), "pop3 user")
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	s := f.start(f.st, Options{})
	id, err := f.q.Enqueue(store.Envelope{From: "s@remote.test", Rcpts: []string{"a@example.com"}}, strings.NewReader("Subject: held\r\n\r\nx\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	s.Notify(id)
	f.wait(s)
	if n := len(sess.Messages()); n != 0 {
		t.Fatalf("the open session's snapshot changed: %d", n)
	}
	sess.Close()
	if n := len(f.messages("a@example.com")); n != 1 {
		t.Fatalf("%d messages in the next session, want 1", n)
	}
}

// flaky wraps the real store and fails Deliver with a temporary error.
type flaky struct {
	*filestore.Store
	failures atomic.Int32 // remaining failures; <0: always
	only     string       // when set, only this mailbox's copies fail
}

var errDisk = errors.New("disk hiccup")

// fail reports whether a copy for a fails now, counting the failure.
func (f *flaky) fail(a store.Address) bool {
	if f.only != "" && a.Mailbox != f.only {
		return false
	}
	if n := f.failures.Load(); n != 0 {
		f.failures.Add(-1)
		return true
	}
	return false
}

func (f *flaky) Deliver(ctx context.Context, a store.Address, r io.Reader) (string, error) {
	if f.fail(a) {
		return "", errDisk
	}
	return f.Store.Deliver(ctx, a, r)
}

// Stage fails like Deliver: the service stages its copies in a file store.
func (f *flaky) Stage(ctx context.Context, a store.Address, key string, r io.Reader) (string, error) {
	if f.fail(a) {
		return "", errDisk
	}
	return f.Store.Stage(ctx, a, key, r)
}

func TestTemporaryFailureRetried(t *testing.T) {
	f := newFixture(t, "a@example.com")
	fl := &flaky{Store: f.st}
	fl.failures.Store(3)
	before := localCounters.deferred.Get()
	s := f.start(fl, Options{})
	id, err := f.q.Enqueue(store.Envelope{From: "s@remote.test", Rcpts: []string{"a@example.com"}}, strings.NewReader("Subject: retry\r\n\r\nx\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	s.Notify(id)
	f.wait(s)
	if n := len(f.messages("a@example.com")); n != 1 {
		t.Fatalf("%d messages, want 1", n)
	}
	if d := localCounters.deferred.Get() - before; d < 3 {
		t.Errorf("deferred counted %d times, want at least 3", d)
	}
}

func TestTemporaryFailureExpiresWithReport(t *testing.T) {
	f := newFixture(t, "a@example.com", "sender@example.com")
	// Only a's copies fail: the report to the sender goes through, however
	// late it comes within its own 300 ms.
	fl := &flaky{Store: f.st, only: "a"}
	fl.failures.Store(-1)
	s := f.start(fl, Options{RetryFor: 300 * time.Millisecond})
	id, err := f.q.Enqueue(store.Envelope{From: "sender@example.com", Rcpts: []string{"a@example.com"}}, strings.NewReader("Subject: expire\r\n\r\nx\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	s.Notify(id)
	f.wait(s)
	msgs := f.messages("sender@example.com")
	if len(msgs) != 1 || !bytes.Contains(msgs[0], []byte("Status: 5.4.7\r\n")) || !bytes.Contains(msgs[0], []byte("disk hiccup")) {
		t.Fatalf("report: %d messages %q", len(msgs), msgs)
	}
	if n := len(f.messages("a@example.com")); n != 0 {
		t.Fatalf("a got %d messages", n)
	}
}

func TestNoReportAboutAReport(t *testing.T) {
	f := newFixture(t, "full@example.com")
	if err := f.st.SetQuota(context.Background(), addr(t, "full@example.com"), 10); err != nil {
		t.Fatal(err)
	}
	s := f.start(f.st, Options{})
	id, err := f.q.Enqueue(store.Envelope{From: "someone@example.com", Rcpts: []string{"full@example.com"}, Report: true},
		strings.NewReader("Subject: a report\r\n\r\n"+strings.Repeat("x", 100)+"\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	s.Notify(id)
	f.wait(s)
	ids, _ := f.q.Badmail()
	if len(ids) != 1 || ids[0] != id {
		t.Fatalf("Badmail = %v, want [%s]", ids, id)
	}
}

// A damaged envelope (here, not JSON) is not retried for ever: it goes to
// Badmail with a reason that quotes it, and leaves the queue.
func TestDamagedEntryGoesToBadmail(t *testing.T) {
	f := newFixture(t, "a@example.com")
	id, err := f.q.Enqueue(store.Envelope{From: "s@remote.test", Rcpts: []string{"a@example.com"}},
		strings.NewReader("Subject: damaged\r\n\r\nbody\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	envPath := filepath.Join(f.root, queue.MetaDir, queue.QueueDir, id+queue.EnvSuffix)
	if err := os.WriteFile(envPath, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := f.start(f.st, Options{})
	s.Notify(id)
	f.wait(s)
	queued, badmail, err := f.q.Depth()
	if err != nil {
		t.Fatal(err)
	}
	if queued != 0 || badmail != 1 {
		t.Fatalf("queued %d, Badmail %d; want 0 and 1", queued, badmail)
	}
	reason, err := f.q.BadmailReason(id)
	if err != nil || !strings.Contains(reason, "damaged queue entry") || !strings.Contains(reason, "{not json") {
		t.Fatalf("reason %q, %v", reason, err)
	}
	if n := len(f.messages("a@example.com")); n != 0 {
		t.Fatalf("%d copies delivered from a damaged entry", n)
	}
}

// countingFlaky fails every delivery temporarily and counts the attempts.
type countingFlaky struct {
	*filestore.Store
	calls atomic.Int32
}

func (f *countingFlaky) Deliver(ctx context.Context, a store.Address, r io.Reader) (string, error) {
	f.calls.Add(1)
	return "", errDisk
}

func (f *countingFlaky) Stage(ctx context.Context, a store.Address, key string, r io.Reader) (string, error) {
	f.calls.Add(1)
	return "", errDisk
}

// TestRetriedOnceAcrossServers: two servers serve one queue; an entry
// whose delivery is postponed by one is not attempted by the other before
// the recorded time, so the deferral is counted once in the cluster; and
// only one of them is the queue's leader.
func TestRetriedOnceAcrossServers(t *testing.T) {
	f := newFixture(t, "a@example.com")
	fl := &countingFlaky{Store: f.st}
	before := localCounters.deferred.Get()
	o := Options{RetryMin: time.Hour, RetryMax: time.Hour}
	s1 := f.start(fl, o)
	id, err := f.q.Enqueue(queue.Envelope{From: "s@remote.test", Rcpts: []string{"a@example.com"}}, strings.NewReader("Subject: once\r\n\r\nx\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	s1.Notify(id)
	waitIdleSignal(t, s1)
	if n := fl.calls.Load(); n != 1 {
		t.Fatalf("%d attempts by the first server, want 1", n)
	}
	// A second server on its own queue handle: its start scans the queue
	// and looks at the entry (the idle signal), and must leave it alone.
	q2, err := queue.Open(f.root)
	if err != nil {
		t.Fatal(err)
	}
	s2 := New(fl, q2, Options{RetryMin: time.Hour, RetryMax: time.Hour, Hostname: "mx2.test"})
	s2.Start()
	defer s2.Stop(context.Background())
	waitIdleSignal(t, s2)
	if n := fl.calls.Load(); n != 1 {
		t.Fatalf("%d attempts in the cluster within the retry period, want 1", n)
	}
	if d := localCounters.deferred.Get() - before; d != 1 {
		t.Fatalf("deferred counted %d times in the cluster, want 1", d)
	}
	e, err := f.q.Lock(id)
	if err != nil {
		t.Fatal(err)
	}
	next, attempts := e.(store.QueueSchedule).NextAttempt()
	if attempts != 1 || time.Until(next) < 30*time.Minute {
		t.Fatalf("recorded retry: attempt %d at %v, want 1 in about an hour", attempts, next)
	}
	e.Close()
	l1, l2 := f.q.Leader(), q2.Leader()
	if l1 == l2 {
		t.Fatalf("both or neither of two queue handles lead (%v)", l1)
	}
}

// waitIdleSignal waits until a worker of s finished an entry.
func waitIdleSignal(t *testing.T, s *Service) {
	t.Helper()
	select {
	case <-s.idle:
	case <-time.After(20 * time.Second):
		t.Fatal("no entry was processed within 20s")
	}
}
