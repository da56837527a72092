package engine

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pop3svc/pop3svc/session/auth"
	"github.com/pop3svc/pop3svc/session/pop3"
	"github.com/pop3svc/pop3svc/session/pop3/transcript"
	"github.com/pop3svc/pop3svc/store/filestore"
)

// startQueuedPOP3 serves POP3 with one command worker and password checks
// in q; the verified-login cache is off, so every login needs a hash.
func startQueuedPOP3(t *testing.T, q *auth.HashQueue) *testServer {
	t.Helper()
	st, err := filestore.Open(filepath.Join(t.TempDir(), "mailroot"), filestore.Options{
		Node: 1, Argon2: filestore.Argon2Params{Time: 1, MemoryKiB: 64, Threads: 1, KeyLen: 32},
		AuthCacheTTL: -1,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := transcript.Fixture(context.Background(), st); err != nil {
		t.Fatal(err)
	}
	ts := startServer(t, func(cfg *Config) {
		cfg.ThreadCount = 1
		// One place in the task queue: a command that arrives while the
		// worker is still returning to the pool after its last task waits
		// instead of being refused. A PASS that held the worker while its
		// hash waits would still starve the RETR below behind it.
		cfg.TaskQueue = 1
	})
	opts := &pop3.Options{
		Store: st,
		Auth: &auth.Authenticator{
			Method: auth.PasswordFile{Store: st}, Store: st, FailDelay: 10 * time.Millisecond,
			Queue: q, HashCost: 64 << 10,
		},
		MaxBadCommands: 10, MaxAuthFailures: 3, Node: 1, Logger: testLogger(),
	}
	if err := ts.Reload(ts.cfg, pop3.NewFactory(opts)); err != nil {
		t.Fatal(err)
	}
	return ts
}

func (c *client) loginUser(user, pass string) string {
	c.t.Helper()
	c.send("USER " + user + "\r\n")
	if l := c.line(); !strings.HasPrefix(l, "+OK") {
		c.t.Fatalf("USER: %q", l)
	}
	c.send("PASS " + pass + "\r\n")
	return c.line()
}

// A PASS waiting in the auth queue holds no command worker: with one
// worker and no task queue, a logged-in session's RETR is served while a
// PASS waits. A login beyond the queue's bound is answered [SYS/TEMP] at
// once, without a hash; the waiting one completes once a slot frees.
func TestAuthQueueRefusesBeyondItsBound(t *testing.T) {
	q := auth.NewHashQueue(auth.QueueOptions{Workers: 1, Length: 1})
	ts := startQueuedPOP3(t, q)

	alice := ts.dial(t)
	alice.line()
	if l := alice.loginUser(transcript.AliceUser, transcript.AlicePassword); !strings.HasPrefix(l, "+OK") {
		t.Fatalf("alice PASS: %q", l)
	}

	// Block the queue's only slot.
	block := make(chan struct{})
	held := make(chan struct{})
	if err := q.Submit(0, false, func(bool) { close(held); <-block }); err != nil {
		t.Fatal(err)
	}
	<-held
	unblocked := false
	defer func() {
		if !unblocked {
			close(block)
		}
	}()

	// Bob's PASS takes the one waiting place.
	bob := ts.dial(t)
	bob.line()
	bob.send("USER " + transcript.BobUser + "\r\nPASS " + transcript.BobPassword + "\r\n")
	if l := bob.line(); !strings.HasPrefix(l, "+OK") {
		t.Fatalf("bob USER: %q", l)
	}
	eventually(t, "bob's check waiting in the queue", func() bool { _, w := q.Len(); return w == 1 })

	// The one command worker is free: alice's RETR is served.
	alice.send("RETR 1\r\n")
	if l := alice.line(); !strings.HasPrefix(l, "+OK") {
		t.Fatalf("RETR while a PASS waits: %q", l)
	}
	for l := alice.line(); l != "."; l = alice.line() {
	}

	// The queue is full: the next login is refused at once, unhashed.
	started := q.Started()
	third := ts.dial(t)
	third.line()
	if l := third.loginUser("nobody@example.com", "guess"); l != "-ERR [SYS/TEMP] too many logins in progress, try again later" {
		t.Fatalf("PASS beyond the queue: %q", l)
	}
	if n := q.Started(); n != started {
		t.Fatalf("%d checks started for a refused login", n-started)
	}

	close(block)
	unblocked = true
	if l := bob.line(); !strings.HasPrefix(l, "+OK") {
		t.Fatalf("bob PASS after the queue drained: %q", l)
	}
}
