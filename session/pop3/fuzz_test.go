package pop3

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pop3svc/pop3svc/session"
	"github.com/pop3svc/pop3svc/session/pop3/transcript"
	"github.com/pop3svc/pop3svc/store"
)

// checkReply fails t unless r is a well-formed POP3 reply.
func checkReply(t *testing.T, in []byte, r session.Reply) {
	t.Helper()
	out := r.Out
	if !(bytes.HasPrefix(out, []byte("+OK")) || bytes.HasPrefix(out, []byte("-ERR")) || bytes.HasPrefix(out, []byte("+ "))) {
		t.Fatalf("%q: reply %q does not begin with +OK, -ERR or \"+ \"", in, out)
	}
	if !bytes.HasSuffix(out, []byte("\r\n")) {
		t.Fatalf("%q: reply %q does not end with CRLF", in, out)
	}
	lines := bytes.Split(out[:len(out)-2], []byte("\r\n"))
	for _, l := range lines {
		if bytes.ContainsAny(l, "\r\n") {
			t.Fatalf("%q: reply line %q has a bare CR or LF", in, l)
		}
	}
	if r.Body != nil {
		var b bytes.Buffer
		if _, err := b.ReadFrom(r.Body); err != nil {
			t.Fatalf("%q: body: %v", in, err)
		}
		r.Body.Close()
		if !bytes.HasSuffix(b.Bytes(), []byte("\r\n.\r\n")) && !bytes.Equal(b.Bytes(), []byte(".\r\n")) {
			t.Fatalf("%q: body does not end with CRLF.CRLF: %q", in, b.Bytes())
		}
		return
	}
	if len(lines) > 1 && !bytes.Equal(lines[len(lines)-1], []byte(".")) {
		t.Fatalf("%q: multi-line reply %q does not end with \".\"", in, out)
	}
}

func FuzzSession(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.txt")
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		steps, err := transcript.Parse(bytes.NewReader(b))
		if err != nil {
			f.Fatal(err)
		}
		var seed bytes.Buffer
		for _, s := range steps {
			if s.Kind == transcript.Client {
				seed.WriteString(s.Text + "\r\n")
			}
		}
		f.Add(seed.Bytes())
	}
	f.Add([]byte("RETR 1\nTOP 1 0\nDELE 1\nLIST\nUIDL\nRSET\nQUIT\n"))
	st := testStore(f)
	alice := store.Address{Mailbox: "alice", Domain: "example.com"}
	f.Fuzz(func(t *testing.T, input []byte) {
		if n, _, err := st.Usage(context.Background(), alice); err == nil && n < 2 {
			for _, m := range transcript.FixtureMessages {
				st.Deliver(context.Background(), alice, strings.NewReader(m))
			}
		}
		lines := bytes.Split(input, []byte("\n"))
		// Drive the lines through each state: fresh, logged in, and in a SASL exchange.
		for _, prefix := range [][]string{
			nil,
			{"USER alice@example.com", "PASS tanstaaf with spaces"},
			{"AUTH LOGIN"},
		} {
			o := testOptions(st)
			o.APOP = true
			o.TLSAvailable = true
			o.Auth.FailDelay = 0
			s := New(o, ci)
			checkReply(t, nil, s.Greeting())
			all := make([][]byte, 0, len(prefix)+len(lines))
			for _, p := range prefix {
				all = append(all, []byte(p))
			}
			all = append(all, lines...)
			for _, l := range all {
				l = bytes.TrimSuffix(l, []byte("\r"))
				s.Inline(l)
				r := s.Handle(l)
				checkReply(t, l, r)
				if r.Close {
					break
				}
			}
			s.Close()
		}
	})
}
