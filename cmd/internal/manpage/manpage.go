// Package manpage writes the man pages of the Debian package (pop3d(8),
// pop3ctl(8), pop3d.toml(5)) in roff's man macros, from the sources the
// programs and the README already use: pop3d's flag set, pop3ctl's usage
// text, and for the configuration the README's commented TOML block with
// the live/restart table of package config (the one that generates the
// README's reload table). Each program's manpage_test.go compares the
// pages in cmd/pop3d/debian/man with a fresh rendering; -update rewrites
// them (go generate ./cmd/...).
package manpage

import (
	"bufio"
	"bytes"
	"fmt"
	"strings"

	"github.com/pop3svc/pop3svc/cmd/internal/config"
)

// Page is one man page.
type Page struct {
	Name, Section, Summary string
	Sections               []Section
}

// Section is a titled part of a page; Text is roff already (use Escape,
// Verbatim, Para).
type Section struct {
	Title string
	Text  string
}

// Render writes the page.
func (p Page) Render() string {
	var b strings.Builder
	fmt.Fprintf(&b, ".TH %s %s \"\" \"pop3svc\" \"POP3 mail service\"\n", strings.ToUpper(Escape(p.Name)), p.Section)
	fmt.Fprintf(&b, ".SH NAME\n%s \\- %s\n", Escape(p.Name), Escape(p.Summary))
	for _, s := range p.Sections {
		fmt.Fprintf(&b, ".SH %s\n%s", strings.ToUpper(s.Title), s.Text)
		if !strings.HasSuffix(s.Text, "\n") {
			b.WriteByte('\n')
		}
	}
	return b.String()
}

// Escape makes text safe for roff: backslashes, and a leading dot or
// apostrophe that would start a request.
func Escape(s string) string {
	s = strings.ReplaceAll(s, `\`, `\e`)
	s = strings.ReplaceAll(s, "-", `\-`)
	var b strings.Builder
	for i, l := range strings.Split(s, "\n") {
		if i > 0 {
			b.WriteByte('\n')
		}
		if strings.HasPrefix(l, ".") || strings.HasPrefix(l, "'") {
			b.WriteString(`\&`)
		}
		b.WriteString(l)
	}
	return b.String()
}

// Para is paragraphs of plain text (blank lines separate them).
func Para(s string) string {
	var b strings.Builder
	for i, p := range strings.Split(strings.TrimSpace(s), "\n\n") {
		if i > 0 {
			b.WriteString(".PP\n")
		}
		b.WriteString(Escape(strings.TrimSpace(p)) + "\n")
	}
	return b.String()
}

// Verbatim is text shown as it is, in a fixed-width block.
func Verbatim(s string) string {
	return ".nf\n.RS 2\n" + Escape(strings.TrimRight(s, "\n")) + "\n.RE\n.fi\n"
}

// Item is a tagged paragraph: a term and its description.
func Item(term, desc string) string {
	return ".TP\n.B " + Escape(term) + "\n" + Escape(desc) + "\n"
}

// ConfigKeys reads the README's configuration block (the first ```toml
// block after "## Configuration"): each key's default as written there and
// its comment, continuation comment lines included.
func ConfigKeys(readme []byte) (map[string][2]string, error) {
	i := bytes.Index(readme, []byte("## Configuration"))
	if i < 0 {
		return nil, fmt.Errorf("README has no Configuration section")
	}
	rest := readme[i:]
	j := bytes.Index(rest, []byte("```toml\n"))
	if j < 0 {
		return nil, fmt.Errorf("README's Configuration section has no toml block")
	}
	rest = rest[j+len("```toml\n"):]
	k := bytes.Index(rest, []byte("```"))
	if k < 0 {
		return nil, fmt.Errorf("README's toml block does not end")
	}
	out := map[string][2]string{}
	table, last := "", ""
	sc := bufio.NewScanner(bytes.NewReader(rest[:k]))
	for sc.Scan() {
		l := sc.Text()
		t := strings.TrimSpace(l)
		switch {
		case t == "":
			last = ""
		case strings.HasPrefix(t, "[") && strings.HasSuffix(t, "]"):
			table, last = strings.Trim(t, "[]"), ""
		case strings.HasPrefix(t, "#"):
			if last != "" {
				v := out[last]
				v[1] = strings.TrimSpace(v[1] + " " + strings.TrimSpace(strings.TrimPrefix(t, "#")))
				out[last] = v
			}
		default:
			kv, comment, _ := strings.Cut(l, "#")
			name, val, ok := strings.Cut(kv, "=")
			if !ok {
				continue
			}
			key := strings.TrimSpace(name)
			if table != "" {
				key = table + "." + key
			}
			out[key] = [2]string{strings.TrimSpace(val), strings.TrimSpace(comment)}
			last = key
		}
	}
	return out, nil
}

// ConfigPage is pop3d.toml(5): every key of package config with its
// default, what the README says of it, and whether a reload applies it.
func ConfigPage(readme []byte) (Page, error) {
	doc, err := ConfigKeys(readme)
	if err != nil {
		return Page{}, err
	}
	def := map[string]string{}
	for _, kv := range config.List(config.Default()) {
		def[kv.Key] = kv.Value
	}
	var keys strings.Builder
	table := "-"
	for _, k := range config.KeyInfos() {
		t, _, ok := strings.Cut(k.Key, ".")
		if !ok {
			t = ""
		}
		if t != table {
			title := "Top level"
			if t != "" {
				title = "[" + t + "]"
			}
			keys.WriteString(".SS " + Escape(title) + "\n")
			table = t
		}
		desc := strings.TrimSuffix(k.Desc, ".")
		if desc == "" {
			desc = doc[k.Key][1]
		}
		val := def[k.Key]
		if v := doc[k.Key][0]; v != "" {
			val = v
		}
		line := "Default: " + val + "."
		if desc != "" {
			line = desc + ". " + line
		}
		if k.When == config.Live {
			line += " A reload applies it."
		} else {
			line += " Needs a restart: " + k.Why + "."
		}
		keys.WriteString(Item(k.Key, line))
	}
	return Page{
		Name: "pop3d.toml", Section: "5", Summary: "configuration file of the POP3 mail service",
		Sections: []Section{
			{"Synopsis", Para("/etc/pop3d/pop3d.toml (the Debian package), or the file given to pop3d -config")},
			{"Description", Para(`One TOML file configures pop3d and tells pop3ctl where the mail store is. Unknown keys and bad values are errors that name their key and line, all reported at once; pop3d -check -config FILE validates a file and what the start would check (the authentication method in this build, the certificate files, the listen addresses). Relative paths resolve against the file's folder.

SIGHUP (systemctl reload pop3d), POST /api/reload, pop3ctl set and the console's settings page apply a changed file without dropping sessions. A key is either applied by a reload or needs a restart; a reload that finds restart keys changed applies everything else, keeps their running values and says which they are.`)},
			{"Keys", keys.String()},
			{"Files", Item("/etc/pop3d/pop3d.toml", "the Debian package's file (a conffile)") + Item("/var/lib/pop3d", "the package's mail root: mail, password file, queue, Badmail, store key")},
			{"See also", Para("pop3d(8), pop3ctl(8)")},
		},
	}, nil
}
