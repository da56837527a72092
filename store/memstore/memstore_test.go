package memstore

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/pop3svc/pop3svc/store"
	"github.com/pop3svc/pop3svc/store/credential"
	"github.com/pop3svc/pop3svc/store/storetest"
)

// testArgon2 keeps the suite fast.
var testArgon2 = credential.Argon2Params{Time: 1, MemoryKiB: 64, Threads: 1, KeyLen: 32}

var bg = context.Background()

func newTestStore(t testing.TB, opts Options) *Store {
	t.Helper()
	if opts.Argon2 == (credential.Argon2Params{}) {
		opts.Argon2 = testArgon2
	}
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	// No capability: no files, and the data lives and dies with its Store.
	storetest.Run(t, func(t *testing.T) store.Store { return newTestStore(t, Options{Node: 7}) }, storetest.Capabilities{Import: true})
}

func mkbox(t testing.TB, s *Store) store.Address {
	t.Helper()
	a := store.Address{Mailbox: "alice", Domain: "example.com"}
	if err := s.CreateDomain(bg, a.Domain); err != nil && !errors.Is(err, store.ErrDomainExists) {
		t.Fatal(err)
	}
	if err := s.CreateMailbox(bg, a, "pw"); err != nil {
		t.Fatal(err)
	}
	return a
}

func TestNewOptions(t *testing.T) {
	for _, o := range []Options{{Node: -1}, {Node: 100000}, {DomainQuotaDefault: -1}, {MaxMessageSize: -1}, {HashConcurrency: -1},
		{Argon2: credential.Argon2Params{Time: 1, MemoryKiB: 1, Threads: 1, KeyLen: 32}}} {
		if _, err := New(o); err == nil {
			t.Errorf("New(%+v) succeeded", o)
		}
	}
}

func TestMessageLimits(t *testing.T) {
	s := newTestStore(t, Options{MaxMessageSize: 100, DomainQuotaDefault: 250})
	a := mkbox(t, s)
	// The limit counts stored octets: 99 + the CRLF appended = 101.
	if _, err := s.Deliver(bg, a, strings.NewReader(strings.Repeat("x", 99))); !errors.Is(err, store.ErrMessageTooLarge) {
		t.Fatalf("Deliver(101 octets, limit 100) = %v, want ErrMessageTooLarge", err)
	}
	for i := 0; i < 2; i++ {
		if _, err := s.Deliver(bg, a, strings.NewReader(strings.Repeat("y", 98))); err != nil {
			t.Fatalf("Deliver(100 octets, limit 100) = %v", err)
		}
	}
	if _, err := s.Deliver(bg, a, strings.NewReader(strings.Repeat("y", 98))); !errors.Is(err, store.ErrOverQuota) {
		t.Fatalf("Deliver past the default quota = %v, want ErrOverQuota", err)
	}
	if q, _ := s.Quota(bg, a); q != 250 {
		t.Fatalf("Quota = %d, want the default 250", q)
	}
	if err := s.SetQuota(bg, a, 1000); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Deliver(bg, a, strings.NewReader(strings.Repeat("y", 98))); err != nil {
		t.Fatalf("Deliver under the mailbox's own quota = %v", err)
	}
}

// TestReaderClosed: a message reader fails once closed, as a closed file does.
func TestReaderClosed(t *testing.T) {
	s := newTestStore(t, Options{})
	a := mkbox(t, s)
	if _, err := s.Deliver(bg, a, strings.NewReader("hello\r\n")); err != nil {
		t.Fatal(err)
	}
	ms, err := s.OpenSession(bg, a, "t")
	if err != nil {
		t.Fatal(err)
	}
	defer ms.Close()
	r, err := ms.Open(0)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 3)
	if n, err := r.Read(b); n != 3 || err != nil || string(b) != "hel" {
		t.Fatalf("Read = %d %q %v", n, b, err)
	}
	r.Close()
	if _, err := r.Read(b); err == nil {
		t.Fatal("Read after Close succeeded")
	}
	r, _ = ms.Open(0)
	if got, err := io.ReadAll(r); err != nil || string(got) != "hello\r\n" {
		t.Fatalf("a second reader = %q, %v", got, err)
	}
}

// TestStoresAreSeparate: two stores share nothing, not even their key.
func TestStoresAreSeparate(t *testing.T) {
	s1, s2 := newTestStore(t, Options{}), newTestStore(t, Options{})
	a := mkbox(t, s1)
	if _, err := s2.Mailbox(bg, a); !errors.Is(err, store.ErrNoSuchDomain) {
		t.Fatalf("a mailbox of one store seen in another: %v", err)
	}
	if string(s1.key) == string(s2.key) {
		t.Fatal("two stores made the same key")
	}
}
