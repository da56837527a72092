package queue

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func newQueue(t *testing.T) *Queue {
	t.Helper()
	q, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return q
}

func TestEnqueueLockProgressRemove(t *testing.T) {
	q := newQueue(t)
	env := Envelope{From: "s@x.test", Rcpts: []string{"a@d.test", "b@d.test", "c@d.test"}}
	id, err := q.Enqueue(env, strings.NewReader("Subject: t\r\n\r\nhello\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !ValidID(id) {
		t.Fatalf("id %q is not valid", id)
	}
	ids, err := q.List()
	if err != nil || len(ids) != 1 || ids[0] != id {
		t.Fatalf("List = %v, %v", ids, err)
	}
	e, err := q.Lock(id)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := q.Lock(id); !errors.Is(err, ErrBusy) {
		t.Fatalf("second Lock = %v, want ErrBusy", err)
	}
	if e.Envelope().From != "s@x.test" || len(e.Rcpts()) != 3 || e.Resolved() {
		t.Fatalf("entry %+v", e)
	}
	if e.NeedsCheck("me") {
		t.Fatal("a fresh entry needs no check")
	}
	must(t, e.Start("me"))
	must(t, e.Done(0, "00000000000000000000000001"))
	must(t, e.Fail(2, "5.2.2", "mailbox\nfull"))
	e.Close()

	// A new holder (another process) reads the progress back.
	e, err = q.Lock(id)
	if err != nil {
		t.Fatal(err)
	}
	if !e.Rcpts()[0].Done || e.Rcpts()[0].UID != "00000000000000000000000001" || e.Rcpts()[1].Resolved() ||
		!e.Rcpts()[2].Failed || e.Rcpts()[2].Status != "5.2.2" || e.Rcpts()[2].Reason != "mailbox full" {
		t.Fatalf("progress read back: %+v", e.Rcpts())
	}
	if !e.NeedsCheck("other") || e.NeedsCheck("me") {
		t.Fatal("NeedsCheck does not follow the recorded attempts")
	}
	f, err := e.Open()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(f)
	f.Close()
	if string(b) != "Subject: t\r\n\r\nhello\r\n" {
		t.Fatalf("message %q", b)
	}
	must(t, e.Done(1, "00000000000000000000000002"))
	if !e.Resolved() || len(e.Failed()) != 1 {
		t.Fatal("not resolved")
	}
	must(t, e.RecordNDR("local x"))
	must(t, e.Remove())
	if _, err := q.Lock(id); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Lock after Remove = %v", err)
	}
	if n, b, err := q.Depth(); n != 0 || b != 0 || err != nil {
		t.Fatalf("Depth = %d %d %v", n, b, err)
	}
}

func TestTornLogLine(t *testing.T) {
	q := newQueue(t)
	id, err := q.Enqueue(Envelope{Rcpts: []string{"a@d.test", "b@d.test"}}, strings.NewReader("x\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	// A crash in the middle of appending "done 1 ...".
	if err := os.WriteFile(q.path(id, LogSuffix), []byte("start p1\ndone 0 U1\ndone 1 U"), 0o600); err != nil {
		t.Fatal(err)
	}
	e, err := q.Lock(id)
	if err != nil {
		t.Fatal(err)
	}
	if !e.Rcpts()[0].Done || e.Rcpts()[1].Resolved() {
		t.Fatalf("torn line applied: %+v", e.Rcpts())
	}
	must(t, e.Done(1, "U2"))
	e.Close()
	e, err = q.Lock(id)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if !e.Rcpts()[1].Done || e.Rcpts()[1].UID != "U2" {
		t.Fatalf("record after repair: %+v", e.Rcpts())
	}
}

func TestBadmailAndDepth(t *testing.T) {
	q := newQueue(t)
	id, err := q.Enqueue(Envelope{Rcpts: []string{"a@d.test"}}, strings.NewReader("Subject: bad\r\n\r\nx\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	if n, b, err := q.Depth(); n != 1 || b != 0 || err != nil {
		t.Fatalf("Depth = %d %d %v", n, b, err)
	}
	e, err := q.Lock(id)
	if err != nil {
		t.Fatal(err)
	}
	must(t, e.Fail(0, "5.2.2", "full"))
	must(t, e.ToBadmail("null sender"))
	if n, b, err := q.Depth(); n != 0 || b != 1 || err != nil {
		t.Fatalf("Depth = %d %d %v", n, b, err)
	}
	r, err := q.BadmailReason(id)
	if err != nil || !strings.Contains(r, "Reason: null sender") || !strings.Contains(r, "<a@d.test> failed 5.2.2 full") {
		t.Fatalf("reason %q %v", r, err)
	}
	b, err := os.ReadFile(filepath.Join(q.BadmailDir(), id+BadSuffix))
	if err != nil || string(b) != "Subject: bad\r\n\r\nx\r\n" {
		t.Fatalf("Badmail message %q %v", b, err)
	}
}

func TestEnqueueRefusals(t *testing.T) {
	q := newQueue(t)
	if _, err := q.Enqueue(Envelope{}, strings.NewReader("x")); err == nil {
		t.Error("an envelope without recipients was queued")
	}
	if _, err := q.Enqueue(Envelope{ID: "../x", Rcpts: []string{"a@d.test"}}, strings.NewReader("x")); !errors.Is(err, ErrBadID) {
		t.Errorf("bad id: %v", err)
	}
	env := Envelope{ID: "fixed-id", Rcpts: []string{"a@d.test"}}
	if _, err := q.Enqueue(env, strings.NewReader("first")); err != nil {
		t.Fatal(err)
	}
	if _, err := q.Enqueue(env, strings.NewReader("second")); !errors.Is(err, ErrExists) {
		t.Errorf("same id twice: %v", err)
	}
	e, err := q.Lock("fixed-id")
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	f, _ := e.Open()
	b, _ := io.ReadAll(f)
	f.Close()
	if string(b) != "first" {
		t.Errorf("the second Enqueue changed the entry: %q", b)
	}
	// A body that fails midway leaves nothing behind.
	if _, err := q.Enqueue(Envelope{Rcpts: []string{"a@d.test"}}, io.MultiReader(strings.NewReader("part"), errReader{})); err == nil {
		t.Error("a failing body was queued")
	}
	ids, _ := q.List()
	if len(ids) != 1 {
		t.Errorf("List = %v", ids)
	}
	ents, _ := os.ReadDir(filepath.Join(q.Dir(), TmpDir))
	if len(ents) != 0 {
		t.Errorf("tmp holds %d files", len(ents))
	}
}

func TestCleanOrphans(t *testing.T) {
	q := newQueue(t)
	orphan := q.path("orphan", MsgSuffix)
	if err := os.WriteFile(orphan, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	q.Clean(time.Now())
	if _, err := os.Stat(orphan); err != nil {
		t.Fatal("a young orphan was removed")
	}
	q.Clean(time.Now().Add(2 * OrphanAge))
	if _, err := os.Stat(orphan); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("an old orphan was kept")
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("connection reset") }

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestMovedToBadmail(t *testing.T) {
	q := newQueue(t)
	id, err := q.Enqueue(Envelope{Rcpts: []string{"a@d.test"}}, strings.NewReader("x\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	e, err := q.Lock(id)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if e.MovedToBadmail() {
		t.Fatal("a queued message reported as moved")
	}
	// A crash after the move, before the entry was removed.
	must(t, os.Rename(q.path(id, MsgSuffix), filepath.Join(q.BadmailDir(), id+BadSuffix)))
	if !e.MovedToBadmail() {
		t.Fatal("the move is not seen")
	}
	must(t, e.Remove())
	if ids, _ := q.List(); len(ids) != 0 {
		t.Fatalf("List = %v", ids)
	}
}

// TestAtCreatesNothing: At names a queue without making its folders, so a
// read-only look (pop3ctl stat) leaves a fresh mail root as it was, and
// missing folders count as empty.
func TestAtCreatesNothing(t *testing.T) {
	root := filepath.Join(t.TempDir(), "mailroot")
	q, err := At(root)
	if err != nil {
		t.Fatal(err)
	}
	if n, b, err := q.Depth(); n != 0 || b != 0 || err != nil {
		t.Fatalf("Depth = %d %d %v, want 0 0 <nil>", n, b, err)
	}
	if _, err := os.Lstat(root); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("At created %s (Lstat: %v)", root, err)
	}
}

// TestLeaderAndPostpone: one queue handle of a mail root leads at a time;
// a postponed attempt's time and count survive reopening the entry.
func TestLeaderAndPostpone(t *testing.T) {
	root := t.TempDir()
	q1, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	q2, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	if !q1.Leader() || q2.Leader() {
		t.Fatal("want q1 to lead and q2 not")
	}
	q1.Release()
	if !q2.Leader() || q1.Leader() {
		t.Fatal("after q1's release want q2 to lead and q1 not")
	}
	q2.Release()
	id, err := q1.Enqueue(Envelope{From: "a@b.test", Rcpts: []string{"c@d.test"}}, strings.NewReader("x\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	e, err := q1.lock(id)
	if err != nil {
		t.Fatal(err)
	}
	next := time.UnixMilli(time.Now().Add(time.Hour).UnixMilli())
	if err := e.Postpone(next, 3); err != nil {
		t.Fatal(err)
	}
	e.Close()
	e, err = q2.lock(id)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if n, a := e.NextAttempt(); !n.Equal(next) || a != 3 {
		t.Fatalf("reopened entry: next %v attempt %d, want %v and 3", n, a, next)
	}
}
