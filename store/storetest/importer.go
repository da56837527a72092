package storetest

import (
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/pop3svc/pop3svc/store"
)

func importer(t *testing.T, s store.Store) store.Importer {
	t.Helper()
	im, ok := s.(store.Importer)
	if !ok {
		t.Fatalf("the store declares the Import capability but %T is not a store.Importer", s)
	}
	return im
}

func importMsg(t *testing.T, im store.Importer, a store.Address, uidl, body string) string {
	t.Helper()
	name, err := im.Import(ctx, a, uidl, strings.NewReader(body))
	if err != nil {
		t.Fatalf("Import(%s, %q): %v", a, uidl, err)
	}
	return name
}

// every printable character, 70 of them: the longest UIDL RFC 1939 allows.
var longUIDL = func() string {
	var b []byte
	for c := byte(0x21); len(b) < store.MaxUIDLLen; c++ {
		b = append(b, c)
	}
	return string(b)
}()

// testImport: an imported message keeps its old UIDL as its UID, in the
// order of import, between earlier and later deliveries; a duplicate UIDL
// and a UIDL outside RFC 1939's rules store nothing; no quota applies.
func testImport(t *testing.T, s store.Store) {
	im := importer(t, s)
	setup(t, s, "alice")
	a := addr("alice", "example.com")
	first := deliver(t, s, a, "Subject: before\r\n\r\nbefore\r\n")
	uidls := []string{"00000001505ad6d1", "UID1-1200000000", "a/b%c", longUIDL, "20030101000000000000000001"}
	var bodies []string
	for i, u := range uidls {
		body := "Subject: old " + u + "\n\nold message " + strings.Repeat("x", i) + "\n"
		bodies = append(bodies, strings.ReplaceAll(body, "\n", "\r\n"))
		name := importMsg(t, im, a, u, body)
		if len(name) != 26 {
			t.Fatalf("Import returned name %q, want 26 digits", name)
		}
	}
	last := deliver(t, s, a, "Subject: after\r\n\r\nafter\r\n")
	want := append(append([]string{first}, uidls...), last)
	ms, err := s.OpenSession(ctx, a, "import check")
	wantErr(t, "OpenSession", err, nil)
	var got []string
	for _, m := range ms.Messages() {
		got = append(got, m.UID)
	}
	if !slices.Equal(got, want) {
		ms.Close()
		t.Fatalf("UIDs = %q, want %q", got, want)
	}
	for i := range uidls {
		if b := readMsg(t, ms, i+1); b != bodies[i] {
			t.Errorf("imported message %d = %q, want %q", i, b, bodies[i])
		}
		if sz := ms.Messages()[i+1].Size; sz != int64(len(bodies[i])) {
			t.Errorf("imported message %d size %d, want %d", i, sz, len(bodies[i]))
		}
	}
	// Import works under a session; the message shows in the next one.
	importMsg(t, im, a, "under-session", "x\r\n")
	// Duplicates: an imported UIDL again, a delivered message's UID.
	for _, u := range []string{uidls[0], longUIDL, first, "under-session"} {
		_, err := im.Import(ctx, a, u, strings.NewReader("dup\r\n"))
		wantErr(t, "Import of duplicate "+u, err, store.ErrDuplicateUIDL)
	}
	for _, u := range []string{"", "a b", "tab\tx", longUIDL + "x", "caf\xc3\xa9", "del\x7f"} {
		_, err := im.Import(ctx, a, u, strings.NewReader("bad\r\n"))
		wantErr(t, "Import of invalid UIDL "+u, err, store.ErrInvalidUIDL)
	}
	_, err = im.Import(ctx, addr("nobody", "example.com"), "x", strings.NewReader("x\r\n"))
	wantErr(t, "Import into a missing mailbox", err, store.ErrNoSuchMailbox)
	// Deleting an imported message through a session.
	wantErr(t, "Commit", ms.Commit(ctx, []int{1}), nil)
	ms, err = s.OpenSession(ctx, a, "import check 2")
	wantErr(t, "OpenSession", err, nil)
	got = got[:0]
	for _, m := range ms.Messages() {
		got = append(got, m.UID)
	}
	ms.Close()
	want = append(append([]string{first}, uidls[1:]...), last, "under-session")
	if !slices.Equal(got, want) {
		t.Fatalf("after deleting the first imported message: UIDs = %q, want %q", got, want)
	}
	// No quota applies to an import.
	wantErr(t, "SetQuota", s.SetQuota(ctx, a, 10), nil)
	importMsg(t, im, a, "over-quota", strings.Repeat("q", 100)+"\r\n")
}

// testImportRace: imports of one UIDL racing into one mailbox store it once.
func testImportRace(t *testing.T, s store.Store) {
	im := importer(t, s)
	setup(t, s, "alice")
	a := addr("alice", "example.com")
	const n = 8
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = im.Import(ctx, a, "same-uidl", strings.NewReader("same\r\n"))
		}()
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, store.ErrDuplicateUIDL):
			t.Fatalf("racing Import: %v", err)
		}
	}
	uids, _ := contents(t, s, a)
	if ok != 1 || !slices.Equal(uids, []string{"same-uidl"}) {
		t.Fatalf("%d racing imports succeeded, mailbox holds %q; want exactly one", ok, uids)
	}
}

// testSharedImport: imported UIDLs survive a new Open, and a store of
// another node refuses a UIDL imported through the first.
func testSharedImport(t *testing.T, s store.Store, open OpenFunc) {
	im := importer(t, s)
	setup(t, s, "alice")
	a := addr("alice", "example.com")
	importMsg(t, im, a, "kept-1", "one\r\n")
	importMsg(t, im, a, longUIDL, "two\r\n")
	o := reopen(t, open, s.Root(), peerNode)
	uids, bodies := contents(t, o, a)
	if !slices.Equal(uids, []string{"kept-1", longUIDL}) || !slices.Equal(bodies, []string{"one\r\n", "two\r\n"}) {
		t.Fatalf("after reopening: UIDs %q bodies %q", uids, bodies)
	}
	_, err := importer(t, o).Import(ctx, a, "kept-1", strings.NewReader("again\r\n"))
	wantErr(t, "Import of a UIDL imported through another store", err, store.ErrDuplicateUIDL)
}
