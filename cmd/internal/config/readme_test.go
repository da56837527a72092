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

// readmeKeys lists the dotted keys the block sets.
func readmeKeys(block string) []string {
	var keys []string
	table := ""
	header := regexp.MustCompile(`^\[([a-z0-9_]+)\]`)
	key := regexp.MustCompile(`^([a-z0-9_]+)\s*=`)
	for _, l := range strings.Split(block, "\n") {
		if m := header.FindStringSubmatch(l); m != nil {
			table = m[1] + "."
			continue
		}
		if m := key.FindStringSubmatch(l); m != nil {
			keys = append(keys, table+m[1])
		}
	}
	return keys
}

// TestReadmeLimits: every limit of the pre-login budget, the pipelining
// bound and the SMTP budgets appears in the README's configuration
// section with its default, and no key there shows another value than
// the default.
func TestReadmeLimits(t *testing.T) {
	block := readmeConfig(t)
	shown, err := Parse([]byte(block), "/readme/pop3d.toml")
	if err != nil {
		t.Fatalf("the README's configuration block does not load: %v", err)
	}
	def := Default()
	keys := readmeKeys(block)
	have := map[string]bool{}
	for _, k := range keys {
		have[k] = true
		if k == "mailroot" {
			continue // resolved against the file's folder
		}
		got, err := Get(shown, k)
		if err != nil {
			t.Errorf("README key %s: %v", k, err)
			continue
		}
		if want, _ := Get(def, k); got != want {
			t.Errorf("README shows %s = %s, the default is %s", k, got, want)
		}
	}
	for _, k := range []string{
		"pop3.login_timeout", "pop3.login_deadline", "pop3.shed_at", "pop3.socketmax", "pop3.socketbacklog",
		"limits.max_inbound", "limits.max_pipelined",
		"limits.prelogin_per_ip", "limits.prelogin_per_net", "limits.prelogin_per_net48",
		"smtp.max_connections", "smtp.max_conns_per_ip", "smtp.max_conns_per_net", "smtp.max_conns_per_net48",
		"smtp.transaction_deadline", "tls.handshake_timeout",
	} {
		if !have[k] {
			t.Errorf("README's configuration section does not show %s (default %v)", k, mustGet(t, def, k))
		}
	}
}

func mustGet(t *testing.T, c *Config, k string) string {
	t.Helper()
	v, err := Get(c, k)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
