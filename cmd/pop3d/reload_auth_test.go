package main

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
)

// TestReloadAppliesPAMService changes auth.pam_service on a running
// pop3d with auth.method = "system", from a PAM service that denies
// every login (pam_deny) to one that allows every login (pam_permit),
// both written to /etc/pam.d for the test (root needed; removed
// afterwards).
func TestReloadAppliesPAMService(t *testing.T) {
	if os.Geteuid() != 0 {
		pop3dtest.Unavailable(t, "the PAM service files go to /etc/pam.d, which needs root", "libpam-modules (pam_permit, pam_deny), run as root")
	}
	var b [4]byte
	rand.Read(b[:])
	deny, permit := "pop3d-reload-deny-"+hex.EncodeToString(b[:]), "pop3d-reload-permit-"+hex.EncodeToString(b[:])
	for name, text := range map[string]string{
		deny:   "auth required pam_deny.so\naccount required pam_permit.so\n",
		permit: "auth required pam_permit.so\naccount required pam_permit.so\n",
	} {
		file := filepath.Join("/etc/pam.d", name)
		if err := os.WriteFile(file, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Remove(file) })
	}
	c := reloadConfig(t, "", nil)
	c.Auth = `method = "system"
pam_service = "` + deny + `"
fail_delay = "5ms"
penalty = "0s"
penalty_max = "0s"`
	c.Setup = [][]string{{"add", "example.com"}, {"add", "alice@example.com"}}
	in := pop3dtest.Start(t, c)
	runLiveCases(t, in, []liveCase{
		{key: "auth.pam_service", value: permit, want: "+OK", probe: func(t *testing.T, in *pop3dtest.Server, ip string) string {
			return loginAs(t, in, ip, "alice@example.com", "any password")
		}},
	}, func(int) string { return "127.0.0.1" })
}

// TestReloadAppliesNTLMv1 turns auth.allow_ntlmv1 on for a running pop3d
// and checks a new login with fetchmail, whose NTLM sends NTLMv1
// responses only: refused before, accepted after.
func TestReloadAppliesNTLMv1(t *testing.T) {
	fetchmail := pop3dtest.NeedTool(t, "fetchmail")
	c := reloadConfig(t, "", mailbox(1, 2000))
	in := pop3dtest.Start(t, c)
	runLiveCases(t, in, []liveCase{
		{key: "auth.allow_ntlmv1", value: "true", want: "mail read", probe: func(t *testing.T, in *pop3dtest.Server, ip string) string {
			home := t.TempDir()
			host, port, _ := strings.Cut(in.POP3, ":")
			rc := filepath.Join(home, "fetchmailrc")
			text := "poll " + host + " service " + port + " protocol pop3 auth ntlm user \"" + testAddr.String() + "\" password \"" + testPassword + "\" sslproto ''\n"
			if err := os.WriteFile(rc, []byte(text), 0o600); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, fetchmail, "-c", "-f", rc) // -c: look, take nothing
			cmd.Env = append(os.Environ(), "HOME="+home, "FETCHMAILHOME="+home)
			out, err := cmd.CombinedOutput()
			var ee *exec.ExitError
			switch {
			case err == nil:
				return "mail read" // exit 0: mail waiting, seen after a login
			case errors.As(err, &ee) && ee.ExitCode() == 3:
				return "authentication failed"
			}
			t.Fatalf("fetchmail: %v\n%s", err, out)
			return ""
		}},
	}, func(int) string { return "127.0.0.1" })
}
