package config

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// readmeConfig returns the TOML block of the README's configuration
// section.
func readmeConfig(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, sec, ok := strings.Cut(string(b), "\n## Configuration\n")
	if !ok {
		t.Fatal("README has no Configuration section")
	}
	sec, _, _ = strings.Cut(sec, "\n## ")
	_, block, ok := strings.Cut(sec, "```toml\n")
	if !ok {
		t.Fatal("README's Configuration section has no toml block")
	}
	block, _, _ = strings.Cut(block, "```")
	return block
}

// Every [auth] setting appears in the README's configuration block, and
// the values shown there are the defaults.
func TestREADMEDocumentsAuthSettings(t *testing.T) {
	block := readmeConfig(t)
	path := filepath.Join(t.TempDir(), "pop3d.toml")
	if err := os.WriteFile(path, []byte(block), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(path)
	if err != nil {
		t.Fatalf("the README's configuration block does not load: %v", err)
	}
	if c.Auth != Default().Auth {
		t.Errorf("the README's [auth] values are not the defaults:\n README %+v\ndefault %+v", c.Auth, Default().Auth)
	}
	_, auth, _ := strings.Cut(block, "\n[auth]\n")
	auth, _, _ = strings.Cut(auth, "\n[")
	for _, k := range Keys() {
		name, ok := strings.CutPrefix(k, "auth.")
		if !ok {
			continue
		}
		if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` *=`).MatchString(auth) {
			t.Errorf("%s is not in the README's [auth] block", k)
		}
	}
}
