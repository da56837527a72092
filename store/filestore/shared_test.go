//go:build linux && cluster

package filestore

// Tests of the store on a shared (network) file system, run by
// make test-cluster: POP3SVC_SHARED_A and POP3SVC_SHARED_B are two mounts,
// by two clients, of one volume (see .ci/gluster-up.sh). Each test works in
// a fresh folder of the volume, seen through both mounts, as two servers
// on two machines would.

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pop3svc/pop3svc/cmd/pop3d/pop3dtest"

	"golang.org/x/sys/unix"

	"github.com/pop3svc/pop3svc/store"
	"github.com/pop3svc/pop3svc/store/storetest"
)

// sharedDirs returns a fresh folder of the shared volume as seen through
// each of the two mounts.
func sharedDirs(t *testing.T) (a, b string) {
	t.Helper()
	ma, mb := os.Getenv("POP3SVC_SHARED_A"), os.Getenv("POP3SVC_SHARED_B")
	if ma == "" || mb == "" {
		t.Fatal("POP3SVC_SHARED_A and POP3SVC_SHARED_B must name two mounts of one shared volume (make test-cluster sets them)")
	}
	name := strings.NewReplacer("/", "_", " ", "_").Replace(t.Name()) + "-" + randomString()[:8]
	a, b = filepath.Join(ma, name), filepath.Join(mb, name)
	if err := os.Mkdir(a, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(a) })
	pop3dtest.WaitFor(t, 10*time.Second, a+" made through one mount seen through the other as "+b, func() bool {
		fi, err := os.Stat(b)
		return err == nil && fi.IsDir()
	})
	return a, b
}

// TestSharedConformance runs the store conformance suite on the volume.
func TestSharedConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		a, _ := sharedDirs(t)
		s, err := Open(filepath.Join(a, "mailroot"), Options{Node: 7, Argon2: testArgon2})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}, storetest.Capabilities{Files: true, Open: openShared, Import: true})
}

// TestSharedRules checks, between two clients, the file-system rules the
// store relies on: link never replaces, rename is atomic and by name (a
// renamed-away lock folder cannot be committed by its old name), a plain
// rename never replaces a non-empty folder, flock excludes across clients,
// fsync of files and folders works, and an mtime set by one client is
// seen by the other.
func TestSharedRules(t *testing.T) {
	a, b := sharedDirs(t)
	if err := os.WriteFile(filepath.Join(a, "f"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(filepath.Join(a, "f"), filepath.Join(a, "g")); err != nil {
		t.Fatalf("link: %v", err)
	}
	if err := os.Link(filepath.Join(b, "f"), filepath.Join(b, "g")); !errors.Is(err, os.ErrExist) {
		t.Fatalf("link over a name the other client made = %v, want EEXIST", err)
	}
	// The lock protocol: one rename wins, the other client's fails.
	if err := os.Mkdir(filepath.Join(a, "lock"), 0o700); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(a, "lock", ownerFile), ownerRecord("", ""), 0o600)
	if err := unix.Rename(filepath.Join(a, "lock")+"/", filepath.Join(a, "kcol.1")); err != nil {
		t.Fatalf("taking the lock: %v", err)
	}
	if err := unix.Rename(filepath.Join(b, "lock")+"/", filepath.Join(b, "kcol.2")); err != unix.ENOENT {
		t.Fatalf("taking a taken lock through the other client = %v, want ENOENT", err)
	}
	// Take-over by the other client; the old holder's commit point fails.
	if err := os.Rename(filepath.Join(b, "kcol.1"), filepath.Join(b, "kcol.3")); err != nil {
		t.Fatalf("take-over: %v", err)
	}
	if err := os.Rename(filepath.Join(a, "kcol.1"), filepath.Join(a, "lock.done.1")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the old holder's commit point after a take-over = %v, want ENOENT", err)
	}
	os.Mkdir(filepath.Join(a, "empty"), 0o700)
	if err := renameNoReplace(filepath.Join(a, "empty"), filepath.Join(a, "kcol.3")); !errors.Is(err, os.ErrExist) {
		t.Fatalf("renameNoReplace onto a lock folder = %v, want ErrExist", err)
	}
	// flock across clients.
	fa, err := os.OpenFile(filepath.Join(a, "f"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer fa.Close()
	fb, err := os.OpenFile(filepath.Join(b, "f"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer fb.Close()
	if err := unix.Flock(int(fa.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		t.Fatalf("flock: %v", err)
	}
	if err := unix.Flock(int(fb.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != unix.EWOULDBLOCK {
		t.Fatalf("flock of a file the other client holds = %v, want EWOULDBLOCK", err)
	}
	if err := fa.Sync(); err != nil {
		t.Fatalf("fsync: %v", err)
	}
	d, err := os.Open(a)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("fsync of a folder: %v", err)
	}
	old := time.Now().Add(-time.Hour).Truncate(time.Second)
	if err := os.Chtimes(filepath.Join(a, "kcol.3"), old, old); err != nil {
		t.Fatal(err)
	}
	pop3dtest.WaitFor(t, 10*time.Second, "an mtime set through one client seen through the other", func() bool {
		fi, err := os.Stat(filepath.Join(b, "kcol.3"))
		return err == nil && fi.ModTime().Equal(old)
	})
}

// TestSharedFencing is TestFencing with each server on its own client of
// the volume: after a take-over, the old holder reads nothing more and its
// Commit deletes nothing.
func TestSharedFencing(t *testing.T) {
	a, b := sharedDirs(t)
	lease := time.Minute
	now := time.Now()
	clock := func() time.Time { return now }
	s1 := newTestStoreAt(t, filepath.Join(a, "mailroot"), Options{Node: 1, Now: clock, LockLease: lease})
	s2 := newTestStoreAt(t, filepath.Join(b, "mailroot"), Options{Node: 2, Now: func() time.Time { return now.Add(lease + time.Second) }, LockLease: lease})
	s2.self.Host = "another-machine"
	box := mkbox(t, s1)
	for i := 0; i < 3; i++ {
		if _, err := s1.Deliver(bg, box, strings.NewReader("message\r\n")); err != nil {
			t.Fatal(err)
		}
	}
	old, err := s1.OpenSession(bg, box, "old")
	if err != nil {
		t.Fatal(err)
	}
	var taker store.MailboxSession
	// The other client's attribute cache may hide the expiry a moment.
	if !pop3dtest.Eventually(10*time.Second, func() bool {
		taker, err = s2.OpenSession(bg, box, "taker")
		return err == nil
	}) {
		t.Fatalf("take-over through the other client: %v", err)
	}
	// The old holder's client may still have its folder's name cached
	// (entry-timeout): its first steps may reach the taker's folder, but
	// its commit point fails and the messages come back.
	if err := old.Commit(bg, []int{0, 1, 2}); !errors.Is(err, store.ErrLockLost) {
		t.Fatalf("Commit after the take-over = %v, want ErrLockLost", err)
	}
	if err := taker.Close(); err != nil {
		t.Fatal(err)
	}
	// The old holder's client may have landed its deletions in the
	// taker's folder; whoever takes the lock next puts them back (a client
	// may list a folder from its cache for a moment: look until then).
	var n int
	if pop3dtest.Eventually(10*time.Second, func() bool {
		again, err := s2.OpenSession(bg, box, "again")
		if err != nil {
			t.Fatal(err)
		}
		n = len(again.Messages())
		again.Close()
		return n == 3
	}) {
		return
	}
	for _, root := range []string{a, b} {
		filepath.Walk(filepath.Join(root, "mailroot", box.Domain), func(p string, fi os.FileInfo, err error) error {
			t.Logf("%s", p)
			return nil
		})
	}
	t.Fatalf("after the fenced Commit the mailbox shows %d messages, want 3", n)
}

// TestSharedDotLinesMark: a message delivered through one client of the
// volume carries its mark (the offsets of its dot lines) to a server on
// the other client, and that server's sendfile of it gives the stored
// octets, or fails before the first octet as on a file system that cannot
// splice (the engine then reads the message instead).
func TestSharedDotLinesMark(t *testing.T) {
	a, b := sharedDirs(t)
	s1 := newTestStoreAt(t, filepath.Join(a, "mailroot"), Options{Node: 1})
	s2 := newTestStoreAt(t, filepath.Join(b, "mailroot"), Options{Node: 2})
	box := mkbox(t, s1)
	msg := "Subject: x\r\n\r\nfirst\r\n.a dot line\r\n" + strings.Repeat("filler\r\n", 50000) + ".\r\nlast\r\n"
	if _, err := s1.Deliver(bg, box, strings.NewReader(msg)); err != nil {
		t.Fatal(err)
	}
	want := []int64{int64(strings.Index(msg, ".a dot")), int64(strings.LastIndex(msg, ".\r\nlast"))}
	var ms store.MailboxSession
	var err error
	if !pop3dtest.Eventually(10*time.Second, func() bool {
		ms, err = s2.OpenSession(bg, box, "other")
		return err == nil && len(ms.Messages()) == 1
	}) {
		t.Fatalf("the message through the other client: %v", err)
	}
	defer ms.Close()
	rc, err := ms.Open(0)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	wf := rc.(store.WireFile)
	if dots, ok := wf.DotLines(); !ok || !slices.Equal(dots, want) {
		t.Fatalf("DotLines through the other client = %v, %v; want %v", dots, ok, want)
	}
	g, sent, err := sendFileAll(t, wf)
	if err != nil {
		if sent == 0 && (errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EOPNOTSUPP)) {
			t.Logf("sendfile from the volume is refused (%v): the server reads such messages", err)
			return
		}
		t.Fatalf("sendfile after %d octets: %v", sent, err)
	}
	if string(g) != msg {
		t.Fatalf("sendfile through the other client gave %d octets, want the %d stored", len(g), len(msg))
	}
}
