//go:build linux

package filestore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/pop3svc/pop3svc/store"
)

// contents reads every message of a mailbox: UID → text.
func contents(t *testing.T, s *Store, a store.Address) map[string]string {
	t.Helper()
	snap, err := s.Snapshot(context.Background(), a)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for i, m := range snap.Messages() {
		r, err := snap.Open(i)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(r)
		r.Close()
		if err != nil {
			t.Fatal(err)
		}
		out[m.UID] = string(b)
	}
	return out
}

func TestBackupRestoreRoundTrip(t *testing.T) {
	ctx := context.Background()
	src := newTestStore(t, Options{})
	alice := store.Address{Mailbox: "alice", Domain: "example.org"}
	bob := store.Address{Mailbox: "bob", Domain: "example.org"}
	carol := store.Address{Mailbox: "carol", Domain: "locked.example"}
	for _, d := range []string{"example.org", "locked.example"} {
		if err := src.CreateDomain(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	for _, a := range []store.Address{alice, bob, carol} {
		if err := src.CreateMailbox(ctx, a, "pw-"+a.Mailbox); err != nil {
			t.Fatal(err)
		}
		for i := range 20 {
			msg := fmt.Sprintf("Subject: %s %d\r\n\r\n%s\r\n", a, i, strings.Repeat("body line\r\n", i*50))
			if _, err := src.Deliver(ctx, a, strings.NewReader(msg)); err != nil {
				t.Fatal(err)
			}
		}
	}
	src.SetQuota(ctx, alice, 10<<20)
	src.LockMailbox(ctx, bob)
	src.LockDomain(ctx, "locked.example")
	before := map[store.Address]map[string]string{}
	for _, a := range []store.Address{alice, bob, carol} {
		before[a] = contents(t, src, a)
	}

	// Deliveries into alice run during the backup.
	stop := make(chan struct{})
	var during sync.Map // UID → text of messages delivered while the backup ran
	var delivered atomic.Int32
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			msg := fmt.Sprintf("Subject: during %d\r\n\r\nx\r\n", i)
			u, err := src.Deliver(ctx, alice, strings.NewReader(msg))
			if err != nil {
				t.Error(err)
				return
			}
			during.Store(u, msg)
			delivered.Add(1)
		}
	}()
	var buf bytes.Buffer
	rep, err := src.Backup(ctx, &buf, store.BackupOptions{})
	// Also let at least one delivery land after the backup finished.
	for n := delivered.Load(); delivered.Load() == n; {
		if t.Failed() {
			break
		}
		runtime.Gosched() // wait for the delivery goroutine's next message
	}
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if rep.Domains != 2 || rep.Mailboxes != 3 || rep.Messages < 60 {
		t.Fatalf("Backup report %+v", rep)
	}

	// Into an empty store with its own key: the key comes with the archive.
	dst := newTestStore(t, Options{})
	rr, err := dst.Restore(ctx, bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if !rr.KeyReplaced || rr.Domains != 2 || rr.Mailboxes != 3 || rr.Messages != rep.Messages || rr.Present != 0 {
		t.Fatalf("Restore report %+v, backup %+v", rr, rep)
	}
	for _, a := range []store.Address{alice, bob, carol} {
		got := contents(t, dst, a)
		for u, text := range before[a] {
			if got[u] != text {
				t.Errorf("%s: message %s restored as %d octets, want %d", a, u, len(got[u]), len(text))
			}
		}
		for u, text := range got {
			if _, ok := before[a][u]; ok {
				continue
			}
			if d, ok := during.Load(u); !ok || d.(string) != text {
				t.Errorf("%s: restored message %s was never delivered", a, u)
			}
		}
		if err := dst.VerifyPassword(ctx, a, "pw-"+a.Mailbox); err != nil {
			t.Errorf("%s: the restored password does not verify: %v", a, err)
		}
		if _, err := dst.Secret(ctx, a, store.SecretPassword); err != nil {
			t.Errorf("%s: the restored APOP secret does not decrypt with the restored key: %v", a, err)
		}
	}
	if q, _ := dst.Quota(ctx, alice); q != 10<<20 {
		t.Errorf("restored quota %d", q)
	}
	if m, _ := dst.Mailbox(ctx, bob); !m.Locked {
		t.Error("bob's administrator's lock was not restored")
	}
	if d, _ := dst.Domain(ctx, "locked.example"); !d.Locked {
		t.Error("the domain lock was not restored")
	}

	// Into the live store: nothing is added, nothing lost; a message
	// deleted since comes back with its UID and content; the messages
	// delivered during and after the backup stay.
	live := contents(t, src, alice)
	var gone string
	for u := range before[alice] {
		gone = u
		break
	}
	sess, err := src.OpenSession(ctx, alice, "test")
	if err != nil {
		t.Fatal(err)
	}
	for i, m := range sess.Messages() {
		if m.UID == gone {
			if err := sess.Commit(ctx, []int{i}); err != nil {
				t.Fatal(err)
			}
		}
	}
	sess.Close()
	rr, err = src.Restore(ctx, bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if rr.Messages != 1 || rr.Domains != 0 || rr.Mailboxes != 0 || rr.KeyReplaced {
		t.Fatalf("Restore into the live store: %+v, want the one deleted message back", rr)
	}
	after := contents(t, src, alice)
	if len(after) != len(live) {
		t.Fatalf("alice holds %d messages after the restore, %d before", len(after), len(live))
	}
	for u, text := range live {
		if after[u] != text {
			t.Fatalf("message %s differs after the restore", u)
		}
	}
	n := 0
	during.Range(func(k, v any) bool {
		if after[k.(string)] != v.(string) {
			t.Errorf("message %s delivered during the backup is lost", k)
		}
		n++
		return true
	})
	t.Logf("%d messages delivered during the backup, %d of them in it", n, rep.Messages-60)

	// A store with mail and another key refuses.
	other := newTestStore(t, Options{})
	other.CreateDomain(ctx, "other.example")
	if _, err := other.Restore(ctx, bytes.NewReader(buf.Bytes())); err == nil || !strings.Contains(err.Error(), "key") {
		t.Fatalf("Restore into a store with another key and domains: %v", err)
	}
}

// TestBackupWaitsForASession: a mailbox a POP3 session holds is copied
// once the session ends, so its copy never mixes states.
func TestBackupWaitsForASession(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t, Options{})
	a := store.Address{Mailbox: "alice", Domain: "example.org"}
	s.CreateDomain(ctx, a.Domain)
	s.CreateMailbox(ctx, a, "pw")
	for i := range 3 {
		s.Deliver(ctx, a, strings.NewReader(fmt.Sprintf("Subject: %d\r\n\r\nx\r\n", i)))
	}
	sess, err := s.OpenSession(ctx, a, "pop3 session")
	if err != nil {
		t.Fatal(err)
	}
	// The session deletes message 1 and quits while the backup waits.
	done := make(chan error, 1)
	var buf bytes.Buffer
	go func() {
		_, err := s.Backup(ctx, &buf, store.BackupOptions{})
		done <- err
	}()
	if err := sess.Commit(ctx, []int{0}); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	dst := newTestStore(t, Options{})
	if _, err := dst.Restore(ctx, &buf); err != nil {
		t.Fatal(err)
	}
	if got := len(contents(t, dst, a)); got != 2 {
		t.Fatalf("the backup holds %d messages, want the 2 left after the session's commit", got)
	}

	// Held past LockWait: ErrMailboxInUse.
	sess, err = s.OpenSession(ctx, a, "pop3 session")
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	if _, err := s.Backup(ctx, io.Discard, store.BackupOptions{LockWait: 1}); !errors.Is(err, store.ErrMailboxInUse) {
		t.Fatalf("Backup of a held mailbox past LockWait: %v", err)
	}
}

func TestRestoreRefusesForeignArchives(t *testing.T) {
	s := newTestStore(t, Options{})
	for name, data := range map[string][]byte{
		"not gzip": []byte("hello"),
		"empty":    {},
	} {
		if _, err := s.Restore(context.Background(), bytes.NewReader(data)); err == nil {
			t.Errorf("Restore of %s: no error", name)
		}
	}
}

// TestBackupRestoreImportedUIDL: a message brought in by Import keeps its
// foreign UIDL (here with a '/') through a backup and a restore.
func TestBackupRestoreImportedUIDL(t *testing.T) {
	ctx := context.Background()
	src := newTestStore(t, Options{})
	a := store.Address{Mailbox: "alice", Domain: "example.org"}
	src.CreateDomain(ctx, a.Domain)
	src.CreateMailbox(ctx, a, "pw")
	const uidl = "old/server-uidl:42"
	if _, err := src.Import(ctx, a, uidl, strings.NewReader("Subject: imported\r\n\r\nx\r\n")); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := src.Backup(ctx, &buf, store.BackupOptions{}); err != nil {
		t.Fatal(err)
	}
	dst := newTestStore(t, Options{})
	if _, err := dst.Restore(ctx, bytes.NewReader(buf.Bytes())); err != nil {
		t.Fatal(err)
	}
	got := contents(t, dst, a)
	if got[uidl] != "Subject: imported\r\n\r\nx\r\n" {
		t.Fatalf("restored mailbox %v, want the message under UIDL %q", got, uidl)
	}
	rr, err := dst.Restore(ctx, bytes.NewReader(buf.Bytes()))
	if err != nil || rr.Messages != 0 || rr.Present != 1 {
		t.Fatalf("second restore: %+v %v, want the message present", rr, err)
	}
}
