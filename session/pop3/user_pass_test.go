package pop3

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/pop3svc/pop3svc/session"
)

func TestBadCredentialsIndistinguishable(t *testing.T) {
	st := testStore(t)
	for _, guard := range []*recGuard{nil, {delay: 3 * time.Second}} {
		o := testOptions(st)
		o.MaxAuthFailures = 0
		if guard != nil {
			o.Auth.Guard = guard
		}
		var replies []session.Reply
		for _, c := range [][2]string{
			{"alice@example.com", "wrong"},
			{"nobody@example.com", "wrong"},
			{"alice@nowhere.example", "tanstaaf with spaces"},
			{"../../etc/passwd", "x"},
			{"dave@example.com", ""},
			{"a@b@c", "x"},
		} {
			s := New(o, ci)
			mustOK(t, s, "USER "+c[0])
			r, _ := do(t, s, "PASS "+c[1])
			s.Close()
			replies = append(replies, r)
		}
		want := time.Duration(2 * time.Second)
		if guard != nil {
			want = guard.delay
			if guard.failures != len(replies) {
				t.Errorf("guard saw %d failures, want %d", guard.failures, len(replies))
			}
		}
		for i, r := range replies {
			// The delay is the guard's plus the pad that evens out how
			// long the checks took (at most 2 s, auth's maxFailurePad).
			if !bytes.Equal(r.Out, replies[0].Out) || r.Delay < want || r.Delay > want+2*time.Second || r.Close || r.Authenticated {
				t.Errorf("reply %d = %q delay %v close %v, want %q delay %v", i, r.Out, r.Delay, r.Close, replies[0].Out, want)
			}
		}
	}
}

func TestMaxAuthFailuresCloses(t *testing.T) {
	st := testStore(t)
	o := testOptions(st)
	o.MaxAuthFailures = 2
	s := New(o, ci)
	defer s.Close()
	mustOK(t, s, "USER alice@example.com")
	if r, _ := do(t, s, "PASS x"); r.Close {
		t.Fatal("closed after one failure")
	}
	mustOK(t, s, "USER alice@example.com")
	if r, _ := do(t, s, "PASS y"); !r.Close || !strings.HasPrefix(string(r.Out), "-ERR [AUTH]") {
		t.Fatalf("second failure: %q close %v", r.Out, r.Close)
	}
}
