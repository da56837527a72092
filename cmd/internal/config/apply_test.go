package config

import (
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the README's reload table")

// TestEveryKeyTagged: every key of Config is tagged live or restart, once,
// in file order, and the table names no key Config lacks. Adding a field
// to Config without a tag fails here.
func TestEveryKeyTagged(t *testing.T) {
	var tagged []string
	for _, a := range applies {
		if a.When != Live && a.When != Restart {
			t.Errorf("%s: tagged %q, want live or restart", a.Key, a.When)
		}
		if len(a.Desc) < 10 || !strings.HasSuffix(a.Desc, ".") {
			t.Errorf("%s: no description (a sentence that ends with a full stop): %q", a.Key, a.Desc)
		}
		if a.When == Restart && a.Why == "" {
			t.Errorf("%s: restart without saying why", a.Key)
		}
		tagged = append(tagged, a.Key)
	}
	keys := Keys()
	for _, k := range keys {
		if !slices.Contains(tagged, k) {
			t.Errorf("key %s is not in the live/restart table (apply.go)", k)
		}
	}
	for _, k := range tagged {
		if !slices.Contains(keys, k) {
			t.Errorf("the live/restart table names %s, which is no key of Config", k)
		}
	}
	if !slices.Equal(tagged, keys) {
		t.Errorf("the live/restart table is not in file order or has a key twice:\n%v\nwant\n%v", tagged, keys)
	}
}

func TestApplies(t *testing.T) {
	for _, c := range []struct {
		key  string
		want When
		ok   bool
	}{
		{"pop3.listen", Restart, true},
		{"port", Restart, true},
		{"sparequired", Live, true},
		{"SMTP.Max_Line", Live, true},
		{"admin.listen", Restart, true},
		{"nosuch.key", "", false},
	} {
		if w, ok := Applies(c.key); w != c.want || ok != c.ok {
			t.Errorf("Applies(%q) = %q, %v; want %q, %v", c.key, w, ok, c.want, c.ok)
		}
	}
}

// TestRestartChanges: only restart keys are reported, each once, in file
// order; an empty list and a missing one are the same.
func TestRestartChanges(t *testing.T) {
	old := Default()
	if got := RestartChanges(old, Default()); len(got) != 0 {
		t.Fatalf("RestartChanges(defaults, defaults) = %v", got)
	}
	n := Default()
	n.POP3.ListenTLS = []string{"127.0.0.1:9951"}
	n.POP3.ListenBacklog = 50
	n.Admin.Listen = "127.0.0.1:8111"
	n.MailRoot = "elsewhere"
	n.SMTP.LMTPListen = nil // was [], the same
	n.SMTP.MaxLine = 5000   // live
	n.Auth.SPARequired = true
	got := RestartChanges(old, n)
	want := []string{"mailroot", "pop3.listen_tls", "pop3.listen_backlog", "admin.listen"}
	if !slices.Equal(got, want) {
		t.Fatalf("RestartChanges = %v, want %v", got, want)
	}
}

func TestRestartNotice(t *testing.T) {
	if RestartNotice(nil) != "" {
		t.Error("RestartNotice(nil) is not empty")
	}
	if got := RestartNotice([]string{"pop3.listen"}); !strings.Contains(got, "the change to pop3.listen takes effect only when the service restarts") {
		t.Errorf("RestartNotice(one) = %q", got)
	}
	if got := RestartNotice([]string{"pop3.listen", "admin.listen"}); !strings.Contains(got, "the changes to pop3.listen, admin.listen take effect only") {
		t.Errorf("RestartNotice(two) = %q", got)
	}
}

const (
	readmeBegin = "<!-- BEGIN reload table: generated from the configuration package by `go generate ./...`; do not edit -->\n"
	readmeEnd   = "<!-- END reload table -->"
)

// TestReadmeReloadTable fails when the README's reload table is not what
// ReloadTable renders; with -update (go generate) it rewrites it.
func TestReadmeReloadTable(t *testing.T) {
	readmeBlock(t, readmeBegin, readmeEnd, ReloadTable())
}

// The README's settings reference, generated from the same table.
const (
	settingsBegin = "<!-- BEGIN settings table: generated from the configuration package by `go generate ./...`; do not edit -->\n"
	settingsEnd   = "<!-- END settings table -->"
)

// TestReadmeSettingsTable fails when the README's settings reference is
// not what SettingsTable renders; with -update (go generate) it rewrites it.
func TestReadmeSettingsTable(t *testing.T) {
	readmeBlock(t, settingsBegin, settingsEnd, SettingsTable())
}

// readmeBlock checks, or with -update rewrites, the generated text
// between begin and end in the README.
func readmeBlock(t *testing.T, readmeBegin, readmeEnd, body string) {
	t.Helper()
	path := readmePath(t)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	i := strings.Index(text, readmeBegin)
	j := strings.Index(text, readmeEnd)
	if i < 0 || j < i {
		t.Fatalf("%s has no generated table between %q and %q", path, strings.TrimSpace(readmeBegin), readmeEnd)
	}
	want := text[:i] + readmeBegin + body + text[j:]
	if want == text {
		return
	}
	if *update {
		if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Fatalf("the README's generated table %q is stale: run go generate ./... (or go test -run 'TestReadme(Reload|Settings)Table' -update in this folder)", strings.TrimSpace(readmeBegin))
}

// readmePath is the README.md beside go.mod, above this folder.
func readmePath(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, "README.md")
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test's folder")
		}
		dir = parent
	}
}
