package ntlm

import (
	"encoding/base64"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pop3svc/pop3svc/cmd/pop3d/pop3dtest"
)

// End-to-end: AUTH NTLM against the built pop3d, with curl (NTLMv2),
// fetchmail (whose NTLM is v1 only, so it needs auth.allow_ntlmv1) and
// this package's own client (initial-response form).

const e2eMessage = "From: a@example.org\r\nTo: alice@example.com\r\nSubject: ntlm e2e\r\n\r\nhello over NTLM\r\n"

func ntlmServer(t *testing.T, allowV1 bool) *pop3dtest.Server {
	t.Helper()
	auth := "method = \"passwordfile\"\nfail_delay = \"5ms\"\npenalty = \"1ms\"\npenalty_max = \"5ms\""
	if allowV1 {
		auth += "\nallow_ntlmv1 = true"
	}
	s := pop3dtest.Start(t, pop3dtest.Config{Auth: auth, Setup: [][]string{
		{"add", "example.com"},
		{"add", "alice@example.com", "-password", "Secret-1"},
	}})
	msg := filepath.Join(s.Dir, "msg.eml")
	if err := os.WriteFile(msg, []byte(e2eMessage), 0o600); err != nil {
		t.Fatal(err)
	}
	s.Ctl(t, "", "deliver", "alice@example.com", msg)
	return s
}

func TestE2ECurl(t *testing.T) {
	curl := pop3dtest.NeedTool(t, "curl")
	s := ntlmServer(t, false)
	run := func(user string) (string, error) {
		cmd := exec.Command(curl, "-sS", "--max-time", "20", "--login-options", "AUTH=NTLM",
			"-u", user, "pop3://"+s.POP3+"/1")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	out, err := run("alice@example.com:Secret-1")
	if err != nil || !strings.Contains(out, "hello over NTLM") {
		t.Fatalf("curl with the right password: %v\n%s", err, out)
	}
	out, err = run("alice@example.com:wrong")
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 67 { // CURLE_LOGIN_DENIED
		t.Fatalf("curl with a wrong password: %v, want exit 67\n%s", err, out)
	}
	out, err = run("nobody@example.com:Secret-1")
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 67 {
		t.Fatalf("curl with an unknown user: %v, want exit 67\n%s", err, out)
	}
}

func TestE2EFetchmail(t *testing.T) {
	fetchmail := pop3dtest.NeedTool(t, "fetchmail")
	for _, c := range []struct {
		allowV1  bool
		password string
		want     int // fetchmail exit status: 0 mail, 3 authentication failure
	}{
		{true, "Secret-1", 0},
		{true, "wrong", 3},
		{false, "Secret-1", 3}, // NTLMv1 refused by default
	} {
		s := ntlmServer(t, c.allowV1)
		home := t.TempDir()
		host, port, _ := strings.Cut(s.POP3, ":")
		rc := filepath.Join(home, "fetchmailrc")
		text := "poll " + host + " service " + port + " protocol pop3 auth ntlm user \"alice@example.com\" password \"" + c.password + "\" sslproto ''\n"
		if err := os.WriteFile(rc, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(fetchmail, "-c", "-v", "-f", rc)
		cmd.Env = append(os.Environ(), "HOME="+home, "FETCHMAILHOME="+home)
		done := make(chan struct{})
		var out []byte
		var err error
		go func() { out, err = cmd.CombinedOutput(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-done
			t.Fatalf("fetchmail hung:\n%s", out)
		}
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if code != c.want {
			t.Errorf("fetchmail allow_ntlmv1=%v password %q: exit %d, want %d\n%s", c.allowV1, c.password, code, c.want, out)
		}
	}
}

func TestE2EInitialResponse(t *testing.T) {
	s := ntlmServer(t, false)
	p := pop3dtest.Dial(t, s.POP3, "")
	b64 := base64.StdEncoding
	negotiate := clientNegotiate(FlagUnicode | FlagNTLM | FlagExtendedSessionSecurity | FlagVersion)
	r := p.Cmd("AUTH NTLM " + b64.EncodeToString(negotiate))
	if !strings.HasPrefix(r, "+ ") {
		t.Fatalf("AUTH NTLM <negotiate> = %q, want a challenge", r)
	}
	chMsg, err := b64.DecodeString(strings.TrimPrefix(r, "+ "))
	if err != nil {
		t.Fatal(err)
	}
	msg := clientAuthenticate(clientParseChallenge(t, chMsg), authOpts{
		user: "alice", domain: "example.com", ntHash: NTHash("Secret-1"),
		mic: true, negotiate: negotiate, challengeMsg: chMsg,
	})
	if r := p.Cmd(b64.EncodeToString(msg)); !strings.HasPrefix(r, "+OK") {
		t.Fatalf("AUTHENTICATE = %q, want +OK", r)
	}
	if r := p.Cmd("STAT"); !strings.HasPrefix(r, "+OK 1 ") {
		t.Fatalf("STAT = %q", r)
	}
	p.Cmd("QUIT")

	// The same with the wrong password, in the three-step form.
	p = pop3dtest.Dial(t, s.POP3, "")
	if r := p.Cmd("AUTH NTLM"); r != "+ " && r != "+" {
		t.Fatalf("AUTH NTLM = %q, want an empty challenge", r)
	}
	r = p.Cmd(b64.EncodeToString(negotiate))
	chMsg, err = b64.DecodeString(strings.TrimPrefix(r, "+ "))
	if err != nil {
		t.Fatalf("challenge %q: %v", r, err)
	}
	msg = clientAuthenticate(clientParseChallenge(t, chMsg), authOpts{user: "alice@example.com", ntHash: NTHash("wrong")})
	if r := p.Cmd(b64.EncodeToString(msg)); !strings.HasPrefix(r, "-ERR") {
		t.Fatalf("wrong password = %q, want -ERR", r)
	}
}
