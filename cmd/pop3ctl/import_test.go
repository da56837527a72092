package main_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/pop3svc/pop3svc/cmd/pop3d/pop3dtest"
	"github.com/pop3svc/pop3svc/store"
	"github.com/pop3svc/pop3svc/store/filestore"
	"github.com/pop3svc/pop3svc/store/migrate"
)

// uidsOf lists a mailbox's UIDs under the env's mail root.
func (e *env) uidsOf(a store.Address) []string {
	e.t.Helper()
	st, err := filestore.Open(filepath.Join(e.dir, "mail"), filestore.Options{Node: 99})
	if err != nil {
		e.t.Fatal(err)
	}
	defer st.Close()
	snap, err := st.Snapshot(context.Background(), a)
	if err != nil {
		e.t.Fatal(err)
	}
	var u []string
	for _, m := range snap.Messages() {
		u = append(u, m.UID)
	}
	return u
}

func (e *env) importJSON(args ...string) map[string]any {
	e.t.Helper()
	r := e.run("", append([]string{"-json", "import"}, args...)...)
	var v map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &v); err != nil {
		e.t.Fatalf("import %v: exit %d, %v\n%s\n%s", args, r.code, err, r.stdout, r.stderr)
	}
	v["exit"] = float64(r.code)
	return v
}

// TestImportMboxAndWindowsStore: an mbox keeps its X-UIDLs (a UIDL
// outside RFC 1939's rules is substituted and reported), a Windows POP3
// Service mail root keeps its message names as UIDLs; second runs import
// nothing; -verify reports a message missing from the new mailbox.
func TestImportMboxAndWindowsStore(t *testing.T) {
	e := newEnv(t, "")
	mbox := filepath.Join(e.dir, "old.mbox")
	text := "From a@b Mon Jan  1 00:00:00 2024\nX-UIDL: old-1\nSubject: one\n\n>From quoted\n\n" +
		"From a@b Mon Jan  1 00:00:01 2024\nX-UIDL: has space\nSubject: two\n\ntwo\n\n" +
		"From a@b Mon Jan  1 00:00:02 2024\nSubject: three\n\nthree\n"
	if err := os.WriteFile(mbox, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	v := e.importJSON("mbox", mbox, "alice@example.test", "-verify")
	if v["exit"] != 0.0 || v["imported"] != 3.0 {
		t.Fatalf("import mbox: %v", v)
	}
	a := store.Address{Mailbox: "alice", Domain: "example.test"}
	got := e.uidsOf(a)
	if len(got) != 3 || got[0] != "old-1" || got[1] != migrate.SubstituteUIDL("has space") || !strings.HasPrefix(got[2], migrate.MboxUIDLPrefix) {
		t.Fatalf("mbox UIDs %q", got)
	}
	if v := e.importJSON("mbox", mbox, "alice@example.test"); v["imported"] != 0.0 {
		t.Fatalf("second import mbox: %v", v)
	}
	out := e.ok("", "import", "mbox", mbox, "alice@example.test")
	if !strings.Contains(out, `old UIDL "has space" breaks RFC 1939's rules`) || !strings.Contains(out, "IMPORTED") {
		t.Fatalf("summary:\n%s", out)
	}

	// A Windows POP3 Service mail root, copied as it is.
	win := filepath.Join(e.dir, "winroot")
	names := []string{"20030105120000000000000001", "20030105120000000000000002"}
	for i, n := range names {
		p := filepath.Join(win, "Example.Test", "P3_Bob.mbx", "P3_"+n+".eml")
		os.MkdirAll(filepath.Dir(p), 0o700)
		os.WriteFile(p, []byte("Subject: w"+strings.Repeat("x", i)+"\r\n\r\nbody\r\n"), 0o600)
	}
	os.WriteFile(filepath.Join(win, "Example.Test", "P3_Bob.mbx", "lock"), nil, 0o600)
	v = e.importJSON("store", win, "-verify")
	if v["exit"] != 0.0 || v["imported"] != 2.0 {
		t.Fatalf("import store: %v", v)
	}
	b := store.Address{Mailbox: "bob", Domain: "example.test"}
	if got := e.uidsOf(b); !slices.Equal(got, names) {
		t.Fatalf("Windows store UIDs %q, want %q", got, names)
	}
	if v := e.importJSON("store", win); v["imported"] != 0.0 {
		t.Fatalf("second import store: %v", v)
	}
	// The last message, deleted from the new mailbox, comes back with the next
	// run; a delivery after the move is reported, not failed.
	st, err := filestore.Open(filepath.Join(e.dir, "mail"), filestore.Options{Node: 99})
	if err != nil {
		t.Fatal(err)
	}
	ms, err := st.OpenSession(context.Background(), b, "test")
	if err != nil {
		t.Fatal(err)
	}
	if err := ms.Commit(context.Background(), []int{1}); err != nil {
		t.Fatal(err)
	}
	st.Close()
	newUID := strings.TrimSpace(e.ok("Subject: new\n\nnew\n", "deliver", "bob@example.test"))
	r := e.run("", "import", "store", win, "-verify")
	if r.code != 0 || !strings.Contains(r.stdout, "bob@example.test  2    1") || !strings.Contains(r.stdout, `UIDL "`+newUID+`" is only in the new mailbox`) {
		t.Fatalf("import store after a deletion and a delivery: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	// The old message changed: -verify reports the size, exit 1.
	os.WriteFile(filepath.Join(win, "Example.Test", "P3_Bob.mbx", "P3_"+names[0]+".eml"), []byte("x\r\n"), 0o600)
	r = e.run("", "import", "store", win, "-verify")
	if r.code != 1 || !strings.Contains(r.stdout, `UIDL "`+names[0]+`" has 3 octets in the old mailbox and 20 in the new`) {
		t.Fatalf("verify of a changed message: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	// Usage errors.
	for _, args := range [][]string{{"import"}, {"import", "tape", "x"}, {"import", "mbox", mbox}, {"import", "pop3", "a@example.test"}, {"import", "mbox", mbox, "a@example.test", "-tls"}} {
		if r := e.run("", args...); r.code != 2 {
			t.Errorf("%v: exit %d, want 2 (%s)", args, r.code, r.stderr)
		}
	}
}

// TestImportPOP3OverTLS: import pop3 over STLS and over POP3S (pop3d's
// own self-signed certificate, accepted with -insecure and refused
// without), leaving the old mailbox as it was.
func TestImportPOP3OverTLS(t *testing.T) {
	srv := pop3dtest.Start(t, pop3dtest.Config{TLS: true, Setup: [][]string{
		{"add", "example.test"},
		{"add", "alice@example.test", "-password", "pw-alice"},
	}})
	for i := 0; i < 5; i++ {
		srv.Ctl(t, fmt.Sprintf("Subject: %d\n\n.dot line %d\n", i, i), "deliver", "alice@example.test")
	}
	want := listing(t, srv.POP3, "alice@example.test", "pw-alice")
	for _, c := range []struct {
		box  string
		args []string
	}{
		{"bob@example.test", []string{"-from", srv.POP3, "-stls", "-insecure"}},
		{"carol@example.test", []string{"-from", srv.POP3S, "-tls", "-insecure"}},
	} {
		args := append(append([]string{"pop3"}, c.args...), "-user", "alice@example.test", "-password-stdin", "-verify", c.box)
		if sum := ctlImport(t, srv, "pw-alice\n", args...); sum.Imported != 5 {
			t.Fatalf("import %v: %+v", c.args, sum)
		}
		srv.Ctl(t, "", "changepwd", c.box, "-password", "pw-alice")
		if got := listing(t, srv.POP3, c.box, "pw-alice"); !slices.Equal(got, want) {
			t.Fatalf("%s: %q, want %q", c.box, got, want)
		}
	}
	if got := listing(t, srv.POP3, "alice@example.test", "pw-alice"); !slices.Equal(got, want) {
		t.Fatalf("the old mailbox changed: %q", got)
	}
	// Without -insecure the self-signed certificate is refused.
	out, err := srv.TryCtl("pw-alice\n", "import", "pop3", "-from", srv.POP3S, "-tls", "-user", "alice@example.test", "-password-stdin", "dave@example.test")
	if err == nil || !strings.Contains(out, "certificate") {
		t.Fatalf("an unverified certificate was accepted: %v\n%s", err, out)
	}
	if out := srv.Ctl(t, "", "list", "example.test"); strings.Contains(out, "dave") {
		t.Fatalf("a failed import created its mailbox:\n%s", out)
	}
}
