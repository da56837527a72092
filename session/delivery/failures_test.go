package delivery

import (
	"context"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pop3svc/pop3svc/store"
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
		if d := time.Since(start); d > 3*time.Second {
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
