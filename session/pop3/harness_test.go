package pop3

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/pop3svc/pop3svc/session"
	"github.com/pop3svc/pop3svc/session/auth"
	"github.com/pop3svc/pop3svc/session/pop3/transcript"
	"github.com/pop3svc/pop3svc/store"
	"github.com/pop3svc/pop3svc/store/credential"
	"github.com/pop3svc/pop3svc/store/memstore"
)

// cheapArgon keeps password checks fast in tests.
var cheapArgon = credential.Argon2Params{Time: 1, MemoryKiB: 64, Threads: 1, KeyLen: 32}

// testStore makes an in-memory store with the standard fixture: the
// session is what these tests test, not the disk (the same transcripts
// run over loopback against pop3d on the file store in cmd/pop3d).
func testStore(t testing.TB) *memstore.Store {
	t.Helper()
	st, err := memstore.New(memstore.Options{Node: 1, Argon2: cheapArgon})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := transcript.Fixture(context.Background(), st); err != nil {
		t.Fatal(err)
	}
	return st
}

// recGuard is a Guard that records calls.
type recGuard struct {
	banned    bool
	failures  int
	successes int
	delay     time.Duration
}

func (g *recGuard) Banned(string) bool { return g.banned }
func (g *recGuard) Failure(string) time.Duration {
	g.failures++
	return g.delay
}
func (g *recGuard) Success(string)                     { g.successes++ }
func (g *recGuard) Admit(string) (time.Duration, bool) { return 0, !g.banned }

var quietLogger = slog.New(slog.NewTextHandler(io.Discard, nil))

func testOptions(st store.Store) *Options {
	return &Options{
		Store: st,
		Auth: &auth.Authenticator{
			Method:    auth.PasswordFile{Store: st},
			Store:     st,
			FailDelay: 2 * time.Second,
			Hostname:  "pop.example.com",
			SCRAM:     func() bool { return true },
		},
		Greeting:        "POP3 service ready",
		Hostname:        "pop.example.com",
		MaxBadCommands:  10,
		MaxAuthFailures: 3,
		MaxAuthLine:     512,
		Node:            1,
		Logger:          quietLogger,
	}
}

// applyDirectives sets options from a transcript's "!" lines.
func applyDirectives(t *testing.T, o *Options, st store.Store, dirs [][]string) *session.ConnInfo {
	t.Helper()
	ci := &session.ConnInfo{ID: 7, Remote: "192.0.2.1:40000", Local: "127.0.0.1:110"}
	num := func(d []string) int {
		if len(d) != 2 {
			t.Fatalf("directive %v needs one number", d)
		}
		n, err := strconv.Atoi(d[1])
		if err != nil {
			t.Fatalf("directive %v: %v", d, err)
		}
		return n
	}
	for _, d := range dirs {
		switch d[0] {
		case "apop":
			o.APOP = true
		case "spa":
			o.SPARequired = true
		case "tls-available":
			o.TLSAvailable = true
		case "tls":
			ci.TLS = true
		case "maxbad":
			o.MaxBadCommands = num(d)
		case "maxauthfail":
			o.MaxAuthFailures = num(d)
		case "expire":
			r, err := ParseRetention(d[1])
			if err != nil {
				t.Fatalf("directive %v: %v", d, err)
			}
			if o.Policy == nil {
				o.Policy = &Policy{}
			}
			o.Policy.Expire = &r
		case "logindelay":
			if o.Policy == nil {
				o.Policy = &Policy{}
			}
			o.Policy.LoginDelay = num(d)
		case "defaultdomain":
			o.Auth.DefaultDomain = d[1]
		case "banned":
			o.Auth.Guard = &recGuard{banned: true}
		case "method-nochallenge":
			o.Auth.Method = noChallenge{auth.PasswordFile{Store: st}}
		default:
			t.Fatalf("unknown directive %v", d)
		}
	}
	return ci
}

// noChallenge is the password-file method presented as one without
// challenge secrets, like the system and directory methods.
type noChallenge struct{ auth.PasswordFile }

func (noChallenge) Name() string    { return "system" }
func (noChallenge) Challenge() bool { return false }

func TestTranscripts(t *testing.T) {
	files, err := filepath.Glob("testdata/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no transcripts: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			steps, err := transcript.Parse(bytes.NewReader(b))
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			st := testStore(t)
			o := testOptions(st)
			ci := applyDirectives(t, o, st, transcript.Directives(steps))
			s := New(o, *ci)
			conn := transcript.NewLocal(s)
			defer conn.Close()
			if err := transcript.Play(conn, steps); err != nil {
				t.Fatalf("%s: %v", f, err)
			}
		})
	}
}
