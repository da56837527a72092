//go:build linux

package filestore

import (
	"context"
	"errors"
	"os"
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
		storetest.Capabilities{Files: true, Open: openShared, Processes: true})
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
}
