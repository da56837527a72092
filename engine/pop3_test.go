package engine

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pop3svc/pop3svc/session/auth"
	"github.com/pop3svc/pop3svc/session/pop3"
	"github.com/pop3svc/pop3svc/session/pop3/transcript"
	"github.com/pop3svc/pop3svc/store"
	"github.com/pop3svc/pop3svc/store/filestore"
)

// heldOpenStore holds the next OpenSession at a gate the test set, so
// that a client can go away while a worker is opening its mailbox.
type heldOpenStore struct {
	store.Store
	next   atomic.Pointer[gate]
	opened atomic.Int64 // sessions opened (the mailbox locked)
}

func (s *heldOpenStore) OpenSession(ctx context.Context, a store.Address, owner string) (store.MailboxSession, error) {
	if g := s.next.Swap(nil); g != nil {
		g.pass()
	}
	ms, err := s.Store.OpenSession(ctx, a, owner)
	if err == nil {
		s.opened.Add(1)
	}
	return ms, err
}

// startPOP3 serves real POP3 sessions over a file store with the
// transcript fixture.
func startPOP3(t *testing.T) (*testServer, *filestore.Store, *heldOpenStore) {
	t.Helper()
	return startPOP3With(t, nil)
}

// startPOP3With is startPOP3 with the engine's configuration edited.
func startPOP3With(t *testing.T, edit func(cfg *Config)) (*testServer, *filestore.Store, *heldOpenStore) {
	t.Helper()
	st, err := filestore.Open(filepath.Join(t.TempDir(), "mailroot"), filestore.Options{
		Node: 1, Argon2: filestore.Argon2Params{Time: 1, MemoryKiB: 64, Threads: 1, KeyLen: 32},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := transcript.Fixture(context.Background(), st); err != nil {
		t.Fatal(err)
	}
	ts := startServer(t, edit)
	held := &heldOpenStore{Store: st}
	opts := &pop3.Options{
		Store: held,
		Auth: &auth.Authenticator{
			Method: auth.PasswordFile{Store: st}, Store: st, FailDelay: 50 * time.Millisecond,
		},
		MaxBadCommands: 10, MaxAuthFailures: 3, Node: 1, Logger: testLogger(),
	}
	if err := ts.Reload(ts.cfg, pop3.NewFactory(opts)); err != nil {
		t.Fatal(err)
	}
	return ts, st, held
}

func aliceAddr(t *testing.T) store.Address {
	a, err := store.ParseAddress(transcript.AliceUser, "")
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// A client that goes away while its PASS is opening the mailbox on a
// worker leaves the mailbox free: the session opened by the late login is
// released by the session's Close, and nothing is deleted.
func TestPOP3DropDuringLogin(t *testing.T) {
	ts, st, held := startPOP3(t)
	alice := aliceAddr(t)
	ctx := context.Background()
	before, err := st.Mailbox(ctx, alice)
	if err != nil {
		t.Fatal(err)
	}
	for i, reset := range []bool{false, true} {
		g := &gate{entered: make(chan struct{}, 1), release: make(chan struct{})}
		held.next.Store(g)
		c := ts.dial(t)
		c.line()
		c.send(fmt.Sprintf("USER %s\r\nPASS %s\r\n", transcript.AliceUser, transcript.AlicePassword))
		c.expect("+OK send PASS")
		g.waitEntered(t) // the worker is in OpenSession
		if reset {
			c.c.(*net.TCPConn).SetLinger(0)
		}
		c.c.Close()
		// The server saw the client go before the mailbox is open.
		eventually(t, "connection closed", func() bool { return ts.Status().Connections == 0 })
		g.open()
		// The late login opens the mailbox, then the session's Close
		// releases it.
		eventually(t, "mailbox opened and released", func() bool {
			info, err := st.Mailbox(ctx, alice)
			return held.opened.Load() == int64(i+1) && err == nil && !info.InUse
		})
	}
	// A RETR and DELE without QUIT delete nothing either.
	c := ts.dial(t)
	c.line()
	c.send(fmt.Sprintf("USER %s\r\nPASS %s\r\nDELE 1\r\nRETR 2\r\n", transcript.AliceUser, transcript.AlicePassword))
	c.expect("+OK send PASS")
	if l := c.line(); !strings.HasPrefix(l, "+OK") {
		t.Fatalf("PASS: %q", l)
	}
	c.expect("+OK message 1 deleted")
	if l := c.line(); !strings.HasPrefix(l, "+OK") {
		t.Fatalf("RETR: %q", l)
	}
	c.c.(*net.TCPConn).SetLinger(0)
	c.c.Close()
	eventually(t, "mailbox released", func() bool {
		info, err := st.Mailbox(ctx, alice)
		return err == nil && !info.InUse
	})
	after, err := st.Mailbox(ctx, alice)
	if err != nil {
		t.Fatal(err)
	}
	if after.Messages != before.Messages || after.Bytes != before.Bytes {
		t.Fatalf("mailbox went from %d messages (%d octets) to %d (%d) without QUIT",
			before.Messages, before.Bytes, after.Messages, after.Bytes)
	}
	// The next session logs in.
	c = ts.dial(t)
	c.line()
	c.send(fmt.Sprintf("USER %s\r\nPASS %s\r\nQUIT\r\n", transcript.AliceUser, transcript.AlicePassword))
	c.expect("+OK send PASS")
	if l := c.line(); !strings.HasPrefix(l, "+OK") {
		t.Fatalf("PASS after the drops: %q", l)
	}
	if l := c.line(); !strings.HasPrefix(l, "+OK") {
		t.Fatalf("QUIT: %q", l)
	}
}
