//go:build linux

package filestore

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// A session lock whose record cannot be read at release time (a passing
// failure: the process out of file descriptors, an I/O error) must not be
// mistaken for one another server took over: the mailbox would stay locked
// by this live process until it exits. Release tries again, and reports
// the failure if the record stays unreadable.
func TestReleaseRetriesUnreadableLock(t *testing.T) {
	s := newTestStore(t, Options{})
	a := mkbox(t, s)
	ms, err := s.OpenSession(bg, a, "test")
	if err != nil {
		t.Fatal(err)
	}
	kcol := filepath.Join(s.mboxPath(a), KcolName)
	rec, err := os.ReadFile(kcol)
	if err != nil {
		t.Fatal(err)
	}
	// An oversized record cannot be read (durable.ReadSmall refuses it): a
	// stand-in for a read that fails for a while.
	if err := os.WriteFile(kcol, append(bytes.Clone(rec), bytes.Repeat([]byte("#"), maxLockFileSize)...), 0o600); err != nil {
		t.Fatal(err)
	}
	repaired := 0
	unreadableLockHook = func() {
		if repaired++; repaired == 1 {
			if err := os.WriteFile(kcol, rec, 0o600); err != nil {
				t.Error(err)
			}
		}
	}
	t.Cleanup(func() { unreadableLockHook = nil })
	if err := ms.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if repaired != 1 {
		t.Fatalf("Close found the record unreadable %d times, want once (then repaired)", repaired)
	}
	unreadableLockHook = nil
	info, err := s.Mailbox(bg, a)
	if err != nil {
		t.Fatal(err)
	}
	if info.InUse {
		t.Fatal("the mailbox is still locked after its session was closed")
	}
	// A record that stays unreadable is an error, not a silent success.
	ms, err = s.OpenSession(bg, a, "test")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(kcol, bytes.Repeat([]byte("#"), 2*maxLockFileSize), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := ms.Close(); err == nil {
		t.Fatal("Close reported success with the lock record unreadable")
	}
}

// Deletions that were committed are reported as done even when the lock
// cannot be released at once; a later Close releases it.
func TestCommitThenUnreadableLock(t *testing.T) {
	s := newTestStore(t, Options{})
	a := mkbox(t, s)
	fill(t, s, a, 2)
	ms, err := s.OpenSession(bg, a, "test")
	if err != nil {
		t.Fatal(err)
	}
	kcol := filepath.Join(s.mboxPath(a), KcolName)
	rec, err := os.ReadFile(kcol)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(kcol, bytes.Repeat([]byte("#"), 2*maxLockFileSize), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := ms.Commit(bg, []int{0}); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	if n, _, err := s.Usage(bg, a); err != nil || n != 1 {
		t.Fatalf("after Commit: %d messages, %v", n, err)
	}
	if err := os.WriteFile(kcol, rec, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := ms.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if info, err := s.Mailbox(bg, a); err != nil || info.InUse {
		t.Fatalf("mailbox after Close: %+v, %v", info, err)
	}
}
