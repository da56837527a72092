package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/pop3svc/pop3svc/cmd/pop3d/pop3dtest"
	"github.com/pop3svc/pop3svc/store"
)

// passwdFile reads a mailbox's password file in the file store under in.
func passwdFile(t *testing.T, in *pop3dtest.Server, a store.Address) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(in.Dir, "mailroot", a.Domain, "P3_"+a.Mailbox+".mbx", "passwd"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

var apopTimestamp = regexp.MustCompile(`<[^<>@]+@[^<>]+>`)

// challengeOffers reports what a new connection offers of the
// challenge-response mechanisms: the APOP timestamp in the greeting, and
// CRAM-MD5 and NTLM in CAPA's SASL line.
func challengeOffers(t *testing.T, in *pop3dtest.Server, ip string) string {
	t.Helper()
	p := pop3dtest.DialRaw(t, in.POP3, ip)
	defer p.Close()
	var got []string
	if apopTimestamp.MatchString(p.Expect("+OK")) {
		got = append(got, "APOP")
	}
	p.Send("CAPA\r\n")
	p.Expect("+OK")
	for _, l := range p.Multi() {
		f := strings.Fields(l)
		if len(f) > 0 && f[0] == "SASL" {
			for _, m := range f[1:] {
				if m == "CRAM-MD5" || m == "NTLM" {
					got = append(got, m)
				}
			}
		}
	}
	p.Cmd("QUIT")
	if len(got) == 0 {
		return "no challenge mechanisms"
	}
	return strings.Join(got, " ")
}

// With auth.reversible_secrets off (set on a running pop3d and reloaded),
// the file store keeps no sealed secret: alice's password file loses hers
// at her next plaintext login, a mailbox pop3ctl adds never has one, and
// neither APOP (no greeting timestamp), CRAM-MD5 nor NTLM is offered or
// accepted. Logins with USER/PASS and SCRAM go on working.
func TestReversibleSecretsOff(t *testing.T) {
	t.Parallel()
	c := integrationConfig(t, "", "", mailbox(1, 300))
	c.Auth += "\ncache_ttl = \"0s\"\nscram = \"on\""
	in := pop3dtest.Start(t, c)
	if got := challengeOffers(t, in, ""); got != "APOP CRAM-MD5 NTLM" {
		t.Fatalf("with the defaults a connection offers %q, want APOP CRAM-MD5 NTLM", got)
	}
	if f := passwdFile(t, in, testAddr); !strings.Contains(f, `"sealed":`) {
		t.Fatalf("alice's password file has no sealed secret to begin with:\n%s", f)
	}

	setKeys(t, in, "auth.reversible_secrets", "false")
	if got := challengeOffers(t, in, ""); got != "no challenge mechanisms" {
		t.Fatalf("after the reload a connection offers %q", got)
	}
	p := pop3dtest.Dial(t, in.POP3, "")
	if r := p.Cmd("APOP " + testAddr.String() + " 0123456789abcdef0123456789abcdef"); !strings.HasPrefix(r, "-ERR") {
		t.Errorf("APOP: %q, want -ERR", r)
	}
	if r := p.Cmd("AUTH CRAM-MD5"); !strings.HasPrefix(r, "-ERR") {
		t.Errorf("AUTH CRAM-MD5: %q, want -ERR", r)
	}
	if r := p.Cmd("AUTH NTLM"); !strings.HasPrefix(r, "-ERR") {
		t.Errorf("AUTH NTLM: %q, want -ERR", r)
	}
	p.Close()

	if r := loginAs(t, in, "127.0.0.1", testAddr.String(), testPassword); r != "+OK" {
		t.Fatalf("USER/PASS after the reload: %q", r)
	}
	f := passwdFile(t, in, testAddr)
	if strings.Contains(f, `"sealed"`) || strings.Contains(f, `"nonce"`) || !strings.Contains(f, `"scram":`) {
		t.Fatalf("alice's password file after her login keeps a sealed secret or lost its SCRAM keys:\n%s", f)
	}
	if r := loginAs(t, in, "127.0.0.1", testAddr.String(), testPassword); r != "+OK" {
		t.Fatalf("USER/PASS with the rewritten record: %q", r)
	}
	out := runPyFile(t, "testdata/scram_client.py", strings.Split(in.POP3, ":")[0], strings.Split(in.POP3, ":")[1],
		testAddr.String(), testPassword, "plain")
	if !strings.Contains(out, "SASL PLAIN LOGIN SCRAM-SHA-256\n") || !strings.Contains(out, "OK +OK") {
		t.Fatalf("SCRAM with the rewritten record:\n%s", out)
	}

	bob := store.Address{Mailbox: "bob", Domain: testAddr.Domain}
	in.Ctl(t, "", "add", bob.String(), "-password", "bob-Passw0rd")
	if f := passwdFile(t, in, bob); strings.Contains(f, `"sealed"`) || !strings.Contains(f, `"scram":`) {
		t.Fatalf("a mailbox added with reversible secrets off has a sealed secret or no SCRAM keys:\n%s", f)
	}
	if r := loginAs(t, in, "127.0.0.1", bob.String(), "bob-Passw0rd"); r != "+OK" {
		t.Fatalf("bob's login: %q", r)
	}
}
