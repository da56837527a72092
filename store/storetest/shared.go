package storetest

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/pop3svc/pop3svc/store"
)

// Node numbers of the stores the Shared and Processes checks open beside
// the one the Factory made.
const (
	peerNode  = 31
	peerNode2 = 32
)

// reopen opens another store on s's data; the test closes it.
func reopen(t *testing.T, open OpenFunc, root string, node int) store.Store {
	t.Helper()
	if root == "" {
		t.Fatal("a store whose data can be opened again has no root")
	}
	o, err := open(root, node)
	if err != nil {
		t.Fatalf("opening %s again as node %d: %v", root, node, err)
	}
	t.Cleanup(func() { o.Close() })
	return o
}

// uids lists the UIDs and bodies of a mailbox through a session.
func contents(t *testing.T, s store.Store, a store.Address) (uids, bodies []string) {
	t.Helper()
	ms, err := s.OpenSession(ctx, a, "contents")
	wantErr(t, "OpenSession("+a.String()+")", err, nil)
	defer ms.Close()
	for i, m := range ms.Messages() {
		uids = append(uids, m.UID)
		bodies = append(bodies, readMsg(t, ms, i))
	}
	return uids, bodies
}

// testReopen: what a store holds survives its Close and a new Open.
func testReopen(t *testing.T, s store.Store, open OpenFunc) {
	setup(t, s, "alice", "bob")
	a, b := addr("alice", "example.com"), addr("bob", "example.com")
	deliver(t, s, a, "one\r\n")
	deliver(t, s, a, "two\nlines\n")
	wantErr(t, "SetQuota", s.SetQuota(ctx, b, 5000), nil)
	wantErr(t, "LockMailbox", s.LockMailbox(ctx, b), nil)
	wantErr(t, "CreateMailbox(carol, no password)", s.CreateMailbox(ctx, addr("carol", "example.com"), ""), nil)
	wantErr(t, "CreateDomain(locked.org)", s.CreateDomain(ctx, "locked.org"), nil)
	wantErr(t, "LockDomain(locked.org)", s.LockDomain(ctx, "locked.org"), nil)
	before := listAll(t, s)
	uids, bodies := contents(t, s, a)
	root := s.Root()
	wantErr(t, "Close", s.Close(), nil)

	r := reopen(t, open, root, peerNode)
	if after := listAll(t, r); !slices.Equal(before, after) {
		t.Fatalf("after reopening:\nbefore %q\nafter  %q", before, after)
	}
	if u, bs := contents(t, r, a); !slices.Equal(u, uids) || !slices.Equal(bs, bodies) {
		t.Fatalf("messages after reopening = %q %q, want %q %q", u, bs, uids, bodies)
	}
	wantErr(t, "VerifyPassword(reopened)", r.VerifyPassword(ctx, a, "pw-alice"), nil)
	if sec, err := r.Secret(ctx, a, store.SecretPassword); err != nil || string(sec) != "pw-alice" {
		t.Fatalf("Secret(reopened) = %q, %v", sec, err)
	}
	_, err := r.OpenSession(ctx, b, "t")
	wantErr(t, "OpenSession(admin-locked, reopened)", err, store.ErrMailboxLocked)
	// A commit is kept too.
	ms, err := r.OpenSession(ctx, a, "t")
	wantErr(t, "OpenSession", err, nil)
	wantErr(t, "Commit", ms.Commit(ctx, []int{0}), nil)
	wantErr(t, "Close", r.Close(), nil)
	r2 := reopen(t, open, root, peerNode2)
	if u, _ := contents(t, r2, a); !slices.Equal(u, uids[1:]) {
		t.Fatalf("after a commit and a reopen UIDs = %q, want %q", u, uids[1:])
	}
}

// testSharedLocks: locks taken through one store hold in another.
func testSharedLocks(t *testing.T, s store.Store, open OpenFunc) {
	setup(t, s, "alice", "bob")
	a, b := addr("alice", "example.com"), addr("bob", "example.com")
	o := reopen(t, open, s.Root(), peerNode)
	ms, err := s.OpenSession(ctx, a, "first server")
	wantErr(t, "OpenSession", err, nil)
	_, err = o.OpenSession(ctx, a, "second server")
	wantErr(t, "OpenSession(held by another store)", err, store.ErrMailboxInUse)
	if mi, err := o.Mailbox(ctx, a); err != nil || !mi.InUse || mi.Locked || mi.Owner != "first server" {
		t.Fatalf("Mailbox(held by another store) = %+v, %v; want InUse by \"first server\"", mi, err)
	}
	wantErr(t, "LockMailbox(held by another store)", o.LockMailbox(ctx, a), store.ErrMailboxInUse)
	wantErr(t, "DeleteMailbox(held by another store)", o.DeleteMailbox(ctx, a), store.ErrMailboxInUse)
	wantErr(t, "Close", ms.Close(), nil)
	ms, err = o.OpenSession(ctx, a, "second server")
	wantErr(t, "OpenSession(released by another store)", err, nil)
	wantErr(t, "Close", ms.Close(), nil)

	wantErr(t, "LockMailbox", o.LockMailbox(ctx, b), nil)
	_, err = s.OpenSession(ctx, b, "t")
	wantErr(t, "OpenSession(admin-locked through another store)", err, store.ErrMailboxLocked)
	if mi, _ := s.Mailbox(ctx, b); !mi.Locked || mi.InUse {
		t.Fatalf("Mailbox(admin-locked through another store) = %+v", mi)
	}
	wantErr(t, "UnlockMailbox", s.UnlockMailbox(ctx, b), nil)
	ms, err = o.OpenSession(ctx, b, "t")
	wantErr(t, "OpenSession(unlocked through another store)", err, nil)
	ms.Close()

	wantErr(t, "LockDomain", s.LockDomain(ctx, "example.com"), nil)
	_, err = o.OpenSession(ctx, a, "t")
	wantErr(t, "OpenSession(domain locked through another store)", err, store.ErrDomainLocked)
	wantErr(t, "UnlockDomain", o.UnlockDomain(ctx, "example.com"), nil)
	ms, err = s.OpenSession(ctx, a, "t")
	wantErr(t, "OpenSession(domain unlocked through another store)", err, nil)
	ms.Close()
}

// testSharedDelivery: two stores with their own node numbers deliver into
// one mailbox at once, while a third holds it: every message is kept
// whole, no UID is shared, and the holder's snapshot does not change.
func testSharedDelivery(t *testing.T, s store.Store, open OpenFunc) {
	setup(t, s, "alice")
	a := addr("alice", "example.com")
	first := deliver(t, s, a, "before\r\n")
	peers := []store.Store{reopen(t, open, s.Root(), peerNode), reopen(t, open, s.Root(), peerNode2)}
	ms, err := s.OpenSession(ctx, a, "holder")
	wantErr(t, "OpenSession", err, nil)
	const writers, perWriter = 4, 25
	var (
		mu        sync.Mutex
		delivered = map[string]string{first: "before\r\n"}
		wg        sync.WaitGroup
	)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < perWriter; i++ {
				body := fmt.Sprintf("writer %d message %d\r\n%s\n", w, i, strings.Repeat("y", i*13))
				uid, err := peers[w%2].Deliver(ctx, a, strings.NewReader(body))
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				if _, dup := delivered[uid]; dup {
					t.Errorf("UID %s returned twice", uid)
				}
				delivered[uid] = strings.TrimSuffix(body, "\n") + "\r\n"
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if m := ms.Messages(); len(m) != 1 || m[0].UID != first {
		t.Fatalf("the holder's snapshot changed: %+v", m)
	}
	wantErr(t, "Close", ms.Close(), nil)
	uids, bodies := contents(t, s, a)
	if len(uids) != 1+writers*perWriter || len(delivered) != len(uids) {
		t.Fatalf("%d messages kept, %d UIDs returned, want %d", len(uids), len(delivered), 1+writers*perWriter)
	}
	for i, u := range uids {
		if bodies[i] != delivered[u] {
			t.Errorf("message %s = %.30q, want %.30q", u, bodies[i], delivered[u])
		}
	}
}

// testSharedCredentials: every store on the data uses the same store key
// and sees a password change at once.
func testSharedCredentials(t *testing.T, s store.Store, open OpenFunc) {
	setup(t, s, "alice")
	a := addr("alice", "example.com")
	o := reopen(t, open, s.Root(), peerNode)
	wantErr(t, "VerifyPassword", s.VerifyPassword(ctx, a, "pw-alice"), nil)
	wantErr(t, "VerifyPassword(other store)", o.VerifyPassword(ctx, a, "pw-alice"), nil)
	wantErr(t, "SetPassword(other store)", o.SetPassword(ctx, a, "password"), nil)
	wantErr(t, "VerifyPassword(old, after a change through another store)", s.VerifyPassword(ctx, a, "pw-alice"), store.ErrAuthFailed)
	wantErr(t, "VerifyPassword(new, set through another store)", s.VerifyPassword(ctx, a, "password"), nil)
	nt, err := s.Secret(ctx, a, store.SecretNTHash)
	if err != nil || fmt.Sprintf("%x", nt) != "8846f7eaee8fb117ad06bdd830b7586c" {
		t.Fatalf("Secret(NT hash, set through another store) = %x, %v", nt, err)
	}
	wantErr(t, "RenameMailbox", s.RenameMailbox(ctx, a, "alicia"), nil)
	b := addr("alicia", "example.com")
	if sec, err := o.Secret(ctx, b, store.SecretPassword); err != nil || string(sec) != "password" {
		t.Fatalf("Secret(renamed through another store) = %q, %v", sec, err)
	}
	wantErr(t, "CreateMailbox(bob)", s.CreateMailbox(ctx, addr("bob", "example.com"), "bob's"), nil)
	if sec, err := o.Secret(ctx, addr("bob", "example.com"), store.SecretPassword); err != nil || string(sec) != "bob's" {
		t.Fatalf("Secret(created through another store) = %q, %v", sec, err)
	}
	wantErr(t, "SetPassword(remove)", s.SetPassword(ctx, b, ""), nil)
	_, err = o.Secret(ctx, b, store.SecretPassword)
	wantErr(t, "Secret(removed through another store)", err, store.ErrNoSecret)
	wantErr(t, "VerifyPassword(removed through another store)", o.VerifyPassword(ctx, b, "password"), store.ErrAuthFailed)
}
