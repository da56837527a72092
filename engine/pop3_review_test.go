package engine

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pop3svc/pop3svc/session/auth"
	"github.com/pop3svc/pop3svc/session/pop3"
	"github.com/pop3svc/pop3svc/session/pop3/transcript"
	"github.com/pop3svc/pop3svc/store"
	"github.com/pop3svc/pop3svc/store/filestore"
)

// slowOpenStore delays OpenSession, so that a client can go away while a
// worker is opening its mailbox.
type slowOpenStore struct {
	store.Store
	delay time.Duration
}

func (s *slowOpenStore) OpenSession(ctx context.Context, a store.Address, owner string) (store.MailboxSession, error) {
	time.Sleep(s.delay)
	return s.Store.OpenSession(ctx, a, owner)
}

// startPOP3 serves real POP3 sessions over a file store with the
// transcript fixture.
func startPOP3(t *testing.T, openDelay time.Duration) (*testServer, *filestore.Store) {
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
	ts := startServer(t, nil)
	opts := &pop3.Options{
		Store: &slowOpenStore{Store: st, delay: openDelay},
		Auth: &auth.Authenticator{
			Method: auth.PasswordFile{Store: st}, Store: st, FailDelay: 50 * time.Millisecond,
		},
		MaxBadCommands: 10, MaxAuthFailures: 3, Node: 1, Logger: testLogger(),
	}
	if err := ts.Reload(ts.cfg, pop3.NewFactory(opts)); err != nil {
		t.Fatal(err)
	}
	return ts, st
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
	ts, st := startPOP3(t, 150*time.Millisecond)
	alice := aliceAddr(t)
	ctx := context.Background()
	before, err := st.Mailbox(ctx, alice)
	if err != nil {
		t.Fatal(err)
	}
	for _, reset := range []bool{false, true} {
		c := ts.dial(t)
		c.line()
		c.send(fmt.Sprintf("USER %s\r\nPASS %s\r\n", transcript.AliceUser, transcript.AlicePassword))
		c.expect("+OK send PASS")
		time.Sleep(40 * time.Millisecond) // the worker is in OpenSession
		if reset {
			c.c.(*net.TCPConn).SetLinger(0)
		}
		c.c.Close()
		eventually(t, "mailbox released", func() bool {
			info, err := st.Mailbox(ctx, alice)
			return err == nil && !info.InUse && ts.Status().Connections == 0
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
