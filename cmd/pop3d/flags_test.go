package main

import (
	"bytes"
	"log/slog"
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

// TestLoggingLevels: logging 0 none, 1 errors, 2 warnings, 3 information,
// 4 debug, as README and pop3d.toml(5) say.
func TestLoggingLevels(t *testing.T) {
	for n, want := range map[int][]bool{ // error, warn, info, debug shown
		0: {false, false, false, false},
		1: {true, false, false, false},
		2: {true, true, false, false},
		3: {true, true, true, false},
		4: {true, true, true, true},
	} {
		l := logLevel(n)
		got := []bool{slog.LevelError >= l, slog.LevelWarn >= l, slog.LevelInfo >= l, slog.LevelDebug >= l}
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("logging = %d: levels shown %v, want %v", n, got, want)
				break
			}
		}
	}
}
