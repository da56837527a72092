package pop3

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/pop3svc/pop3svc/session"
	"github.com/pop3svc/pop3svc/session/auth"
	"github.com/pop3svc/pop3svc/session/pop3/transcript"
	"github.com/pop3svc/pop3svc/store"
)

var ci = session.ConnInfo{ID: 1, Remote: "192.0.2.9:5000", Local: "127.0.0.1:110"}

// do sends one line and returns the whole reply text, body included.
func do(t *testing.T, s *Session, l string) (session.Reply, string) {
	t.Helper()
	r := s.Handle([]byte(l))
	out := string(r.Out)
	if r.Body != nil {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			t.Fatalf("%s: body: %v", l, err)
		}
		r.Body.Close()
		out += string(b)
	}
	return r, out
}

func mustOK(t *testing.T, s *Session, l string) string {
	t.Helper()
	_, out := do(t, s, l)
	if !strings.HasPrefix(out, "+OK") {
		t.Fatalf("%q: %q, want +OK", l, out)
	}
	return out
}

func login(t *testing.T, o *Options, user, pass string) *Session {
	t.Helper()
	s := New(o, ci)
	s.Greeting()
	mustOK(t, s, "USER "+user)
	mustOK(t, s, "PASS "+pass)
	return s
}

func addr(s string) store.Address {
	a, err := store.ParseAddress(s, "")
	if err != nil {
		panic(err)
	}
	return a
}

func TestMailboxLifecycle(t *testing.T) {
	st := testStore(t)
	o := testOptions(st)
	ctx := context.Background()
	a := addr("alice@example.com")

	// Mail delivered during a session shows in the next one.
	s := login(t, o, "alice@example.com", "tanstaaf with spaces")
	if _, err := st.Deliver(ctx, a, strings.NewReader("Subject: new\r\n\r\nhi\r\n")); err != nil {
		t.Fatal(err)
	}
	if got := mustOK(t, s, "STAT"); got != "+OK 3 195\r\n" {
		t.Fatalf("STAT during delivery = %q", got)
	}
	// DELE then a dropped connection: nothing deleted.
	mustOK(t, s, "DELE 1")
	s.Close()
	s.Close() // idempotent

	s = login(t, o, "alice@example.com", "tanstaaf with spaces")
	if got := mustOK(t, s, "STAT"); got != "+OK 4 215\r\n" {
		t.Fatalf("STAT in the next session = %q", got)
	}
	// DELE, RSET, QUIT: nothing deleted.
	mustOK(t, s, "DELE 1")
	mustOK(t, s, "DELE 4")
	mustOK(t, s, "RSET")
	if r, _ := do(t, s, "QUIT"); !r.Close || !isOK(r) {
		t.Fatalf("QUIT: %q", r.Out)
	}
	s.Close()

	s = login(t, o, "alice@example.com", "tanstaaf with spaces")
	if got := mustOK(t, s, "STAT"); got != "+OK 4 215\r\n" {
		t.Fatalf("STAT after RSET+QUIT = %q", got)
	}
	// DELE + QUIT deletes.
	mustOK(t, s, "DELE 1")
	mustOK(t, s, "DELE 3")
	if _, out := do(t, s, "QUIT"); out != "+OK POP3 service ready signing off (2 messages left)\r\n" {
		t.Fatalf("QUIT = %q", out)
	}
	s.Close()
	n, size, err := st.Usage(ctx, a)
	if err != nil || n != 2 || size != 59+20 {
		t.Fatalf("Usage after DELE+QUIT = %d %d %v, want 2 79", n, size, err)
	}
	s = login(t, o, "alice@example.com", "tanstaaf with spaces")
	defer s.Close()
	if got := mustOK(t, s, "RETR 2"); got != "+OK 20 octets\r\nSubject: new\r\n\r\nhi\r\n.\r\n" {
		t.Fatalf("RETR 2 = %q", got)
	}
}

func TestInUseAndRelease(t *testing.T) {
	st := testStore(t)
	o := testOptions(st)
	s1 := login(t, o, "alice@example.com", "tanstaaf with spaces")
	s2 := New(o, session.ConnInfo{ID: 2, Remote: "192.0.2.10:6000"})
	mustOK(t, s2, "USER alice@example.com")
	r, _ := do(t, s2, "PASS tanstaaf with spaces")
	if string(r.Out) != "-ERR [IN-USE] mailbox is in use by another session\r\n" || r.Delay != 0 || r.Authenticated {
		t.Fatalf("second session = %q delay %v", r.Out, r.Delay)
	}
	info, err := st.Mailbox(context.Background(), addr("alice@example.com"))
	if err != nil || !info.InUse || !strings.Contains(info.Owner, "pop3d node 1 pid ") || !strings.Contains(info.Owner, "conn 1 from 192.0.2.9:5000") {
		t.Fatalf("lock owner = %+v, %v", info, err)
	}
	// An open RETR stream is closed with the session, and the lock released.
	r, _ = s1.Handle([]byte("RETR 1")), ""
	if r.Body == nil {
		t.Fatal("RETR without a body")
	}
	s1.Close()
	if _, err := r.Body.Read(make([]byte, 10)); err == nil {
		t.Fatal("body still readable after Close")
	}
	mustOK(t, s2, "USER alice@example.com")
	mustOK(t, s2, "PASS tanstaaf with spaces")
	s2.Close()
}

// faultyStore injects failures around a real store.
type faultyStore struct {
	store.Store
	openErr   error
	commitErr error
}

func (f *faultyStore) OpenSession(ctx context.Context, a store.Address, owner string) (store.MailboxSession, error) {
	if f.openErr != nil {
		return nil, f.openErr
	}
	ms, err := f.Store.OpenSession(ctx, a, owner)
	if err != nil {
		return nil, err
	}
	return &faultySession{MailboxSession: ms, commitErr: f.commitErr}, nil
}

type faultySession struct {
	store.MailboxSession
	commitErr error
}

func (f *faultySession) Commit(ctx context.Context, del []int) error {
	if f.commitErr != nil {
		f.MailboxSession.Close()
		return f.commitErr
	}
	return f.MailboxSession.Commit(ctx, del)
}

func TestServerFaults(t *testing.T) {
	st := testStore(t)
	fs := &faultyStore{Store: st}
	o := testOptions(st)
	o.Store = fs

	for _, tc := range []struct {
		err  error
		want string
	}{
		{errors.New("disk on fire"), "-ERR [SYS/TEMP] temporary server failure, try again later\r\n"},
		{fmt.Errorf("x: %w", store.ErrMailboxInUse), "-ERR [IN-USE] mailbox is in use by another session\r\n"},
		{fmt.Errorf("x: %w", store.ErrDomainLocked), "-ERR [SYS/PERM] mailbox is locked by the administrator\r\n"},
		{fmt.Errorf("x: %w", store.ErrNoSuchMailbox), "-ERR [AUTH] invalid user name or password\r\n"},
	} {
		fs.openErr = tc.err
		s := New(o, ci)
		mustOK(t, s, "USER alice@example.com")
		if _, out := do(t, s, "PASS tanstaaf with spaces"); out != tc.want {
			t.Errorf("OpenSession error %v: reply %q, want %q", tc.err, out, tc.want)
		}
		s.Close()
	}

	// A failed commit: [SYS/TEMP], nothing claimed, the connection closes.
	fs.openErr = nil
	fs.commitErr = errors.New("rename failed")
	s := login(t, o, "alice@example.com", "tanstaaf with spaces")
	mustOK(t, s, "DELE 1")
	r, out := do(t, s, "QUIT")
	if out != "-ERR [SYS/TEMP] some deleted messages not removed\r\n" || !r.Close {
		t.Fatalf("failed commit: %q close %v", out, r.Close)
	}
	s.Close()
	if n, _, _ := st.Usage(context.Background(), addr("alice@example.com")); n != 3 {
		t.Fatalf("messages after a failed commit = %d, want 3", n)
	}

	// The authentication service is down: [SYS/TEMP] at once, no failure counted.
	g := &recGuard{}
	o2 := testOptions(st)
	o2.Auth.Guard = g
	o2.Auth.Method = downMethod{}
	s = New(o2, ci)
	mustOK(t, s, "USER alice@example.com")
	r, out = do(t, s, "PASS x")
	if out != "-ERR [SYS/TEMP] authentication service unavailable, try again later\r\n" || r.Delay != 0 || g.failures != 0 {
		t.Fatalf("auth down: %q delay %v failures %d", out, r.Delay, g.failures)
	}
	s.Close()
}

type downMethod struct{}

func (downMethod) Name() string { return "directory" }
func (downMethod) Plaintext(context.Context, store.Address, string) error {
	return fmt.Errorf("%w: ldap: connection refused", auth.ErrUnavailable)
}
func (downMethod) Challenge() bool { return false }

func TestInline(t *testing.T) {
	st := testStore(t)
	o := testOptions(st)
	s := New(o, ci)
	defer s.Close()
	for l, want := range map[string]bool{
		"NOOP": true, "CAPA": true, "USER x": true, "FOO": true, "AUTH": true, "STAT": true, "QUIT": true,
		"PASS x": false, "APOP a b": false, "AUTH PLAIN": false, "RETR 1": false, "TOP 1 1": false,
	} {
		if got := s.Inline([]byte(l)); got != want {
			t.Errorf("Inline(%q) before login = %v, want %v", l, got, want)
		}
	}
	mustOK(t, s, "USER alice@example.com")
	mustOK(t, s, "PASS tanstaaf with spaces")
	for l, want := range map[string]bool{
		"LIST": true, "UIDL": true, "DELE 1": true, "RSET": true, "STAT": true, "list 1": true,
		"QUIT": false, "quit": false, "RETR 1": false, "top 1 1": false,
	} {
		if got := s.Inline([]byte(l)); got != want {
			t.Errorf("Inline(%q) after login = %v, want %v", l, got, want)
		}
	}
	s2 := New(o, ci)
	defer s2.Close()
	do(t, s2, "AUTH PLAIN")
	if s2.Inline([]byte("AGFiYw==")) {
		t.Error("a SASL continuation line must go to a worker")
	}
}

func TestGreeting(t *testing.T) {
	st := testStore(t)
	o := testOptions(st)
	o.Greeting = "Mail\r\nserver"
	if got := string(New(o, ci).Greeting().Out); got != "+OK Mail  server\r\n" {
		t.Fatalf("greeting = %q", got)
	}
	o.APOP = true
	o.Rand = bytes.NewReader(bytes.Repeat([]byte{0xab}, 8))
	o.Now = func() time.Time { return time.Unix(0, 42) }
	got := string(New(o, ci).Greeting().Out)
	if !strings.HasPrefix(got, "+OK Mail  server <") || !strings.HasSuffix(got, ".42.abababababababab@pop.example.com>\r\n") {
		t.Fatalf("APOP greeting = %q", got)
	}
}

func TestNoSecretsInLog(t *testing.T) {
	st := testStore(t)
	o := testOptions(st)
	var logbuf bytes.Buffer
	o.Logger = slog.New(slog.NewTextHandler(&logbuf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	conn := transcript.NewLocal(New(o, ci))
	io.WriteString(conn, "USER alice@example.com\r\nPASS Secret-Pass-1\r\nAUTH PLAIN AGFsaWNlQGV4YW1wbGUuY29tAFNlY3JldC1QYXNzLTI=\r\nUSER alice@example.com\r\nPASS tanstaaf with spaces\r\nQUIT\r\n")
	conn.Close()
	log := logbuf.String()
	for _, secret := range []string{"Secret-Pass", "AGFsaWNl", "tanstaaf"} {
		if strings.Contains(log, secret) {
			t.Errorf("log contains %q:\n%s", secret, log)
		}
	}
	if !strings.Contains(log, "user=alice@example.com") || !strings.Contains(log, "conn=1") {
		t.Errorf("log lacks the user or conn id:\n%s", log)
	}
}

func TestMetrics(t *testing.T) {
	st := testStore(t)
	o := testOptions(st)
	get := func(name string) uint64 { return metrics.GetOrCreateCounter(name).Get() }
	other := get(`pop3_commands_total{cmd="other",status="err"}`)
	authFail := get(`pop3_auth_total{mech="user",result="fail"}`)
	retr := get(`pop3_messages_retrieved_total`)
	retrB := get(`pop3_retr_bytes_total`)
	s := New(o, ci)
	do(t, s, "XYZZYX")
	do(t, s, "USER alice@example.com")
	do(t, s, "PASS nope")
	do(t, s, "USER alice@example.com")
	do(t, s, "PASS tanstaaf with spaces")
	do(t, s, "RETR 2")
	s.Close()
	if d := get(`pop3_commands_total{cmd="other",status="err"}`) - other; d != 1 {
		t.Errorf("other commands counted %d, want 1", d)
	}
	if d := get(`pop3_auth_total{mech="user",result="fail"}`) - authFail; d != 1 {
		t.Errorf("auth failures counted %d, want 1", d)
	}
	if d := get(`pop3_messages_retrieved_total`) - retr; d != 1 {
		t.Errorf("retrieved %d, want 1", d)
	}
	if d := get(`pop3_retr_bytes_total`) - retrB; d != 59 {
		t.Errorf("retr bytes %d, want 59", d)
	}
}

func TestMetricsTopAndLoggedIn(t *testing.T) {
	st := testStore(t)
	o := testOptions(st)
	gauge := metrics.GetOrCreateGauge(`pop3_sessions_logged_in`, nil)
	top := metrics.GetOrCreateCounter(`pop3_messages_top_total`).Get()
	before := gauge.Get()
	s := New(o, ci)
	do(t, s, "USER alice@example.com")
	do(t, s, "PASS tanstaaf with spaces")
	if d := gauge.Get() - before; d != 1 {
		t.Errorf("logged-in sessions after login: %+v more, want 1", d)
	}
	do(t, s, "TOP 2 0")
	do(t, s, "TOP 99 0") // no such message: not counted
	if d := metrics.GetOrCreateCounter(`pop3_messages_top_total`).Get() - top; d != 1 {
		t.Errorf("TOP counted %d, want 1", d)
	}
	s.Close()
	s.Close()
	if d := gauge.Get() - before; d != 0 {
		t.Errorf("logged-in sessions after close: %+v more, want 0", d)
	}
}

// lockStore wraps a store: its sessions count lease renewals and, once
// lost is set, behave as a session whose lock another server took over
// (store.ErrLockLost from Refresh, Open and Commit, and nothing deleted).
type lockStore struct {
	store.Store
	refreshes atomic.Int32
	lost      atomic.Bool
}

func (c *lockStore) OpenSession(ctx context.Context, a store.Address, owner string) (store.MailboxSession, error) {
	ms, err := c.Store.OpenSession(ctx, a, owner)
	if err != nil {
		return nil, err
	}
	return &lockSession{MailboxSession: ms, c: c}, nil
}

type lockSession struct {
	store.MailboxSession
	c *lockStore
}

func (s *lockSession) Refresh() error {
	s.c.refreshes.Add(1)
	if s.c.lost.Load() {
		return store.ErrLockLost
	}
	return s.MailboxSession.Refresh()
}

func (s *lockSession) Open(i int) (io.ReadCloser, error) {
	if s.c.lost.Load() {
		return nil, store.ErrLockLost
	}
	return s.MailboxSession.Open(i)
}

func (s *lockSession) Commit(ctx context.Context, deleted []int) error {
	if s.c.lost.Load() {
		s.MailboxSession.Close()
		return store.ErrLockLost
	}
	return s.MailboxSession.Commit(ctx, deleted)
}

// TestLeaseRenewal: the session asks for a renewal once per interval
// while a mailbox is open, whatever the client does, and none before
// login or after QUIT.
func TestLeaseRenewal(t *testing.T) {
	st := testStore(t)
	cs := &lockStore{Store: st}
	o := testOptions(st)
	o.Store = cs
	o.RenewInterval = time.Minute
	now := time.Unix(1_800_000_000, 0)
	o.Now = func() time.Time { return now }
	pre := New(o, ci)
	defer pre.Close()
	if pre.RenewDue(now.Add(time.Hour)) {
		t.Fatal("renewal due before login")
	}
	s := login(t, o, "alice@example.com", "tanstaaf with spaces")
	defer s.Close()
	if s.RenewDue(now.Add(time.Minute - time.Second)) {
		t.Fatal("renewal due before its interval")
	}
	later := now.Add(time.Minute)
	if !s.RenewDue(later) {
		t.Fatal("renewal not due after its interval")
	}
	if s.RenewDue(later) {
		t.Fatal("renewal due twice before Renew ran")
	}
	now = later
	s.Renew()
	if n := cs.refreshes.Load(); n != 1 {
		t.Fatalf("refreshes = %d, want 1", n)
	}
	if s.RenewDue(later) || !s.RenewDue(later.Add(time.Minute)) {
		t.Fatal("the next renewal is not one interval after the last")
	}
	s.Renew()
	mustOK(t, s, "QUIT")
	if s.RenewDue(later.Add(time.Hour)) {
		t.Fatal("renewal due after QUIT")
	}
}

// TestLockLost: a session whose lock another server took over serves no
// more messages, and its QUIT answers [IN-USE] and deletes nothing,
// whether a renewal or the QUIT itself found the loss.
func TestLockLost(t *testing.T) {
	const want = "-ERR [IN-USE] mailbox lock lost to another session; no message deleted\r\n"
	alice := store.Address{Mailbox: "alice", Domain: "example.com"}
	for _, renew := range []bool{true, false} {
		t.Run(fmt.Sprintf("renew=%v", renew), func(t *testing.T) {
			st := testStore(t)
			cs := &lockStore{Store: st}
			o := testOptions(st)
			o.Store = cs
			s := login(t, o, "alice@example.com", "tanstaaf with spaces")
			defer s.Close()
			before, _, _ := st.Usage(context.Background(), alice)
			mustOK(t, s, "DELE 1")
			cs.lost.Store(true)
			if renew {
				s.Renew()
				for _, c := range []string{"RETR 2", "DELE 2", "STAT"} {
					if _, out := do(t, s, c); out != want {
						t.Fatalf("%s after the loss: %q, want %q", c, out, want)
					}
				}
			} else if _, out := do(t, s, "RETR 2"); out != want {
				t.Fatalf("RETR after the loss: %q, want %q", out, want)
			}
			r, out := do(t, s, "QUIT")
			if out != want || !r.Close {
				t.Fatalf("QUIT after the loss: %q (close %v), want %q", out, r.Close, want)
			}
			if after, _, _ := st.Usage(context.Background(), alice); after != before {
				t.Fatalf("%d messages after the fenced QUIT, want %d", after, before)
			}
		})
	}
}
