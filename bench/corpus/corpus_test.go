package corpus

import (
	"bytes"
	"context"
	"encoding/base64"
	"io"
	"math/rand/v2"
	"mime"
	"mime/multipart"
	"net/mail"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/pop3svc/pop3svc/store"
	"github.com/pop3svc/pop3svc/store/credential"
	"github.com/pop3svc/pop3svc/store/memstore"
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
	if dots := dotLineShare(big); dots < 0.12 || dots > 0.22 {
		t.Errorf("%.3f of BigMessage's lines start with '.', want about one in six", dots)
	}
}

// dotLineShare is the share of msg's lines that start with '.'.
func dotLineShare(msg []byte) float64 {
	lines := bytes.Split(bytes.TrimSuffix(msg, []byte("\r\n")), []byte("\r\n"))
	n := 0
	for _, l := range lines {
		if len(l) > 0 && l[0] == '.' {
			n++
		}
	}
	return float64(n) / float64(len(lines))
}

// checkAttachment checks a message built by buildAttachment: size octets,
// CRLF lines only, no line starting with '.', a multipart/mixed message
// whose second part is base64 in lines of at most Base64LineLen that
// decodes, followed by the closing boundary. It returns the decoded
// attachment.
func checkAttachment(t *testing.T, msg []byte, size int) []byte {
	t.Helper()
	if len(msg) != size {
		t.Fatalf("attachment message has %d octets, want %d", len(msg), size)
	}
	if !bytes.HasSuffix(msg, []byte("\r\n")) {
		t.Fatal("attachment message does not end with CRLF")
	}
	if bytes.Count(msg, []byte("\n")) != bytes.Count(msg, []byte("\r\n")) || bytes.Count(msg, []byte("\r")) != bytes.Count(msg, []byte("\r\n")) {
		t.Fatal("attachment message has a bare CR or LF")
	}
	if bytes.HasPrefix(msg, []byte(".")) || bytes.Contains(msg, []byte("\n.")) {
		t.Fatal("a line of the attachment message starts with '.'")
	}
	m, err := mail.ReadMessage(bytes.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	mt, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/mixed" || params["boundary"] == "" {
		t.Fatalf("Content-Type %q: %v", m.Header.Get("Content-Type"), err)
	}
	mr := multipart.NewReader(m.Body, params["boundary"])
	var parts []string
	var att []byte
	for {
		p, err := mr.NextRawPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("part %d: %v", len(parts)+1, err)
		}
		body, err := io.ReadAll(p)
		if err != nil {
			t.Fatalf("part %d: %v", len(parts)+1, err)
		}
		parts = append(parts, p.Header.Get("Content-Type"))
		if p.Header.Get("Content-Transfer-Encoding") != "base64" {
			continue
		}
		for _, l := range bytes.Split(body, []byte("\r\n")) {
			if len(l) > Base64LineLen {
				t.Fatalf("base64 line of %d characters, want at most %d", len(l), Base64LineLen)
			}
		}
		if att, err = base64.StdEncoding.DecodeString(string(bytes.ReplaceAll(body, []byte("\r\n"), nil))); err != nil {
			t.Fatalf("attachment does not decode: %v", err)
		}
	}
	if len(parts) != 2 || !strings.HasPrefix(parts[0], "text/plain") || !strings.HasPrefix(parts[1], "application/octet-stream") {
		t.Fatalf("parts %q, want text/plain then application/octet-stream", parts)
	}
	// The closing boundary ends the message: nothing after it.
	if want := "--" + params["boundary"] + "--\r\n"; !bytes.HasSuffix(msg, []byte(want)) {
		t.Fatalf("message does not end with %q", want)
	}
	return att
}

func TestAttachmentMessage(t *testing.T) {
	s := Default()
	a := s.AttachmentMessage(0)
	att := checkAttachment(t, a, BigSize)
	if len(att) < BigSize*7/10 {
		t.Errorf("attachment of %d octets in a %d-octet message, want most of it", len(att), BigSize)
	}
	if !bytes.Equal(a, s.AttachmentMessage(0)) {
		t.Error("AttachmentMessage(0) differs between two calls")
	}
	if bytes.Equal(a, s.AttachmentMessage(1)) {
		t.Error("AttachmentMessage(0) equals AttachmentMessage(1)")
	}
	other := s
	other.Seed++
	if bytes.Equal(a, other.AttachmentMessage(0)) {
		t.Error("a different seed gave the same attachment message")
	}
	if got := s.BigMessages(2); len(got) != 2 || !bytes.Equal(got[BigTextMsg-1], s.BigMessage(2)) || !bytes.Equal(got[BigAttachmentMsg-1], s.AttachmentMessage(2)) {
		t.Error("BigMessages is not the text message then the attachment message")
	}
}

// TestAttachmentSizes: every size is filled exactly, whatever the
// remainder the base64 lines leave.
func TestAttachmentSizes(t *testing.T) {
	for size := MinAttachmentSize; size < MinAttachmentSize+2*(Base64LineLen+2)+8; size++ {
		r := rand.New(rand.NewPCG(7, uint64(size)))
		checkAttachment(t, buildAttachment(r, size, "x@bench.test", 1), size)
	}
}

func TestWriteMaildir(t *testing.T) {
	s := Spec{Seed: 1, Domain: "bench.test", Users: 2, PerUser: 3, Big: 1, Idle: 2, Password: "p"}
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
	// The big mailbox: the text message, then the attachment message,
	// in the order of their names (a Maildir server numbers them so).
	big, err := os.ReadDir(filepath.Join(dir, BigUser(0), "Maildir", "cur"))
	if err != nil || len(big) != 2 {
		t.Fatalf("cur of %s: %d entries, err %v; want 2", BigUser(0), len(big), err)
	}
	for k, want := range s.BigMessages(0) {
		b, err := os.ReadFile(filepath.Join(dir, BigUser(0), "Maildir", "cur", big[k].Name()))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b, LF(want)) {
			t.Errorf("%s (message %d of %s) is not its corpus message", big[k].Name(), k+1, BigUser(0))
		}
	}
	if _, err := os.Stat(filepath.Join(dir, IdleUser(1), "Maildir", "new")); err != nil {
		t.Errorf("idle mailbox not created: %v", err)
	}
	if err := (Spec{Domain: "bad domain", Password: "p"}).WriteMaildir(dir); err == nil {
		t.Error("a bad domain was accepted")
	}
}

// TestImportBigMailbox: Import delivers the text message then the
// attachment message to each big mailbox, byte for byte.
func TestImportBigMailbox(t *testing.T) {
	s := Spec{Seed: 3, Domain: "bench.test", Users: 1, PerUser: 2, Big: 1, Password: "p"}
	st, err := memstore.New(memstore.Options{Node: 1, Argon2: credential.Argon2Params{Time: 1, MemoryKiB: 8, Threads: 1, KeyLen: 32}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := s.Import(ctx, st, nil); err != nil {
		t.Fatal(err)
	}
	sess, err := st.OpenSession(ctx, store.Address{Mailbox: BigUser(0), Domain: s.Domain}, "test")
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	want := s.BigMessages(0)
	if got := len(sess.Messages()); got != len(want) {
		t.Fatalf("%s holds %d messages, want %d", BigUser(0), got, len(want))
	}
	for i, w := range want {
		rc, err := sess.Open(i)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || !bytes.Equal(b, w) {
			t.Errorf("message %d of %s: %d octets, err %v, equal %v", i+1, BigUser(0), len(b), err, bytes.Equal(b, w))
		}
	}
}
