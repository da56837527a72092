package main_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pop3svc/pop3svc/store"
	"github.com/pop3svc/pop3svc/store/credential"
	"github.com/pop3svc/pop3svc/store/filestore"
)

// changepwd -hash takes a SHA-512-crypt or bcrypt hash brought from
// another system (made with openssl passwd -6 and htpasswd -B) and the
// mailbox logs in with its password; anything else is refused. A password
// set with -password takes the hash auth.hash names.
func TestChangepwdHash(t *testing.T) {
	e := newEnv(t, "[auth]\nhash = \"sha512-crypt\"\nsha512_rounds = 1000\n")
	e.ok("", "add", "example.test")
	e.ok("", "add", "alice@example.test")
	e.ok("", "add", "bob@example.test")
	e.ok("", "add", "carol@example.test")
	e.ok("", "changepwd", "alice@example.test", "-hash",
		"$6$Zq1w2e3r4t5y6u7i$TbgFDEeCU7r9WTS8mxcYUU7b4MOMcYcsG1u7G06JQtxHuKnyVYgXYBdKWZq1ijhG75TGzPaRYEuk/RAax3Yna1")
	e.ok("", "changepwd", "bob@example.test", "-hash", "$2y$05$AWRL5FnLtrMJlaa31.GX5OBjPkCeZXxKcD7F8Ygfn2uezKQC1ipSC")
	e.ok("", "changepwd", "carol@example.test", "-password", "s3cret")
	e.refused("not a bcrypt or SHA-512-crypt hash", "changepwd", "bob@example.test", "-hash", "$1$abc$def")
	for _, args := range [][]string{
		{"changepwd", "bob@example.test", "-hash", "$6$x", "-password", "y"},
		{"add", "dave@example.test", "-hash", "$6$x"},
	} {
		if r := e.run("", args...); r.code != 2 {
			t.Errorf("pop3ctl %v: exit %d (%q), want 2", args, r.code, r.stderr)
		}
	}

	hp := credential.HashParams{Alg: credential.AlgSHA512Crypt, SHA512Rounds: 1000}
	st, err := filestore.Open(filepath.Join(e.dir, "mail"), filestore.Options{Node: 42, Hash: hp})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	for _, c := range []struct{ user, pw string }{{"alice", "Tr0ub4dor&3"}, {"bob", "correct horse"}, {"carol", "s3cret"}} {
		a := store.Address{Mailbox: c.user, Domain: "example.test"}
		if err := st.VerifyPassword(ctx, a, c.pw+"!"); !errors.Is(err, store.ErrAuthFailed) {
			t.Errorf("%s wrong password = %v", a, err)
		}
		if err := st.VerifyPassword(ctx, a, c.pw); err != nil {
			t.Errorf("%s right password = %v", a, err)
		}
		b, err := os.ReadFile(filepath.Join(e.dir, "mail", "example.test", "P3_"+c.user+".mbx", filestore.PasswdName))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), `"crypt":"$6$rounds=1000$`) || !strings.Contains(string(b), `"sealed"`) {
			t.Errorf("%s's password file after a login is not SHA-512-crypt with 1000 rounds and sealed secrets: %s", a, b)
		}
	}
}
