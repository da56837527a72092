package migrate

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/pop3svc/pop3svc/store"
	"github.com/pop3svc/pop3svc/store/memstore"
)

var bg = context.Background()

func write(t *testing.T, p, s string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

func uidlsOf(t *testing.T, src Source) []string {
	t.Helper()
	l, err := src.List(bg)
	if err != nil {
		t.Fatal(err)
	}
	var u []string
	for _, m := range l {
		u = append(u, m.UIDL)
	}
	return u
}

func newTarget(t *testing.T) (*memstore.Store, store.Address) {
	t.Helper()
	st, err := memstore.New(memstore.Options{Node: 3})
	if err != nil {
		t.Fatal(err)
	}
	a := store.Address{Mailbox: "alice", Domain: "example.com"}
	if err := st.CreateDomain(bg, a.Domain); err != nil {
		t.Fatal(err)
	}
	if err := st.CreateMailbox(bg, a, ""); err != nil {
		t.Fatal(err)
	}
	return st, a
}

// TestDovecotMaildir: UID order, a stored POP3 UIDL (P), X-UIDL on
// request, the format for the rest, files Dovecot has not listed after,
// entries whose file is gone skipped.
func TestDovecotMaildir(t *testing.T) {
	d := t.TempDir()
	write(t, filepath.Join(d, "cur", "1000.a.host:2,S"), "Subject: a\n\na\n")
	write(t, filepath.Join(d, "new", "1001.b.host"), "X-UIDL: old-b\nSubject: b\n\nb\n")
	write(t, filepath.Join(d, "cur", "1003.d.host:2,"), "Subject: d\n\nd\n")
	write(t, filepath.Join(d, "new", "1004.e.host"), "Subject: e\n\ne\n")
	write(t, filepath.Join(d, "new", "1005.f.host"), "Subject: f\n\nf\n")
	write(t, filepath.Join(d, DovecotUIDList), "3 V1505ad6d1 N12 Gabc\n"+
		"10 :1003.d.host\n"+
		"5 W16 :1000.a.host:2,S\n"+
		"6 :1001.b.host\n"+
		"7 :1002.c.host\n"+ // deleted
		"11 Pkept-uidl :1004.e.host\n")
	md, err := OpenMaildir(d, MaildirOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// 1505ad6d1 does not fit 32 bits; V is read as given.
	got := uidlsOf(t, md)
	want := []string{"00000005", "00000006", "0000000a", "kept-uidl", "0000000c"}
	for i := range want {
		if i < len(got) && !strings.HasPrefix(got[i], want[i]) && got[i] != want[i] {
			t.Fatalf("UIDLs %q, want prefixes %q", got, want)
		}
	}
	if len(got) != 5 || got[3] != "kept-uidl" {
		t.Fatalf("UIDLs %q", got)
	}
	md2, _ := OpenMaildir(d, MaildirOptions{XUIDL: true, UIDLFormat: "%u.%v"})
	got = uidlsOf(t, md2)
	if !slices.Equal(got[:2], []string{"5.0", "old-b"}) || got[4] != "12.0" {
		t.Fatalf("with X-UIDL and %%u.%%v: %q", got)
	}
	write(t, filepath.Join(d, DovecotUIDList), "3 V1600000000 N8\n5 :1000.a.host\n")
	md3, _ := OpenMaildir(d, MaildirOptions{})
	if got := uidlsOf(t, md3); got[0] != "000000055f5e1000" {
		t.Fatalf("%%08Xu%%08Xv = %q", got[0])
	}
}

// TestCourierMaildir: courierpop3dsizelist's UIDLs and order.
func TestCourierMaildir(t *testing.T) {
	d := t.TempDir()
	write(t, filepath.Join(d, "cur", "100.x:2,S"), "a\n")
	write(t, filepath.Join(d, "cur", "101.y+z:2,"), "b\n")
	write(t, filepath.Join(d, "new", "102.w"), "c\n")
	write(t, filepath.Join(d, CourierPOP3), "/2 9 1234\n101.y+z:2, 3 7:1234\n100.x:2,S 3 0:1234\n")
	md, err := OpenMaildir(d, MaildirOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := uidlsOf(t, md); !slices.Equal(got, []string{"UID7-1234", "100.x", "UID9-1234"}) {
		t.Fatalf("Courier UIDLs %q", got)
	}
	if got := courierFileUIDL("a+b'c"); got != "a+2Bb+27c" {
		t.Fatalf("courierFileUIDL = %q", got)
	}
}

// TestMbox: From lines, mboxrd quoting, X-UIDL, identical messages.
func TestMbox(t *testing.T) {
	p := filepath.Join(t.TempDir(), "mbox")
	write(t, p, "From a@b Mon Jan  1 00:00:00 2024\nX-UIDL: u-1\nSubject: one\n\n>From here\n>>From there\n\n"+
		"From a@b Mon Jan  1 00:00:01 2024\nSubject: same\n\nx\n\n"+
		"From a@b Mon Jan  1 00:00:02 2024\nSubject: same\n\nx\n")
	mb, err := OpenMbox(p)
	if err != nil {
		t.Fatal(err)
	}
	defer mb.Close()
	l, err := mb.List(bg)
	if err != nil {
		t.Fatal(err)
	}
	if len(l) != 3 || l[0].UIDL != "u-1" || !strings.HasPrefix(l[1].UIDL, MboxUIDLPrefix) || l[2].UIDL != l[1].UIDL+"-2" {
		t.Fatalf("mbox UIDLs %+v", l)
	}
	rc, _ := l[0].Open(bg)
	b, _ := io.ReadAll(rc)
	if string(b) != "X-UIDL: u-1\nSubject: one\n\nFrom here\n>From there\n" {
		t.Fatalf("first message %q", b)
	}
	rc, _ = l[2].Open(bg)
	if b, _ = io.ReadAll(rc); string(b) != "Subject: same\n\nx\n" {
		t.Fatalf("last message %q", b)
	}
}

// TestImportIdempotent: a second run imports nothing, an interrupted one
// carries on, UIDLs outside the rules are substituted once, duplicates
// reported, and Verify finds every difference.
func TestImportIdempotent(t *testing.T) {
	st, a := newTarget(t)
	p := filepath.Join(t.TempDir(), "mbox")
	var mb strings.Builder
	for i, u := range []string{"u1", "u 2", "u3", "u1", "u4"} {
		mb.WriteString("From x\nX-UIDL: " + u + "\n\nbody " + strings.Repeat("y", i) + "\n\n")
	}
	write(t, p, mb.String())
	src, _ := OpenMbox(p)
	defer src.Close()
	ctx, cancel := context.WithCancel(bg)
	res, err := Import(ctx, st, a, src, Options{Progress: func(p Progress) {
		if p.Done == 2 {
			cancel()
		}
	}})
	if err == nil || res.Imported != 2 {
		t.Fatalf("interrupted import: %+v %v", res, err)
	}
	res, err = Import(bg, st, a, src, Options{})
	if err != nil || res.Imported != 2 || res.AlreadyPresent != 2 || len(res.Duplicates) != 1 || len(res.Substituted) != 1 {
		t.Fatalf("resumed import: %+v %v", res, err)
	}
	res, err = Import(bg, st, a, src, Options{})
	if err != nil || res.Imported != 0 || res.AlreadyPresent != 4 {
		t.Fatalf("third run: %+v %v", res, err)
	}
	diffs, err := Verify(bg, st, a, src)
	if err != nil || len(diffs) != 0 {
		t.Fatalf("Verify after import: %v %v", diffs, err)
	}
	if _, err := st.Deliver(bg, a, strings.NewReader("new\r\n")); err != nil {
		t.Fatal(err)
	}
	ms, _ := st.OpenSession(bg, a, "t")
	want := []string{"u1", SubstituteUIDL("u 2"), "u3", "u4"}
	for i, w := range want {
		if ms.Messages()[i].UID != w {
			t.Fatalf("message %d UID %q, want %q", i, ms.Messages()[i].UID, w)
		}
	}
	if err := ms.Commit(bg, []int{2}); err != nil {
		t.Fatal(err)
	}
	diffs, err = Verify(bg, st, a, src)
	if err != nil || len(diffs) != 2 || diffs[0].Kind != "missing" || diffs[0].UIDL != "u3" || diffs[1].Kind != "only-new" {
		t.Fatalf("Verify after a deletion and a delivery: %v %v", diffs, err)
	}
}
