package main

import (
	"crypto"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/smtp"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pop3svc/pop3svc/cmd/pop3d/pop3dtest"
	"github.com/pop3svc/pop3svc/session/auth/jwttest"
)

// bobBcrypt is a bcrypt hash of "correct horse" (htpasswd -B), brought to
// a mailbox with changepwd -hash: such a record has no SCRAM keys until
// its first plaintext login.
const bobBcrypt = "$2y$05$AWRL5FnLtrMJlaa31.GX5OBjPkCeZXxKcD7F8Ygfn2uezKQC1ipSC"

// startSubmissionSCRAM runs pop3d with submission and auth.scram = "on",
// and a mailbox brought@example.org whose hash came from elsewhere.
func startSubmissionSCRAM(t *testing.T) *pop3dtest.Server {
	t.Helper()
	return pop3dtest.Start(t, pop3dtest.Config{
		Top: "logging = 4",
		Auth: fastHash + `fail_delay = "20ms"
penalty = "0s"
penalty_max = "0s"
scram = "on"
`,
		Submission: true,
		Setup: append(submissionSetup(),
			[]string{"add", "brought@example.org"},
			[]string{"changepwd", "brought@example.org", "-hash", bobBcrypt}),
	})
}

// SCRAM-SHA-256 and -PLUS on the submission listeners with a client in
// Python (smtplib for the connection, hashlib and hmac for SCRAM): good
// and wrong passwords, channel binding after STARTTLS and over implicit
// TLS, another connection's binding, a downgraded binding flag, and a
// mailbox without SCRAM keys, which fails until its first plaintext login
// gives it keys. bob reads by POP3 what the good logins sent.
func TestSubmissionSCRAMWithPython(t *testing.T) {
	t.Parallel()
	in := startSubmissionSCRAM(t)
	host, port, _ := net.SplitHostPort(in.Submission)
	_, tport, _ := net.SplitHostPort(in.SubmissionTLS)
	const alice = "alice@example.org"
	run := func(port, user, pass, mode string, want ...string) {
		t.Helper()
		out := runPyFile(t, "testdata/scram_smtp_client.py", host, port, user, pass, mode)
		for _, w := range want {
			if !strings.Contains(out, w) {
				t.Fatalf("%s %s: output lacks %q:\n%s", mode, user, w, out)
			}
		}
		if strings.Contains(out, "ERR") != strings.Contains(strings.Join(want, " "), "ERR") {
			t.Fatalf("%s %s:\n%s", mode, user, out)
		}
	}
	sent := []string{"(plain)", "(stls-nobind)", "(stls)", "(tls)"}
	run(port, alice, alicePass, "plain", "NTLM SCRAM-SHA-256\n", "OK 235", "SENT")
	run(port, alice, alicePass, "stls-nobind", "SCRAM-SHA-256 SCRAM-SHA-256-PLUS\n", "OK 235", "SENT")
	run(port, alice, alicePass, "stls", "SCRAM-SHA-256 SCRAM-SHA-256-PLUS\n", "OK 235", "SENT")
	run(tport, alice, alicePass, "tls", "SCRAM-SHA-256 SCRAM-SHA-256-PLUS\n", "OK 235", "SENT")
	run(port, alice, "wrong", "stls", "ERR 535 5.7.8")
	run(tport, alice, alicePass, "tls-badcb", "ERR 535 5.7.8")
	run(port, alice, alicePass, "stls-downgrade", "ERR 535 5.7.8")
	run(port, "nobody@example.org", alicePass, "stls", "ERR 535 5.7.8")

	// No SCRAM keys yet: SCRAM fails like a wrong password; a plaintext
	// login makes them, and SCRAM then succeeds.
	run(port, "brought@example.org", "correct horse", "stls", "ERR 535 5.7.8")
	c := smtpClient(t, in.Submission)
	startTLS(t, c)
	if err := c.Auth(plainAuth{"brought@example.org", "correct horse"}); err != nil {
		t.Fatalf("AUTH PLAIN of a brought hash: %v", err)
	}
	c.Quit()
	run(port, "brought@example.org", "correct horse", "stls", "OK 235")

	msgs := popMessages(t, in, "bob@example.org", bobPass, len(sent)+1)
	for i, w := range sent {
		with := "with ESMTPSA" // RFC 3848: authenticated, over TLS
		if i == 0 {
			with = "with ESMTPA"
		}
		if !strings.Contains(msgs[i], w) || !strings.Contains(msgs[i], with) {
			t.Errorf("message %d lacks %q or %q:\n%s", i+1, w, with, msgs[i])
		}
	}
}

// scramAuth is a SCRAM-SHA-256(-PLUS) client for net/smtp, binding with
// tls-exporter (RFC 9266), which Python's ssl cannot export.
type scramAuth struct {
	user, pass string
	cb         []byte // channel-binding data; nil: SCRAM-SHA-256 with "n"
	nonce      string
	bare, gs2  string
	salted     []byte
	authMsg    string
	step       int
	verified   bool
}

func (a *scramAuth) Start(*smtp.ServerInfo) (string, []byte, error) {
	mech, gs2 := "SCRAM-SHA-256", "n,,"
	if a.cb != nil {
		mech, gs2 = "SCRAM-SHA-256-PLUS", "p=tls-exporter,,"
	}
	a.nonce = "go-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	a.gs2, a.bare = gs2, "n="+a.user+",r="+a.nonce
	return mech, []byte(gs2 + a.bare), nil
}

func (a *scramAuth) Next(from []byte, more bool) ([]byte, error) {
	if !more {
		return nil, nil
	}
	h := func(k []byte, m string) []byte { x := hmac.New(sha256.New, k); x.Write([]byte(m)); return x.Sum(nil) }
	a.step++
	switch a.step {
	case 1:
		sf := string(from)
		var nonce, salt string
		iter := 0
		for _, f := range strings.Split(sf, ",") {
			k, v, _ := strings.Cut(f, "=")
			switch k {
			case "r":
				nonce = v
			case "s":
				salt = v
			case "i":
				iter, _ = strconv.Atoi(v)
			}
		}
		if !strings.HasPrefix(nonce, a.nonce) {
			return nil, errors.New("server nonce does not extend the client's")
		}
		s, _ := base64.StdEncoding.DecodeString(salt)
		a.salted, _ = pbkdf2.Key(sha256.New, a.pass, s, iter, 32)
		ck := h(a.salted, "Client Key")
		sk := sha256.Sum256(ck)
		wo := "c=" + base64.StdEncoding.EncodeToString(append([]byte(a.gs2), a.cb...)) + ",r=" + nonce
		a.authMsg = a.bare + "," + sf + "," + wo
		sig := h(sk[:], a.authMsg)
		for i := range ck {
			ck[i] ^= sig[i]
		}
		return []byte(wo + ",p=" + base64.StdEncoding.EncodeToString(ck)), nil
	case 2:
		want := "v=" + base64.StdEncoding.EncodeToString(h(h(a.salted, "Server Key"), a.authMsg))
		if string(from) != want {
			return nil, errors.New("wrong server signature")
		}
		a.verified = true
		return []byte{}, nil
	}
	return nil, errors.New("unexpected challenge")
}

// SCRAM-SHA-256-PLUS with tls-exporter on the implicit-TLS submission
// listener: the server exports the same keying material as the Go client;
// another channel's data fails with 535. Without TLS, -PLUS gets 538.
// With auth.scram turned off by a reload, EHLO no longer offers SCRAM.
func TestSubmissionSCRAMPlusTLSExporter(t *testing.T) {
	t.Parallel()
	in := startSubmissionSCRAM(t)
	dial := func() *smtp.Client {
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", in.SubmissionTLS,
			&tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13}) //nolint:gosec // pop3d's self-signed certificate
		if err != nil {
			t.Fatal(err)
		}
		conn.SetDeadline(time.Now().Add(30 * time.Second))
		c, err := smtp.NewClient(conn, "localhost")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if err := c.Hello("client.test"); err != nil {
			t.Fatal(err)
		}
		return c
	}
	c := dial()
	st, _ := c.TLSConnectionState()
	cb, err := st.ExportKeyingMaterial("EXPORTER-Channel-Binding", nil, 32)
	if err != nil {
		t.Fatal(err)
	}
	a := &scramAuth{user: "alice@example.org", pass: alicePass, cb: cb}
	if err := c.Auth(a); err != nil || !a.verified {
		t.Fatalf("SCRAM-SHA-256-PLUS with tls-exporter: %v (server signature verified: %v)", err, a.verified)
	}
	if err := send(c, "alice@example.org", []string{"bob@example.org"}, "From: alice@example.org\r\nSubject: exporter\r\n\r\nbound with tls-exporter\r\n"); err != nil {
		t.Fatalf("sending after SCRAM-SHA-256-PLUS: %v", err)
	}

	c = dial()
	if err := c.Auth(&scramAuth{user: "alice@example.org", pass: alicePass, cb: make([]byte, 32)}); code(err) != 535 {
		t.Fatalf("another channel's tls-exporter data: %v, want 535", err)
	}

	c = smtpClient(t, in.Submission)
	if err := c.Auth(&scramAuth{user: "alice@example.org", pass: alicePass, cb: make([]byte, 32)}); code(err) != 538 {
		t.Fatalf("SCRAM-SHA-256-PLUS without TLS: %v, want 538", err)
	}
	if got := popMessages(t, in, "bob@example.org", bobPass, 1); !strings.Contains(got[0], "bound with tls-exporter") {
		t.Fatalf("bob's message:\n%s", got[0])
	}

	// auth.scram = "off" (live): EHLO offers no SCRAM and AUTH refuses it.
	setKeys(t, in, "auth.scram", "off")
	c = dial()
	if ok, mechs := c.Extension("AUTH"); !ok || strings.Contains(mechs, "SCRAM") || !strings.Contains(mechs, "PLAIN") {
		t.Fatalf("EHLO AUTH with auth.scram off: %v %q", ok, mechs)
	}
	if code, msg := raw(t, c, "AUTH SCRAM-SHA-256 "+base64.StdEncoding.EncodeToString([]byte("n,,n=alice@example.org,r=abc"))); code != 504 {
		t.Fatalf("AUTH SCRAM-SHA-256 with auth.scram off: %d %s, want 504", code, msg)
	}
}

// curl --oauth2-bearer against the submission listener (STARTTLS):
// OAUTHBEARER and XOAUTH2 with tokens the test signs, as POP3 takes them
// with [oauth]; an expired token gets RFC 7628's error JSON, then 535.
func TestSubmissionOAuthWithCurl(t *testing.T) {
	t.Parallel()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	set := jwttest.JWKS(map[string]crypto.PublicKey{"rsa-1": &key.PublicKey})
	jwks := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(jwks, set, 0o600); err != nil {
		t.Fatal(err)
	}
	in := pop3dtest.Start(t, pop3dtest.Config{
		Top:        "logging = 4",
		Auth:       fastHash + "fail_delay = \"20ms\"\npenalty = \"0s\"\npenalty_max = \"0s\"\n",
		Submission: true,
		Setup:      submissionSetup(),
		Tables:     fmt.Sprintf("[oauth]\nissuer = \"https://idp.test\"\naudience = \"mail.test\"\njwks_file = %q\nclaim = \"email\"\n", jwks),
	})
	msg := filepath.Join(t.TempDir(), "msg")
	if err := os.WriteFile(msg, []byte("From: alice@example.org\r\nTo: bob@example.org\r\nSubject: oauth\r\n\r\nsent with a bearer token\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	token := func(exp time.Duration) string {
		return signJWT(t, key, "rsa-1", map[string]any{"iss": "https://idp.test", "aud": "mail.test",
			"exp": time.Now().Add(exp).Unix(), "email": "alice@example.org"})
	}
	for _, tc := range []struct {
		name, mech, token string
		ok                bool
	}{
		{"OAUTHBEARER", "AUTH=OAUTHBEARER", token(time.Hour), true},
		{"XOAUTH2", "AUTH=XOAUTH2", token(time.Hour), true},
		{"expired", "AUTH=OAUTHBEARER", token(-time.Hour), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := runCurl(t, "-v", "--ssl-reqd", "-k", "--user", "alice@example.org:",
				"--oauth2-bearer", tc.token, "--login-options", tc.mech,
				"--mail-from", "alice@example.org", "--mail-rcpt", "bob@example.org",
				"--upload-file", msg, "smtp://"+in.Submission)
			if tc.ok {
				if err != nil || !strings.Contains(out, "< 235 ") || !strings.Contains(out, "< 250 2.0.0 OK: queued as") {
					t.Fatalf("curl: %v\n%.3000s", err, out)
				}
				return
			}
			want := "< 334 " + base64.StdEncoding.EncodeToString([]byte(`{"status":"invalid_token"}`))
			if err == nil || !strings.Contains(out, want) || !strings.Contains(out, "< 535 5.7.8") {
				t.Fatalf("curl with an expired token: %v (want %q, then 535)\n%.3000s", err, want, out)
			}
		})
	}
	msgs := popMessages(t, in, "bob@example.org", bobPass, 2)
	for i, m := range msgs {
		if !strings.Contains(m, "sent with a bearer token") {
			t.Errorf("message %d:\n%s", i+1, m)
		}
	}
}
