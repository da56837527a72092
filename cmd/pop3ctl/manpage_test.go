package main

//go:generate go test -run TestManPageCurrent -update

import (
	"flag"
	"os"
	"testing"

	"github.com/pop3svc/pop3svc/cmd/internal/manpage"
)

var update = flag.Bool("update", false, "rewrite cmd/pop3d/debian/man/pop3ctl.8")

const manPath = "../pop3d/debian/man/pop3ctl.8"

// pop3ctlPage is pop3ctl(8), made from the usage text pop3ctl help prints.
func pop3ctlPage() manpage.Page {
	return manpage.Page{
		Name: "pop3ctl", Section: "8", Summary: "administer the POP3 mail service",
		Sections: []manpage.Section{
			{Title: "Synopsis", Text: manpage.Verbatim("pop3ctl [-config FILE] [-json] VERB [ARGS] [FLAGS]")},
			{Title: "Description", Text: manpage.Para(`pop3ctl manages domains, mailboxes, passwords, quotas and locks in the mail store, delivers a message as a local delivery agent, shows usage, reads and changes the service's settings, and backs up and restores the mail root. It reaches mail only through the mail store's API, the path the service uses, so it works while pop3d runs.

The configuration file is found as pop3d finds it: -config, else $POP3D_CONFIG, else ./pop3d.toml, else (in the Debian package) /etc/pop3d/pop3d.toml. Run it as root or as the user pop3d. Every change is written to the log as an audit line (who, what, old and new values).

Flags may come before or after the verb.`)},
			{Title: "Verbs and flags", Text: manpage.Verbatim(usageText)},
			{Title: "Exit status", Text: manpage.Para("0 success; 1 the request was refused (one line on standard error says which rule was broken); 2 usage error. deliver uses sysexits: 64 usage, 67 unknown user, 69 refused for good by the LMTP server (-lmtp), 73 over quota or too large, 74 the message could not be read, 75 try again later. With -json, output and errors are JSON on standard output, with the same exit status.")},
			{Title: "See also", Text: manpage.Para("pop3d(8), pop3d.toml(5)")},
		},
	}
}

func TestManPageCurrent(t *testing.T) {
	want := pop3ctlPage().Render()
	if *update {
		if err := os.WriteFile(manPath, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	got, err := os.ReadFile(manPath)
	if err != nil || string(got) != want {
		t.Errorf("%s is not current (err %v): run go generate ./cmd/pop3ctl", manPath, err)
	}
}
