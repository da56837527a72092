//go:build linux

package filestore

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/pop3svc/pop3svc/store"
	"github.com/pop3svc/pop3svc/store/storetest"
)

// testArgon2 keeps the suite fast; the defaults are measured by BenchmarkVerifyPassword.
var testArgon2 = Argon2Params{Time: 1, MemoryKiB: 64, Threads: 1, KeyLen: 32}

func newTestStore(t testing.TB, opts Options) *Store {
	t.Helper()
	if opts.Argon2 == (Argon2Params{}) {
		opts.Argon2 = testArgon2
	}
	if opts.Node == 0 {
		opts.Node = 7
	}
	s, err := Open(t.TempDir()+"/mailroot", opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// openShared opens the store at root as another process or server would.
func openShared(root string, node int) (store.Store, error) {
	return Open(root, Options{Node: node, Argon2: testArgon2})
}

// TestMain runs this binary as a child process when a test started it so:
// this package's own helper (helperEnv), or the conformance suite's, which
// it kills; otherwise it runs the tests.
func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		helperProcess(mode)
		os.Exit(1) // helperProcess exits itself
	}
	storetest.Main(m, openShared)
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return newTestStore(t, Options{}) },
		storetest.Capabilities{Files: true, Open: openShared, Processes: true, Import: true})
}

func TestAuthCache(t *testing.T) {
	st, err := Open(t.TempDir(), Options{Node: 1, Argon2: Argon2Params{Time: 1, MemoryKiB: 64, Threads: 1, KeyLen: 32}})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	a := store.Address{Mailbox: "user", Domain: "example.test"}
	if err := st.CreateDomain(ctx, a.Domain); err != nil {
		t.Fatal(err)
	}
	if err := st.CreateMailbox(ctx, a, "first secret"); err != nil {
		t.Fatal(err)
	}
	hits := func() uint64 { return authCacheHits.Get() }
	if err := st.VerifyPassword(ctx, a, "first secret"); err != nil {
		t.Fatalf("VerifyPassword(right) = %v", err)
	}
	h0 := hits()
	if err := st.VerifyPassword(ctx, a, "first secret"); err != nil {
		t.Fatalf("VerifyPassword(right, cached) = %v", err)
	}
	if hits() != h0+1 {
		t.Fatalf("second check was not served from the cache")
	}
	if err := st.VerifyPassword(ctx, a, "wrong"); !errors.Is(err, store.ErrAuthFailed) {
		t.Fatalf("VerifyPassword(wrong) with a cached entry = %v, want ErrAuthFailed", err)
	}
	// A password changed (here, or by another server writing the file) invalidates the entry.
	if err := st.SetPassword(ctx, a, "second secret"); err != nil {
		t.Fatal(err)
	}
	if err := st.VerifyPassword(ctx, a, "first secret"); !errors.Is(err, store.ErrAuthFailed) {
		t.Fatalf("old password after change = %v, want ErrAuthFailed", err)
	}
	if err := st.VerifyPassword(ctx, a, "second secret"); err != nil {
		t.Fatalf("new password = %v", err)
	}
	// Another process rewriting the password file: the record digest changes.
	other, err := Open(st.Root(), Options{Node: 2, Argon2: Argon2Params{Time: 1, MemoryKiB: 64, Threads: 1, KeyLen: 32}})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if err := other.SetPassword(ctx, a, "third secret"); err != nil {
		t.Fatal(err)
	}
	if err := st.VerifyPassword(ctx, a, "second secret"); !errors.Is(err, store.ErrAuthFailed) {
		t.Fatalf("password changed by another server still accepted: %v", err)
	}

	// Cached, the check the auth queue's callers make first: a remembered
	// password is served only while the record is the one it was checked
	// against; a wrong one is answered from memory, with the password
	// file out of reach.
	if err := st.VerifyPassword(ctx, a, "third secret"); err != nil {
		t.Fatalf("VerifyPassword(third) = %v", err)
	}
	if ok, _ := st.Cached(ctx, a, "third secret"); !ok {
		t.Fatal("Cached(right) = false after a successful check")
	}
	if ok, _ := st.Cached(ctx, a, "wrong"); ok {
		t.Fatal("Cached(wrong) = true")
	}
	pw := filepath.Join(st.mboxPath(a), PasswdName)
	saved, err := os.ReadFile(pw)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pw, []byte("{damaged"), 0o600); err != nil {
		t.Fatal(err)
	}
	if ok, memory := st.Cached(ctx, a, "wrong"); ok || memory != 64<<10 {
		t.Fatalf("Cached(wrong) with a damaged file = %v, %d; want false and the current cost, without reading it", ok, memory)
	}
	if ok, _ := st.Cached(ctx, a, "third secret"); ok {
		t.Fatal("Cached(right) with a damaged password file = true")
	}
	if err := os.WriteFile(pw, saved, 0o600); err != nil {
		t.Fatal(err)
	}
	if ok, _ := st.Cached(ctx, a, "third secret"); !ok {
		t.Fatal("Cached(right) = false once the file is back")
	}
}
