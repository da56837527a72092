package storetest

import (
	"testing"
	"time"

	"github.com/pop3svc/pop3svc/store"
)

// policyState returns the session's store.PolicyState; a store that says
// it keeps one (store.PolicyStore) and does not fails the test.
func policyState(t *testing.T, s store.Store, ms store.MailboxSession) store.PolicyState {
	t.Helper()
	ps, ok := ms.(store.PolicyState)
	if !ok {
		t.Fatalf("%T is a store.PolicyStore but its session %T is not a store.PolicyState", s, ms)
	}
	return ps
}

// testPolicyState: retrieval records and the last login outlive the
// session, a message's first retrieval is kept, and records of deleted
// messages go with them.
func testPolicyState(t *testing.T, s store.Store) {
	if _, ok := s.(store.PolicyStore); !ok {
		return
	}
	setup(t, s, "alice")
	a := addr("alice", "example.com")
	deliver(t, s, a, "one\r\n")
	deliver(t, s, a, "two\r\n")
	deliver(t, s, a, "three\r\n")
	t1 := time.Unix(1_800_000_000, 0)
	t2 := t1.Add(48 * time.Hour)

	ms, err := s.OpenSession(ctx, a, "test")
	wantErr(t, "OpenSession", err, nil)
	ps := policyState(t, s, ms)
	if !ps.LastLogin().IsZero() {
		t.Fatalf("a fresh mailbox has a last login: %v", ps.LastLogin())
	}
	for i, m := range ms.Messages() {
		if !m.Retrieved.IsZero() {
			t.Fatalf("message %d of a fresh mailbox was retrieved at %v", i+1, m.Retrieved)
		}
	}
	wantErr(t, "RecordLogin", ps.RecordLogin(t1), nil)
	wantErr(t, "MarkRetrieved", ps.MarkRetrieved(ctx, []int{0, 1}, t1), nil)
	wantErr(t, "MarkRetrieved(out of range)", ps.MarkRetrieved(ctx, []int{3}, t1), store.ErrNoSuchMessage)
	wantErr(t, "Commit", ms.Commit(ctx, []int{1}), nil)

	ms, err = s.OpenSession(ctx, a, "test")
	wantErr(t, "OpenSession", err, nil)
	ps = policyState(t, s, ms)
	if !ps.LastLogin().Equal(t1) {
		t.Fatalf("LastLogin = %v, want %v", ps.LastLogin(), t1)
	}
	msgs := ms.Messages()
	if len(msgs) != 2 || !msgs[0].Retrieved.Equal(t1) || !msgs[1].Retrieved.IsZero() {
		t.Fatalf("after retrieving 1 and 2 and deleting 2: %+v", msgs)
	}
	// A later retrieval keeps the first one's time.
	wantErr(t, "MarkRetrieved", ps.MarkRetrieved(ctx, []int{0, 1}, t2), nil)
	wantErr(t, "RecordLogin", ps.RecordLogin(t2), nil)
	wantErr(t, "Close", ms.Close(), nil)

	ms, err = s.OpenSession(ctx, a, "test")
	wantErr(t, "OpenSession", err, nil)
	defer ms.Close()
	ps = policyState(t, s, ms)
	msgs = ms.Messages()
	if !ps.LastLogin().Equal(t2) || !msgs[0].Retrieved.Equal(t1) || !msgs[1].Retrieved.Equal(t2) {
		t.Fatalf("last login %v, messages %+v; want %v, retrieved %v and %v", ps.LastLogin(), msgs, t2, t1, t2)
	}
}
