package console

import (
	"bytes"
	"context"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"
	"golang.org/x/net/html/atom"

	"github.com/pop3svc/pop3svc/cmd/pop3d/pop3dtest"
	"github.com/pop3svc/pop3svc/store"
)

// TestConsoleInBrowser loads the console's pages in headless Chromium and
// checks what a person would see: the page as the browser built it
// (--dump-dom) shows the status counters, the settings table, the domain
// and mailbox lists with their numbers, and every form carries the
// anti-CSRF token. It keeps a screenshot of each page as well; set
// CONSOLE_SCREENSHOTS=DIR to keep them after the test.
func TestConsoleInBrowser(t *testing.T) {
	browser := pop3dtest.NeedTool(t, "chromium")
	e := newConsoleEnv(t, "")
	ctx := context.Background()
	if err := e.st.CreateDomain(ctx, "example.com"); err != nil {
		t.Fatal(err)
	}
	if err := e.st.CreateDomain(ctx, "locked.example"); err != nil {
		t.Fatal(err)
	}
	if err := e.st.LockDomain(ctx, "locked.example"); err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"alice", "bob"} {
		a := store.Address{Mailbox: m, Domain: "example.com"}
		if err := e.st.CreateMailbox(ctx, a, "pw"); err != nil {
			t.Fatal(err)
		}
		if _, err := e.st.Deliver(ctx, a, strings.NewReader("Subject: hi\r\n\r\nhello\r\n")); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.st.SetQuota(ctx, store.Address{Mailbox: "alice", Domain: "example.com"}, 50<<20); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(e.h) // loopback
	defer srv.Close()
	out := os.Getenv("CONSOLE_SCREENSHOTS")
	if out == "" {
		out = t.TempDir()
	}
	chromium := func(args ...string) []byte {
		t.Helper()
		cctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		// As root (CI containers) Chromium runs only without its sandbox.
		base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
			"--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
			"--user-data-dir=" + t.TempDir(), "--window-size=1280,900"}
		cmd := exec.CommandContext(cctx, browser, append(base, args...)...)
		cmd.WaitDelay = 5 * time.Second
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("chromium %v: %v\n%s", args, err, stderr.Bytes())
		}
		return stdout.Bytes()
	}
	load := func(path string) *html.Node {
		t.Helper()
		dom := chromium("--dump-dom", srv.URL+path)
		doc, err := html.Parse(bytes.NewReader(dom))
		if err != nil {
			t.Fatalf("%s: the browser's DOM does not parse: %v", path, err)
		}
		if title := textOf(first(doc, atom.Title)); !strings.HasSuffix(title, "POP3 Service console") {
			t.Errorf("%s: title %q", path, title)
		}
		// Every form that changes something carries the token.
		forms := all(doc, atom.Form)
		for _, f := range forms {
			if attr(f, "method") != "post" {
				continue
			}
			if got := hiddenValue(f, "csrf"); got != e.c.token {
				t.Errorf("%s: form %s has csrf %q, want the console's token", path, attr(f, "action"), got)
			}
		}
		return doc
	}

	t.Run("server", func(t *testing.T) {
		doc := load("/console/")
		kv := map[string]string{}
		for _, tb := range all(doc, atom.Table) {
			if attr(tb, "class") == "kv" {
				for _, r := range rows(tb) {
					if len(r) == 2 {
						kv[r[0]] = r[1]
					}
				}
			}
		}
		for _, k := range []string{"Process uptime", "Queue (waiting for delivery)", "Badmail"} {
			if kv[k] == "" {
				t.Errorf("status counter %q missing or empty (status: %q)", k, kv)
			}
		}
		if kv["Queue (waiting for delivery)"] != "0" || kv["Badmail"] != "0" {
			t.Errorf("queue and badmail counters %q and %q, want 0 and 0", kv["Queue (waiting for delivery)"], kv["Badmail"])
		}
		settings := map[string]string{}
		for _, tb := range all(doc, atom.Table) {
			if attr(tb, "class") == "list" {
				for _, r := range rows(tb)[1:] {
					settings[r[0]] = r[1]
				}
			}
		}
		if len(settings) < 10 {
			t.Fatalf("settings table has %d rows: %q", len(settings), settings)
		}
		// The form offers every setting that the table lists.
		var options []string
		for _, o := range all(doc, atom.Option) {
			options = append(options, attr(o, "value"))
		}
		for k := range settings {
			if !contains(options, k) {
				t.Errorf("setting %q is listed but cannot be chosen in the form", k)
			}
		}
		if v, ok := settings["logging"]; !ok || v != "3" {
			t.Errorf("setting logging shows %q (listed %v), want 3 from the file", v, ok)
		}
	})

	t.Run("domains", func(t *testing.T) {
		doc := load("/console/domains")
		got := map[string][]string{}
		for _, r := range listRows(doc) {
			got[r[0]] = r
		}
		want := map[string][]string{
			// Domain, Mailboxes, Messages, (Size), State
			"example.com":    {"example.com", "2", "2", "", "unlocked"},
			"locked.example": {"locked.example", "0", "0", "", "locked"},
		}
		for d, w := range want {
			r := got[d]
			if len(r) < 5 || r[1] != w[1] || r[2] != w[2] || r[4] != w[4] {
				t.Errorf("domain row %q = %q, want mailboxes %s, messages %s, %s", d, r, w[1], w[2], w[4])
			}
		}
		if len(got) != len(want) {
			t.Errorf("domain rows %q, want %d", got, len(want))
		}
	})

	t.Run("mailboxes", func(t *testing.T) {
		doc := load("/console/domains/example.com")
		got := map[string][]string{}
		for _, r := range listRows(doc) {
			got[r[0]] = r
		}
		for _, m := range []string{"alice@example.com", "bob@example.com"} {
			// Mailbox, Messages, Size, Quota, In use, Locked, Password
			r := got[m]
			if len(r) < 7 || r[1] != "1" || r[4] != "no" || r[5] != "no" || r[6] != "yes" {
				t.Errorf("mailbox row %q = %q, want 1 message, not in use, not locked, with a password", m, r)
			}
		}
		if r := got["alice@example.com"]; len(r) < 4 || !strings.Contains(r[3], "50") {
			t.Errorf("alice's quota shows %q, want 50 MB", r)
		}
		if len(got) != 2 {
			t.Errorf("mailbox rows %q, want 2", got)
		}
	})

	// The pictures, for a person to look at.
	for _, p := range []struct{ name, path string }{{"server", "/console/"}, {"domains", "/console/domains"}, {"mailboxes", "/console/domains/example.com"}} {
		png := filepath.Join(out, "console-"+p.name+".png")
		chromium("--screenshot="+png, srv.URL+p.path)
		data, err := os.ReadFile(png)
		if err != nil || len(data) < 1000 || !bytes.HasPrefix(data, []byte("\x89PNG\r\n\x1a\n")) {
			t.Errorf("%s: screenshot of %d bytes, err %v", p.path, len(data), err)
		}
	}
}

// all returns the elements a under n, in document order.
func all(n *html.Node, a atom.Atom) []*html.Node {
	var out []*html.Node
	for d := range n.Descendants() {
		if d.Type == html.ElementNode && d.DataAtom == a {
			out = append(out, d)
		}
	}
	return out
}

func first(n *html.Node, a atom.Atom) *html.Node {
	if l := all(n, a); len(l) > 0 {
		return l[0]
	}
	return nil
}

func attr(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

// textOf is the text a person reads in n, spaces collapsed.
func textOf(n *html.Node) string {
	if n == nil {
		return ""
	}
	var b strings.Builder
	for d := range n.Descendants() {
		if d.Type == html.TextNode {
			b.WriteString(d.Data)
			b.WriteByte(' ')
		}
	}
	return strings.Join(strings.Fields(b.String()), " ")
}

// rows returns the text of each cell, row by row.
func rows(table *html.Node) [][]string {
	var out [][]string
	for _, tr := range all(table, atom.Tr) {
		var r []string
		for c := tr.FirstChild; c != nil; c = c.NextSibling {
			if c.Type == html.ElementNode && (c.DataAtom == atom.Td || c.DataAtom == atom.Th) {
				r = append(r, textOf(c))
			}
		}
		out = append(out, r)
	}
	return out
}

// listRows returns the body rows of the page's list tables.
func listRows(doc *html.Node) [][]string {
	var out [][]string
	for _, tb := range all(doc, atom.Table) {
		if attr(tb, "class") != "list" {
			continue
		}
		for _, body := range all(tb, atom.Tbody) {
			out = append(out, rows(body)...)
		}
	}
	return out
}

// hiddenValue is the value of the hidden input called name in form f.
func hiddenValue(f *html.Node, name string) string {
	for _, in := range all(f, atom.Input) {
		if attr(in, "type") == "hidden" && attr(in, "name") == name {
			return attr(in, "value")
		}
	}
	return ""
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}
