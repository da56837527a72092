//go:build linux

package filestore

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pop3svc/pop3svc/store"
)

// TestStageThenPublish: a staged copy is invisible to sessions and
// survives Clean however old it is; Publish makes it visible under the
// UID Stage gave, once: a repeat (after a crash) is a no-op, also after
// the message was retrieved and deleted.
func TestStageThenPublish(t *testing.T) {
	root := filepath.Join(t.TempDir(), "mailroot")
	s := newTestStoreAt(t, root, Options{})
	a := mkbox(t, s)
	count := func() int {
		ms, err := s.OpenSession(bg, a, "t")
		if err != nil {
			t.Fatal(err)
		}
		defer ms.Close()
		return len(ms.Messages())
	}
	uid, err := s.Stage(bg, a, "q1.0", strings.NewReader("Subject: staged\n\nbody\n"))
	if err != nil {
		t.Fatal(err)
	}
	if n := count(); n != 0 {
		t.Fatalf("%d messages after Stage, want 0", n)
	}
	// Staged long ago: Clean (at Open) keeps it, unlike an old temporary file.
	staged := filepath.Join(s.tmp, stagedPrefix+"q1.0")
	past := time.Now().Add(-2 * DefaultTmpMaxAge)
	if err := os.Chtimes(staged, past, past); err != nil {
		t.Fatal(err)
	}
	if r := s.Clean(bg); r.Tmp != 0 {
		t.Fatalf("Clean removed %d temporary files, want 0", r.Tmp)
	}
	if _, err := os.Stat(staged); err != nil {
		t.Fatalf("the staged copy is gone after Clean: %v", err)
	}
	// Staging the same key again replaces the copy.
	if _, err := s.Stage(bg, a, "q1.0", strings.NewReader("Subject: staged\r\n\r\nbody\r\n")); err != nil {
		t.Fatal(err)
	}
	if err := s.Publish(bg, a, "q1.0", uid); err != nil {
		t.Fatal(err)
	}
	ms, err := s.OpenSession(bg, a, "t")
	if err != nil {
		t.Fatal(err)
	}
	msgs := ms.Messages()
	if len(msgs) != 1 || msgs[0].UID != uid {
		t.Fatalf("after Publish: %+v, want one message with UID %s", msgs, uid)
	}
	if _, err := os.Stat(staged); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the staged copy is still there after Publish: %v", err)
	}
	if err := ms.Commit(bg, []int{0}); err != nil {
		t.Fatal(err)
	}
	if err := s.Publish(bg, a, "q1.0", uid); err != nil {
		t.Fatalf("Publish again: %v", err)
	}
	if n := count(); n != 0 {
		t.Fatalf("%d messages after a repeated Publish of a deleted copy, want 0", n)
	}
}

// TestStageRefuses: what Deliver refuses, and keys that are not names.
func TestStageRefuses(t *testing.T) {
	s := newTestStore(t, Options{})
	a := mkbox(t, s)
	for _, k := range []string{"", "..", "a/b", "a b", strings.Repeat("k", 129)} {
		if _, err := s.Stage(bg, a, k, strings.NewReader("x\r\n")); err == nil {
			t.Errorf("Stage with key %q succeeded", k)
		}
		if err := s.Publish(bg, a, k, "u1"); err == nil {
			t.Errorf("Publish with key %q succeeded", k)
		}
	}
	if err := s.Publish(bg, a, "k", "../x"); err == nil {
		t.Errorf("Publish with UID ../x succeeded")
	}
	nobody := store.Address{Mailbox: "nobody", Domain: a.Domain}
	if _, err := s.Stage(bg, nobody, "k", strings.NewReader("x\r\n")); !errors.Is(err, store.ErrNoSuchMailbox) {
		t.Errorf("Stage to a missing mailbox = %v, want ErrNoSuchMailbox", err)
	}
	// The mailbox is deleted between Stage and Publish: nothing lands.
	b := store.Address{Mailbox: "bob", Domain: a.Domain}
	if err := s.CreateMailbox(bg, b, "pw"); err != nil {
		t.Fatal(err)
	}
	uid, err := s.Stage(bg, b, "k2", strings.NewReader("x\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteMailbox(bg, b); err != nil {
		t.Fatal(err)
	}
	if err := s.Publish(bg, b, "k2", uid); !errors.Is(err, store.ErrNoSuchMailbox) {
		t.Errorf("Publish to a deleted mailbox = %v, want ErrNoSuchMailbox", err)
	}
	if _, err := os.Stat(filepath.Join(s.tmp, stagedPrefix+"k2")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the staged copy for a deleted mailbox stays: %v", err)
	}
}
