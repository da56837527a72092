package credential

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/pop3svc/pop3svc/store"
)

// CryptVectors were made with real tools: htpasswd -nbB -C N
// (apache2-utils) for bcrypt, openssl passwd -6 (and the specification's
// own examples) for SHA-512-crypt. The stores' tests use them too.
var CryptVectors = []struct{ Password, Hash string }{
	{"correct horse", "$2y$05$AWRL5FnLtrMJlaa31.GX5OBjPkCeZXxKcD7F8Ygfn2uezKQC1ipSC"},
	{"Tr0ub4dor&3", "$2y$10$ChihQAABsrPAL2xj.icxCu8fAEnpsGglvSn8Yf5w.gQWDR47jgPe6"},
	{"Hello world!", "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1"},
	{"Hello world!", "$6$rounds=10000$saltstringsaltst$OW1/O6BYHV6BcXZu8QVeXbDWra3Oeqh0sbHbbMCVNSnCM/UrjmM0Dp8vOuZeHBy/YTBmSK6H9qs/y3RnOaw5v."},
	{"correct horse", "$6$rounds=1000$9KqfL0aZ3x$rX6Vm4IfE1bnux.I9h1ed79W.sF6mBreUHTDr3ysL41RIN.cigqhmbz6Dt.F9QQ2W4oeFr3uMk9k6hzkO0XoM1"},
	{"Tr0ub4dor&3", "$6$Zq1w2e3r4t5y6u7i$TbgFDEeCU7r9WTS8mxcYUU7b4MOMcYcsG1u7G06JQtxHuKnyVYgXYBdKWZq1ijhG75TGzPaRYEuk/RAax3Yna1"},
}

func TestSHA512CryptVectors(t *testing.T) {
	for _, v := range CryptVectors {
		if !strings.HasPrefix(v.Hash, "$6$") {
			continue
		}
		rounds, salt, _, err := parseSHA512Crypt(v.Hash)
		if err != nil {
			t.Fatalf("parse %q: %v", v.Hash, err)
		}
		if got := sha512Crypt([]byte(v.Password), salt, rounds); got != v.Hash {
			t.Errorf("sha512Crypt(%q) = %q, want %q", v.Password, got, v.Hash)
		}
	}
}

// needTool fails under CI when a tool is missing, and skips otherwise.
func needTool(t *testing.T, name, pkg string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is missing (Debian: apt-get install %s)", name, pkg)
		}
		t.Skipf("%s not installed (Debian package %s)", name, pkg)
	}
}

// A fresh hash from openssl, with a random password of every length up to
// past two SHA-512 blocks, matches ours.
func TestSHA512CryptAgainstOpenSSL(t *testing.T) {
	needTool(t, "openssl", "openssl")
	for _, n := range []int{1, 15, 63, 64, 65, 130} {
		b := make([]byte, n)
		rand.Read(b)
		pw := hex.EncodeToString(b)[:n]
		salt := newSHA512Salt(append(b, make([]byte, 16)...))
		out, err := exec.Command("openssl", "passwd", "-6", "-salt", "rounds=1500$"+salt, pw).Output()
		if err != nil {
			t.Fatalf("openssl: %v", err)
		}
		want := strings.TrimSpace(string(out))
		if got := sha512Crypt([]byte(pw), salt, 1500); got != want {
			t.Errorf("password of %d octets: %q, openssl %q", n, got, want)
		}
	}
}

// A fresh bcrypt hash from htpasswd verifies, and a wrong password fails.
func TestBcryptFromHtpasswd(t *testing.T) {
	needTool(t, "htpasswd", "apache2-utils")
	h := newHasher(t)
	out, err := exec.Command("htpasswd", "-nbB", "-C", "5", "u", "s3cret pass").Output()
	if err != nil {
		t.Fatalf("htpasswd: %v", err)
	}
	_, hash, _ := strings.Cut(strings.TrimSpace(string(out)), ":")
	r, err := FromCrypt(hash)
	if err != nil {
		t.Fatalf("FromCrypt(%q): %v", hash, err)
	}
	ctx := context.Background()
	if err := h.Verify(ctx, r, "s3cret pass"); err != nil {
		t.Errorf("htpasswd hash: right password = %v", err)
	}
	if err := h.Verify(ctx, r, "s3cret pas"); !errors.Is(err, store.ErrAuthFailed) {
		t.Errorf("htpasswd hash: wrong password = %v", err)
	}
}

// A brought hash verifies, survives Encode/Decode, has no secrets and
// needs an upgrade; a record made with each algorithm verifies, and is
// current exactly under the parameters that made it.
func TestCryptRecords(t *testing.T) {
	ctx := context.Background()
	h := newHasher(t)
	key := NewKey()
	a := store.Address{Mailbox: "alice", Domain: "example.com"}
	for _, v := range CryptVectors {
		r, err := FromCrypt(v.Hash)
		if err != nil {
			t.Fatalf("FromCrypt(%q): %v", v.Hash, err)
		}
		b, err := r.Encode()
		if err != nil {
			t.Fatal(err)
		}
		if r, err = Decode(b); err != nil {
			t.Fatalf("Decode(%s): %v", b, err)
		}
		if err := h.Verify(ctx, r, v.Password); err != nil {
			t.Errorf("%s: right password = %v", v.Hash, err)
		}
		if err := h.Verify(ctx, r, v.Password+"x"); !errors.Is(err, store.ErrAuthFailed) {
			t.Errorf("%s: wrong password = %v", v.Hash, err)
		}
		if _, err := r.Secret(key, a, store.SecretPassword); !errors.Is(err, store.ErrNoSecret) {
			t.Errorf("%s: Secret = %v, want ErrNoSecret", v.Hash, err)
		}
		if !h.NeedsUpgrade(r) {
			t.Errorf("%s: a brought hash does not need an upgrade", v.Hash)
		}
	}
	for _, bad := range []string{"$1$abc$def", "plain", "$6$", "$2y$31$AWRL5FnLtrMJlaa31.GX5OBjPkCeZXxKcD7F8Ygfn2uezKQC1ipSC", "$6$rounds=9999999$salt$x"} {
		if _, err := FromCrypt(bad); err == nil {
			t.Errorf("FromCrypt(%q) accepted it", bad)
		}
	}
	for _, p := range []HashParams{
		{Alg: AlgBcrypt, BcryptCost: 4},
		{Alg: AlgSHA512Crypt, SHA512Rounds: 1000},
		{Alg: AlgSHA512Crypt},
		{Alg: AlgArgon2id, Argon2: Argon2Params{Time: 2, MemoryKiB: 128, Threads: 1, KeyLen: 32}},
	} {
		if err := h.SetParams(p); err != nil {
			t.Fatal(err)
		}
		r, err := h.New(ctx, key, a, "pw one")
		if err != nil {
			t.Fatal(err)
		}
		if r.Alg != p.Alg || h.NeedsUpgrade(r) || !r.Current(p.Normal()) {
			t.Errorf("%+v made %s %+v %q, not current", p, r.Alg, r.Params, r.Crypt)
		}
		if err := h.Verify(ctx, r, "pw one"); err != nil {
			t.Errorf("%s: right password = %v", p.Alg, err)
		}
		if err := h.Verify(ctx, r, "pw two"); !errors.Is(err, store.ErrAuthFailed) {
			t.Errorf("%s: wrong password = %v", p.Alg, err)
		}
		if err := h.Verify(ctx, nil, "pw one"); !errors.Is(err, store.ErrAuthFailed) {
			t.Errorf("%s: no record = %v", p.Alg, err)
		}
		if sec, err := r.Secret(key, a, store.SecretPassword); err != nil || string(sec) != "pw one" {
			t.Errorf("%s: Secret = %q, %v", p.Alg, sec, err)
		}
		if h.Params().Memory() != r.Memory() {
			t.Errorf("%s: memory %d, record's %d", p.Alg, h.Params().Memory(), r.Memory())
		}
	}
	if err := h.SetParams(HashParams{Alg: AlgSHA512Crypt, SHA512Rounds: 2000}); err != nil {
		t.Fatal(err)
	}
	r, _ := h.New(ctx, key, a, "pw")
	if err := h.SetParams(HashParams{Alg: AlgSHA512Crypt, SHA512Rounds: 3000}); err != nil {
		t.Fatal(err)
	}
	if !h.NeedsUpgrade(r) {
		t.Error("a record with other rounds does not need an upgrade")
	}
	for _, p := range []HashParams{{Alg: "md5"}, {Alg: AlgBcrypt, BcryptCost: 17}, {Alg: AlgSHA512Crypt, SHA512Rounds: 999}} {
		if err := h.SetParams(p); err == nil {
			t.Errorf("SetParams(%+v) accepted it", p)
		}
	}
	if _, err := h.New(ctx, key, a, strings.Repeat("x", 73)); err != nil {
		t.Errorf("a 73-octet password with sha512-crypt: %v", err)
	}
	h.SetParams(HashParams{Alg: AlgBcrypt, BcryptCost: 4})
	if _, err := h.New(ctx, key, a, strings.Repeat("x", 73)); err == nil {
		t.Error("bcrypt took a password past its 72 octets")
	}
}
