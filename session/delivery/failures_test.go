package delivery

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pop3svc/pop3svc/store"
	"github.com/pop3svc/pop3svc/store/filestore"
)

// A relay that accepts the connection and never says a word must not hold
// a worker past RelayTimeout (the whole relay conversation).
func TestRelayTimeoutBoundsWholeConversation(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c) // silent: no greeting
		}
	}()
	defer func() {
		l.Close()
		<-done
		for _, c := range conns {
			c.Close()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	errc := make(chan error, 1)
	go func() { errc <- sendRelay(ctx, l.Addr().String(), "mx.test", "a@remote.test", []byte("x\r\n")) }()
	select {
	case err := <-errc:
		if err == nil {
			t.Fatal("sendRelay to a silent relay succeeded")
		}
		if d := time.Since(start); d > 8*time.Second {
			t.Fatalf("sendRelay took %v, want about 300ms", d)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("sendRelay still waiting for a silent relay 10s after a 300ms timeout")
	}
}

// linkThenFail stores the copy, then reports an error (as Deliver does
// when the folder fsync after the link fails): the copy is there.
type linkThenFail struct {
	store.Store
	left atomic.Int32
}

func (l *linkThenFail) Deliver(ctx context.Context, a store.Address, r io.Reader) (string, error) {
	uid, err := l.Store.Deliver(ctx, a, r)
	if err == nil && l.left.Add(-1) >= 0 {
		return "", io.ErrShortWrite
	}
	return uid, err
}

// A temporary Deliver error after the copy landed is retried by the same
// process: the retry must look for the copy rather than store a second one.
func TestRetryAfterAmbiguousErrorDoesNotDuplicate(t *testing.T) {
	f := newFixture(t, "a@example.com")
	st := &linkThenFail{Store: f.st}
	st.left.Store(1)
	s := f.start(st, Options{})
	id, err := f.q.Enqueue(store.Envelope{From: "s@remote.test", Rcpts: []string{"a@example.com"}}, strings.NewReader("Subject: once\r\n\r\nx\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	s.Notify(id)
	f.wait(s)
	if n := len(f.messages("a@example.com")); n != 1 {
		t.Fatalf("a has %d copies, want 1", n)
	}
}

// A process queued the report for a local sender and died before it
// recorded it; the report was then delivered (and its entry removed) before
// the original entry was looked at again. The sender must get one report,
// not two.
func TestRecoveryDoesNotQueueASecondReport(t *testing.T) {
	f := newFixture(t, "sender@example.com", "full@example.com")
	id, err := f.q.Enqueue(store.Envelope{From: "sender@example.com", Rcpts: []string{"full@example.com"}},
		strings.NewReader("Subject: twice?\r\n\r\nbody\r\n"))
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
	if err := e.Fail(0, "5.2.2", "mailbox full"); err != nil {
		t.Fatal(err)
	}
	// The dead process's report, already delivered.
	if _, err := f.st.Deliver(context.Background(), addr(t, "sender@example.com"),
		strings.NewReader(copyHeader("", reportID(id))+"Subject: Undelivered Mail Returned to Sender\r\n\r\nreport\r\n")); err != nil {
		t.Fatal(err)
	}
	e.Close() // the process dies before "ndr" is recorded

	s := f.start(f.st, Options{})
	f.wait(s)
	if n := len(f.messages("sender@example.com")); n != 1 {
		t.Fatalf("sender has %d reports, want 1", n)
	}
}

// An envelope dropped into the queue by another program may carry a
// reverse-path with CR/LF: it must not open new header lines in the copy
// (Return-Path) nor in the report (To).
func TestDroppedEnvelopeCannotInjectHeaders(t *testing.T) {
	f := newFixture(t, "a@example.com", "full@example.com")
	if err := f.st.SetQuota(context.Background(), addr(t, "full@example.com"), 10); err != nil {
		t.Fatal(err)
	}
	from := "a@example.com>\r\nBcc: evil@remote.test\r\nX-Evil: <x"
	s := f.start(f.st, Options{})
	id, err := f.q.Enqueue(store.Envelope{From: from, Rcpts: []string{"a@example.com", "full@example.com"}},
		strings.NewReader("Subject: inject\r\n\r\n"+strings.Repeat("x", 100)+"\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	s.Notify(id)
	f.wait(s)
	for _, m := range f.messages("a@example.com") {
		if strings.Contains(string(m), "\r\nBcc:") || strings.Contains(string(m), "\r\nX-Evil:") {
			t.Fatalf("header injected through the reverse-path: %.300q", m)
		}
	}
}

// writeThenDie stores the copy, then reports an error, as a process
// killed right after its copy landed would leave things: the copy
// written, its "done" never recorded.
type writeThenDie struct {
	*filestore.Store
}

var errDied = errors.New("the process died here")

func (w writeThenDie) Deliver(ctx context.Context, a store.Address, r io.Reader) (string, error) {
	if _, err := w.Store.Deliver(ctx, a, r); err != nil {
		return "", err
	}
	return "", errDied
}

func (w writeThenDie) Stage(ctx context.Context, a store.Address, key string, r io.Reader) (string, error) {
	if _, err := w.Store.Stage(ctx, a, key, r); err != nil {
		return "", err
	}
	return "", errDied
}

// TestRecoveryAfterTheCopyWasRetrieved: a server dies after its copy
// landed and before it recorded it; a POP3 user then retrieves and
// deletes everything visible; another server recovers the entry. The
// recipient gets the message exactly once in all: a copy that could be
// retrieved before its record is delivered again (the recovery cannot
// find it), so a copy must stay invisible until it is recorded.
func TestRecoveryAfterTheCopyWasRetrieved(t *testing.T) {
	f := newFixture(t, "a@example.com")
	o := Options{RetryMin: 20 * time.Millisecond, RetryMax: 50 * time.Millisecond, Hostname: "mx1.test"}
	s1 := New(writeThenDie{f.st}, f.q, o)
	s1.Start()
	id, err := f.q.Enqueue(store.Envelope{From: "s@remote.test", Rcpts: []string{"a@example.com"}}, strings.NewReader("Subject: once\r\n\r\nx\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	s1.Notify(id)
	waitIdleSignal(t, s1)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s1.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	// The user retrieves and deletes what is visible.
	sess, err := f.st.OpenSession(context.Background(), addr(t, "a@example.com"), "pop3 user")
	if err != nil {
		t.Fatal(err)
	}
	var all []int
	for i := range sess.Messages() {
		all = append(all, i)
	}
	retrieved := len(all)
	if err := sess.Commit(context.Background(), all); err != nil {
		t.Fatal(err)
	}
	// Another server recovers the entry.
	s2 := f.start(f.st, Options{})
	f.wait(s2)
	left := len(f.messages("a@example.com"))
	if retrieved+left != 1 {
		t.Fatalf("the recipient got %d copies (%d retrieved before the recovery, %d after), want 1", retrieved+left, retrieved, left)
	}
	if ids, err := f.q.List(); err != nil || len(ids) != 0 {
		t.Fatalf("queue after the recovery: %v %v, want empty", ids, err)
	}
	tmp, err := os.ReadDir(filepath.Join(f.root, ".pop3", "tmp"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range tmp {
		t.Errorf("left in .pop3/tmp: %s", e.Name())
	}
}
