//go:build !nopam

package pam

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pop3svc/pop3svc/cmd/pop3d/pop3dtest"
)

// TestE2ESystem logs in over POP3 against the built pop3d with
// auth.method = "system": a throw-away system user with a known password,
// its mailbox created without a password, and a PAM service file written
// to /etc/pam.d for the test (root needed; removed afterwards).
func TestE2ESystem(t *testing.T) {
	requireRoot(t)
	user := newTestUser(t, "Syst3m pw")
	var b [4]byte
	rand.Read(b[:])
	service := "pop3d-test-" + hex.EncodeToString(b[:])
	file := filepath.Join("/etc/pam.d", service)
	if err := os.WriteFile(file, []byte("auth required pam_unix.so nodelay\naccount required pam_unix.so\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(file) })
	s := pop3dtest.Start(t, pop3dtest.Config{
		Auth: `method = "system"
pam_service = "` + service + `"
fail_delay = "5ms"
penalty = "1ms"
penalty_max = "5ms"`,
		Setup: [][]string{{"add", "example.com"}, {"add", user + "@example.com"}},
	})
	for _, c := range []struct{ user, pw, want string }{
		{user + "@example.com", "Syst3m pw", "+OK"},
		{user + "@example.com", "wrong", "-ERR [AUTH]"},
		{"root@example.com", "x", "-ERR [AUTH]"}, // no mailbox, and a wrong password
	} {
		p := pop3dtest.Dial(t, s.POP3, "")
		if r := p.Cmd("USER " + c.user); !strings.HasPrefix(r, "+OK") {
			t.Fatalf("USER = %q", r)
		}
		if r := p.Cmd("PASS " + c.pw); !strings.HasPrefix(r, c.want) {
			t.Errorf("USER %s / PASS %q = %q, want %s", c.user, c.pw, r, c.want)
		}
		p.Cmd("QUIT")
	}
}
