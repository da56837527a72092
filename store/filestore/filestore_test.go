//go:build linux

package filestore

import (
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

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return newTestStore(t, Options{}) })
}
