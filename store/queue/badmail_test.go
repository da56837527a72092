package queue

import (
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
)

// toBadmail queues a message for three recipients, delivers the first,
// fails the third and moves it to Badmail.
func toBadmail(t *testing.T, q *Queue, body string) string {
	t.Helper()
	id, err := q.Enqueue(Envelope{From: "s@x.test", Rcpts: []string{"a@d.test", "b@d.test", "c@d.test"}}, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	e, err := q.Lock(id)
	if err != nil {
		t.Fatal(err)
	}
	must(t, e.Done(0, "00000000000000000000000001"))
	must(t, e.Fail(2, "5.2.2", "mailbox full"))
	must(t, e.ToBadmail("the report could not be sent"))
	e.Close()
	return id
}

func TestBadmailOpenRetryDelete(t *testing.T) {
	q := newQueue(t)
	const body = "Subject: t\r\n\r\nhello\r\n"
	id := toBadmail(t, q, body)
	other := toBadmail(t, q, body)

	rc, err := q.OpenBadmail(id)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(rc)
	rc.Close()
	if string(got) != body {
		t.Fatalf("OpenBadmail = %q, want %q", got, body)
	}

	// Two retries at once queue the message once.
	var wg sync.WaitGroup
	ids := make([]string, 2)
	errs := make([]error, 2)
	for i := range 2 {
		wg.Add(1)
		go func() { defer wg.Done(); ids[i], errs[i] = q.RetryBadmail(id) }()
	}
	wg.Wait()
	var nid string
	for i := range 2 {
		switch {
		case errs[i] == nil:
			if nid != "" {
				t.Fatal("the message was queued twice")
			}
			nid = ids[i]
		case !errors.Is(errs[i], ErrNotFound):
			t.Fatalf("retry: %v", errs[i])
		}
	}
	if nid == "" {
		t.Fatal("no retry queued the message")
	}
	e, err := q.Lock(nid)
	if err != nil {
		t.Fatal(err)
	}
	env := e.Envelope()
	if env.From != "s@x.test" || strings.Join(env.Rcpts, ",") != "b@d.test,c@d.test" {
		t.Errorf("queued again with %+v, want the two recipients without a copy", env)
	}
	e.Close()
	if bad, _ := q.Badmail(); len(bad) != 1 || bad[0] != other {
		t.Errorf("Badmail after the retry = %v, want only %s", bad, other)
	}

	must(t, q.DeleteBadmail(other))
	if queued, bad, err := q.Depth(); err != nil || queued != 1 || bad != 0 {
		t.Errorf("Depth = %d, %d, %v; want 1 queued, 0 in Badmail", queued, bad, err)
	}
	for _, f := range []func(string) error{q.DeleteBadmail, func(id string) error { _, err := q.RetryBadmail(id); return err },
		func(id string) error { _, err := q.OpenBadmail(id); return err }} {
		if err := f(other); !errors.Is(err, ErrNotFound) {
			t.Errorf("on a deleted message: %v, want ErrNotFound", err)
		}
		if err := f("../x"); !errors.Is(err, ErrBadID) {
			t.Errorf("on a bad id: %v, want ErrBadID", err)
		}
	}
}
