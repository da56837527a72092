package main

import (
	"bufio"
	"crypto/tls"
	"encoding/base64"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pop3svc/pop3svc/cmd/pop3d/pop3dtest"
)

// SCRAM-SHA-256 and -PLUS with a client in Python (poplib, hashlib, hmac):
// good and wrong passwords, and channel binding to the TLS connection
// (tls-server-end-point: Python's ssl cannot export keying material).
func TestSCRAMWithPython(t *testing.T) {
	c := integrationConfig(t, "", "", mailbox(2, 300))
	c.TLS = true
	in := pop3dtest.Start(t, c)
	h, port := hostPort(in)
	_, sport, _ := net.SplitHostPort(in.POP3S)
	user := testAddr.String()
	for _, tc := range []struct {
		name, port, pass, mode string
		want                   []string
	}{
		{"good", port, testPassword, "plain", []string{"SASL PLAIN LOGIN CRAM-MD5 NTLM SCRAM-SHA-256\n", "OK +OK maildrop has 2 messages", "STAT 2 "}},
		{"wrong password", port, "wrong", "plain", []string{"ERR -ERR [AUTH] "}},
		{"bound, implicit TLS", sport, testPassword, "tls", []string{"SCRAM-SHA-256 SCRAM-SHA-256-PLUS\n", "OK +OK maildrop has 2 messages"}},
		{"bound, STLS", port, testPassword, "stls", []string{"SCRAM-SHA-256 SCRAM-SHA-256-PLUS\n", "OK +OK maildrop has 2 messages"}},
		{"bound to another channel", sport, testPassword, "tls-badcb", []string{"ERR -ERR [AUTH] "}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := runPyFile(t, "testdata/scram_client.py", h, tc.port, user, tc.pass, tc.mode)
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Fatalf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
}

// SCRAM-SHA-256-PLUS with tls-exporter (RFC 9266) from a Go client over
// implicit TLS: the engine exports the same keying material as the client.
func TestSCRAMPlusTLSExporter(t *testing.T) {
	c := integrationConfig(t, "", "", mailbox(1, 300))
	c.TLS = true
	in := pop3dtest.Start(t, c)
	login := func(cbOverride []byte) string {
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", in.POP3S,
			&tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13}) // pop3d's self-signed certificate
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(30 * time.Second))
		r := bufio.NewReader(conn)
		readLine := func() string {
			l, err := r.ReadString('\n')
			if err != nil {
				t.Fatalf("read: %v", err)
			}
			return strings.TrimRight(l, "\r\n")
		}
		cmd := func(s string) string {
			if _, err := conn.Write([]byte(s + "\r\n")); err != nil {
				t.Fatal(err)
			}
			return readLine()
		}
		readLine() // greeting
		cs := conn.ConnectionState()
		cb, err := cs.ExportKeyingMaterial("EXPORTER-Channel-Binding", nil, 32)
		if err != nil {
			t.Fatal(err)
		}
		if cbOverride != nil {
			cb = cbOverride
		}
		// The SCRAM client of the submission tests (scramAuth) over POP3's
		// AUTH exchange.
		c := &scramAuth{user: testAddr.String(), pass: testPassword, cb: cb}
		mech, first, _ := c.Start(nil)
		resp := cmd("AUTH " + mech + " " + base64.StdEncoding.EncodeToString(first))
		for strings.HasPrefix(resp, "+ ") && !c.verified {
			challenge, err := base64.StdEncoding.DecodeString(resp[2:])
			if err != nil {
				t.Fatalf("challenge %q: %v", resp, err)
			}
			next, err := c.Next(challenge, true)
			if err != nil {
				t.Fatalf("SCRAM client: %v", err)
			}
			resp = cmd(base64.StdEncoding.EncodeToString(next))
		}
		return resp
	}
	if got := login(nil); !strings.HasPrefix(got, "+OK maildrop has 1 messages") {
		t.Fatalf("tls-exporter binding: %q", got)
	}
	if got := login(make([]byte, 32)); !strings.HasPrefix(got, "-ERR [AUTH] ") {
		t.Fatalf("another channel's binding: %q", got)
	}
}

// runPyFile runs a Python script of testdata with args.
func runPyFile(t *testing.T, path string, args ...string) string {
	t.Helper()
	abs, err := filepath.Abs(path)
	if err != nil {
		t.Fatal(err)
	}
	return runPyArgs(t, append([]string{abs}, args...)...)
}
