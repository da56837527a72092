//go:build linux

package filestore

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/pop3svc/pop3svc/store"
)

// cryptVectors were made with htpasswd -nbB (bcrypt) and openssl passwd -6
// (SHA-512-crypt); store/credential checks them against those tools.
var cryptVectors = []struct{ password, hash string }{
	{"correct horse", "$2y$05$AWRL5FnLtrMJlaa31.GX5OBjPkCeZXxKcD7F8Ygfn2uezKQC1ipSC"},
	{"Hello world!", "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1"},
	{"Tr0ub4dor&3", "$6$Zq1w2e3r4t5y6u7i$TbgFDEeCU7r9WTS8mxcYUU7b4MOMcYcsG1u7G06JQtxHuKnyVYgXYBdKWZq1ijhG75TGzPaRYEuk/RAax3Yna1"},
}

// setHash changes the store's hash parameters as a reload does.
func setHash(t *testing.T, s *Store, p HashParams) {
	t.Helper()
	if err := s.SetLimits(Limits{Hash: p}); err != nil {
		t.Fatal(err)
	}
}

func hashTestStore(t *testing.T, p HashParams) (*Store, store.Address) {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "root"), Options{Node: 1, Hash: p})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	a := store.Address{Mailbox: "alice", Domain: "example.com"}
	if err := s.CreateDomain(ctx, a.Domain); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateMailbox(ctx, a, ""); err != nil {
		t.Fatal(err)
	}
	return s, a
}

var cheapParams = HashParams{Alg: AlgArgon2id, Argon2: Argon2Params{Time: 1, MemoryKiB: 64, Threads: 1, KeyLen: 32}}

// Hashes brought from elsewhere verify; the first successful login
// rehashes them with the current parameters and seals the challenge
// secrets, which were unavailable until then.
func TestBroughtHashesVerifyAndUpgrade(t *testing.T) {
	ctx := context.Background()
	for _, v := range cryptVectors {
		s, a := hashTestStore(t, cheapParams)
		if err := s.SetPasswordHash(ctx, a, v.hash); err != nil {
			t.Fatalf("SetPasswordHash(%q): %v", v.hash, err)
		}
		if _, err := s.Secret(ctx, a, store.SecretPassword); !errors.Is(err, store.ErrNoSecret) {
			t.Fatalf("Secret before login = %v, want ErrNoSecret", err)
		}
		if err := s.VerifyPassword(ctx, a, v.password+"x"); !errors.Is(err, store.ErrAuthFailed) {
			t.Fatalf("%s: wrong password = %v, want ErrAuthFailed", v.hash[:4], err)
		}
		r, _ := readPasswd(s.mboxPath(a))
		if r.Crypt != v.hash {
			t.Fatalf("a failed login changed the record: %+v", r)
		}
		if err := s.VerifyPassword(ctx, a, v.password); err != nil {
			t.Fatalf("%s: right password = %v", v.hash, err)
		}
		r, err := readPasswd(s.mboxPath(a))
		if err != nil {
			t.Fatal(err)
		}
		if r.Alg != AlgArgon2id || r.Params != cheapParams.Argon2 || r.Crypt != "" {
			t.Fatalf("after login the record is %s %+v %q, want argon2id %+v", r.Alg, r.Params, r.Crypt, cheapParams.Argon2)
		}
		sec, err := s.Secret(ctx, a, store.SecretPassword)
		if err != nil || string(sec) != v.password {
			t.Fatalf("Secret after login = %q, %v", sec, err)
		}
		if err := s.VerifyPassword(ctx, a, v.password); err != nil {
			t.Fatalf("login after the upgrade: %v", err)
		}
	}
}

// Each algorithm can be chosen for new hashes; a change of algorithm or
// parameters rehashes a stored password at its next successful login,
// durably, and only then.
func TestHashUpgradeOnLogin(t *testing.T) {
	ctx := context.Background()
	s, a := hashTestStore(t, cheapParams)
	if err := s.SetPassword(ctx, a, "pw one"); err != nil {
		t.Fatal(err)
	}
	steps := []HashParams{
		{Alg: AlgBcrypt, BcryptCost: 4},
		{Alg: AlgSHA512Crypt, SHA512Rounds: 1000},
		{Alg: AlgSHA512Crypt}, // the default rounds
		{Alg: AlgArgon2id, Argon2: Argon2Params{Time: 2, MemoryKiB: 128, Threads: 1, KeyLen: 32}},
	}
	for _, p := range steps {
		before, _ := readPasswd(s.mboxPath(a))
		setHash(t, s, p)
		if err := s.VerifyPassword(ctx, a, "wrong"); !errors.Is(err, store.ErrAuthFailed) {
			t.Fatalf("wrong password = %v", err)
		}
		if r, _ := readPasswd(s.mboxPath(a)); r.Digest() != before.Digest() {
			t.Fatalf("a failed login rehashed the password")
		}
		if err := s.VerifyPassword(ctx, a, "pw one"); err != nil {
			t.Fatalf("%s: login = %v", p.Alg, err)
		}
		r, err := readPasswd(s.mboxPath(a))
		if err != nil {
			t.Fatal(err)
		}
		if !r.Current(p.Normal()) {
			t.Fatalf("after login with %+v the record is %s %+v %q", p, r.Alg, r.Params, r.Crypt)
		}
		// A store opened afresh (a restart) verifies the rehashed file.
		s2, err := Open(s.Root(), Options{Node: 1, Hash: p, AuthCacheTTL: -1})
		if err != nil {
			t.Fatal(err)
		}
		if err := s2.VerifyPassword(ctx, a, "pw one"); err != nil {
			t.Fatalf("%s: login after a restart = %v", p.Alg, err)
		}
		// New passwords take the chosen hash, and a password changed by
		// another process ends the first store's remembered success.
		if err := s2.SetPassword(ctx, a, "pw two"); err != nil {
			t.Fatal(err)
		}
		if err := s.VerifyPassword(ctx, a, "pw one"); !errors.Is(err, store.ErrAuthFailed) {
			t.Fatalf("%s: the old password after a change = %v, want ErrAuthFailed", p.Alg, err)
		}
		if err := s2.SetPassword(ctx, a, "pw one"); err != nil {
			t.Fatal(err)
		}
		if r, _ := readPasswd(s.mboxPath(a)); r.Alg != p.Alg {
			t.Fatalf("SetPassword with %s wrote %s", p.Alg, r.Alg)
		}
		s2.Close()
	}
	if err := s.SetLimits(Limits{Hash: HashParams{Alg: "md5"}}); err == nil {
		t.Fatal("SetHashParams accepted an unknown algorithm")
	}
	if err := s.SetPasswordHash(ctx, a, "$1$abc$def"); err == nil {
		t.Fatal("SetPasswordHash accepted an MD5-crypt hash")
	}
}

// An upgrade whose login verified a record that a password change has
// since replaced writes nothing: the new password wins.
func TestHashUpgradeLosesToPasswordChange(t *testing.T) {
	ctx := context.Background()
	s, a := hashTestStore(t, cheapParams)
	if err := s.SetPassword(ctx, a, "old pw"); err != nil {
		t.Fatal(err)
	}
	verified, err := readPasswd(s.mboxPath(a))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetPassword(ctx, a, "new pw"); err != nil {
		t.Fatal(err)
	}
	setHash(t, s, HashParams{Alg: AlgSHA512Crypt, SHA512Rounds: 1000})
	nr, err := s.upgrade(ctx, a, verified, "old pw")
	if err != nil || nr != nil {
		t.Fatalf("upgrade over a changed password = %v, %v; want nothing written", nr, err)
	}
	if err := s.VerifyPassword(ctx, a, "old pw"); !errors.Is(err, store.ErrAuthFailed) {
		t.Fatalf("old password after the change = %v", err)
	}
	if err := s.VerifyPassword(ctx, a, "new pw"); err != nil {
		t.Fatalf("new password = %v", err)
	}
}
