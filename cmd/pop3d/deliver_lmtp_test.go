package main

import (
	"context"
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pop3svc/pop3svc/cmd/pop3d/pop3dtest"
)

// TestDeliverLMTP runs pop3ctl deliver -lmtp against pop3d's LMTP
// listener: without a configuration file (it needs none), it delivers
// with the envelope sender as Return-Path, and turns pop3d's replies
// into sysexits.
func TestDeliverLMTP(t *testing.T) {
	const alicePw = "alice-Pw-123"
	lmtp := "127.0.0.1:" + freeLoopbackPort(t)
	cfg := pop3dtest.Config{
		SMTPTable: `lmtp_listen = ["` + lmtp + `"]` + "\nmax_message_size = \"4KB\"\n",
		Setup: [][]string{
			{"add", "example.org"},
			{"add", "alice@example.org", "-password", alicePw},
			{"add", "carol@example.org"},
			{"quota", "carol@example.org", "100B"},
		},
	}
	srv := pop3dtest.Start(t, cfg)
	ctl := pop3dtest.Binary(t, "pop3ctl")
	noConfig := filepath.Join(t.TempDir(), "missing.toml")
	deliver := func(stdin string, args ...string) (int, string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), pop3dtest.CtlTimeout)
		defer cancel()
		cmd := exec.CommandContext(ctx, ctl, append([]string{"deliver", "-lmtp", lmtp}, args...)...)
		cmd.Dir = t.TempDir()
		cmd.Env = []string{"POP3D_CONFIG=" + noConfig}
		cmd.Stdin = strings.NewReader(stdin)
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode(), string(out)
		}
		if err != nil {
			t.Fatalf("pop3ctl deliver: %v", err)
		}
		return 0, string(out)
	}

	if code, out := deliver("From bob@example.net Mon Jan  1 00:00:00 2024\nSubject: hi\n\nbody\n",
		"-return-path", "bob@example.net", "-delivered-to", "alice@example.org", "--", "alice@example.org"); code != 0 {
		t.Fatalf("deliver: exit %d: %s", code, out)
	}
	msgs := poplibMessages(t, srv, "alice@example.org", alicePw, 1)
	if len(msgs) != 1 || !strings.HasPrefix(msgs[0], "Return-Path: <bob@example.net>\n") ||
		!strings.Contains(msgs[0], "\nDelivered-To: alice@example.org\n") ||
		!strings.Contains(msgs[0], "\nSubject: hi\n\nbody\n") || strings.Contains(msgs[0], "From bob") {
		t.Fatalf("alice's mailbox: %q", msgs)
	}

	big := "Subject: big\n\n" + strings.Repeat("0123456789abcdef\n", 300)
	for _, c := range []struct {
		name  string
		code  int
		stdin string
		args  []string
	}{
		{"unknown mailbox (550 5.1.1)", 67, "x\n", []string{"nobody@example.org"}},
		{"a domain not served (550 5.7.1)", 67, "x\n", []string{"alice@example.net"}},
		{"over quota (552 5.2.2)", 73, "Subject: q\n\n" + strings.Repeat("x", 200) + "\n", []string{"carol@example.org"}},
		{"larger than max_message_size (552 5.3.4)", 73, big, []string{"alice@example.org"}},
		{"a sender pop3d refuses", 69, "x\n", []string{"-return-path", "bob@" + strings.Repeat("a", 300) + ".example", "alice@example.org"}},
		{"not an address", 67, "x\n", []string{"alice"}},
		{"a return path that is not one", 64, "x\n", []string{"-return-path", "a b", "alice@example.org"}},
	} {
		if code, out := deliver(c.stdin, c.args...); code != c.code {
			t.Errorf("%s: exit %d (%q), want %d", c.name, code, out, c.code)
		}
	}
	if n := len(poplibMessages(t, srv, "alice@example.org", alicePw, 1)); n != 1 {
		t.Errorf("alice has %d messages after the refused deliveries, want 1", n)
	}

	// pop3d down: 75, the MTA tries again later.
	if err := srv.Stop(); err != nil {
		t.Fatalf("stopping pop3d: %v", err)
	}
	if code, out := deliver("x\n", "alice@example.org"); code != 75 || !strings.Contains(out, "cannot reach the LMTP server") {
		t.Errorf("pop3d down: exit %d (%q), want 75", code, out)
	}
}
