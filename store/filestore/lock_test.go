//go:build linux

package filestore

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pop3svc/pop3svc/store"
)

// forgeHolder makes a kcol.<holder> folder for h in dir (the mailbox is
// held by h), with the folder's mtime at mtime.
func forgeHolder(t *testing.T, dir string, h holder, mtime time.Time) string {
	t.Helper()
	p := filepath.Join(dir, h.name())
	if err := os.Rename(filepath.Join(dir, LockName), p); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(p, mtime, mtime); err != nil {
		t.Fatal(err)
	}
	return p
}

// freeLock puts the mailbox back in its free state whatever holds it.
func freeLock(t *testing.T, dir string) {
	t.Helper()
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		n := e.Name()
		if n == KcolName || strings.HasPrefix(n, heldPrefix) || strings.HasPrefix(n, donePrefix) {
			os.RemoveAll(filepath.Join(dir, n))
		}
	}
	os.RemoveAll(filepath.Join(dir, LockName))
	if err := os.Mkdir(filepath.Join(dir, LockName), 0o700); err != nil {
		t.Fatal(err)
	}
}

func TestHolderName(t *testing.T) {
	h := holder{Token: "0123456789abcdef", Proc: procIdentity{Node: 7, Host: "mx_1.example/x%", Boot: "abc", PID: 42, Start: 99}, Since: time.UnixMilli(1700000000123)}
	n := h.name()
	if strings.ContainsAny(n, "/\x00") || len(n) > 255 {
		t.Fatalf("name %q is not a file name", n)
	}
	got, ok := parseHolder(n)
	if !ok || got != h {
		t.Fatalf("parseHolder(%q) = %+v, %v; want %+v", n, got, ok, h)
	}
	for _, bad := range []string{"kcol", "kcol.", "kcol.x_1_2", "lock", "kcol.a_b_c_d_e_f_g"} {
		if _, ok := parseHolder(bad); ok {
			t.Errorf("parseHolder(%q) accepted", bad)
		}
	}
}

func TestStaleLocks(t *testing.T) {
	now := time.Now()
	lease := time.Minute
	s := newTestStore(t, Options{Now: func() time.Time { return now }, LockLease: lease})
	a := mkbox(t, s)
	dir := s.mboxPath(a)
	me := s.self
	dead := me
	dead.PID = 0x3fffff // beyond pid_max's default
	reused := me
	reused.Start++ // our pid, another start time: the pid was reused
	remote := procIdentity{Node: 2, Host: "other-host", Boot: "b", PID: 1, Start: 1}
	rebooted := me
	rebooted.Boot = "anearlierboot"
	cases := []struct {
		name string
		h    holder
		age  time.Duration
		want error
	}{
		{name: "dead pid", h: holder{Proc: dead}},
		{name: "reused pid", h: holder{Proc: reused}},
		{name: "this host before reboot", h: holder{Proc: rebooted}},
		{name: "live process", h: holder{Proc: me}, want: store.ErrMailboxInUse},
		{name: "other machine, fresh", h: holder{Proc: remote}, age: lease - time.Second, want: store.ErrMailboxInUse},
		{name: "other machine, expired", h: holder{Proc: remote}, age: lease + time.Second},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			defer freeLock(t, dir)
			c.h.Token = "tok" + strings.ReplaceAll(c.name, " ", "")[:4]
			c.h.Since = now.Add(-c.age)
			forgeHolder(t, dir, c.h, now.Add(-c.age))
			ms, err := s.OpenSession(bg, a, "taker")
			if c.want != nil {
				if !errors.Is(err, c.want) {
					t.Fatalf("OpenSession = %v, want %v", err, c.want)
				}
				return
			}
			if err != nil {
				t.Fatalf("OpenSession over a stale lock: %v", err)
			}
			mi, _ := s.Mailbox(bg, a)
			if !mi.InUse || mi.Owner != "taker" {
				t.Fatalf("after take-over Mailbox = %+v", mi)
			}
			if err := ms.Close(); err != nil {
				t.Fatal(err)
			}
		})
	}
	// The administrator's lock, the seed's bare "mv lock kcol", a symbolic
	// link or a record of the earlier protocol: all are kcol and never stale.
	for _, raw := range []string{"", "kind=admin\n", "\x00garbage"} {
		freeLock(t, dir)
		os.RemoveAll(filepath.Join(dir, LockName))
		os.WriteFile(filepath.Join(dir, KcolName), []byte(raw), 0o600)
		old := now.Add(-10 * lease)
		os.Chtimes(filepath.Join(dir, KcolName), old, old)
		if _, err := s.OpenSession(bg, a, "t"); !errors.Is(err, store.ErrMailboxLocked) {
			t.Fatalf("OpenSession with kcol %q = %v, want ErrMailboxLocked", raw, err)
		}
	}
	// A session lock of the earlier protocol is judged by its mtime.
	os.WriteFile(filepath.Join(dir, KcolName), []byte("token=x\nkind=session\n"), 0o600)
	if _, err := s.OpenSession(bg, a, "t"); !errors.Is(err, store.ErrMailboxInUse) {
		t.Fatalf("OpenSession over a fresh lock of the earlier protocol = %v", err)
	}
	old := now.Add(-2 * lease)
	os.Chtimes(filepath.Join(dir, KcolName), old, old)
	ms, err := s.OpenSession(bg, a, "t")
	if err != nil {
		t.Fatalf("OpenSession over a stale lock of the earlier protocol: %v", err)
	}
	ms.Close()
	if fi, err := os.Lstat(filepath.Join(dir, LockName)); err != nil || !fi.IsDir() {
		t.Fatalf("after release the free lock is %v, %v; want a folder", fi, err)
	}
}

// twoMachines opens one mail root as two servers on different machines
// sharing a clock the test moves.
func twoMachines(t *testing.T, lease time.Duration) (s1, s2 *Store, advance func(time.Duration)) {
	t.Helper()
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance = func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	root := filepath.Join(t.TempDir(), "mailroot")
	s1 = newTestStoreAt(t, root, Options{Node: 1, Now: clock, LockLease: lease})
	s2 = newTestStoreAt(t, root, Options{Node: 2, Now: clock, LockLease: lease})
	s2.self.Host = "another-machine" // s2 plays a server on another machine
	return s1, s2, advance
}

// TestRefreshKeepsLease: a session of another machine that renews is not
// taken over; one that stops renewing is, within the lease.
func TestRefreshKeepsLease(t *testing.T) {
	lease := 90 * time.Second
	s1, s2, advance := twoMachines(t, lease)
	a := mkbox(t, s1)
	ms, err := s1.OpenSession(bg, a, "s1")
	if err != nil {
		t.Fatal(err)
	}
	advance(lease - time.Second)
	if err := ms.Refresh(); err != nil {
		t.Fatal(err)
	}
	advance(lease - time.Second)
	if _, err := s2.OpenSession(bg, a, "s2"); !errors.Is(err, store.ErrMailboxInUse) {
		t.Fatalf("OpenSession over a renewed lease = %v, want ErrMailboxInUse", err)
	}
	advance(2 * time.Second)
	ms2, err := s2.OpenSession(bg, a, "s2")
	if err != nil {
		t.Fatalf("OpenSession over an expired lease: %v", err)
	}
	// The old holder finds out: Refresh fails, Close leaves the new lock alone.
	if err := ms.Refresh(); !errors.Is(err, store.ErrLockLost) {
		t.Fatalf("Refresh after take-over = %v, want ErrLockLost", err)
	}
	if err := ms.Close(); !errors.Is(err, store.ErrLockLost) {
		t.Fatalf("Close after take-over = %v, want ErrLockLost", err)
	}
	if mi, _ := s2.Mailbox(bg, a); !mi.InUse || mi.Owner != "s2" {
		t.Fatalf("the old holder's Close released the new lock: %+v", mi)
	}
	ms2.Close()
}

// TestOpenTrustsHalfALease: Open checks the lock folder only once half a
// lease has passed since the lock was taken or renewed on time (no server
// may take it over sooner); a lock renamed away is then found lost. A
// renewal after the trust lapsed does not restore it.
func TestOpenTrustsHalfALease(t *testing.T) {
	lease := time.Minute
	s1, _, advance := twoMachines(t, lease)
	a := mkbox(t, s1)
	for i := 0; i < 2; i++ {
		if _, err := s1.Deliver(bg, a, strings.NewReader("message\r\n")); err != nil {
			t.Fatal(err)
		}
	}
	open := func() *session {
		ms, err := s1.OpenSession(bg, a, "s1")
		if err != nil {
			t.Fatal(err)
		}
		return ms.(*session)
	}
	ms := open()
	h := ms.lock
	// Renamed by hand, which no server does within the lease: Open does
	// not look while the lease is fresh.
	away := filepath.Join(h.dir, "moved-away")
	hide := func() {
		if err := os.Rename(h.path(), away); err != nil {
			t.Fatal(err)
		}
	}
	back := func() {
		if err := os.Rename(away, h.path()); err != nil {
			t.Fatal(err)
		}
	}
	hide()
	advance(lease/2 - time.Second)
	rc, err := ms.Open(0)
	if err != nil {
		t.Fatalf("Open within half a lease of taking the lock: %v", err)
	}
	rc.Close()
	back()
	if err := ms.Refresh(); err != nil { // on time: trusted for half a lease from now
		t.Fatal(err)
	}
	advance(lease/2 - time.Second)
	hide()
	if rc, err = ms.Open(1); err != nil {
		t.Fatalf("Open within half a lease of a renewal: %v", err)
	}
	rc.Close()
	advance(2 * time.Second)
	if _, err := ms.Open(1); !errors.Is(err, store.ErrLockLost) {
		t.Fatalf("Open half a lease after the renewal, the lock gone = %v, want ErrLockLost", err)
	}
	back() // lost stays lost
	if _, err := ms.Open(0); !errors.Is(err, store.ErrLockLost) {
		t.Fatalf("Open after the lock was found lost = %v, want ErrLockLost", err)
	}
	ms.Close()

	// A renewal after the trust lapsed: every Open looks again.
	ms = open()
	defer ms.Close()
	h = ms.lock
	advance(lease/2 + time.Second)
	if err := ms.Refresh(); err != nil {
		t.Fatal(err)
	}
	hide()
	if _, err := ms.Open(0); !errors.Is(err, store.ErrLockLost) {
		t.Fatalf("Open after a late renewal, the lock gone = %v, want ErrLockLost", err)
	}
	back()
}

// TestFencing: a session whose lock was taken over reads nothing more and
// its Commit deletes nothing; the new holder's view is whole.
func TestFencing(t *testing.T) {
	lease := time.Minute
	s1, s2, advance := twoMachines(t, lease)
	a := mkbox(t, s1)
	for i := 0; i < 3; i++ {
		if _, err := s1.Deliver(bg, a, strings.NewReader("message\r\n")); err != nil {
			t.Fatal(err)
		}
	}
	old, err := s1.OpenSession(bg, a, "old")
	if err != nil {
		t.Fatal(err)
	}
	rc, err := old.Open(0)
	if err != nil {
		t.Fatalf("Open while holding: %v", err)
	}
	rc.Close()
	advance(lease + time.Second)
	taker, err := s2.OpenSession(bg, a, "taker")
	if err != nil {
		t.Fatalf("take-over: %v", err)
	}
	if _, err := old.Open(1); !errors.Is(err, store.ErrLockLost) {
		t.Fatalf("Open after the lock was taken over = %v, want ErrLockLost", err)
	}
	if err := old.Commit(bg, []int{0, 1, 2}); !errors.Is(err, store.ErrLockLost) || !errors.Is(err, store.ErrMailboxInUse) {
		t.Fatalf("Commit after the lock was taken over = %v, want ErrLockLost", err)
	}
	if n := len(taker.Messages()); n != 3 {
		t.Fatalf("the new holder sees %d messages, want 3", n)
	}
	if n, _, _ := s1.Usage(bg, a); n != 3 {
		t.Fatalf("%d messages left after the fenced Commit, want 3", n)
	}
	if err := taker.Commit(bg, []int{0}); err != nil {
		t.Fatalf("the new holder's Commit: %v", err)
	}
	if n, _, _ := s1.Usage(bg, a); n != 2 {
		t.Fatalf("%d messages left, want 2", n)
	}
	assertFree(t, s1.mboxPath(a))
}

// TestTakeOverRestores: the messages a session had moved into its lock
// folder when it died (its Commit did not reach the commit point) are put
// back by the session that takes the lock over; a Commit that reached
// its commit point stays committed.
func TestTakeOverRestores(t *testing.T) {
	lease := time.Minute
	s1, s2, advance := twoMachines(t, lease)
	a := mkbox(t, s1)
	var uids []string
	for i := 0; i < 3; i++ {
		uid, err := s1.Deliver(bg, a, strings.NewReader("message\r\n"))
		if err != nil {
			t.Fatal(err)
		}
		uids = append(uids, uid)
	}
	dir := s1.mboxPath(a)
	ms, err := s1.OpenSession(bg, a, "dies mid-commit")
	if err != nil {
		t.Fatal(err)
	}
	h := ms.(*session).lock
	// Commit's first step for message 2, then the process "dies".
	f := msgPrefix + uids[1] + msgSuffix
	if err := os.Rename(filepath.Join(dir, f), filepath.Join(h.path(), delName(h.token, f))); err != nil {
		t.Fatal(err)
	}
	advance(lease + time.Second)
	ms2, err := s2.OpenSession(bg, a, "taker")
	if err != nil {
		t.Fatal(err)
	}
	if n := len(ms2.Messages()); n != 3 {
		t.Fatalf("after take-over %d messages, want 3 (the uncommitted deletion put back)", n)
	}
	// A commit that reached its point: lock.done.<token> with a message.
	if err := ms2.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, LockName), filepath.Join(dir, donePrefix+"x")); err != nil {
		t.Fatal(err)
	}
	f = msgPrefix + uids[0] + msgSuffix
	if err := os.Rename(filepath.Join(dir, f), filepath.Join(dir, donePrefix+"x", delName("x", f))); err != nil {
		t.Fatal(err)
	}
	// With a stray of another holder (token y), which is not committed.
	f = msgPrefix + uids[2] + msgSuffix
	if err := os.Rename(filepath.Join(dir, f), filepath.Join(dir, donePrefix+"x", delName("y", f))); err != nil {
		t.Fatal(err)
	}
	ms3, err := s1.OpenSession(bg, a, "after a commit")
	if err != nil {
		t.Fatal(err)
	}
	if n := len(ms3.Messages()); n != 2 {
		t.Fatalf("after a committed deletion %d messages, want 2 (the stray put back)", n)
	}
	if ents, _ := os.ReadDir(ms3.(*session).lock.path()); len(ents) != 1 {
		t.Fatalf("the committed deletion was not cleared: %v", ents)
	}
	ms3.Close()
	assertFree(t, dir)
}

// TestLegacyLockFile: a mailbox made by an earlier version has a lock file;
// the first session turns it into a folder.
func TestLegacyLockFile(t *testing.T) {
	s := newTestStore(t, Options{})
	a := mkbox(t, s)
	dir := s.mboxPath(a)
	os.RemoveAll(filepath.Join(dir, LockName))
	if err := os.WriteFile(filepath.Join(dir, LockName), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	s.Deliver(bg, a, strings.NewReader("x\r\n"))
	ms, err := s.OpenSession(bg, a, "t")
	if err != nil {
		t.Fatal(err)
	}
	if err := ms.Commit(bg, []int{0}); err != nil {
		t.Fatal(err)
	}
	assertFree(t, dir)
	// A folder without any lock (made by hand) gets one.
	os.RemoveAll(filepath.Join(dir, LockName))
	ms, err = s.OpenSession(bg, a, "t")
	if err != nil {
		t.Fatalf("OpenSession on a folder without a lock: %v", err)
	}
	ms.Close()
	assertFree(t, dir)
}

func TestAdminLockOverSessions(t *testing.T) {
	s := newTestStore(t, Options{})
	a := mkbox(t, s)
	ms, err := s.OpenSession(bg, a, "t")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.LockMailbox(bg, a); !errors.Is(err, store.ErrMailboxInUse) {
		t.Fatalf("LockMailbox under a live session = %v", err)
	}
	ms.Close()
	if err := s.LockMailbox(bg, a); err != nil {
		t.Fatal(err)
	}
	if err := s.LockMailbox(bg, a); err != nil {
		t.Fatalf("LockMailbox twice: %v", err)
	}
	if _, err := s.OpenSession(bg, a, "t"); !errors.Is(err, store.ErrMailboxLocked) {
		t.Fatalf("OpenSession under the administrator's lock = %v", err)
	}
	if mi, _ := s.Mailbox(bg, a); !mi.Locked || mi.InUse {
		t.Fatalf("Mailbox = %+v", mi)
	}
	if err := s.UnlockMailbox(bg, a); err != nil {
		t.Fatal(err)
	}
	assertFree(t, s.mboxPath(a))
}

// TestCleanLeftovers: Clean removes what crashes left and counts it.
func TestCleanLeftovers(t *testing.T) {
	lease := time.Minute
	s1, s2, advance := twoMachines(t, lease)
	a := mkbox(t, s1)
	dir := s1.mboxPath(a)
	uid, err := s1.Deliver(bg, a, strings.NewReader("kept\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	// A session of s1 that died mid-commit on its machine, with message
	// uid moved into its lock folder.
	ms, err := s1.OpenSession(bg, a, "dies")
	if err != nil {
		t.Fatal(err)
	}
	f := msgPrefix + uid + msgSuffix
	h := ms.(*session).lock
	if err := os.Rename(filepath.Join(dir, f), filepath.Join(h.path(), delName(h.token, f))); err != nil {
		t.Fatal(err)
	}
	// A temporary record of the earlier protocol, a temporary file of a
	// dead writer of this node.
	oldTmp := filepath.Join(dir, oldTmpPrefix+strings.Repeat("a", 32))
	os.WriteFile(oldTmp, []byte("kind=session\n"), 0o600)
	deadTmp := filepath.Join(s2.tmp, "2.4194303.1.x.tmp")
	os.WriteFile(deadTmp, []byte("partial"), 0o600)
	advance(lease + 2*time.Minute)
	r := s2.Clean(bg)
	if r.Restored != 1 || r.Locks != 2 || r.Tmp != 1 {
		t.Fatalf("Clean = %+v, want 1 restored, 2 locks, 1 tmp", r)
	}
	for _, p := range []string{oldTmp, deadTmp} {
		if _, err := os.Lstat(p); err == nil {
			t.Errorf("%s survived Clean", p)
		}
	}
	if n, _, _ := s2.Usage(bg, a); n != 1 {
		t.Fatalf("after Clean %d messages, want the restored one", n)
	}
	assertFree(t, dir)
	if r := s2.Clean(bg); r != (CleanReport{}) {
		t.Fatalf("a second Clean found %+v", r)
	}
}

// assertFree checks that the mailbox folder has exactly its free lock.
func assertFree(t *testing.T, dir string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var locks []string
	for _, e := range ents {
		if n := e.Name(); strings.Contains(n, LockName) || strings.Contains(n, KcolName) {
			locks = append(locks, n)
		}
	}
	if len(locks) != 1 || locks[0] != LockName {
		t.Fatalf("lock objects %v, want [lock]", locks)
	}
	if ents, _ := os.ReadDir(filepath.Join(dir, LockName)); len(ents) > 1 || len(ents) == 1 && ents[0].Name() != ownerFile {
		t.Fatalf("the free lock holds %v", ents)
	}
}
