package main

//go:generate go test -run TestManPagesCurrent -update

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pop3svc/pop3svc/cmd/internal/manpage"
)

var update = flag.Bool("update", false, "rewrite the man pages in debian/man")

// pop3dPage is pop3d(8), made from pop3d's flag set.
func pop3dPage() manpage.Page {
	fs, _ := newFlags()
	var opts strings.Builder
	fs.VisitAll(func(f *flag.Flag) {
		term := "-" + f.Name
		if name, _ := flag.UnquoteUsage(f); name != "" {
			term += " " + name
		}
		opts.WriteString(manpage.Item(term, f.Usage))
	})
	return manpage.Page{
		Name: "pop3d", Section: "8", Summary: "POP3 mail service with SMTP/LMTP delivery and an admin API",
		Sections: []manpage.Section{
			{Title: "Synopsis", Text: manpage.Verbatim("pop3d [-config FILE] [-demo]\npop3d -check [-config FILE]\npop3d -version")},
			{Title: "Description", Text: manpage.Para(`pop3d runs, in one process, the POP3 service (RFC 1939 with CAPA, SASL, STLS and POP3S), the SMTP and LMTP receiver, the delivery service that writes received mail into the mail store, and the admin listener (admin API, browser console, Prometheus metrics at /metrics).

Under systemd (Type=notify) pop3d reports READY=1 once every listener is bound, RELOADING=1 with MONOTONIC_USEC and then READY=1 around every reload, and STOPPING=1 when it drains.

The Debian package runs it as the user pop3d with only CAP_NET_BIND_SERVICE; it never creates a mailbox: add domains and mailboxes with pop3ctl(8).`)},
			{Title: "Options", Text: opts.String()},
			{Title: "Signals", Text: manpage.Item("SIGHUP", "reread the configuration file and apply every key a reload can apply") +
				manpage.Item("SIGTERM, SIGINT", "stop accepting, let commands in flight finish, and exit")},
			{Title: "Logging", Text: manpage.Para(`Logs go to standard error (the journal under systemd) as key=value lines. The key logging sets the level: 0 nothing, 1 errors, 2 warnings, 3 information (one line per login, delivery, refusal and administrative change), 4 debug.`)},
			{Title: "Exit status", Text: manpage.Para("0 after a clean stop, or a valid configuration with -check; 1 when the start or the check failed; 2 on a usage error.")},
			{Title: "Files", Text: manpage.Item("/etc/pop3d/pop3d.toml", "the configuration (pop3d.toml(5))") + manpage.Item("/var/lib/pop3d", "the mail root of the Debian package") +
				manpage.Item("/usr/lib/systemd/system/pop3d.service", "the systemd unit")},
			{Title: "See also", Text: manpage.Para("pop3ctl(8), pop3d.toml(5)")},
		},
	}
}

// TestManPagesCurrent checks that debian/man holds the pages the current
// flags, README and configuration table make; -update rewrites them.
func TestManPagesCurrent(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	cfgPage, err := manpage.ConfigPage(readme)
	if err != nil {
		t.Fatal(err)
	}
	for file, page := range map[string]manpage.Page{"pop3d.8": pop3dPage(), "pop3d.toml.5": cfgPage} {
		path := filepath.Join("debian", "man", file)
		want := page.Render()
		if *update {
			if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil || string(got) != want {
			t.Errorf("%s is not current (err %v): run go generate ./cmd/pop3d", path, err)
		}
	}
}
