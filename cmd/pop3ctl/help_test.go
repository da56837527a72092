package main

import (
	"bytes"
	"flag"
	"io"
	"regexp"
	"strings"
	"testing"
)

// TestHelpListsEveryVerbAndFlag: pop3ctl help names every verb the tool
// runs and every flag it parses.
func TestHelpListsEveryVerbAndFlag(t *testing.T) {
	var out bytes.Buffer
	c := &cli{stdin: strings.NewReader(""), stdout: &out, stderr: io.Discard}
	if code := c.run([]string{"--help"}); code != exitOK {
		t.Fatalf("pop3ctl --help: exit %d", code)
	}
	help := out.String()
	for v := range verbs {
		if !regexp.MustCompile(`(?m)^  ` + v + `\b`).MatchString(help) {
			t.Errorf("help does not list the verb %q", v)
		}
	}
	c.flags.VisitAll(func(f *flag.Flag) {
		if !regexp.MustCompile(`(?m)(^|[\s\[|(,])-` + regexp.QuoteMeta(f.Name) + `([^\w-]|$)`).MatchString(help) {
			t.Errorf("help does not list the flag -%s", f.Name)
		}
	})
}

func TestVersion(t *testing.T) {
	for _, args := range [][]string{{"-version"}, {"version"}} {
		var out bytes.Buffer
		c := &cli{stdin: strings.NewReader(""), stdout: &out, stderr: io.Discard}
		if code := c.run(args); code != exitOK || !regexp.MustCompile(`^pop3ctl \S+ \(go`).MatchString(out.String()) {
			t.Errorf("pop3ctl %v: exit %d, %q", args, code, out.String())
		}
	}
}
