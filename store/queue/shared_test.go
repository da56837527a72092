//go:build linux && cluster

package queue

// Tests of the queue on a shared (network) file system, run by make
// test-cluster: POP3SVC_SHARED_A and POP3SVC_SHARED_B are two mounts, by
// two clients, of one volume (see .ci/gluster-up.sh), as two servers on
// two machines see it.

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"github.com/pop3svc/pop3svc/cmd/pop3d/pop3dtest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func sharedRoots(t *testing.T) (a, b string) {
	t.Helper()
	ma, mb := os.Getenv("POP3SVC_SHARED_A"), os.Getenv("POP3SVC_SHARED_B")
	if ma == "" || mb == "" {
		t.Fatal("POP3SVC_SHARED_A and POP3SVC_SHARED_B must name two mounts of one shared volume (make test-cluster sets them)")
	}
	r := make([]byte, 4)
	rand.Read(r)
	name := "queue-" + t.Name() + "-" + hex.EncodeToString(r)
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

// TestSharedLockReadsTheLatestProgress: a server that locks an entry
// reads the progress another server recorded under the lock just before,
// and an entry another server removed is gone; a client cache that served
// an older copy of the progress log (GlusterFS's quick-read, open-behind)
// would have the entry delivered twice.
func TestSharedLockReadsTheLatestProgress(t *testing.T) {
	ra, rb := sharedRoots(t)
	qa, err := Open(ra)
	if err != nil {
		t.Fatal(err)
	}
	qb, err := Open(rb)
	if err != nil {
		t.Fatal(err)
	}
	for round := 0; round < 20; round++ {
		id, err := qa.Enqueue(Envelope{From: "s@remote.test", Rcpts: []string{"a@example.com"}}, strings.NewReader("Subject: x\r\n\r\nx\r\n"))
		if err != nil {
			t.Fatal(err)
		}
		// Server B looks at the entry first (its client may cache it).
		eb, err := lockWhenFree(t, qb, waitID(t, qb, id))
		if err != nil {
			t.Fatalf("round %d: lock on B: %v", round, err)
		}
		if eb.Resolved() {
			t.Fatalf("round %d: a new entry is resolved on B", round)
		}
		eb.Close()
		// Server A delivers it.
		ea, err := lockWhenFree(t, qa, id)
		if err != nil {
			t.Fatalf("round %d: lock on A: %v", round, err)
		}
		if err := ea.Start("server-a"); err != nil {
			t.Fatal(err)
		}
		if err := ea.Done(0, "uid1"); err != nil {
			t.Fatal(err)
		}
		ea.Close()
		// B sees the copy done.
		eb, err = lockWhenFree(t, qb, id)
		if err != nil {
			t.Fatalf("round %d: lock on B after A's delivery: %v", round, err)
		}
		if !eb.Rcpts()[0].Done {
			eb.Close()
			t.Fatalf("round %d: B read the entry's progress without A's done record: it would deliver a second copy", round)
		}
		eb.Close()
		// A removes it: B finds it gone.
		ea, err = lockWhenFree(t, qa, id)
		if err != nil {
			t.Fatal(err)
		}
		if err := ea.Remove(); err != nil {
			t.Fatal(err)
		}
		if eb, err := lockWhenFree(t, qb, id); err == nil {
			eb.Close()
			t.Fatalf("round %d: B locked an entry that A removed", round)
		} else if !errors.Is(err, ErrNotFound) && !strings.Contains(err.Error(), "stale file handle") {
			t.Fatalf("round %d: B locking a removed entry: %v, want ErrNotFound (or ESTALE)", round, err)
		}
	}
}

// lockWhenFree locks the entry, waiting while the other server's lock is
// still held (a FUSE client releases a closed file's lock a moment later).
func lockWhenFree(t *testing.T, q *Queue, id string) (*Entry, error) {
	t.Helper()
	var e *Entry
	var err error
	pop3dtest.Eventually(10*time.Second, func() bool {
		e, err = q.lock(id)
		return !errors.Is(err, ErrBusy)
	})
	return e, err
}

// waitID waits until q lists id (the other mount's view of a new entry).
func waitID(t *testing.T, q *Queue, id string) string {
	t.Helper()
	pop3dtest.WaitFor(t, 10*time.Second, "entry "+id+" listed through the other mount", func() bool {
		ids, err := q.List()
		if err != nil {
			t.Fatal(err)
		}
		return slices.Contains(ids, id)
	})
	return id
}
