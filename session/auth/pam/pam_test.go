//go:build !nopam

package pam

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pop3svc/pop3svc/cmd/pop3d/pop3dtest"
	"github.com/pop3svc/pop3svc/session/auth"
	"github.com/pop3svc/pop3svc/store"
)

// TestUser creates a throw-away system user with a known password
// (useradd + chpasswd, root needed; CI runs as root) and checks good, wrong
// and unknown logins through a PAM service file in a temporary folder.
// Without root it is skipped, except in CI (CI=true), where that fails.

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		pop3dtest.Unavailable(t, "the PAM tests need root to create a system user", "passwd (useradd, chpasswd), run as root")
	}
}

// newTestUser creates a throw-away system user with the password
// pw and removes it when the test ends. It returns the user name.
func newTestUser(t *testing.T, pw string) string {
	t.Helper()
	var b [4]byte
	rand.Read(b[:])
	name := "p3t" + hex.EncodeToString(b[:])
	if out, err := exec.Command("useradd", "-M", "-N", "-s", "/usr/sbin/nologin", name).CombinedOutput(); err != nil {
		t.Fatalf("useradd: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("userdel", name).CombinedOutput(); err != nil {
			t.Errorf("userdel %s: %v: %s", name, err, out)
		}
	})
	cmd := exec.Command("chpasswd")
	cmd.Stdin = strings.NewReader(name + ":" + pw + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("chpasswd: %v: %s", err, out)
	}
	return name
}

func serviceDir(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestSystemUser(t *testing.T) {
	requireRoot(t)
	user := newTestUser(t, "Corr3ct horse")
	dir := serviceDir(t, map[string]string{
		"pop3d-test":   "auth required pam_unix.so nodelay\naccount required pam_unix.so\n",
		"pop3d-broken": "auth required pam_no_such_module_here.so\naccount required pam_unix.so\n",
	})
	s, err := New(Options{Service: "pop3d-test", ConfDir: dir, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if s.Name() != "system" || s.Challenge() {
		t.Fatalf("Name %q Challenge %v", s.Name(), s.Challenge())
	}
	ctx := context.Background()
	a := store.Address{Mailbox: user, Domain: "example.com"}
	for _, c := range []struct {
		addr store.Address
		pw   string
		want error
	}{
		{a, "Corr3ct horse", nil},
		{a, "wrong", auth.ErrAuthFailed},
		{a, "", auth.ErrAuthFailed},
		{store.Address{Mailbox: "p3t-nobody-here", Domain: "example.com"}, "Corr3ct horse", auth.ErrAuthFailed},
	} {
		err := s.Plaintext(ctx, c.addr, c.pw)
		if c.want == nil && err != nil || c.want != nil && !errors.Is(err, c.want) {
			t.Errorf("Plaintext(%s, %q) = %v, want %v", c.addr, c.pw, err, c.want)
		}
		if errors.Is(err, auth.ErrUnavailable) && c.want != auth.ErrUnavailable {
			t.Errorf("Plaintext(%s) unavailable: %v", c.addr, err)
		}
	}

	// A broken PAM stack is the system's failure, not the user's.
	broken, err := New(Options{Service: "pop3d-broken", ConfDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if err := broken.Plaintext(ctx, a, "Corr3ct horse"); !errors.Is(err, auth.ErrUnavailable) || errors.Is(err, auth.ErrAuthFailed) {
		t.Fatalf("broken PAM stack: %v, want ErrUnavailable only", err)
	}

	// A locked account fails.
	if out, err := exec.Command("usermod", "-L", user).CombinedOutput(); err != nil {
		t.Fatalf("usermod -L: %v: %s", err, out)
	}
	if err := s.Plaintext(ctx, a, "Corr3ct horse"); !errors.Is(err, auth.ErrAuthFailed) {
		t.Errorf("locked account: %v, want ErrAuthFailed", err)
	}
}

func TestTimeoutAndCancel(t *testing.T) {
	s, err := New(Options{Service: "pop3d-test", MaxConcurrent: 1, Timeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	s.slots <- struct{}{} // the only slot is taken by a hung check
	start := time.Now()
	if err := s.Plaintext(context.Background(), store.Address{Mailbox: "x", Domain: "example.com"}, "pw"); !errors.Is(err, auth.ErrUnavailable) {
		t.Errorf("busy: %v, want ErrUnavailable", err)
	}
	if el := time.Since(start); el > 10*time.Second {
		t.Errorf("waited %v with a 50ms timeout", el)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Plaintext(ctx, store.Address{Mailbox: "x", Domain: "example.com"}, "pw"); !errors.Is(err, auth.ErrUnavailable) {
		t.Errorf("cancelled: %v, want ErrUnavailable", err)
	}
}

func TestUserExists(t *testing.T) {
	if ok, err := UserExists("root"); !ok || err != nil {
		t.Errorf("UserExists(root) = %v, %v", ok, err)
	}
	if ok, err := UserExists("p3t-no-such-user"); ok || err != nil {
		t.Errorf("UserExists(p3t-no-such-user) = %v, %v", ok, err)
	}
}
