package main

import (
	"bytes"
	"regexp"
	"strings"
	"testing"
)

func TestHelpListsEveryFlag(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run([]string{"--help"}, &out, &errOut); code != 0 {
		t.Fatalf("pop3d --help: exit %d\n%s", code, errOut.String())
	}
	help := errOut.String() + out.String()
	for _, f := range []string{"-check", "-config", "-demo", "-version", "SIGHUP", "SIGTERM"} {
		if !strings.Contains(help, f) {
			t.Errorf("pop3d --help lacks %s:\n%s", f, help)
		}
	}
}

func TestVersionFlag(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run([]string{"-version"}, &out, &errOut); code != 0 {
		t.Fatalf("pop3d -version: exit %d\n%s", code, errOut.String())
	}
	if !regexp.MustCompile(`^pop3d \S+ \(go\S+ linux/\w+\)\n$`).MatchString(out.String()) {
		t.Fatalf("pop3d -version printed %q", out.String())
	}
}
