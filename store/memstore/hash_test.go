package memstore

import (
	"errors"
	"testing"

	"github.com/pop3svc/pop3svc/store"
	"github.com/pop3svc/pop3svc/store/credential"
)

// A hash brought from elsewhere (openssl passwd -6, htpasswd -B) verifies,
// has no challenge secrets until its first login, and that login rehashes
// it with the current parameters; a parameter change rehashes a stored
// password at its next successful login, and never a changed one.
func TestHashesBroughtAndUpgraded(t *testing.T) {
	s := newTestStore(t, Options{})
	a := mkbox(t, s)
	for _, v := range []struct{ pw, hash string }{
		{"Tr0ub4dor&3", "$6$Zq1w2e3r4t5y6u7i$TbgFDEeCU7r9WTS8mxcYUU7b4MOMcYcsG1u7G06JQtxHuKnyVYgXYBdKWZq1ijhG75TGzPaRYEuk/RAax3Yna1"},
		{"correct horse", "$2y$05$AWRL5FnLtrMJlaa31.GX5OBjPkCeZXxKcD7F8Ygfn2uezKQC1ipSC"},
	} {
		if err := s.SetPasswordHash(bg, a, v.hash); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Secret(bg, a, store.SecretPassword); !errors.Is(err, store.ErrNoSecret) {
			t.Fatalf("Secret before login = %v, want ErrNoSecret", err)
		}
		if err := s.VerifyPassword(bg, a, v.pw+"x"); !errors.Is(err, store.ErrAuthFailed) {
			t.Fatalf("wrong password = %v", err)
		}
		if err := s.VerifyPassword(bg, a, v.pw); err != nil {
			t.Fatalf("%s: right password = %v", v.hash, err)
		}
		if sec, err := s.Secret(bg, a, store.SecretPassword); err != nil || string(sec) != v.pw {
			t.Fatalf("Secret after login = %q, %v", sec, err)
		}
		if s.hasher.NeedsUpgrade(s.record(t, a)) {
			t.Fatal("the login did not rehash the brought hash")
		}
	}
	if err := s.SetPasswordHash(bg, a, "$1$abc$def"); err == nil {
		t.Fatal("SetPasswordHash accepted an MD5-crypt hash")
	}

	if err := s.SetPassword(bg, a, "pw"); err != nil {
		t.Fatal(err)
	}
	p := credential.HashParams{Alg: credential.AlgSHA512Crypt, SHA512Rounds: 1000}
	if err := s.SetHashParams(p); err != nil {
		t.Fatal(err)
	}
	before := s.record(t, a)
	if err := s.VerifyPassword(bg, a, "wrong"); !errors.Is(err, store.ErrAuthFailed) {
		t.Fatalf("wrong password = %v", err)
	}
	if s.record(t, a) != before {
		t.Fatal("a failed login rehashed the password")
	}
	if err := s.VerifyPassword(bg, a, "pw"); err != nil {
		t.Fatal(err)
	}
	if r := s.record(t, a); r.Alg != credential.AlgSHA512Crypt || !r.Current(p.Normal()) {
		t.Fatalf("after login the record is %s %q", r.Alg, r.Crypt)
	}
}

func (s *Store) record(t *testing.T, a store.Address) *credential.Record {
	t.Helper()
	s.mu.RLock()
	defer s.mu.RUnlock()
	_, m, err := s.lookup(a)
	if err != nil {
		t.Fatal(err)
	}
	return m.cred
}
