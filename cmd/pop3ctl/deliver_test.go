package main_test

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pop3svc/pop3svc/store"
	"github.com/pop3svc/pop3svc/store/filestore"
)

// mailbox reads every message of a mailbox under the env's mail root.
func (e *env) mailbox(a store.Address) []string {
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
	var out []string
	for i := range snap.Messages() {
		rc, err := snap.Open(i)
		if err != nil {
			e.t.Fatal(err)
		}
		b, _ := io.ReadAll(rc)
		rc.Close()
		out = append(out, string(b))
	}
	return out
}

// TestDeliverForMTAs: deliver's exit statuses follow sysexits, a leading
// mbox From line goes, and Return-Path and Delivered-To are added.
func TestDeliverForMTAs(t *testing.T) {
	e := newEnv(t, "")
	e.ok("", "add", "example.test")
	e.ok("", "add", "alice@example.test")
	a := store.Address{Mailbox: "alice", Domain: "example.test"}

	e.ok("From sender@example.org Mon Jan  1 00:00:00 2024\nSubject: hi\n\nbody\nFrom inside stays\n",
		"deliver", "alice@example.test", "-return-path", "sender@example.org", "-delivered-to", "alice@example.test")
	got := e.mailbox(a)
	want := "Return-Path: <sender@example.org>\r\nDelivered-To: alice@example.test\r\nSubject: hi\r\n\r\nbody\r\nFrom inside stays\r\n"
	if len(got) != 1 || got[0] != want {
		t.Fatalf("delivered %q, want %q", got, want)
	}
	e.ok("Subject: plain\n\nx\n", "deliver", "alice@example.test")
	if got := e.mailbox(a); len(got) != 2 || got[1] != "Subject: plain\r\n\r\nx\r\n" {
		t.Fatalf("without options: %q", got)
	}

	for _, c := range []struct {
		name  string
		code  int
		stdin string
		args  []string
	}{
		{"unknown mailbox", 67, "x\n", []string{"deliver", "nobody@example.test"}},
		{"unknown domain", 67, "x\n", []string{"deliver", "alice@nowhere.test"}},
		{"invalid name", 67, "x\n", []string{"deliver", "a/b@example.test"}},
		{"missing file", 74, "", []string{"deliver", "alice@example.test", filepath.Join(e.dir, "missing.eml")}},
		{"two lines in a header option", 64, "x\n", []string{"deliver", "alice@example.test", "-delivered-to", "a\nb"}},
		{"no mailbox", 64, "x\n", []string{"deliver"}},
	} {
		if r := e.run(c.stdin, c.args...); r.code != c.code {
			t.Errorf("%s: exit %d (%q), want %d", c.name, r.code, r.stderr, c.code)
		}
	}
	e.ok("", "quota", "alice@example.test", "100B")
	if r := e.run(strings.Repeat("x", 200)+"\n", "deliver", "alice@example.test"); r.code != 73 {
		t.Errorf("over quota: exit %d, want 73", r.code)
	}
	// A store that cannot be opened now: temporary, the MTA retries.
	bad := newEnv(t, "")
	if err := os.WriteFile(filepath.Join(bad.dir, "mail"), []byte("not a folder"), 0o600); err != nil {
		t.Fatal(err)
	}
	if r := bad.run("x\n", "deliver", "alice@example.test"); r.code != 75 {
		t.Errorf("broken store: exit %d (%q), want 75", r.code, r.stderr)
	}
	if got := e.mailbox(a); len(got) != 2 {
		t.Fatalf("refused deliveries stored messages: %d", len(got))
	}
}
