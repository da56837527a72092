// Package storetest is the conformance suite of the Mail Storage Access
// API: every store.Store implementation runs it from its own tests with
//
//	storetest.Run(t, func(t *testing.T) store.Store { ... a fresh, empty store ... }, storetest.Capabilities{...})
//
// The checks of the API use only the store.Store interface and run for
// every store. What only some stores have — files under a mail root, data
// that outlives the Store value and is shared with other processes and
// servers, a process that can be killed half-way — is a capability the
// store declares in Capabilities; the checks of a capability are
// registered only for a store that declares it, so no check is skipped.
package storetest

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/pop3svc/pop3svc/store"
)

// Factory returns a fresh, empty store; the suite closes it.
type Factory func(t *testing.T) store.Store

// OpenFunc opens the store whose data is at root, the Root() of a store a
// Factory made, as another process or another server sharing that store
// would: node is its node number (the last digits of the UIDs it makes).
type OpenFunc func(root string, node int) (store.Store, error)

// Capabilities says what the store under test has beyond the API.
type Capabilities struct {
	// Files: the store keeps everything in files under Root(), which names
	// a folder. Registers Files/HostileNames (a refused name creates
	// nothing under or beside the mail root) and Files/PasswordNotInClear
	// (no file holds a password or its NT hash in clear).
	Files bool
	// Open: the store's data outlives its Store value and is shared by
	// every Store opened on it. Registers Shared/Reopen (everything
	// survives Close and a new Open), Shared/Locks (session, mailbox and
	// domain locks hold across stores), Shared/Delivery (deliveries of
	// several stores with their own node numbers into one mailbox: every
	// message kept, no UID shared) and Shared/Credentials (a password set
	// through one store is checked and its secrets opened through another,
	// so every server uses the same store key).
	Open OpenFunc
	// Processes: the store can be used by several processes at once and
	// its test binary calls Main from TestMain with the same OpenFunc as
	// Open (which Processes needs), so that the suite can run store work
	// in a child process and kill it with SIGKILL. Registers
	// Processes/KilledDuringDelivery (no partial message appears),
	// Processes/AcknowledgedSurvivesKill (every message whose Deliver
	// returned is kept whole), Processes/KilledHoldingSession (a dead
	// session's lock does not lock the mailbox forever and deletes
	// nothing) and Processes/UniqueUIDsSameNode (processes of one node
	// delivering at once never share a UID).
	Processes bool
	// Import: the store is a store.Importer. Registers Import (imported
	// messages keep their UIDL as UID, in import order; duplicates and
	// UIDLs outside RFC 1939's rules store nothing; no quota applies),
	// Import/Race (one UIDL imported at once from several goroutines is
	// stored once) and, with Open, Shared/Import (imported UIDLs survive a
	// new Open and are refused again through another store).
	Import bool
}

type check struct {
	name string
	fn   func(t *testing.T, s store.Store)
}

// Run runs every conformance check the store's capabilities call for,
// each on a fresh store.
func Run(t *testing.T, newStore Factory, caps Capabilities) {
	tests := []check{
		{"Domains", testDomains},
		{"Mailboxes", testMailboxes},
		{"RenameMailbox", testRename},
		{"Credentials", testCredentials},
		{"Quota", testQuota},
		{"QuotaConcurrent", testQuotaConcurrent},
		{"Deliver", testDeliver},
		{"LineEndings", testLineEndings},
		{"Session", testSession},
		{"SessionSnapshot", testSnapshot},
		{"Locks", testLocks},
		{"InUse", testInUse},
		{"SessionRace", testSessionRace},
		{"HostileNames", testHostileNames},
		{"Concurrency", testConcurrency},
		{"PolicyState", testPolicyState},
	}
	if caps.Files {
		tests = append(tests,
			check{"Files/HostileNames", testFilesHostileNames},
			check{"Files/PasswordNotInClear", testPasswordNotInClear},
		)
	}
	if caps.Import {
		tests = append(tests, check{"Import", testImport}, check{"Import/Race", testImportRace})
		if open := caps.Open; open != nil {
			tests = append(tests, check{"Shared/Import", func(t *testing.T, s store.Store) { testSharedImport(t, s, open) }})
		}
	}
	if caps.Processes && caps.Open == nil {
		t.Fatal("storetest: the Processes capability needs Open")
	}
	if open := caps.Open; open != nil {
		for _, c := range []struct {
			name string
			fn   func(*testing.T, store.Store, OpenFunc)
		}{
			{"Shared/Reopen", testReopen},
			{"Shared/Locks", testSharedLocks},
			{"Shared/Delivery", testSharedDelivery},
			{"Shared/Credentials", testSharedCredentials},
		} {
			tests = append(tests, check{c.name, func(t *testing.T, s store.Store) { c.fn(t, s, open) }})
		}
	}
	if caps.Processes {
		for _, c := range []struct {
			name string
			fn   func(*testing.T, store.Store, OpenFunc)
		}{
			{"Processes/KilledDuringDelivery", testKilledDuringDelivery},
			{"Processes/AcknowledgedSurvivesKill", testAcknowledgedSurvivesKill},
			{"Processes/KilledHoldingSession", testKilledHoldingSession},
			{"Processes/UniqueUIDsSameNode", testUniqueUIDsSameNode},
		} {
			tests = append(tests, check{c.name, func(t *testing.T, s store.Store) { c.fn(t, s, caps.Open) }})
		}
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t)
			t.Cleanup(func() { s.Close() })
			tc.fn(t, s)
		})
	}
}

var ctx = context.Background()

func addr(m, d string) store.Address { return store.Address{Mailbox: m, Domain: d} }

// wantErr fails unless errors.Is(err, want) (want nil: err must be nil).
func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if want == nil {
		if err != nil {
			t.Fatalf("%s: unexpected error %v", what, err)
		}
		return
	}
	if !errors.Is(err, want) {
		t.Fatalf("%s = %v, want %v", what, err, want)
	}
}

// setup makes domain example.com with mailboxes named in boxes (password "pw-"+name).
func setup(t *testing.T, s store.Store, boxes ...string) {
	t.Helper()
	wantErr(t, "CreateDomain(example.com)", s.CreateDomain(ctx, "example.com"), nil)
	for _, b := range boxes {
		wantErr(t, "CreateMailbox("+b+")", s.CreateMailbox(ctx, addr(b, "example.com"), "pw-"+b), nil)
	}
}

func deliver(t *testing.T, s store.Store, a store.Address, body string) string {
	t.Helper()
	uid, err := s.Deliver(ctx, a, strings.NewReader(body))
	if err != nil {
		t.Fatalf("Deliver(%s): %v", a, err)
	}
	return uid
}

func readMsg(t *testing.T, ms store.MailboxSession, i int) string {
	t.Helper()
	r, err := ms.Open(i)
	if err != nil {
		t.Fatalf("Open(%d): %v", i, err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("reading message %d: %v", i, err)
	}
	return string(b)
}

func testDomains(t *testing.T, s store.Store) {
	wantErr(t, "CreateDomain", s.CreateDomain(ctx, "Example.COM"), nil)
	wantErr(t, "CreateDomain again", s.CreateDomain(ctx, "example.com"), store.ErrDomainExists)
	wantErr(t, "CreateDomain(bad)", s.CreateDomain(ctx, "bad_domain"), store.ErrInvalidName)
	wantErr(t, "CreateDomain(b.org)", s.CreateDomain(ctx, "b.org"), nil)
	ds, err := s.ListDomains(ctx)
	wantErr(t, "ListDomains", err, nil)
	var names []string
	for _, d := range ds {
		names = append(names, d.Name)
	}
	slices.Sort(names)
	if !slices.Equal(names, []string{"b.org", "example.com"}) {
		t.Fatalf("ListDomains = %v, want [b.org example.com]", names)
	}
	wantErr(t, "CreateMailbox", s.CreateMailbox(ctx, addr("a", "example.com"), "x"), nil)
	deliver(t, s, addr("a", "example.com"), "Subject: x\r\n\r\nbody\r\n")
	di, err := s.Domain(ctx, "EXAMPLE.com")
	wantErr(t, "Domain", err, nil)
	if di.Name != "example.com" || di.Mailboxes != 1 || di.Messages != 1 || di.Bytes != 20 || di.Locked {
		t.Fatalf("Domain = %+v, want 1 mailbox, 1 message, 20 octets, unlocked", di)
	}
	_, err = s.Domain(ctx, "nowhere.net")
	wantErr(t, "Domain(unknown)", err, store.ErrNoSuchDomain)
	wantErr(t, "LockDomain", s.LockDomain(ctx, "example.com"), nil)
	if di, _ := s.Domain(ctx, "example.com"); !di.Locked {
		t.Fatalf("Domain after LockDomain: Locked = false")
	}
	wantErr(t, "UnlockDomain", s.UnlockDomain(ctx, "example.com"), nil)
	if di, _ := s.Domain(ctx, "example.com"); di.Locked {
		t.Fatalf("Domain after UnlockDomain: Locked = true")
	}
	wantErr(t, "LockDomain(unknown)", s.LockDomain(ctx, "nowhere.net"), store.ErrNoSuchDomain)
	wantErr(t, "DeleteDomain(not empty)", s.DeleteDomain(ctx, "example.com", false), store.ErrDomainNotEmpty)
	wantErr(t, "DeleteDomain(force)", s.DeleteDomain(ctx, "example.com", true), nil)
	wantErr(t, "DeleteDomain(empty)", s.DeleteDomain(ctx, "b.org", false), nil)
	wantErr(t, "DeleteDomain(gone)", s.DeleteDomain(ctx, "b.org", false), store.ErrNoSuchDomain)
	if ds, _ := s.ListDomains(ctx); len(ds) != 0 {
		t.Fatalf("ListDomains after deletes = %+v, want none", ds)
	}
	// A recreated domain starts empty.
	wantErr(t, "CreateDomain again", s.CreateDomain(ctx, "example.com"), nil)
	_, err = s.Mailbox(ctx, addr("a", "example.com"))
	wantErr(t, "Mailbox in recreated domain", err, store.ErrNoSuchMailbox)
}

func testMailboxes(t *testing.T, s store.Store) {
	setup(t, s)
	a := addr("alice", "example.com")
	wantErr(t, "CreateMailbox", s.CreateMailbox(ctx, addr("Alice", "Example.com"), "secret"), nil)
	wantErr(t, "CreateMailbox again", s.CreateMailbox(ctx, a, ""), store.ErrMailboxExists)
	wantErr(t, "CreateMailbox(no domain)", s.CreateMailbox(ctx, addr("x", "nowhere.net"), ""), store.ErrNoSuchDomain)
	wantErr(t, "CreateMailbox(bob, no password)", s.CreateMailbox(ctx, addr("bob", "example.com"), ""), nil)
	mi, err := s.Mailbox(ctx, a)
	wantErr(t, "Mailbox", err, nil)
	if mi.Address != a || !mi.HasPassword || mi.InUse || mi.Locked || mi.Messages != 0 || mi.Bytes != 0 {
		t.Fatalf("Mailbox(alice) = %+v", mi)
	}
	if mi, _ := s.Mailbox(ctx, addr("bob", "example.com")); mi.HasPassword {
		t.Fatalf("Mailbox(bob).HasPassword = true for a mailbox created without one")
	}
	_, err = s.Mailbox(ctx, addr("carol", "example.com"))
	wantErr(t, "Mailbox(unknown)", err, store.ErrNoSuchMailbox)
	_, err = s.Mailbox(ctx, addr("carol", "nowhere.net"))
	wantErr(t, "Mailbox(unknown domain)", err, store.ErrNoSuchDomain)
	deliver(t, s, a, "one\r\n")
	deliver(t, s, a, "two two\r\n")
	mbs, err := s.ListMailboxes(ctx, "example.com")
	wantErr(t, "ListMailboxes", err, nil)
	if len(mbs) != 2 || mbs[0].Address != a || mbs[0].Messages != 2 || mbs[0].Bytes != 14 || mbs[1].Address.Mailbox != "bob" {
		t.Fatalf("ListMailboxes = %+v", mbs)
	}
	_, err = s.ListMailboxes(ctx, "nowhere.net")
	wantErr(t, "ListMailboxes(unknown)", err, store.ErrNoSuchDomain)
	if l, ok := s.(store.MailboxLister); ok {
		names, err := l.ListMailboxNames(ctx, "Example.COM")
		wantErr(t, "ListMailboxNames", err, nil)
		if strings.Join(names, ",") != "alice,bob" {
			t.Fatalf("ListMailboxNames = %q, want alice,bob", names)
		}
		_, err = l.ListMailboxNames(ctx, "nowhere.net")
		wantErr(t, "ListMailboxNames(unknown)", err, store.ErrNoSuchDomain)
	}
	wantErr(t, "DeleteMailbox", s.DeleteMailbox(ctx, a), nil)
	wantErr(t, "DeleteMailbox again", s.DeleteMailbox(ctx, a), store.ErrNoSuchMailbox)
	_, err = s.Deliver(ctx, a, strings.NewReader("x\r\n"))
	wantErr(t, "Deliver(deleted)", err, store.ErrNoSuchMailbox)
	wantErr(t, "VerifyPassword(deleted)", s.VerifyPassword(ctx, a, "secret"), store.ErrAuthFailed)
	// A recreated mailbox starts empty, with its new password.
	wantErr(t, "CreateMailbox again", s.CreateMailbox(ctx, a, "new"), nil)
	if n, b, err := s.Usage(ctx, a); err != nil || n != 0 || b != 0 {
		t.Fatalf("Usage(recreated) = %d, %d, %v; want 0, 0", n, b, err)
	}
	wantErr(t, "VerifyPassword(recreated)", s.VerifyPassword(ctx, a, "new"), nil)
}

func testRename(t *testing.T, s store.Store) {
	setup(t, s, "alice", "bob")
	a := addr("alice", "example.com")
	uid := deliver(t, s, a, "hello\r\n")
	wantErr(t, "RenameMailbox(to existing)", s.RenameMailbox(ctx, a, "bob"), store.ErrMailboxExists)
	wantErr(t, "RenameMailbox(bad name)", s.RenameMailbox(ctx, a, "a/b"), store.ErrInvalidName)
	wantErr(t, "RenameMailbox(unknown)", s.RenameMailbox(ctx, addr("zed", "example.com"), "zz"), store.ErrNoSuchMailbox)
	ms, err := s.OpenSession(ctx, a, "test")
	wantErr(t, "OpenSession", err, nil)
	wantErr(t, "RenameMailbox(in use)", s.RenameMailbox(ctx, a, "alicia"), store.ErrMailboxInUse)
	ms.Close()
	wantErr(t, "RenameMailbox", s.RenameMailbox(ctx, a, "Alicia"), nil)
	b := addr("alicia", "example.com")
	_, err = s.Mailbox(ctx, a)
	wantErr(t, "Mailbox(old name)", err, store.ErrNoSuchMailbox)
	wantErr(t, "VerifyPassword(new name)", s.VerifyPassword(ctx, b, "pw-alice"), nil)
	sec, err := s.Secret(ctx, b, store.SecretPassword)
	if err != nil || string(sec) != "pw-alice" {
		t.Fatalf("Secret(new name) = %q, %v; want pw-alice", sec, err)
	}
	ms, err = s.OpenSession(ctx, b, "test")
	wantErr(t, "OpenSession(new name)", err, nil)
	defer ms.Close()
	if m := ms.Messages(); len(m) != 1 || m[0].UID != uid {
		t.Fatalf("Messages after rename = %+v, want UID %s", m, uid)
	}
}

func testCredentials(t *testing.T, s store.Store) {
	setup(t, s, "alice")
	wantErr(t, "CreateMailbox(nopw)", s.CreateMailbox(ctx, addr("nopw", "example.com"), ""), nil)
	a := addr("alice", "example.com")
	wantErr(t, "VerifyPassword(right)", s.VerifyPassword(ctx, a, "pw-alice"), nil)
	wantErr(t, "VerifyPassword(upper-case address)", s.VerifyPassword(ctx, addr("ALICE", "Example.Com"), "pw-alice"), nil)
	wantErr(t, "VerifyPassword(wrong)", s.VerifyPassword(ctx, a, "pw-alicE"), store.ErrAuthFailed)
	wantErr(t, "VerifyPassword(empty)", s.VerifyPassword(ctx, a, ""), store.ErrAuthFailed)
	wantErr(t, "VerifyPassword(unknown)", s.VerifyPassword(ctx, addr("zed", "example.com"), "pw-alice"), store.ErrAuthFailed)
	wantErr(t, "VerifyPassword(unknown domain)", s.VerifyPassword(ctx, addr("alice", "nowhere.net"), "pw-alice"), store.ErrAuthFailed)
	wantErr(t, "VerifyPassword(no password)", s.VerifyPassword(ctx, addr("nopw", "example.com"), ""), store.ErrAuthFailed)
	wantErr(t, "VerifyPassword(invalid name)", s.VerifyPassword(ctx, addr("../x", "example.com"), ""), store.ErrAuthFailed)

	sec, err := s.Secret(ctx, a, store.SecretPassword)
	if err != nil || string(sec) != "pw-alice" {
		t.Fatalf("Secret(password) = %q, %v", sec, err)
	}
	wantErr(t, "SetPassword", s.SetPassword(ctx, a, "password"), nil)
	wantErr(t, "VerifyPassword(old)", s.VerifyPassword(ctx, a, "pw-alice"), store.ErrAuthFailed)
	wantErr(t, "VerifyPassword(new)", s.VerifyPassword(ctx, a, "password"), nil)
	nt, err := s.Secret(ctx, a, store.SecretNTHash)
	// MS-NLMP: NTOWFv1("password") = 8846f7eaee8fb117ad06bdd830b7586c.
	if err != nil || hex.EncodeToString(nt) != "8846f7eaee8fb117ad06bdd830b7586c" {
		t.Fatalf("Secret(NT hash) = %x, %v; want 8846f7eaee8fb117ad06bdd830b7586c", nt, err)
	}
	_, err = s.Secret(ctx, addr("nopw", "example.com"), store.SecretPassword)
	wantErr(t, "Secret(no password)", err, store.ErrNoSecret)
	_, err = s.Secret(ctx, addr("zed", "example.com"), store.SecretPassword)
	wantErr(t, "Secret(unknown)", err, store.ErrAuthFailed)
	wantErr(t, "SetPassword(unknown)", s.SetPassword(ctx, addr("zed", "example.com"), "x"), store.ErrNoSuchMailbox)
	wantErr(t, "SetPassword(nopw)", s.SetPassword(ctx, addr("nopw", "example.com"), "päss wörd ✓"), nil)
	wantErr(t, "VerifyPassword(unicode)", s.VerifyPassword(ctx, addr("nopw", "example.com"), "päss wörd ✓"), nil)
	if mi, _ := s.Mailbox(ctx, addr("nopw", "example.com")); !mi.HasPassword {
		t.Fatalf("HasPassword = false after SetPassword")
	}
}

func testQuota(t *testing.T, s store.Store) {
	setup(t, s, "alice")
	a := addr("alice", "example.com")
	if q, err := s.Quota(ctx, a); err != nil || q != 0 {
		t.Fatalf("Quota(new) = %d, %v; want 0", q, err)
	}
	wantErr(t, "SetQuota", s.SetQuota(ctx, a, 20), nil)
	if q, err := s.Quota(ctx, a); err != nil || q != 20 {
		t.Fatalf("Quota = %d, %v; want 20", q, err)
	}
	deliver(t, s, a, "0123456789\r\n") // 12 octets
	_, err := s.Deliver(ctx, a, strings.NewReader("0123456789\r\n"))
	wantErr(t, "Deliver(over quota)", err, store.ErrOverQuota)
	_, err = s.Deliver(ctx, a, strings.NewReader(strings.Repeat("x", 100)))
	wantErr(t, "Deliver(larger than the quota)", err, store.ErrOverQuota)
	deliver(t, s, a, "12345\n") // 7 octets: 19 <= 20
	if n, b, err := s.Usage(ctx, a); err != nil || n != 2 || b != 19 {
		t.Fatalf("Usage = %d, %d, %v; want 2, 19 (refused deliveries must store nothing)", n, b, err)
	}
	if mi, _ := s.Mailbox(ctx, a); mi.Quota != 20 || mi.Messages != 2 || mi.Bytes != 19 {
		t.Fatalf("Mailbox = %+v, want quota 20, 2 messages, 19 octets", mi)
	}
	wantErr(t, "SetQuota(0)", s.SetQuota(ctx, a, 0), nil)
	if q, _ := s.Quota(ctx, a); q != 0 {
		t.Fatalf("Quota after SetQuota(0) = %d", q)
	}
	deliver(t, s, a, "now it fits\r\n")
	if err := s.SetQuota(ctx, a, -1); err == nil {
		t.Fatalf("SetQuota(-1) succeeded")
	}
	_, err = s.Quota(ctx, addr("zed", "example.com"))
	wantErr(t, "Quota(unknown)", err, store.ErrNoSuchMailbox)
	wantErr(t, "SetQuota(unknown)", s.SetQuota(ctx, addr("zed", "example.com"), 1), store.ErrNoSuchMailbox)
	_, _, err = s.Usage(ctx, addr("zed", "example.com"))
	wantErr(t, "Usage(unknown)", err, store.ErrNoSuchMailbox)
}

func testDeliver(t *testing.T, s store.Store) {
	setup(t, s, "alice")
	a := addr("alice", "example.com")
	_, err := s.Deliver(ctx, addr("zed", "example.com"), strings.NewReader("x\r\n"))
	wantErr(t, "Deliver(unknown mailbox)", err, store.ErrNoSuchMailbox)
	_, err = s.Deliver(ctx, addr("zed", "nowhere.net"), strings.NewReader("x\r\n"))
	wantErr(t, "Deliver(unknown domain)", err, store.ErrNoSuchDomain)
	_, err = s.Deliver(ctx, addr("a b", "example.com"), strings.NewReader("x\r\n"))
	wantErr(t, "Deliver(invalid name)", err, store.ErrInvalidName)
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.Deliver(cctx, a, strings.NewReader("x\r\n")); err == nil {
		t.Fatalf("Deliver with a cancelled context succeeded")
	}
	_, err = s.Deliver(ctx, a, io.MultiReader(strings.NewReader("partial"), errReader{}))
	if err == nil {
		t.Fatalf("Deliver of a failing reader succeeded")
	}
	if n, _, _ := s.Usage(ctx, a); n != 0 {
		t.Fatalf("failed deliveries left %d messages", n)
	}
	seen := map[string]bool{}
	var prev string
	for i := 0; i < 20; i++ {
		uid := deliver(t, s, addr("ALICE", "example.com"), fmt.Sprintf("message %d\r\n", i))
		if len(uid) != 26 || strings.Trim(uid, "0123456789") != "" {
			t.Fatalf("UID %q is not 26 digits", uid)
		}
		if seen[uid] || uid <= prev {
			t.Fatalf("UID %q repeated or out of order (previous %q)", uid, prev)
		}
		seen[uid], prev = true, uid
	}
	ms, err := s.OpenSession(ctx, a, "test")
	wantErr(t, "OpenSession", err, nil)
	defer ms.Close()
	msgs := ms.Messages()
	if len(msgs) != 20 {
		t.Fatalf("Messages = %d, want 20", len(msgs))
	}
	for i, m := range msgs {
		want := fmt.Sprintf("message %d\r\n", i)
		if got := readMsg(t, ms, i); got != want || m.Size != int64(len(want)) {
			t.Fatalf("message %d = %q (size %d), want %q", i, got, m.Size, want)
		}
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("connection reset") }

func testLineEndings(t *testing.T, s store.Store) {
	setup(t, s, "alice")
	a := addr("alice", "example.com")
	big := strings.Repeat("line of text\n", 20000) // crosses every buffer boundary
	cases := []struct{ in, want string }{
		{"a\r\nb\r\n", "a\r\nb\r\n"},
		{"a\nb\n", "a\r\nb\r\n"},
		{"a\r\nb\nc", "a\r\nb\r\nc\r\n"},
		{"no newline", "no newline\r\n"},
		{"\n\n", "\r\n\r\n"},
		{"a\rb\r\n", "a\rb\r\n"},
		{"ends with cr\r", "ends with cr\r\n"},
		{big, strings.ReplaceAll(big, "\n", "\r\n")},
	}
	for _, c := range cases {
		deliver(t, s, a, c.in)
	}
	// One octet at a time: a CR and its LF in separate reads.
	if _, err := s.Deliver(ctx, a, &oneByte{s: "x\r\ny\n"}); err != nil {
		t.Fatal(err)
	}
	cases = append(cases, struct{ in, want string }{"x\r\ny\n", "x\r\ny\r\n"})
	ms, err := s.OpenSession(ctx, a, "test")
	wantErr(t, "OpenSession", err, nil)
	defer ms.Close()
	for i, c := range cases {
		got := readMsg(t, ms, i)
		if got != c.want || ms.Messages()[i].Size != int64(len(c.want)) {
			t.Errorf("Deliver(%.40q) stored %.40q (size %d), want %.40q", c.in, got, ms.Messages()[i].Size, c.want)
		}
	}
}

type oneByte struct{ s string }

func (o *oneByte) Read(p []byte) (int, error) {
	if o.s == "" {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	p[0] = o.s[0]
	o.s = o.s[1:]
	return 1, nil
}

func testSession(t *testing.T, s store.Store) {
	setup(t, s, "alice")
	a := addr("alice", "example.com")
	var uids []string
	for i := 0; i < 5; i++ {
		uids = append(uids, deliver(t, s, a, fmt.Sprintf("m%d\r\n", i)))
	}
	_, err := s.OpenSession(ctx, addr("zed", "example.com"), "t")
	wantErr(t, "OpenSession(unknown)", err, store.ErrNoSuchMailbox)
	ms, err := s.OpenSession(ctx, a, "first")
	wantErr(t, "OpenSession", err, nil)
	_, err = ms.Open(5)
	wantErr(t, "Open(5)", err, store.ErrNoSuchMessage)
	_, err = ms.Open(-1)
	wantErr(t, "Open(-1)", err, store.ErrNoSuchMessage)
	wantErr(t, "Refresh", ms.Refresh(), nil)
	wantErr(t, "Commit(out of range)", ms.Commit(ctx, []int{7}), store.ErrNoSuchMessage)
	// Close without Commit deletes nothing.
	wantErr(t, "Close", ms.Close(), nil)
	wantErr(t, "Close again", ms.Close(), nil)
	_, err = ms.Open(0)
	wantErr(t, "Open after Close", err, store.ErrSessionClosed)
	wantErr(t, "Commit after Close", ms.Commit(ctx, nil), store.ErrSessionClosed)
	wantErr(t, "Refresh after Close", ms.Refresh(), store.ErrSessionClosed)

	ms, err = s.OpenSession(ctx, a, "second")
	wantErr(t, "OpenSession again", err, nil)
	if len(ms.Messages()) != 5 {
		t.Fatalf("Close deleted messages: %d left", len(ms.Messages()))
	}
	wantErr(t, "Commit", ms.Commit(ctx, []int{1, 3, 3}), nil)
	wantErr(t, "Close after Commit", ms.Close(), nil)
	ms, err = s.OpenSession(ctx, a, "third")
	wantErr(t, "OpenSession after Commit", err, nil)
	var got []string
	for _, m := range ms.Messages() {
		got = append(got, m.UID)
	}
	want := []string{uids[0], uids[2], uids[4]}
	if !slices.Equal(got, want) {
		t.Fatalf("after Commit UIDs = %v, want %v", got, want)
	}
	if b := readMsg(t, ms, 1); b != "m2\r\n" {
		t.Fatalf("message 2 = %q, want m2", b)
	}
	wantErr(t, "Commit(nothing)", ms.Commit(ctx, nil), nil)
}

func testSnapshot(t *testing.T, s store.Store) {
	setup(t, s, "alice")
	a := addr("alice", "example.com")
	deliver(t, s, a, "before\r\n")
	ms, err := s.OpenSession(ctx, a, "t")
	wantErr(t, "OpenSession", err, nil)
	late := deliver(t, s, a, "during\r\n") // works while the mailbox is held
	if len(ms.Messages()) != 1 {
		t.Fatalf("a message delivered during the session appeared in it")
	}
	wantErr(t, "Commit", ms.Commit(ctx, []int{0}), nil)
	ms, err = s.OpenSession(ctx, a, "t")
	wantErr(t, "OpenSession", err, nil)
	defer ms.Close()
	if m := ms.Messages(); len(m) != 1 || m[0].UID != late {
		t.Fatalf("next session Messages = %+v, want only %s", m, late)
	}
}

func testLocks(t *testing.T, s store.Store) {
	setup(t, s, "alice", "bob")
	a := addr("alice", "example.com")
	wantErr(t, "LockMailbox", s.LockMailbox(ctx, a), nil)
	wantErr(t, "LockMailbox again", s.LockMailbox(ctx, a), nil)
	_, err := s.OpenSession(ctx, a, "t")
	wantErr(t, "OpenSession(admin-locked)", err, store.ErrMailboxLocked)
	if errors.Is(err, store.ErrMailboxInUse) {
		t.Fatalf("an administrator's lock reported as in use: %v", err)
	}
	if mi, _ := s.Mailbox(ctx, a); !mi.Locked || mi.InUse {
		t.Fatalf("Mailbox(admin-locked) = %+v, want Locked, not InUse", mi)
	}
	deliver(t, s, a, "delivered while locked\r\n")
	wantErr(t, "VerifyPassword(admin-locked)", s.VerifyPassword(ctx, a, "pw-alice"), nil)
	wantErr(t, "UnlockMailbox", s.UnlockMailbox(ctx, a), nil)
	wantErr(t, "UnlockMailbox again", s.UnlockMailbox(ctx, a), nil)
	ms, err := s.OpenSession(ctx, a, "t")
	wantErr(t, "OpenSession(unlocked)", err, nil)
	if len(ms.Messages()) != 1 {
		t.Fatalf("Messages = %d, want 1", len(ms.Messages()))
	}
	ms.Close()
	wantErr(t, "LockMailbox(unknown)", s.LockMailbox(ctx, addr("zed", "example.com")), store.ErrNoSuchMailbox)
	wantErr(t, "UnlockMailbox(unknown)", s.UnlockMailbox(ctx, addr("zed", "example.com")), store.ErrNoSuchMailbox)

	// Domain lock: every mailbox, present and future.
	wantErr(t, "LockDomain", s.LockDomain(ctx, "example.com"), nil)
	_, err = s.OpenSession(ctx, addr("bob", "example.com"), "t")
	wantErr(t, "OpenSession(domain locked)", err, store.ErrDomainLocked)
	wantErr(t, "CreateMailbox(carol)", s.CreateMailbox(ctx, addr("carol", "example.com"), "x"), nil)
	_, err = s.OpenSession(ctx, addr("carol", "example.com"), "t")
	wantErr(t, "OpenSession(new mailbox, domain locked)", err, store.ErrDomainLocked)
	if mi, _ := s.Mailbox(ctx, addr("carol", "example.com")); !mi.Locked {
		t.Fatalf("Mailbox in a locked domain: Locked = false")
	}
	deliver(t, s, addr("carol", "example.com"), "delivered while the domain is locked\r\n")
	wantErr(t, "UnlockDomain", s.UnlockDomain(ctx, "example.com"), nil)
	ms, err = s.OpenSession(ctx, addr("carol", "example.com"), "t")
	wantErr(t, "OpenSession(domain unlocked)", err, nil)
	ms.Close()
}

func testInUse(t *testing.T, s store.Store) {
	setup(t, s, "alice")
	a := addr("alice", "example.com")
	ms, err := s.OpenSession(ctx, a, "pop3d conn 7")
	wantErr(t, "OpenSession", err, nil)
	_, err = s.OpenSession(ctx, a, "other")
	wantErr(t, "OpenSession(held)", err, store.ErrMailboxInUse)
	mi, err := s.Mailbox(ctx, a)
	if err != nil || !mi.InUse || mi.Locked || mi.Owner != "pop3d conn 7" {
		t.Fatalf("Mailbox(held) = %+v, %v; want InUse, owner \"pop3d conn 7\"", mi, err)
	}
	wantErr(t, "DeleteMailbox(in use)", s.DeleteMailbox(ctx, a), store.ErrMailboxInUse)
	wantErr(t, "DeleteDomain(force, in use)", s.DeleteDomain(ctx, "example.com", true), store.ErrMailboxInUse)
	wantErr(t, "LockMailbox(in use)", s.LockMailbox(ctx, a), store.ErrMailboxInUse)
	wantErr(t, "Close", ms.Close(), nil)
	if mi, _ := s.Mailbox(ctx, a); mi.InUse {
		t.Fatalf("Mailbox after Close: InUse")
	}
	wantErr(t, "DeleteMailbox", s.DeleteMailbox(ctx, a), nil)
}
