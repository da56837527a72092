package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pop3svc/pop3svc/cmd/pop3d/pop3dtest"
	"github.com/pop3svc/pop3svc/session/pop3/transcript"
	"github.com/pop3svc/pop3svc/store/filestore"
)

// TestTranscriptsOverLoopback plays session/pop3's transcripts (the ones
// the state machine is tested with in-process) against the built pop3d
// over loopback: the same client and server lines, through the real
// engine, configuration and file store. Each transcript's "!" directives
// become configuration settings; the few that need a test-only stand-in
// (an implicit-TLS connection, a banned address, a method without
// challenge secrets) are covered in-process only.
func TestTranscriptsOverLoopback(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "..", "session", "pop3", "testdata", "*.txt"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no transcripts found: %v", err)
	}
	played := 0
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".txt")
		f, err := os.Open(file)
		if err != nil {
			t.Fatal(err)
		}
		steps, err := transcript.Parse(f)
		f.Close()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		cfg, ok := transcriptConfig(t, transcript.Directives(steps))
		if !ok {
			continue
		}
		played++
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			cfg.Prepare = func(dir string) {
				st, err := filestore.Open(filepath.Join(dir, "mailroot"), filestore.Options{Node: 1})
				if err != nil {
					t.Fatal(err)
				}
				defer st.Close()
				if err := transcript.Fixture(context.Background(), st); err != nil {
					t.Fatal(err)
				}
			}
			srv := pop3dtest.Start(t, cfg)
			c, err := net.DialTimeout("tcp", srv.POP3, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(30 * time.Second))
			transcript.Run(t, c, steps)
		})
	}
	if played < 15 {
		t.Fatalf("only %d transcripts could be played against the binary", played)
	}
}

// transcriptConfig turns a transcript's directives into configuration;
// ok is false for a transcript that needs a test-only stand-in.
func transcriptConfig(t *testing.T, dirs [][]string) (cfg pop3dtest.Config, ok bool) {
	t.Helper()
	apop, stls := false, false
	auth := []string{`fail_delay = "1ms"`, `penalty = "1ms"`, `penalty_max = "1ms"`, "ntlm = false"}
	var pop3, limits, top []string
	limits = append(limits, "max_auth_failures = 3", "max_bad_commands = 10", "max_line = 512", "max_auth_line = 512")
	for _, d := range dirs {
		arg := ""
		if len(d) > 1 {
			arg = d[1]
		}
		switch d[0] {
		case "apop":
			apop = true
		case "spa":
			auth = append(auth, "sparequired = true")
		case "tls-available":
			stls = true
		case "maxbad":
			limits = append(limits, "max_bad_commands = "+arg)
		case "maxauthfail":
			if arg == "0" {
				arg = "1000" // no limit, as far as a transcript can tell
			}
			limits = append(limits, "max_auth_failures = "+arg)
		case "expire":
			pop3 = append(pop3, fmt.Sprintf("expire = %q", arg))
		case "logindelay":
			pop3 = append(pop3, "login_delay = "+arg)
		case "defaultdomain":
			top = append(top, fmt.Sprintf("default_domain = %q", arg))
		case "tls", "banned", "method-nochallenge":
			return cfg, false
		default:
			t.Fatalf("unknown directive %v", d)
		}
	}
	auth = append(auth, fmt.Sprintf("apop = %v", apop))
	pop3 = append(pop3, fmt.Sprintf("stls = %v", stls))
	cfg.Top = strings.Join(append(top, `greeting = "POP3 service ready"`), "\n")
	cfg.Auth = strings.Join(auth, "\n")
	cfg.POP3 = strings.Join(pop3, "\n")
	// The transcripts' host name (APOP and CRAM-MD5 timestamps) and the
	// in-process harness's line limits.
	cfg.SMTPTable = `hostname = "pop.example.com"`
	cfg.Tables = "[limits]\n" + strings.Join(dedupe(limits), "\n")
	return cfg, true
}

// dedupe keeps the last setting of each key, so that a directive
// overrides a default.
func dedupe(lines []string) []string {
	last := map[string]int{}
	for i, l := range lines {
		k, _, _ := strings.Cut(l, "=")
		last[strings.TrimSpace(k)] = i
	}
	var out []string
	for i, l := range lines {
		k, _, _ := strings.Cut(l, "=")
		if last[strings.TrimSpace(k)] == i {
			out = append(out, l)
		}
	}
	return out
}
