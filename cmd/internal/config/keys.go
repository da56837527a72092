package config

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"

	"github.com/pelletier/go-toml/v2"
)

// Aliases are Winpop's setting names, accepted by Get and Set besides the
// dotted key paths. "port" is the port of pop3.listen[0].
var Aliases = map[string]string{
	"port":            "port",
	"authentication":  "auth.method",
	"socketmin":       "pop3.socketmin",
	"socketmax":       "pop3.socketmax",
	"socketthreshold": "pop3.socketthreshold",
	"socketbacklog":   "pop3.socketbacklog",
	"threadcount":     "pop3.threadcount",
	"sparequired":     "auth.sparequired",
	"logging":         "logging",
	"mailroot":        "mailroot",
	"greeting":        "greeting",
}

// secretKeys are shown masked by Get and List.
var secretKeys = map[string]bool{"ldap.service_password": true, "outbound.smarthost_password": true, "oauth.client_secret": true}

// Masked is what Get and List show for a secret that is set.
const Masked = "********"

// KV is one setting for display: its dotted key path, its value as text
// and when a change of it takes effect.
type KV struct {
	Key     string `json:"key"`
	Value   string `json:"value"`
	Applies When   `json:"applies"`
	// Description says what the key does; Why, for a restart key, what
	// holds its value until the service restarts.
	Description string `json:"description"`
	Why         string `json:"why,omitempty"`
}

// leaf is one settable key of Config.
type leaf struct {
	key   string
	index []int
	typ   reflect.Type
}

var leaves = func() []leaf {
	var out []leaf
	var walk func(t reflect.Type, prefix string, index []int)
	walk = func(t reflect.Type, prefix string, index []int) {
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			name := tagName(f)
			if name == "" || name == "-" {
				continue
			}
			key := name
			if prefix != "" {
				key = prefix + "." + name
			}
			idx := append(append([]int(nil), index...), i)
			if f.Type.Kind() == reflect.Struct {
				walk(f.Type, key, idx)
				continue
			}
			out = append(out, leaf{key: key, index: idx, typ: f.Type})
		}
	}
	walk(reflect.TypeFor[Config](), "", nil)
	return out
}()

func findLeaf(key string) (leaf, bool) {
	for _, l := range leaves {
		if l.key == key {
			return l, true
		}
	}
	return leaf{}, false
}

// Keys returns every dotted key path of the file, in file order.
func Keys() []string {
	out := make([]string, len(leaves))
	for i, l := range leaves {
		out[i] = l.key
	}
	return out
}

// canonicalKey turns a Winpop alias or a dotted key (any case) into a key
// path, or "port".
func canonicalKey(key string) (string, error) {
	k := strings.ToLower(strings.TrimSpace(key))
	if a, ok := Aliases[k]; ok {
		return a, nil
	}
	if _, ok := findLeaf(k); ok {
		return k, nil
	}
	return "", fmt.Errorf("unknown setting %q (see \"pop3ctl get\" for the list)", key)
}

// Get returns one setting of cfg as text, by dotted key path or Winpop
// alias. Lists are comma-separated; durations and sizes are written as in
// the file ("10m0s", "50MB"); secrets are masked.
func Get(cfg *Config, key string) (string, error) {
	k, err := canonicalKey(key)
	if err != nil {
		return "", err
	}
	if k == "port" {
		if len(cfg.POP3.Listen) == 0 {
			return "", errors.New("pop3.listen is empty: the plaintext POP3 listener is off")
		}
		_, port, err := net.SplitHostPort(cfg.POP3.Listen[0])
		if err != nil {
			return "", fmt.Errorf("pop3.listen[0]: %w", err)
		}
		return port, nil
	}
	l, _ := findLeaf(k)
	return formatValue(k, reflect.ValueOf(cfg).Elem().FieldByIndex(l.index)), nil
}

// List returns every setting of cfg in file order.
func List(cfg *Config) []KV {
	v := reflect.ValueOf(cfg).Elem()
	out := make([]KV, 0, len(leaves))
	for _, l := range leaves {
		w, _ := Applies(l.key)
		desc, why, _ := Describe(l.key)
		out = append(out, KV{Key: l.key, Value: formatValue(l.key, v.FieldByIndex(l.index)), Applies: w, Description: desc, Why: why})
	}
	return out
}

func formatValue(key string, v reflect.Value) string {
	switch x := v.Interface().(type) {
	case Duration:
		return x.D().String()
	case Size:
		return x.String()
	case []string:
		return strings.Join(x, ",")
	case string:
		if secretKeys[key] && x != "" {
			return Masked
		}
		return x
	default:
		return fmt.Sprint(x)
	}
}

// Set changes one setting in the file at path, by dotted key path or
// Winpop alias, keeping the rest of the file (comments included) as it is.
// A missing file is created. The result is checked exactly as Load checks
// a file; when it is invalid the file is left untouched and the error is
// returned (an *Errors for rule violations). The file is replaced
// atomically: a temporary file is written, synced and renamed over it.
func Set(path, key, value string) error {
	if path == "" {
		return errors.New("no configuration file: give -config FILE or set " + EnvConfig)
	}
	k, err := canonicalKey(key)
	if err != nil {
		return err
	}
	// Edit the file a symbolic link points to, not the link.
	if real, err := filepath.EvalSymlinks(path); err == nil {
		path = real
	}
	data, err := readFile(path)
	mode := fs.FileMode(0o640)
	switch {
	case err == nil:
		if st, serr := os.Stat(path); serr == nil {
			mode = st.Mode().Perm()
		}
	case errors.Is(err, fs.ErrNotExist):
		data = nil
	default:
		return err
	}
	var lit string
	if k == "port" {
		k = "pop3.listen"
		lit, err = portLiteral(data, value)
	} else {
		l, _ := findLeaf(k)
		lit, err = literal(k, l.typ, value)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", k, err)
	}
	out, err := setText(data, strings.Split(k, "."), lit)
	if err != nil {
		return fmt.Errorf("%s: %w", k, err)
	}
	if _, err := Parse(out, path); err != nil {
		// Line numbers would point into the edited text, not the file.
		var errs *Errors
		if errors.As(err, &errs) {
			for i := range errs.List {
				errs.List[i].Line = 0
			}
		}
		return err
	}
	return writeAtomic(path, out, mode)
}

// portLiteral builds the new pop3.listen with the port of its first
// address replaced.
func portLiteral(data []byte, value string) (string, error) {
	n, err := strconv.Atoi(strings.TrimSpace(value))
	if err != nil || n < 0 || n > 65535 {
		return "", fmt.Errorf("port %q must be a number between 0 and 65535", value)
	}
	listen := Default().POP3.Listen
	var doc struct {
		POP3 struct {
			Listen *[]string `toml:"listen"`
		} `toml:"pop3"`
	}
	if len(data) > 0 && toml.Unmarshal(data, &doc) == nil && doc.POP3.Listen != nil {
		listen = *doc.POP3.Listen
	}
	listen = append([]string(nil), listen...)
	host := "127.0.0.1"
	if len(listen) > 0 {
		if h, _, err := net.SplitHostPort(listen[0]); err == nil {
			host = h
		}
		listen[0] = net.JoinHostPort(host, strconv.Itoa(n))
	} else {
		listen = []string{net.JoinHostPort(host, strconv.Itoa(n))}
	}
	return arrayLiteral(listen), nil
}

// NormalizeAuthMethod accepts auth.method names in any case, Winpop's
// numbers (1 passwordfile, 2 system, 3 directory) and the seed's names for
// the methods.
func NormalizeAuthMethod(s string) string {
	t := strings.ToLower(strings.TrimSpace(s))
	if n, err := strconv.Atoi(t); err == nil && n >= 1 && n <= len(AuthMethods) {
		return AuthMethods[n-1]
	}
	switch strings.NewReplacer(" ", "", "-", "", "_", "").Replace(t) {
	case "passwordfile", "encryptedpasswordfile", "file":
		return "passwordfile"
	case "system", "local", "localaccounts", "localwindowsaccounts", "pam":
		return "system"
	case "directory", "ad", "activedirectory", "activedirectoryintegrated", "ldap":
		return "directory"
	}
	return s
}

// literal turns a command-line value into the TOML text for a field of type t.
func literal(key string, t reflect.Type, value string) (string, error) {
	v := strings.TrimSpace(value)
	switch t {
	case durationType:
		var d Duration
		if err := d.UnmarshalText([]byte(v)); err != nil {
			return "", err
		}
		return quote(v), nil
	case sizeType:
		if _, err := ParseSize(v); err != nil {
			return "", err
		}
		return quote(v), nil
	}
	switch t.Kind() {
	case reflect.String:
		if key == "auth.method" {
			return quote(NormalizeAuthMethod(value)), nil
		}
		return quote(value), nil
	case reflect.Bool:
		b, err := strconv.ParseBool(v)
		if err != nil {
			return "", fmt.Errorf("%q is not true or false", value)
		}
		return strconv.FormatBool(b), nil
	case reflect.Int, reflect.Int64, reflect.Int32:
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || reflect.New(t).Elem().OverflowInt(n) {
			return "", fmt.Errorf("%q is not an integer", value)
		}
		return strconv.FormatInt(n, 10), nil
	case reflect.Slice:
		if t.Elem().Kind() == reflect.String {
			list, err := parseList(v)
			if err != nil {
				return "", err
			}
			return arrayLiteral(list), nil
		}
	}
	return "", fmt.Errorf("this setting cannot be changed with set; edit the file")
}

// parseList reads a TOML array of strings or a comma-separated list.
func parseList(v string) ([]string, error) {
	if strings.HasPrefix(v, "[") {
		var doc struct {
			V []string `toml:"v"`
		}
		if err := toml.Unmarshal([]byte("v = "+v), &doc); err != nil {
			return nil, fmt.Errorf("%q is not a TOML array of strings", v)
		}
		return doc.V, nil
	}
	out := []string{}
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out, nil
}

func arrayLiteral(list []string) string {
	q := make([]string, len(list))
	for i, s := range list {
		q[i] = quote(s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// quote writes s as a TOML basic string.
func quote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\u%04X`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// writeAtomic replaces path with data: a temporary file in the same folder,
// written and synced, renamed over path, then the folder synced.
func writeAtomic(path string, data []byte, mode fs.FileMode) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("cannot write %q: %w", path, err)
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("cannot write %q: %w", tmp, err)
	}
	if err := f.Chmod(mode); err != nil {
		return fmt.Errorf("cannot set the mode of %q: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("cannot sync %q: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("cannot write %q: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("cannot replace %q: %w", path, err)
	}
	ok = true
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// CanonicalKey turns a Winpop alias or a dotted key (any case) into its
// key path ("authentication" → "auth.method"), or "port".
func CanonicalKey(key string) (string, error) { return canonicalKey(key) }
