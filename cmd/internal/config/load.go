package config

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"github.com/pelletier/go-toml/v2"
	"github.com/pelletier/go-toml/v2/unstable"
)

// EnvConfig names the environment variable that points pop3d and pop3ctl at
// a configuration file when no -config flag is given.
const EnvConfig = "POP3D_CONFIG"

// DefaultFile is the file looked for in the working folder when neither
// -config nor POP3D_CONFIG is given.
const DefaultFile = "pop3d.toml"

// MaxFileSize is the largest configuration file read; anything longer is
// certainly not a configuration file.
const MaxFileSize = 1 << 20

// FieldError is one problem with one key of the file.
type FieldError struct {
	Key  string // dotted key path, e.g. "pop3.socketmax" or "pop3.listen[1]"; empty for the whole file
	Line int    // 1-based line in the file; 0 when unknown (embedded defaults, key absent)
	Msg  string
}

func (e FieldError) Error() string {
	var b strings.Builder
	if e.Line > 0 {
		b.WriteString("line ")
		b.WriteString(strconv.Itoa(e.Line))
		b.WriteString(": ")
	}
	if e.Key != "" {
		b.WriteString(e.Key)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors is every problem found in one configuration. Its message lists
// them one per line, each as "FILE:LINE: KEY: problem".
type Errors struct {
	File string // the file, "" for the embedded defaults or a bare Validate
	List []FieldError
}

func (e *Errors) Error() string {
	var b strings.Builder
	for i, fe := range e.List {
		if i > 0 {
			b.WriteByte('\n')
		}
		if e.File != "" {
			b.WriteString(e.File)
			if fe.Line > 0 {
				b.WriteByte(':')
				b.WriteString(strconv.Itoa(fe.Line))
			}
			b.WriteString(": ")
		}
		if fe.Key != "" {
			b.WriteString(fe.Key)
			b.WriteString(": ")
		}
		b.WriteString(fe.Msg)
	}
	return b.String()
}

func (e *Errors) add(key, format string, args ...any) {
	e.List = append(e.List, FieldError{Key: key, Msg: fmt.Sprintf(format, args...)})
}

func (e *Errors) err() error {
	if len(e.List) == 0 {
		return nil
	}
	return e
}

// SystemFile is the system-wide configuration file, looked for after
// ./pop3d.toml. Empty in a plain build; the Debian package's build stamps
// "/etc/pop3d/pop3d.toml" with
// -ldflags "-X github.com/pop3svc/pop3svc/cmd/internal/config.SystemFile=...",
// so that pop3ctl finds the installed service's file by itself.
var SystemFile string

// Resolve picks the configuration file both binaries use: flagPath when not
// empty, else $POP3D_CONFIG, else ./pop3d.toml when it exists, else
// SystemFile when it is set and exists, else "" (the embedded defaults). An explicit path (flag or environment) is
// returned even when the file does not exist; Load then reports it.
func Resolve(flagPath string) (string, error) {
	if flagPath != "" {
		return flagPath, nil
	}
	if p := os.Getenv(EnvConfig); p != "" {
		return p, nil
	}
	st, err := os.Stat(DefaultFile)
	switch {
	case err == nil && st.Mode().IsRegular():
		return DefaultFile, nil
	case err == nil:
		return "", fmt.Errorf("%s is not a regular file", DefaultFile)
	case errors.Is(err, fs.ErrNotExist):
	default:
		return "", fmt.Errorf("cannot read %s: %w", DefaultFile, err)
	}
	if SystemFile != "" {
		if _, err := os.Stat(SystemFile); err == nil || !errors.Is(err, fs.ErrNotExist) {
			return SystemFile, nil
		}
	}
	return "", nil
}

// LoadDefault resolves the file as Resolve does and loads it. It returns
// the path used ("" for the embedded defaults).
func LoadDefault(flagPath string) (*Config, string, error) {
	path, err := Resolve(flagPath)
	if err != nil {
		return nil, "", err
	}
	if path == "" {
		cfg, err := LoadEmbedded()
		return cfg, "", err
	}
	cfg, err := Load(path)
	return cfg, path, err
}

// LoadEmbedded returns the embedded defaults with relative paths resolved
// against the working folder, validated.
func LoadEmbedded() (*Config, error) {
	wd, err := os.Getwd()
	if err != nil {
		return nil, fmt.Errorf("cannot find the working folder: %w", err)
	}
	cfg := Default()
	cfg.resolvePaths(wd)
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// Load reads the TOML file at path over the embedded defaults, rejects
// unknown keys and values of the wrong type, validates the result and
// resolves relative paths against the file's folder. Every problem is
// reported at once: the error is an *Errors listing one per line with its
// key path and line number. A missing or unreadable file is a plain error.
func Load(path string) (*Config, error) {
	data, err := readFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(data, path)
}

func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("cannot open configuration %q: %w", path, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("cannot read configuration %q: %w", path, err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("configuration %q is not a regular file", path)
	}
	if st.Size() > MaxFileSize {
		return nil, fmt.Errorf("configuration %q has %d bytes, more than the %d accepted", path, st.Size(), MaxFileSize)
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("cannot read configuration %q: %w", path, err)
	}
	if len(data) > MaxFileSize {
		return nil, fmt.Errorf("configuration %q is longer than the %d bytes accepted", path, MaxFileSize)
	}
	return data, nil
}

// Parse decodes data as the file named path (used for messages and to
// resolve relative paths; "" means the working folder) over the embedded
// defaults and validates the result, as Load does.
func Parse(data []byte, path string) (*Config, error) {
	base, err := baseDir(path)
	if err != nil {
		return nil, err
	}
	cfg := Default()
	errs := &Errors{File: path}
	lines, perr := keyLines(data)
	if perr != nil {
		errs.List = append(errs.List, *perr)
		return nil, errs
	}
	var doc map[string]any
	if err := toml.Unmarshal(data, &doc); err != nil {
		fe := FieldError{Msg: strings.TrimPrefix(err.Error(), "toml: ")}
		var de *toml.DecodeError
		if errors.As(err, &de) {
			fe.Line, _ = de.Position()
			fe.Key = strings.Join(de.Key(), ".")
		}
		errs.List = append(errs.List, fe)
		return nil, errs
	}
	decodeTable(doc, reflect.ValueOf(cfg).Elem(), "", errs)
	if verr := cfg.Validate(); verr != nil {
		var ve *Errors
		if errors.As(verr, &ve) {
			errs.List = append(errs.List, ve.List...)
		}
	}
	if len(errs.List) > 0 {
		for i := range errs.List {
			if errs.List[i].Line == 0 {
				errs.List[i].Line = lines.find(errs.List[i].Key)
			}
		}
		sort.SliceStable(errs.List, func(i, j int) bool {
			li, lj := errs.List[i].Line, errs.List[j].Line
			if li == 0 || lj == 0 {
				return li != 0 && lj == 0
			}
			return li < lj
		})
		return nil, errs
	}
	cfg.resolvePaths(base)
	return cfg, nil
}

func baseDir(path string) (string, error) {
	if path == "" {
		wd, err := os.Getwd()
		if err != nil {
			return "", fmt.Errorf("cannot find the working folder: %w", err)
		}
		return wd, nil
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", fmt.Errorf("cannot resolve %q: %w", path, err)
	}
	return filepath.Dir(abs), nil
}

// resolvePaths makes the relative file paths absolute against base.
func (c *Config) resolvePaths(base string) {
	for _, p := range []*string{&c.MailRoot, &c.TLS.Cert, &c.TLS.Key, &c.LDAP.CACert, &c.OAuth.JWKSFile} {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(base, *p)
		}
	}
}

// lineIndex maps dotted key paths to the line that sets them.
type lineIndex map[string]int

// find returns the line of key, or of its nearest parent that has one
// ("pop3.listen[1]" falls back to "pop3.listen", then "pop3").
func (l lineIndex) find(key string) int {
	if i := strings.IndexByte(key, '['); i >= 0 {
		key = key[:i]
	}
	for key != "" {
		if n, ok := l[key]; ok {
			return n
		}
		i := strings.LastIndexByte(key, '.')
		if i < 0 {
			break
		}
		key = key[:i]
	}
	return 0
}

// keyLines walks the document's syntax tree and records where each key is
// set. A syntax error comes back as a FieldError with its line.
func keyLines(data []byte) (lineIndex, *FieldError) {
	idx := lineIndex{}
	var p unstable.Parser
	p.Reset(data)
	var prefix []string
	for p.NextExpression() {
		e := p.Expression()
		switch e.Kind {
		case unstable.Table, unstable.ArrayTable:
			prefix = prefix[:0]
			it := e.Key()
			line := 0
			for it.Next() {
				k := it.Node()
				prefix = append(prefix, string(k.Data))
				if line == 0 {
					line = p.Shape(k.Raw).Start.Line
				}
				record(idx, prefix, line)
			}
		case unstable.KeyValue:
			recordKV(&p, idx, prefix, e)
		}
	}
	if err := p.Error(); err != nil {
		fe := &FieldError{Msg: err.Error()}
		var pe *unstable.ParserError
		if errors.As(err, &pe) && len(pe.Highlight) > 0 {
			fe.Line = p.Shape(p.Range(pe.Highlight)).Start.Line
		}
		return nil, fe
	}
	return idx, nil
}

func record(idx lineIndex, path []string, line int) {
	k := strings.Join(path, ".")
	if _, ok := idx[k]; !ok {
		idx[k] = line
	}
}

func recordKV(p *unstable.Parser, idx lineIndex, prefix []string, kv *unstable.Node) {
	path := append([]string(nil), prefix...)
	it := kv.Key()
	for it.Next() {
		k := it.Node()
		path = append(path, string(k.Data))
		record(idx, path, p.Shape(k.Raw).Start.Line)
	}
	if v := kv.Value(); v.Kind == unstable.InlineTable {
		c := v.Children()
		for c.Next() {
			if c.Node().Kind == unstable.KeyValue {
				recordKV(p, idx, path, c.Node())
			}
		}
	}
}

var (
	durationType = reflect.TypeFor[Duration]()
	sizeType     = reflect.TypeFor[Size]()
)

// decodeTable stores the document table m into the struct v, field by
// field, so that every unknown key and every wrong value is reported, not
// just the first.
func decodeTable(m map[string]any, v reflect.Value, prefix string, errs *Errors) {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		path := k
		if prefix != "" {
			path = prefix + "." + k
		}
		f, ok := fieldByTag(v, k)
		if !ok {
			msg := "unknown key"
			if s := suggest(v.Type(), k); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", s)
			}
			errs.add(path, "%s", msg)
			continue
		}
		if f.Kind() == reflect.Struct {
			sub, ok := m[k].(map[string]any)
			if !ok {
				errs.add(path, "must be a table ([%s])", path)
				continue
			}
			decodeTable(sub, f, path, errs)
			continue
		}
		if err := decodeValue(m[k], f); err != nil {
			errs.add(path, "%s", err.Error())
		}
	}
}

// fieldByTag finds the field of struct v whose toml tag is key.
func fieldByTag(v reflect.Value, key string) (reflect.Value, bool) {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		if tagName(t.Field(i)) == key {
			return v.Field(i), true
		}
	}
	return reflect.Value{}, false
}

func tagName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
	return name
}

// suggest returns the key of struct type t nearest to key, when close.
func suggest(t reflect.Type, key string) string {
	best, bestD := "", 3
	for i := 0; i < t.NumField(); i++ {
		n := tagName(t.Field(i))
		if d := editDistance(strings.ToLower(key), n); d < bestD {
			best, bestD = n, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			c := prev[j-1]
			if a[i-1] != b[j-1] {
				c++
			}
			cur[j] = min(c, prev[j]+1, cur[j-1]+1)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// tomlType names a decoded TOML value's type for messages.
func tomlType(x any) string {
	switch x.(type) {
	case string:
		return "a string"
	case int64:
		return "an integer"
	case float64:
		return "a float"
	case bool:
		return "a boolean"
	case []any:
		return "an array"
	case map[string]any:
		return "a table"
	default:
		return "a date or time"
	}
}

// decodeValue stores one decoded TOML value into the field f.
func decodeValue(x any, f reflect.Value) error {
	switch f.Type() {
	case durationType:
		s, ok := x.(string)
		if !ok {
			return fmt.Errorf("must be a duration string such as \"60s\" or \"10m\", not %s", tomlType(x))
		}
		var d Duration
		if err := d.UnmarshalText([]byte(s)); err != nil {
			return err
		}
		f.Set(reflect.ValueOf(d))
		return nil
	case sizeType:
		switch s := x.(type) {
		case int64:
			if s < 0 {
				return fmt.Errorf("must not be negative (is %d)", s)
			}
			f.SetInt(s)
			return nil
		case string:
			var z Size
			if err := z.UnmarshalText([]byte(s)); err != nil {
				return err
			}
			f.SetInt(int64(z))
			return nil
		}
		return fmt.Errorf("must be a size such as \"50MB\" or a number of bytes, not %s", tomlType(x))
	}
	switch f.Kind() {
	case reflect.String:
		s, ok := x.(string)
		if !ok {
			return fmt.Errorf("must be a string, not %s", tomlType(x))
		}
		f.SetString(s)
		return nil
	case reflect.Bool:
		b, ok := x.(bool)
		if !ok {
			return fmt.Errorf("must be true or false, not %s", tomlType(x))
		}
		f.SetBool(b)
		return nil
	case reflect.Int, reflect.Int64, reflect.Int32:
		n, ok := x.(int64)
		if !ok {
			return fmt.Errorf("must be an integer, not %s", tomlType(x))
		}
		if f.OverflowInt(n) {
			return fmt.Errorf("%d is out of range", n)
		}
		f.SetInt(n)
		return nil
	case reflect.Slice:
		if f.Type().Elem().Kind() == reflect.String {
			arr, ok := x.([]any)
			if !ok {
				return fmt.Errorf("must be an array of strings such as [\"127.0.0.1:110\"], not %s", tomlType(x))
			}
			out := make([]string, 0, len(arr))
			for i, e := range arr {
				s, ok := e.(string)
				if !ok {
					return fmt.Errorf("element %d must be a string, not %s", i, tomlType(e))
				}
				out = append(out, s)
			}
			f.Set(reflect.ValueOf(out))
			return nil
		}
	}
	// Any other field type: let go-toml convert the value alone.
	doc, err := toml.Marshal(map[string]any{"v": x})
	if err != nil {
		return fmt.Errorf("cannot use %s here", tomlType(x))
	}
	holder := reflect.New(reflect.StructOf([]reflect.StructField{{Name: "V", Type: f.Type(), Tag: `toml:"v"`}}))
	if err := toml.Unmarshal(doc, holder.Interface()); err != nil {
		return fmt.Errorf("cannot use %s here", tomlType(x))
	}
	f.Set(holder.Elem().Field(0))
	return nil
}
