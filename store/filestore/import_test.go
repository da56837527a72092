//go:build linux

package filestore

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestMessageNames: the names an import makes parse back to their UIDL;
// anything but the canonical form is not a message.
func TestMessageNames(t *testing.T) {
	var buf [70]byte
	const digits = "20260101000000000000000007"
	for _, uidl := range []string{"", digits, "x", "a/b%c-d.eml", strings.Repeat("~", 70)} {
		n := messageName(digits, uidl)
		d, u, ok := parseMessageName([]byte(n), buf[:])
		want := uidl
		if want == "" {
			want = digits
		}
		if !ok || string(d) != digits || string(u) != want {
			t.Errorf("parse(%q) = %q %q %v, want %q", n, d, u, ok, want)
		}
		if len(n) > 255-len("del.")-16-1 {
			t.Errorf("name %q too long for a deletion entry", n)
		}
	}
	for _, n := range []string{
		"P3_" + digits + "-.eml",                                 // empty UIDL
		"P3_" + digits + "-7.eml",                                // odd hex
		"P3_" + digits + "-4A.eml",                               // upper case
		"P3_" + digits + "-2078.eml",                             // decodes to a space
		"P3_" + digits + "_7878.eml",                             // wrong separator
		"P3_" + digits + "-" + strings.Repeat("41", 71) + ".eml", // 71 octets
		"P3_2026010100000000000000000a.eml",
	} {
		if _, _, ok := parseMessageName([]byte(n), buf[:]); ok || isMessageName(n) {
			t.Errorf("%q taken for a message name", n)
		}
	}
}

// TestImportedDeletionRestored: an imported message whose deletion did not
// reach its commit point is put back by the next holder, UIDL and all.
func TestImportedDeletionRestored(t *testing.T) {
	lease := time.Minute
	s1, s2, advance := twoMachines(t, lease)
	a := mkbox(t, s1)
	for _, u := range []string{"old-1", "old/2", "old-3"} {
		if _, err := s1.Import(bg, a, u, strings.NewReader("message "+u+"\r\n")); err != nil {
			t.Fatal(err)
		}
	}
	ms, err := s1.OpenSession(bg, a, "dies mid-commit")
	if err != nil {
		t.Fatal(err)
	}
	h := ms.(*session).lock
	f := ms.(*session).files[1]
	dir := s1.mboxPath(a)
	if err := os.Rename(filepath.Join(dir, f), filepath.Join(h.path(), delName(h.token, f))); err != nil {
		t.Fatal(err)
	}
	advance(lease + time.Second)
	ms2, err := s2.OpenSession(bg, a, "taker")
	if err != nil {
		t.Fatal(err)
	}
	defer ms2.Close()
	var got []string
	for _, m := range ms2.Messages() {
		got = append(got, m.UID)
	}
	if want := []string{"old-1", "old/2", "old-3"}; !slices.Equal(got, want) {
		t.Fatalf("after take-over UIDs %q, want %q", got, want)
	}
}
