package migrate

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Names of the UIDL lists a Maildir may hold.
const (
	DovecotUIDList = "dovecot-uidlist"
	CourierPOP3    = "courierpop3dsizelist"
)

// DefaultDovecotUIDLFormat is Dovecot 2.x's pop3_uidl_format default.
const DefaultDovecotUIDLFormat = "%08Xu%08Xv"

// MaildirOptions tune a Maildir source.
type MaildirOptions struct {
	// UIDLFormat is Dovecot's pop3_uidl_format for messages without a
	// stored POP3 UIDL; "": DefaultDovecotUIDLFormat. %u (IMAP UID), %v
	// (UIDVALIDITY), %f (file name) and %g (GUID) are known, with an
	// optional zero-padded width and the X (hexadecimal) modifier.
	UIDLFormat string
	// XUIDL takes a message's X-UIDL header as its UIDL where present
	// (Dovecot's pop3_reuse_xuidl = yes).
	XUIDL bool
}

// Maildir is a Dovecot or Courier Maildir (new/ and cur/).
type Maildir struct {
	dir  string
	opts MaildirOptions
	list []Message
}

// OpenMaildir opens the Maildir dir. Its dovecot-uidlist gives Dovecot's
// POP3 UIDLs (a stored POP3 UIDL, the P field, first; then X-UIDL when
// opts.XUIDL; then opts.UIDLFormat), in UID order; without it, Courier's
// courierpop3dsizelist gives Courier's (UID<n>-<uidvalidity>, or the file
// name for entries of its first format), in its order. Files neither
// lists (mail no POP3 session has seen yet) follow in file-name order,
// with the next UIDs.
func OpenMaildir(dir string, opts MaildirOptions) (*Maildir, error) {
	if opts.UIDLFormat == "" {
		opts.UIDLFormat = DefaultDovecotUIDLFormat
	}
	for _, sub := range []string{"cur", "new"} {
		if fi, err := os.Stat(filepath.Join(dir, sub)); err != nil || !fi.IsDir() {
			return nil, fmt.Errorf("%s is not a Maildir: no %s folder", dir, sub)
		}
	}
	return &Maildir{dir: dir, opts: opts}, nil
}

func (m *Maildir) Close() error { return nil }

// List reads the UIDL list and the message files.
func (m *Maildir) List(ctx context.Context) ([]Message, error) {
	if m.list != nil {
		return m.list, nil
	}
	files := make(map[string]string)
	for _, sub := range []string{"new", "cur"} {
		ents, err := os.ReadDir(filepath.Join(m.dir, sub))
		if err != nil {
			return nil, err
		}
		for _, e := range ents {
			if !e.Type().IsRegular() || strings.HasPrefix(e.Name(), ".") {
				continue
			}
			base, _, _ := strings.Cut(e.Name(), ":")
			files[base] = filepath.Join(m.dir, sub, e.Name())
		}
	}
	var list []Message
	var err error
	switch {
	case exists(filepath.Join(m.dir, DovecotUIDList)):
		list, err = m.dovecot(files)
	case exists(filepath.Join(m.dir, CourierPOP3)):
		list, err = m.courier(files)
	default:
		return nil, fmt.Errorf("%s has neither %s nor %s: its POP3 UIDLs are unknown", m.dir, DovecotUIDList, CourierPOP3)
	}
	if err != nil {
		return nil, err
	}
	m.list = list
	return list, nil
}

func exists(p string) bool { _, err := os.Stat(p); return err == nil }

func fileMessage(path, uidl string, size int64) Message {
	return Message{UIDL: uidl, Size: size, Open: func(context.Context) (io.ReadCloser, error) { return os.Open(path) }}
}

type dovecotEntry struct {
	uid   uint64
	order uint64 // O field; 0: none
	base  string
	ext   map[byte]string
}

// dovecot reads dovecot-uidlist (versions 1 and 3).
func (m *Maildir) dovecot(files map[string]string) ([]Message, error) {
	path := filepath.Join(m.dir, DovecotUIDList)
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	if !sc.Scan() {
		return nil, fmt.Errorf("%s is empty", path)
	}
	hdr := strings.Fields(sc.Text())
	var uidv, next uint64
	var guid string
	bad := func(what string) error { return fmt.Errorf("%s: %s", path, what) }
	switch {
	case len(hdr) >= 3 && hdr[0] == "1":
		uidv, _ = strconv.ParseUint(hdr[1], 10, 32)
		next, _ = strconv.ParseUint(hdr[2], 10, 32)
	case len(hdr) >= 1 && hdr[0] == "3":
		for _, h := range hdr[1:] {
			if len(h) < 2 {
				continue
			}
			switch h[0] {
			case 'V':
				uidv, _ = strconv.ParseUint(h[1:], 10, 32)
			case 'N':
				next, _ = strconv.ParseUint(h[1:], 10, 32)
			case 'G':
				guid = h[1:]
			}
		}
	default:
		return nil, bad("unknown header " + strconv.Quote(sc.Text()))
	}
	var ents []dovecotEntry
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			continue
		}
		var e dovecotEntry
		num, rest, ok := strings.Cut(line, " ")
		if !ok {
			return nil, bad("bad line " + strconv.Quote(line))
		}
		if e.uid, err = strconv.ParseUint(num, 10, 32); err != nil {
			return nil, bad("bad UID in " + strconv.Quote(line))
		}
		if hdr[0] == "1" {
			e.base = rest
		} else {
			ext, name, ok := strings.Cut(rest, ":")
			if !ok {
				return nil, bad("no file name in " + strconv.Quote(line))
			}
			e.base = name
			e.ext = map[byte]string{}
			for _, x := range strings.Fields(ext) {
				e.ext[x[0]] = x[1:]
			}
			if o, ok := e.ext['O']; ok {
				e.order, _ = strconv.ParseUint(o, 10, 64)
			}
		}
		e.base, _, _ = strings.Cut(e.base, ":")
		ents = append(ents, e)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("cannot read %s: %w", path, err)
	}
	// POP3 order: O fields first where set, then UID order.
	slices.SortStableFunc(ents, func(a, b dovecotEntry) int {
		ka, kb := a.order, b.order
		if ka == 0 {
			ka = 1 << 62
		}
		if kb == 0 {
			kb = 1 << 62
		}
		if ka != kb {
			if ka < kb {
				return -1
			}
			return 1
		}
		if a.uid < b.uid {
			return -1
		} else if a.uid > b.uid {
			return 1
		}
		return 0
	})
	listed := make(map[string]bool)
	var out []Message
	add := func(e dovecotEntry, p string) error {
		listed[e.base] = true
		uidl := e.ext['P']
		if uidl == "" && m.opts.XUIDL {
			if uidl, err = xuidl(p); err != nil {
				return err
			}
		}
		if uidl == "" {
			g := e.ext['G']
			if g == "" {
				g = guid
			}
			if uidl, err = expandUIDL(m.opts.UIDLFormat, e.uid, uidv, e.base, g); err != nil {
				return err
			}
		}
		size := int64(-1)
		if w, ok := e.ext['W']; ok {
			size, _ = strconv.ParseInt(w, 10, 64)
		}
		out = append(out, fileMessage(p, uidl, size))
		return nil
	}
	for _, e := range ents {
		p, ok := files[e.base]
		if !ok || listed[e.base] {
			continue // deleted since Dovecot listed it
		}
		if err := add(e, p); err != nil {
			return nil, err
		}
	}
	for _, base := range unlisted(files, listed) {
		if next == 0 {
			next = 1
		}
		if err := add(dovecotEntry{uid: next, base: base}, files[base]); err != nil {
			return nil, err
		}
		next++
	}
	return out, nil
}

func unlisted(files map[string]string, listed map[string]bool) []string {
	var rest []string
	for base := range files {
		if !listed[base] {
			rest = append(rest, base)
		}
	}
	slices.Sort(rest)
	return rest
}

// expandUIDL expands a Dovecot pop3_uidl_format.
func expandUIDL(format string, uid, uidv uint64, base, guid string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(format); i++ {
		c := format[i]
		if c != '%' {
			b.WriteByte(c)
			continue
		}
		i++
		width, zero, hex := 0, false, false
		if i < len(format) && format[i] == '0' {
			zero = true
		}
		for i < len(format) && format[i] >= '0' && format[i] <= '9' {
			width = width*10 + int(format[i]-'0')
			i++
		}
		for i < len(format) && (format[i] == 'X' || format[i] == 'x') {
			hex = true
			i++
		}
		if i >= len(format) {
			return "", fmt.Errorf("pop3_uidl_format %q ends in the middle of a variable", format)
		}
		var v string
		switch format[i] {
		case '%':
			v = "%"
		case 'u':
			v = num(uid, hex)
		case 'v':
			v = num(uidv, hex)
		case 'f':
			v = base
		case 'g':
			v = guid
		default:
			return "", fmt.Errorf("pop3_uidl_format %q: variable %%%c is not supported", format, format[i])
		}
		pad := " "
		if zero {
			pad = "0"
		}
		for len(v) < width {
			v = pad + v
		}
		b.WriteString(v)
	}
	return b.String(), nil
}

func num(v uint64, hex bool) string {
	if hex {
		return strconv.FormatUint(v, 16)
	}
	return strconv.FormatUint(v, 10)
}

// MaxHeaderScan bounds how much of a message xuidl reads for its header.
const MaxHeaderScan = 1 << 20

// xuidl returns the X-UIDL header of the message file at p, or "".
func xuidl(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	return headerXUIDL(bufio.NewReader(io.LimitReader(f, MaxHeaderScan)))
}

// headerXUIDL reads a header section up to its empty line and returns the
// value of the first X-UIDL field, or "".
func headerXUIDL(r *bufio.Reader) (string, error) {
	for {
		line, err := r.ReadSlice('\n')
		t := bytes.TrimRight(line, "\r\n")
		if len(t) == 0 {
			return "", nil
		}
		if len(t) > 7 && bytes.EqualFold(t[:7], []byte("x-uidl:")) {
			return string(bytes.TrimSpace(t[7:])), nil
		}
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, bufio.ErrBufferFull) {
				return "", nil
			}
			return "", err
		}
	}
}

// courier reads courierpop3dsizelist: "/2 <nextuid> <uidv>" then lines
// "<file> <size> <uid>:<uidv>"; or, in its first format, lines
// "<file> <size>" whose UIDL is the file name.
func (m *Maildir) courier(files map[string]string) ([]Message, error) {
	path := filepath.Join(m.dir, CourierPOP3)
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	listed := make(map[string]bool)
	var out []Message
	var next uint64 = 1
	var uidv uint64
	v2 := len(lines) > 0 && strings.HasPrefix(lines[0], "/2 ")
	if v2 {
		h := strings.Fields(lines[0])
		if len(h) != 3 {
			return nil, fmt.Errorf("%s: bad header %q", path, lines[0])
		}
		next, _ = strconv.ParseUint(h[1], 10, 64)
		uidv, _ = strconv.ParseUint(h[2], 10, 64)
		lines = lines[1:]
	} else if len(lines) > 0 && strings.HasPrefix(lines[0], "/") {
		return nil, fmt.Errorf("%s: unknown format %q", path, lines[0])
	}
	for _, l := range lines {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		base, _, _ := strings.Cut(f[0], ":")
		p, ok := files[base]
		if !ok || listed[base] {
			continue
		}
		listed[base] = true
		size, _ := strconv.ParseInt(f[1], 10, 64)
		uidl := courierFileUIDL(base)
		if v2 && len(f) >= 3 {
			n, v, _ := strings.Cut(f[2], ":")
			un, _ := strconv.ParseUint(n, 10, 64)
			uv, _ := strconv.ParseUint(v, 10, 64)
			if un != 0 {
				uidl = courierUIDL(un, uv)
			}
		}
		out = append(out, fileMessage(p, uidl, size))
	}
	for _, base := range unlisted(files, listed) {
		out = append(out, fileMessage(files[base], courierUIDL(next, uidv), -1))
		next++
	}
	return out, nil
}

func courierUIDL(n, uidv uint64) string {
	if uidv == 0 {
		return "UID" + strconv.FormatUint(n, 10)
	}
	return "UID" + strconv.FormatUint(n, 10) + "-" + strconv.FormatUint(uidv, 10)
}

// courierFileUIDL is Courier's UIDL of a file name: octets outside
// 0x21..0x7E and ' " + written as +XX.
func courierFileUIDL(base string) string {
	var b strings.Builder
	for i := 0; i < len(base); i++ {
		c := base[i]
		if c < 0x21 || c > 0x7e || c == '\'' || c == '"' || c == '+' {
			fmt.Fprintf(&b, "+%02X", c)
		} else {
			b.WriteByte(c)
		}
	}
	return b.String()
}
