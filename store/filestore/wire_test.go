package filestore

import (
	"bytes"
	"io"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pop3svc/pop3svc/store"
)

// A message written without a line that begins with '.', or over
// dotsMarkMin with at most maxMarkedDots of them, carries the mark with
// their offsets (delivered, staged and published, imported): its reader
// is a store.WireFile that sends the stored octets with sendfile. A
// message with more such lines, and one changed since, is not marked.
func TestDotLinesMark(t *testing.T) {
	s := newTestStore(t, Options{})
	a := mkbox(t, s)
	clean := strings.Repeat("Subject: x\r\n\r\nbase64 line without a leading dot, ever.\r\n", 3000)
	// Over dotsMarkMin: the offsets are recorded.
	dotted := "Subject: y\r\n\r\nfirst\r\n.leading dot\r\nlast\r\n" + strings.Repeat("no leading dot\r\n", dotsMarkMin/16)
	bareLF := "Subject: z\n\nno dots here.\nend" // normalised to CRLF, then marked
	many := "Subject: m\r\n\r\n" + strings.Repeat(".\r\n", maxMarkedDots+1)
	for _, m := range []string{clean, dotted, bareLF} {
		if _, err := s.Deliver(bg, a, strings.NewReader(m)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Import(bg, a, "old-uidl-1", strings.NewReader(clean)); err != nil {
		t.Fatal(err)
	}
	uid, err := s.Stage(bg, a, "k1", strings.NewReader(clean))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Publish(bg, a, "k1", uid); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Deliver(bg, a, strings.NewReader(many)); err != nil {
		t.Fatal(err)
	}
	want := []bool{true, true, true, true, true, false}
	wantDots := [][]int64{nil, {int64(strings.Index(dotted, ".leading"))}, nil, nil, nil, nil}

	ms, err := s.OpenSession(bg, a, "test")
	if err != nil {
		t.Fatal(err)
	}
	msgs := ms.Messages()
	if len(msgs) != len(want) {
		t.Fatalf("%d messages, want %d", len(msgs), len(want))
	}
	for i, w := range want {
		rc, err := ms.Open(i)
		if err != nil {
			t.Fatal(err)
		}
		wf, ok := rc.(store.WireFile)
		if !ok {
			t.Fatalf("message %d: reader %T is not a store.WireFile", i+1, rc)
		}
		if dots, got := wf.DotLines(); got != w || !slices.Equal(dots, wantDots[i]) {
			t.Errorf("message %d: DotLines = %v, %v; want %v, %v", i+1, dots, got, wantDots[i], w)
		}
		if w {
			got := sendAll(t, wf)
			stored, err := os.ReadFile(s.mboxPath(a) + "/" + messageFile(t, s, a, i))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, stored) || int64(len(got)) != msgs[i].Size {
				t.Errorf("message %d: sendfile gave %d octets, the file has %d (size %d)", i+1, len(got), len(stored), msgs[i].Size)
			}
		}
		rc.Close()
		if _, err := wf.SendFile(0, 1); err == nil {
			t.Errorf("message %d: SendFile after Close succeeded", i+1)
		}
	}
	ms.Close()

	// A file changed in place to another size loses the mark.
	path := s.mboxPath(a) + "/" + messageFile(t, s, a, 0)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("appended\r\n")
	f.Close()
	if marked(t, s, a, 0) {
		t.Error("a message whose size changed still carries the mark")
	}
	// So does one edited in place to the same size, later than it was
	// written: its modification time moves.
	path = s.mboxPath(a) + "/" + messageFile(t, s, a, 2)
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	f, err = os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte("."), int64(strings.Index(bareLF, "no dots")+2)) // stored with two CRs added before it: the line now begins with "."
	f.Close()
	if err := os.Chtimes(path, info.ModTime(), info.ModTime().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if marked(t, s, a, 2) {
		t.Error("a message edited in place to the same size still carries the mark")
	}
	if !marked(t, s, a, 3) {
		t.Error("an untouched message lost its mark")
	}
}

// marked reports whether message i of a's mailbox is a WireFile with no
// dot lines, in a new session.
func marked(t *testing.T, s *Store, a store.Address, i int) bool {
	t.Helper()
	ms, err := s.OpenSession(bg, a, "test")
	if err != nil {
		t.Fatal(err)
	}
	defer ms.Close()
	rc, err := ms.Open(i)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	_, ok := rc.(store.WireFile).DotLines()
	return ok
}

// The mark of earlier versions (user.pop3.nodots, "SIZE MTIME") still
// counts as a mark without dot lines; a mark whose offsets are out of
// order or past the file's end counts as none.
func TestDotLinesLegacyAndBadMarks(t *testing.T) {
	s := newTestStore(t, Options{})
	a := mkbox(t, s)
	msg := "Subject: x\r\n\r\nbody\r\n"
	if _, err := s.Deliver(bg, a, strings.NewReader(msg)); err != nil {
		t.Fatal(err)
	}
	path := s.mboxPath(a) + "/" + messageFile(t, s, a, 0)
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	if err := unix.Removexattr(path, dotsAttr); err != nil {
		t.Fatal(err)
	}
	if marked(t, s, a, 0) {
		t.Fatal("a message without a mark is marked")
	}
	if err := unix.Setxattr(path, legacyNoDotsAttr, dotsValue(st.Size, st.Mtim, nil), 0); err != nil {
		t.Fatal(err)
	}
	if !marked(t, s, a, 0) {
		t.Error("the earlier versions' mark is not honoured")
	}
	for _, bad := range [][]int64{{5, 3}, {st.Size}, {-1}} {
		if err := unix.Setxattr(path, dotsAttr, dotsValue(st.Size, st.Mtim, bad), 0); err != nil {
			t.Fatal(err)
		}
		if marked(t, s, a, 0) {
			t.Errorf("a mark with offsets %v is taken", bad)
		}
	}
}

// messageFile names message i of a's mailbox as a listing sorts them.
func messageFile(t *testing.T, s *Store, a store.Address, i int) string {
	t.Helper()
	ents, err := os.ReadDir(s.mboxPath(a))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), msgSuffix) {
			names = append(names, e.Name())
		}
	}
	if i >= len(names) {
		t.Fatalf("message %d of %d", i+1, len(names))
	}
	return names[i]
}

// sendAll sends what wf holds through a socket pair and returns it.
func sendAll(t *testing.T, wf store.WireFile) []byte {
	t.Helper()
	got, sent, err := sendFileAll(t, wf)
	if err != nil {
		t.Fatalf("sendfile after %d octets: %v", sent, err)
	}
	return got
}

// sendFileAll sends what wf holds through a socket pair with SendFile
// until it is over or fails, and returns what arrived, the octets sent
// and SendFile's error.
func sendFileAll(t *testing.T, wf store.WireFile) ([]byte, int, error) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	rd := os.NewFile(uintptr(fds[1]), "reader")
	defer rd.Close()
	got := make(chan []byte)
	go func() { b, _ := io.ReadAll(rd); got <- b }()
	sent := 0
	for {
		n, err := wf.SendFile(fds[0], 64<<10)
		if err != nil {
			unix.Close(fds[0])
			return <-got, sent, err
		}
		if n == 0 {
			break
		}
		sent += n
	}
	unix.Close(fds[0])
	return <-got, sent, nil
}

// dotsAttrValue reads message i's user.pop3.dots attribute ("" if none).
func dotsAttrValue(t *testing.T, s *Store, a store.Address, i int) string {
	t.Helper()
	buf := make([]byte, 4096)
	n, err := unix.Getxattr(s.mboxPath(a)+"/"+messageFile(t, s, a, i), dotsAttr, buf)
	if err == unix.ENODATA {
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(buf[:n])
}

// The offsets of the lines to stuff are recorded only for a message over
// dotsMarkMin, the smallest a POP3 server sends from its file: a longer
// value leaves the inode's room for attributes (about 60 octets on ext4
// with 256-octet inodes) and costs every such message a block of its own
// (4 KiB) and its write at delivery, for nothing on a small message. A
// message without such lines is marked whatever its size (the value fits
// the inode).
func TestDotLinesOffsetsOnlyForLargeMessages(t *testing.T) {
	s := newTestStore(t, Options{})
	a := mkbox(t, s)
	dots := strings.Repeat("text line\r\n.a line that begins with a dot\r\n", 20)
	small := "Subject: small\r\n\r\n" + dots
	large := small + strings.Repeat("filler line without a leading dot\r\n", dotsMarkMin/30)
	clean := "Subject: clean\r\n\r\nno line begins with a dot\r\n"
	for _, m := range []string{small, large, clean} {
		if _, err := s.Deliver(bg, a, strings.NewReader(m)); err != nil {
			t.Fatal(err)
		}
	}
	if v := dotsAttrValue(t, s, a, 0); v != "" {
		t.Errorf("a message of %d octets with 20 lines to stuff carries %d octets of offsets", len(small), len(v))
	}
	if v := dotsAttrValue(t, s, a, 1); len(strings.Fields(v)) != 2+20 {
		t.Errorf("a message of %d octets with 20 lines to stuff is marked %q, want their offsets", len(large), v)
	}
	if !marked(t, s, a, 2) {
		t.Error("a small message without a line to stuff is not marked")
	}
}
