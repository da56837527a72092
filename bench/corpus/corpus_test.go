package corpus

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestDeterministic(t *testing.T) {
	s := Default()
	a, b := s.Message(3, 7), s.Message(3, 7)
	if !bytes.Equal(a, b) {
		t.Fatal("Message(3,7) differs between two calls")
	}
	if bytes.Equal(a, s.Message(3, 8)) {
		t.Fatal("Message(3,7) equals Message(3,8)")
	}
	other := s
	other.Seed++
	if bytes.Equal(a, other.Message(3, 7)) {
		t.Fatal("a different seed gave the same message")
	}
}

func TestSizesAndFormat(t *testing.T) {
	s := Default()
	var total, dotLines, n, small int
	for u := 0; u < 20; u++ {
		for m := 0; m < 50; m++ {
			msg := s.Message(u, m)
			if len(msg) != s.Size(u, m) {
				t.Fatalf("Message(%d,%d) has %d octets, Size says %d", u, m, len(msg), s.Size(u, m))
			}
			if len(msg) < MinSize || len(msg) > TailMax {
				t.Fatalf("Message(%d,%d) has %d octets, outside %d..%d", u, m, len(msg), MinSize, TailMax)
			}
			if len(msg) <= BodyMax {
				small++
			}
			if !bytes.HasSuffix(msg, []byte("\r\n")) {
				t.Fatalf("Message(%d,%d) does not end with CRLF", u, m)
			}
			if bytes.Count(msg, []byte("\n")) != bytes.Count(msg, []byte("\r\n")) {
				t.Fatalf("Message(%d,%d) has a bare LF", u, m)
			}
			if bytes.Count(msg, []byte("\r")) != bytes.Count(msg, []byte("\r\n")) {
				t.Fatalf("Message(%d,%d) has a bare CR", u, m)
			}
			for _, line := range strings.Split(string(msg), "\r\n") {
				if strings.HasPrefix(line, ".") {
					dotLines++
				}
			}
			total += len(msg)
			n++
		}
	}
	mean := total / n
	if mean < 24<<10 || mean > 40<<10 {
		t.Errorf("mean size %d octets, want about 32 KB", mean)
	}
	if frac := float64(small) / float64(n); frac < 0.8 || frac > 0.97 {
		t.Errorf("%.2f of messages are 2-20 KB, want about 0.9", frac)
	}
	if dotLines < n {
		t.Errorf("%d lines start with '.' in %d messages, want several per message", dotLines, n)
	}
	big := s.BigMessage(0)
	if len(big) != BigSize || !bytes.HasSuffix(big, []byte("\r\n")) {
		t.Errorf("BigMessage has %d octets, want %d ending in CRLF", len(big), BigSize)
	}
}

func TestWriteMaildir(t *testing.T) {
	s := Spec{Seed: 1, Domain: "bench.test", Users: 2, PerUser: 3, Big: 0, Idle: 2, Password: "p"}
	dir := t.TempDir()
	if err := s.WriteMaildir(dir); err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(filepath.Join(dir, User(1), "Maildir", "cur"))
	if err != nil || len(ents) != 3 {
		t.Fatalf("cur of %s: %d entries, err %v; want 3", User(1), len(ents), err)
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, User(1), "Maildir", "cur", e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte("\r")) {
			t.Errorf("%s keeps CR in a Maildir file", e.Name())
		}
		crlf := len(b) + bytes.Count(b, []byte("\n"))
		if !strings.Contains(e.Name(), ",W="+strconv.Itoa(crlf)+":") || !strings.Contains(e.Name(), ",S="+strconv.Itoa(len(b))+",") {
			t.Errorf("name %s does not carry S=%d W=%d", e.Name(), len(b), crlf)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, IdleUser(1), "Maildir", "new")); err != nil {
		t.Errorf("idle mailbox not created: %v", err)
	}
	if err := (Spec{Domain: "bad domain", Password: "p"}).WriteMaildir(dir); err == nil {
		t.Error("a bad domain was accepted")
	}
}
