package durable

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWriteFileReplacesWhole(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	for _, data := range []string{"first", "second, longer", ""} {
		if err := WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatalf("WriteFile(%q) = %v", data, err)
		}
		got, err := ReadSmall(p, 100)
		if err != nil || string(got) != data {
			t.Fatalf("ReadSmall = %q, %v; want %q", got, err, data)
		}
	}
	st, err := os.Stat(p)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, %v; want 0600", st.Mode(), err)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Fatalf("%d entries left in the folder, want 1 (no temporary files)", len(ents))
	}
}

func TestReadSmallLimitAndLinks(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "big")
	if err := os.WriteFile(p, bytes.Repeat([]byte("x"), 11), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadSmall(p, 10); err == nil || !strings.Contains(err.Error(), "larger than 10") {
		t.Fatalf("ReadSmall over the limit = %v", err)
	}
	if b, err := ReadSmall(p, 11); err != nil || len(b) != 11 {
		t.Fatalf("ReadSmall at the limit = %d, %v", len(b), err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(p, link); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadSmall(link, 100); err == nil {
		t.Fatal("ReadSmall followed a symbolic link")
	}
	if err := WriteFile(filepath.Join(dir, "nodir", "f"), nil, 0o600); err == nil {
		t.Fatal("WriteFile into a missing folder succeeded")
	}
}
