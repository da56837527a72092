//go:build linux

package filestore

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pop3svc/pop3svc/store"
	"github.com/pop3svc/pop3svc/store/uid"
)

var bg = context.Background()

// mkbox makes example.com and its mailbox alice (password "pw").
func mkbox(t testing.TB, s *Store) store.Address {
	t.Helper()
	a := store.Address{Mailbox: "alice", Domain: "example.com"}
	if err := s.CreateDomain(bg, a.Domain); err != nil && !errors.Is(err, store.ErrDomainExists) {
		t.Fatal(err)
	}
	if err := s.CreateMailbox(bg, a, "pw"); err != nil {
		t.Fatal(err)
	}
	return a
}

func TestOpenOptions(t *testing.T) {
	for _, o := range []Options{{Node: -1}, {Node: MaxNode + 1}, {DomainQuotaDefault: -1}, {Argon2: Argon2Params{Time: 1, MemoryKiB: 1, Threads: 1, KeyLen: 32}}} {
		if _, err := Open(t.TempDir(), o); err == nil {
			t.Errorf("Open(%+v) succeeded", o)
		}
	}
	if _, err := Open("", Options{}); err == nil {
		t.Errorf("Open(\"\") succeeded")
	}
	f := filepath.Join(t.TempDir(), "file")
	os.WriteFile(f, nil, 0o600)
	if _, err := Open(f, Options{}); err == nil {
		t.Errorf("Open(a file) succeeded")
	}
}

func TestKeySharedAndRaced(t *testing.T) {
	root := filepath.Join(t.TempDir(), "mailroot")
	const n = 8
	stores := make([]*Store, n)
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range stores {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stores[i], errs[i] = Open(root, Options{Node: i + 1, Argon2: testArgon2})
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("Open %d: %v", i, err)
		}
		if string(stores[i].key) != string(stores[0].key) {
			t.Fatalf("store %d has another key", i)
		}
	}
	// A second server on the same root opens the first one's secrets.
	a := mkbox(t, stores[0])
	sec, err := stores[5].Secret(bg, a, store.SecretPassword)
	if err != nil || string(sec) != "pw" {
		t.Fatalf("Secret from another server = %q, %v", sec, err)
	}
	// A store with another key cannot.
	if err := os.WriteFile(filepath.Join(root, MetaDir, KeyFile), []byte(strings.Repeat("ab", KeySize)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	other, err := Open(root, Options{Argon2: testArgon2})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.Secret(bg, a, store.SecretPassword); err == nil {
		t.Fatalf("Secret with a wrong key succeeded")
	}
	if err := other.VerifyPassword(bg, a, "pw"); err != nil {
		t.Fatalf("VerifyPassword does not depend on the key: %v", err)
	}
	os.WriteFile(filepath.Join(root, MetaDir, KeyFile), []byte("short\n"), 0o600)
	if _, err := Open(root, Options{}); err == nil {
		t.Fatalf("Open with a damaged key succeeded")
	}
}

func TestPasswdBoundToMailbox(t *testing.T) {
	s := newTestStore(t, Options{})
	a := mkbox(t, s)
	b := store.Address{Mailbox: "bob", Domain: "example.com"}
	if err := s.CreateMailbox(bg, b, ""); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(s.mboxPath(a), PasswdName))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(s.mboxPath(b), PasswdName), data, 0o600)
	if _, err := s.Secret(bg, b, store.SecretPassword); err == nil || errors.Is(err, store.ErrNoSecret) {
		t.Fatalf("Secret of a record moved to another mailbox = %v, want a decryption error", err)
	}
	os.WriteFile(filepath.Join(s.mboxPath(b), PasswdName), []byte("{garbage"), 0o600)
	if err := s.VerifyPassword(bg, b, "pw"); !errors.Is(err, store.ErrAuthFailed) {
		t.Fatalf("VerifyPassword with a damaged file = %v", err)
	}
	hostile := fmt.Sprintf(`{"v":1,"alg":"argon2id","params":{"Time":1000000,"MemoryKiB":4000000000,"Threads":1,"KeyLen":32},"salt":"%s","hash":"%s"}`,
		"AAAAAAAAAAAAAAAAAAAAAA==", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")
	os.WriteFile(filepath.Join(s.mboxPath(b), PasswdName), []byte(hostile), 0o600)
	start := time.Now()
	if err := s.VerifyPassword(bg, b, "pw"); !errors.Is(err, store.ErrAuthFailed) || time.Since(start) > 5*time.Second {
		t.Fatalf("VerifyPassword with hostile parameters = %v after %v", err, time.Since(start))
	}
}

// BenchmarkVerifyFailure: an unknown mailbox costs as much as a wrong
// password (both run one argon2id computation), so the time of a failed
// login does not tell whether the mailbox exists. Compare the two
// sub-benchmarks' ns/op.
func BenchmarkVerifyFailure(b *testing.B) {
	s := newTestStore(b, Options{Argon2: DefaultArgon2})
	known := mkbox(b, s)
	unknown := store.Address{Mailbox: "nobody", Domain: "example.com"}
	for _, c := range []struct {
		name string
		a    store.Address
	}{{"WrongPassword", known}, {"UnknownMailbox", unknown}} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				if err := s.VerifyPassword(bg, c.a, "wrong"); !errors.Is(err, store.ErrAuthFailed) {
					b.Fatalf("VerifyPassword = %v", err)
				}
			}
		})
	}
}

func TestMaxMessageSize(t *testing.T) {
	s := newTestStore(t, Options{MaxMessageSize: 100})
	a := mkbox(t, s)
	// The limit counts stored octets: 99 + the CRLF appended = 101.
	if _, err := s.Deliver(bg, a, strings.NewReader(strings.Repeat("x", 99))); !errors.Is(err, store.ErrMessageTooLarge) {
		t.Fatalf("Deliver(101 octets, limit 100) = %v, want ErrMessageTooLarge", err)
	}
	if _, err := s.Deliver(bg, a, strings.NewReader(strings.Repeat("x", 98))); err != nil {
		t.Fatalf("Deliver(100 octets, limit 100) = %v", err)
	}
}

func TestMessageLimits(t *testing.T) {
	s := newTestStore(t, Options{MaxMessageSize: 100, DomainQuotaDefault: 250})
	a := mkbox(t, s)
	_, err := s.Deliver(bg, a, strings.NewReader(strings.Repeat("x\n", 60)))
	if !errors.Is(err, store.ErrMessageTooLarge) {
		t.Fatalf("Deliver(120 octets, limit 100) = %v, want ErrMessageTooLarge", err)
	}
	for i := 0; i < 2; i++ {
		if _, err := s.Deliver(bg, a, strings.NewReader(strings.Repeat("y", 98)+"\r\n")); err != nil {
			t.Fatal(err)
		}
	}
	_, err = s.Deliver(bg, a, strings.NewReader(strings.Repeat("y", 98)+"\r\n"))
	if !errors.Is(err, store.ErrOverQuota) {
		t.Fatalf("Deliver past the default quota = %v, want ErrOverQuota", err)
	}
	if q, _ := s.Quota(bg, a); q != 250 {
		t.Fatalf("Quota = %d, want the default 250", q)
	}
	if n := countFiles(t, s.tmp); n != 0 {
		t.Fatalf("refused deliveries left %d temporary files", n)
	}
}

func countFiles(t *testing.T, dir string) int {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

func TestVanishedMessage(t *testing.T) {
	s := newTestStore(t, Options{})
	a := mkbox(t, s)
	s.Deliver(bg, a, strings.NewReader("one\r\n"))
	s.Deliver(bg, a, strings.NewReader("two\r\n"))
	ms, err := s.OpenSession(bg, a, "t")
	if err != nil {
		t.Fatal(err)
	}
	victim := ms.Messages()[0].UID
	if err := os.Remove(filepath.Join(s.mboxPath(a), msgPrefix+victim+msgSuffix)); err != nil {
		t.Fatal(err)
	}
	if _, err := ms.Open(0); !errors.Is(err, store.ErrNoSuchMessage) {
		t.Fatalf("Open(vanished) = %v, want ErrNoSuchMessage", err)
	}
	if err := ms.Commit(bg, []int{0, 1}); err != nil {
		t.Fatalf("Commit with a vanished message: %v", err)
	}
	if n, _, _ := s.Usage(bg, a); n != 0 {
		t.Fatalf("Usage after Commit = %d", n)
	}
}

func TestSymlinksIgnored(t *testing.T) {
	s := newTestStore(t, Options{})
	a := mkbox(t, s)
	outside := t.TempDir()
	secret := filepath.Join(outside, "secret")
	os.WriteFile(secret, []byte("outside\r\n"), 0o600)
	dir := s.mboxPath(a)
	os.Symlink(secret, filepath.Join(dir, "P3_11111111111111111111111111.eml"))
	ms, err := s.OpenSession(bg, a, "t")
	if err != nil {
		t.Fatal(err)
	}
	if len(ms.Messages()) != 0 {
		t.Fatalf("a symlinked message was listed: %+v", ms.Messages())
	}
	ms.Close()
	// A mailbox folder that is a symlink to outside is no mailbox.
	os.Mkdir(filepath.Join(outside, "box"), 0o700)
	os.Symlink(filepath.Join(outside, "box"), filepath.Join(s.domainPath("example.com"), "P3_evil.mbx"))
	evil := store.Address{Mailbox: "evil", Domain: "example.com"}
	if _, err := s.Deliver(bg, evil, strings.NewReader("x")); !errors.Is(err, store.ErrNoSuchMailbox) {
		t.Fatalf("Deliver through a symlinked mailbox = %v", err)
	}
	if ents, _ := os.ReadDir(filepath.Join(outside, "box")); len(ents) != 0 {
		t.Fatalf("something was written outside the mail root: %v", ents)
	}
	// A symlinked kcol is not followed and reads as an administrator's lock.
	os.RemoveAll(filepath.Join(dir, LockName))
	os.Symlink(secret, filepath.Join(dir, KcolName))
	if _, err := s.OpenSession(bg, a, "t"); !errors.Is(err, store.ErrMailboxLocked) {
		t.Fatalf("OpenSession with a symlinked kcol = %v", err)
	}
}

func TestTmpCleanup(t *testing.T) {
	root := filepath.Join(t.TempDir(), "mailroot")
	s := newTestStoreAt(t, root, Options{})
	old := filepath.Join(s.tmp, "1.2.3.old.tmp")
	young := filepath.Join(s.tmp, "1.2.3.young.tmp")
	os.WriteFile(old, []byte("x"), 0o600)
	os.WriteFile(young, []byte("x"), 0o600)
	past := time.Now().Add(-2 * DefaultTmpMaxAge)
	os.Chtimes(old, past, past)
	newTestStoreAt(t, root, Options{})
	if _, err := os.Stat(old); err == nil {
		t.Fatalf("an old temporary file survived Open")
	}
	if _, err := os.Stat(young); err != nil {
		t.Fatalf("a young temporary file (maybe another server's delivery) was removed")
	}
}

func newTestStoreAt(t *testing.T, root string, opts Options) *Store {
	t.Helper()
	opts.Argon2 = testArgon2
	s, err := Open(root, opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestSnapshotAllocs: opening a mailbox costs a few allocations whatever its size.
func TestSnapshotAllocs(t *testing.T) {
	s := newTestStore(t, Options{})
	a := mkbox(t, s)
	fill(t, s, a, 2000)
	allocs := testing.AllocsPerRun(5, func() {
		ms, err := s.OpenSession(bg, a, "t")
		if err != nil {
			t.Fatal(err)
		}
		if len(ms.Messages()) != 2000 {
			t.Fatalf("Messages = %d", len(ms.Messages()))
		}
		ms.Close()
	})
	t.Logf("OpenSession of 2000 messages: %.0f allocations", allocs)
	if allocs > 200 {
		t.Fatalf("OpenSession of 2000 messages made %.0f allocations", allocs)
	}
}

// fill writes n small messages straight into the mailbox folder (faster
// than Deliver's fsyncs), with increasing names.
func fill(t testing.TB, s *Store, a store.Address, n int) {
	t.Helper()
	dir := s.mboxPath(a)
	base := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
	for i := 0; i < n; i++ {
		name := msgPrefix + uid.Format(base+int64(i%3000), i/3000, 1) + msgSuffix
		if err := os.WriteFile(filepath.Join(dir, name), []byte(fmt.Sprintf("message %d\r\n", i)), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// Helper process: the test binary run again with FILESTORE_HELPER set
// (TestMain runs helperProcess).
const helperEnv = "FILESTORE_HELPER"

// helperProcess takes part in a test from another process: it delivers or
// holds a session in the way mode says, says so on stdout, and waits to
// be killed.
func helperProcess(mode string) {
	s, err := Open(os.Getenv("FILESTORE_ROOT"), Options{Node: 9, Argon2: testArgon2})
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	a := store.Address{Mailbox: "alice", Domain: "example.com"}
	switch mode {
	case "deliver":
		// A message that arrives slowly: half of it, then nothing.
		r := io.MultiReader(strings.NewReader(strings.Repeat("partial line\n", 10000)), stallReader{ready: "writing"})
		_, err = s.Deliver(bg, a, r)
	}
	fmt.Println("error", err)
	os.Exit(1)
}

// stallReader announces itself then blocks (the parent kills the process).
type stallReader struct{ ready string }

func (s stallReader) Read([]byte) (int, error) {
	fmt.Println(s.ready)
	untilKilled()
	return 0, io.EOF
}

// untilKilled blocks a helper process until the test kills it; should the
// test process die first, its end of stdin closes and the helper exits.
func untilKilled() {
	io.Copy(io.Discard, os.Stdin)
	os.Exit(1)
}

// runHelper starts the helper in mode, waits for its line want, kills it
// with SIGKILL and reaps it.
func runHelper(t *testing.T, root, mode, want string, whileAlive func()) {
	t.Helper()
	cmd := exec.Command(os.Args[0]) // TestMain runs helperProcess
	cmd.Env = append(os.Environ(), helperEnv+"="+mode, "FILESTORE_ROOT="+root)
	if _, err := cmd.StdinPipe(); err != nil { // held open until the kill
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer cmd.Process.Kill()
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if sc.Text() == want || strings.HasPrefix(sc.Text(), "error") {
				lines <- sc.Text()
				return
			}
		}
		close(lines)
	}()
	select {
	case l, ok := <-lines:
		if !ok || l != want {
			t.Fatalf("helper %s said %q", mode, l)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("helper %s did not reach %q", mode, want)
	}
	if whileAlive != nil {
		whileAlive()
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
}

func TestKilledDuringDelivery(t *testing.T) {
	root := filepath.Join(t.TempDir(), "mailroot")
	s := newTestStoreAt(t, root, Options{})
	a := mkbox(t, s)
	runHelper(t, root, "deliver", "writing", nil)
	if n, _, err := s.Usage(bg, a); err != nil || n != 0 {
		t.Fatalf("after a killed delivery Usage = %d, %v; want no message", n, err)
	}
	ms, err := s.OpenSession(bg, a, "t")
	if err != nil || len(ms.Messages()) != 0 {
		t.Fatalf("after a killed delivery OpenSession = %v, %v", ms, err)
	}
	ms.Close()
	if countFiles(t, s.tmp) != 1 {
		t.Fatalf("expected the killed delivery's temporary file in %s", s.tmp)
	}
	// Its temporary file goes once it is old.
	later := time.Now().Add(DefaultTmpMaxAge + time.Hour)
	newTestStoreAt(t, root, Options{Now: func() time.Time { return later }})
	if n := countFiles(t, s.tmp); n != 0 {
		t.Fatalf("%d temporary files left after cleanup", n)
	}
}

func TestSymlinkedDomain(t *testing.T) {
	s := newTestStore(t, Options{})
	outside := t.TempDir()
	os.Mkdir(filepath.Join(outside, "P3_alice.mbx"), 0o700)
	os.Symlink(outside, filepath.Join(s.Root(), "evil.com"))
	a := store.Address{Mailbox: "alice", Domain: "evil.com"}
	if _, err := s.Deliver(bg, a, strings.NewReader("x")); !errors.Is(err, store.ErrNoSuchDomain) {
		t.Fatalf("Deliver through a symlinked domain = %v, want ErrNoSuchDomain", err)
	}
	if err := s.CreateMailbox(bg, store.Address{Mailbox: "bob", Domain: "evil.com"}, "x"); !errors.Is(err, store.ErrNoSuchDomain) {
		t.Fatalf("CreateMailbox in a symlinked domain = %v", err)
	}
	if ents, _ := os.ReadDir(filepath.Join(outside, "P3_alice.mbx")); len(ents) != 0 {
		t.Fatalf("something was written outside the mail root: %v", ents)
	}
}

// TestSetLimits: a reload's limits reach the running store: the size
// limit and the quota default of the next delivery and quota lookup, and
// the password cache turned off and on again.
func TestSetLimits(t *testing.T) {
	s := newTestStore(t, Options{MaxMessageSize: 100})
	a := mkbox(t, s)
	msg := strings.Repeat("x", 198) // 200 octets stored
	if _, err := s.Deliver(bg, a, strings.NewReader(msg)); !errors.Is(err, store.ErrMessageTooLarge) {
		t.Fatalf("Deliver(200 octets, limit 100) = %v, want ErrMessageTooLarge", err)
	}
	if err := s.SetLimits(Limits{MaxMessageSize: 1000, DomainQuotaDefault: 300}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Deliver(bg, a, strings.NewReader(msg)); err != nil {
		t.Fatalf("Deliver(200 octets) after raising the limit to 1000 = %v", err)
	}
	if q, err := s.Quota(bg, a); err != nil || q != 300 {
		t.Fatalf("Quota after SetLimits = %d, %v; want 300", q, err)
	}
	if _, err := s.Deliver(bg, a, strings.NewReader(msg)); !errors.Is(err, store.ErrOverQuota) {
		t.Fatalf("Deliver past the new quota default = %v, want ErrOverQuota", err)
	}
	if err := s.SetLimits(Limits{MaxMessageSize: -1}); err == nil {
		t.Fatal("SetLimits accepted a negative size")
	}

	if err := s.SetPassword(bg, a, "pw"); err != nil {
		t.Fatal(err)
	}
	verifyCached := func() bool {
		t.Helper()
		if err := s.VerifyPassword(bg, a, "pw"); err != nil {
			t.Fatal(err)
		}
		h := authCacheHits.Get()
		if err := s.VerifyPassword(bg, a, "pw"); err != nil {
			t.Fatal(err)
		}
		return authCacheHits.Get() > h
	}
	if !verifyCached() {
		t.Fatal("the password cache is off by default")
	}
	if err := s.SetLimits(Limits{AuthCacheTTL: -1}); err != nil {
		t.Fatal(err)
	}
	if verifyCached() {
		t.Fatal("a check was served from the cache after SetLimits turned it off")
	}
	if err := s.SetLimits(Limits{AuthCacheTTL: time.Minute}); err != nil {
		t.Fatal(err)
	}
	if !verifyCached() {
		t.Fatal("the cache turned on again serves nothing")
	}
}
