package main

import (
	"context"
	"strings"
	"testing"

	"github.com/pop3svc/pop3svc/store"
)

const utf8Script = `
import poplib, sys, unicodedata
host, port, user, password = sys.argv[1:5]
p = poplib.POP3(host, int(port), timeout=20)
caps = p.capa()
print("CAPA", "UTF8" in caps, caps.get("UTF8"), "LANG" in caps)
print("UTF8", p.utf8().decode())
print("LANG", p._shortcmd("LANG fr").decode())
p.user(user)
try:
    print("PASS", p.pass_(unicodedata.normalize("NFD", password)).decode())
    print("STAT %d %d" % p.stat())
except poplib.error_proto as e:
    print("PASS", e.args[0].decode())
p.quit()
`

// UTF-8 user names and passwords through Python's poplib utf8(): the
// domain given in U-labels is the store's A-label domain, and the password
// typed in another Unicode normalization form is the same password.
func TestUTF8LoginWithPoplib(t *testing.T) {
	box := store.Address{Mailbox: "alice", Domain: "xn--bcher-kva.example"}
	in := startPop3d(t, "", "", func(ctx context.Context, st store.Store) {
		if err := st.CreateDomain(ctx, box.Domain); err != nil {
			panic(err)
		}
		if err := st.CreateMailbox(ctx, box, "p\u00e4ssw\u00f6rd"); err != nil {
			panic(err)
		}
		if _, err := st.Deliver(ctx, box, strings.NewReader("Subject: gr\u00fc\u00dfe\r\n\r\nhallo\r\n")); err != nil {
			panic(err)
		}
	})
	h, port := hostPort(in)
	out := runPy(t, utf8Script, h, port, "alice@b\u00fccher.example", "p\u00e4ssw\u00f6rd")
	for _, want := range []string{
		"CAPA True ['USER'] True",
		"UTF8 +OK UTF8 enabled",
		"LANG +OK fr Langue changée : français",
		"PASS +OK la boîte contient 1 messages",
		"STAT 1 ",
	} {
		if !strings.Contains(out, want) {
			t.Fatalf("poplib output lacks %q:\n%s", want, out)
		}
	}
	out = runPy(t, utf8Script, h, port, "alice@b\u00fccher.example", "passw\u00f6rd")
	if !strings.Contains(out, "PASS -ERR [AUTH] nom d'utilisateur ou mot de passe incorrect") {
		t.Fatalf("a wrong password:\n%s", out)
	}
}
