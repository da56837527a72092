package config

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func writeFile(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func loadErrors(t *testing.T, body string) *Errors {
	t.Helper()
	p := writeFile(t, t.TempDir(), "pop3d.toml", body)
	cfg, err := Load(p)
	if err == nil {
		t.Fatalf("Load(%q) = %+v, want an error", body, cfg)
	}
	var errs *Errors
	if !errors.As(err, &errs) {
		t.Fatalf("Load(%q) error %T %v, want *Errors", body, err, err)
	}
	return errs
}

func TestDefaultsValid(t *testing.T) {
	if err := Default().Validate(); err != nil {
		t.Fatalf("Default().Validate() = %v", err)
	}
	cfg, err := Parse(nil, "")
	if err != nil {
		t.Fatalf("Parse(empty) = %v", err)
	}
	wd, _ := os.Getwd()
	if want := filepath.Join(wd, "mailroot"); cfg.MailRoot != want {
		t.Errorf("embedded mailroot = %q, want %q", cfg.MailRoot, want)
	}
}

func TestUnknownKeyNamesPath(t *testing.T) {
	errs := loadErrors(t, "node = 2\n\n[pop3]\nsocketmax = 50\nsockettmax = 7\n")
	if len(errs.List) != 1 {
		t.Fatalf("got %d errors, want 1: %v", len(errs.List), errs)
	}
	fe := errs.List[0]
	if fe.Key != "pop3.sockettmax" || fe.Line != 5 || !strings.Contains(fe.Msg, "unknown key") || !strings.Contains(fe.Msg, `"socketmax"`) {
		t.Errorf("error = %+v, want pop3.sockettmax line 5 unknown key suggesting socketmax", fe)
	}
	if msg := errs.Error(); !strings.Contains(msg, "pop3d.toml:5: pop3.sockettmax: unknown key") {
		t.Errorf("message %q lacks file:line: key", msg)
	}
	// An unknown table and a key inside an inline table.
	errs = loadErrors(t, "[pop4]\nx = 1\n[auth]\nmethod = \"system\"\n[limits]\n")
	if errs.List[0].Key != "pop4" || errs.List[0].Line != 1 {
		t.Errorf("unknown table error = %+v", errs.List[0])
	}
	errs = loadErrors(t, "pop3 = { socketmax = 3, bogus = 1 }\n")
	if errs.List[0].Key != "pop3.bogus" || errs.List[0].Line != 1 {
		t.Errorf("inline table error = %+v", errs.List[0])
	}
}

func TestAllErrorsAtOnce(t *testing.T) {
	body := `nod = 3
logging = 9
greeting = "bad\r\n"
default_domain = "Bad_Domain"
[auth]
method = "kerberos"
[pop3]
socketmax = 0
socketmin = "x"
listen = ["127.0.0.1:99999", "nohost"]
threadcount = 0
login_timeout = "0s"
idle_timeout = 600
[smtp]
max_message_size = 0
[tls]
cert = "c.pem"
min_version = "1.4"
[limits]
max_line = 100
outbound_low_mark = 10
outbound_high_mark = 5
`
	errs := loadErrors(t, body)
	want := []string{"nod", "logging", "greeting", "default_domain", "auth.method", "pop3.socketmax",
		"pop3.socketmin", "pop3.listen[0]", "pop3.listen[1]", "pop3.threadcount", "pop3.login_timeout",
		"pop3.idle_timeout", "smtp.max_message_size", "tls.key", "tls.min_version", "limits.max_line",
		"limits.outbound_low_mark"}
	got := map[string]FieldError{}
	for _, fe := range errs.List {
		got[fe.Key] = fe
		if fe.Line == 0 {
			t.Errorf("error %+v has no line", fe)
		}
	}
	for _, k := range want {
		if _, ok := got[k]; !ok {
			t.Errorf("no error for %s in:\n%v", k, errs)
		}
	}
	if n := strings.Count(errs.Error(), "\n") + 1; n != len(errs.List) {
		t.Errorf("message has %d lines for %d errors", n, len(errs.List))
	}
	if got["logging"].Line != 2 || got["pop3.socketmax"].Line != 8 {
		t.Errorf("lines: logging %d (want 2), socketmax %d (want 8)", got["logging"].Line, got["pop3.socketmax"].Line)
	}
}

func TestSyntaxErrorHasLine(t *testing.T) {
	errs := loadErrors(t, "node = 1\nlogging = \n")
	if len(errs.List) != 1 || errs.List[0].Line != 2 {
		t.Fatalf("syntax error = %v, want one error on line 2", errs)
	}
}

func TestValidateRules(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(*Config)
		key  string // "" means valid
	}{
		{"node max", func(c *Config) { c.Node = 99999 }, ""},
		{"node over", func(c *Config) { c.Node = 100000 }, "node"},
		{"lock lease too short", func(c *Config) { c.LockLease = Duration(time.Second) }, "lock_lease"},
		{"lock lease too long", func(c *Config) { c.LockLease = Duration(2 * time.Hour) }, "lock_lease"},
		{"lock lease short ok", func(c *Config) { c.LockLease = Duration(3 * time.Second) }, ""},
		{"node negative", func(c *Config) { c.Node = -1 }, "node"},
		{"greeting long", func(c *Config) { c.Greeting = strings.Repeat("a", 201) }, "greeting"},
		{"greeting 200", func(c *Config) { c.Greeting = strings.Repeat("a", 200) }, ""},
		{"greeting utf8", func(c *Config) { c.Greeting = "héllo" }, "greeting"},
		{"port 0", func(c *Config) { c.POP3.Listen = []string{"127.0.0.1:0"} }, ""},
		{"port text", func(c *Config) { c.POP3.Listen = []string{"127.0.0.1:pop3"} }, "pop3.listen[0]"},
		{"listen dup", func(c *Config) { c.POP3.ListenTLS = []string{":995", ":995"} }, "pop3.listen_tls[1]"},
		{"no listeners", func(c *Config) { c.POP3.Listen = nil }, ""},
		{"socketmin > max", func(c *Config) { c.POP3.SocketMin = 20; c.POP3.SocketMax = 10 }, "pop3.socketmin"},
		{"backlog negative", func(c *Config) { c.POP3.SocketBacklog = -1 }, "pop3.socketbacklog"},
		{"threshold negative", func(c *Config) { c.POP3.SocketThreshold = -1 }, "pop3.socketthreshold"},
		{"threads max", func(c *Config) { c.POP3.ThreadCount = 100001 }, "pop3.threadcount"},
		{"short idle ok", func(c *Config) { c.POP3.IdleTimeout = Duration(time.Second) }, ""},
		{"max_line 255", func(c *Config) { c.Limits.MaxLine = 255 }, ""},
		{"auth line short", func(c *Config) { c.Limits.MaxAuthLine = 512 }, "limits.max_auth_line"},
		{"marks equal", func(c *Config) { c.Limits.OutboundLowMark = c.Limits.OutboundHighMark }, "limits.outbound_low_mark"},
		{"tls 1.3", func(c *Config) { c.TLS.MinVersion = "1.3" }, ""},
		{"key only", func(c *Config) { c.TLS.Key = "k.pem" }, "tls.cert"},
		{"both", func(c *Config) { c.TLS.Key = "k.pem"; c.TLS.Cert = "c.pem" }, ""},
		{"directory no url", func(c *Config) { c.Auth.Method = "directory"; c.LDAP.BindDN = "uid=%u" }, "ldap.url"},
		{"directory ok", func(c *Config) {
			c.Auth.Method = "directory"
			c.LDAP.URL = "ldaps://dc.example.test"
			c.LDAP.BindDN = "uid=%u"
		}, ""},
		{"ldap bad url", func(c *Config) { c.LDAP.URL = "http://x" }, "ldap.url"},
		{"default domain", func(c *Config) { c.DefaultDomain = "example.test" }, ""},
		{"default domain bad", func(c *Config) { c.DefaultDomain = "-x.test" }, "default_domain"},
		{"relay", func(c *Config) { c.SMTP.Relay = "mx.example.test" }, "smtp.relay"},
		{"admin off", func(c *Config) { c.Admin.Listen = "" }, ""},
		{"message size", func(c *Config) { c.SMTP.MaxMessageSize = 0 }, "smtp.max_message_size"},
		{"logging", func(c *Config) { c.Logging = 5 }, "logging"},
		{"smtp line", func(c *Config) { c.SMTP.MaxLine = 512 }, "smtp.max_line"},
		{"smtp read timeout", func(c *Config) { c.SMTP.ReadTimeout = 0 }, "smtp.read_timeout"},
	} {
		c := Default()
		tc.mod(c)
		err := c.Validate()
		if tc.key == "" {
			if err != nil {
				t.Errorf("%s: Validate() = %v, want nil", tc.name, err)
			}
			continue
		}
		var errs *Errors
		if !errors.As(err, &errs) {
			t.Errorf("%s: Validate() = %v, want an error for %s", tc.name, err, tc.key)
			continue
		}
		found := false
		for _, fe := range errs.List {
			found = found || fe.Key == tc.key
		}
		if !found {
			t.Errorf("%s: Validate() = %v, want an error for %s", tc.name, err, tc.key)
		}
	}
}

func TestRelativePaths(t *testing.T) {
	dir := t.TempDir()
	sub := filepath.Join(dir, "etc")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	p := writeFile(t, sub, "pop3d.toml", "mailroot = \"mail\"\n[tls]\ncert = \"c.pem\"\nkey = \"/abs/k.pem\"\n[ldap]\nca_cert = \"../ca.pem\"\n")
	cfg, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ got, want string }{
		{cfg.MailRoot, filepath.Join(sub, "mail")},
		{cfg.TLS.Cert, filepath.Join(sub, "c.pem")},
		{cfg.TLS.Key, "/abs/k.pem"},
		{cfg.LDAP.CACert, filepath.Join(dir, "ca.pem")},
	} {
		if c.got != c.want {
			t.Errorf("path = %q, want %q", c.got, c.want)
		}
	}
}

func TestResolve(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	t.Setenv(EnvConfig, "")
	if p, err := Resolve(""); err != nil || p != "" {
		t.Errorf("Resolve with nothing = %q, %v; want embedded defaults", p, err)
	}
	writeFile(t, dir, DefaultFile, "node = 7\n")
	if p, err := Resolve(""); err != nil || p != DefaultFile {
		t.Errorf("Resolve with ./pop3d.toml = %q, %v", p, err)
	}
	t.Setenv(EnvConfig, "/env.toml")
	if p, _ := Resolve(""); p != "/env.toml" {
		t.Errorf("Resolve with env = %q", p)
	}
	if p, _ := Resolve("/flag.toml"); p != "/flag.toml" {
		t.Errorf("Resolve with flag = %q", p)
	}
	t.Setenv(EnvConfig, "")
	cfg, path, err := LoadDefault("")
	if err != nil || path != DefaultFile || cfg.Node != 7 {
		t.Errorf("LoadDefault = %v, %q, %v", cfg, path, err)
	}
	if _, err := Load(filepath.Join(dir, "missing.toml")); err == nil || !strings.Contains(err.Error(), "missing.toml") {
		t.Errorf("Load(missing) = %v", err)
	}
}

func TestGetAliases(t *testing.T) {
	cfg := Default()
	cfg.POP3.Listen = []string{"[::1]:1110", "127.0.0.1:2"}
	cfg.LDAP.ServicePass = "secret"
	for _, c := range []struct{ key, want string }{
		{"port", "1110"},
		{"authentication", "passwordfile"},
		{"socketmin", "10"},
		{"socketmax", "10000"},
		{"socketthreshold", "5"},
		{"socketbacklog", "1000"},
		{"threadcount", "64"},
		{"sparequired", "false"},
		{"logging", "3"},
		{"mailroot", "mailroot"},
		{"greeting", "POP3 service ready"},
		{"pop3.listen", "[::1]:1110,127.0.0.1:2"},
		{"POP3.SocketMax", "10000"},
		{"pop3.idle_timeout", "10m0s"},
		{"smtp.max_message_size", "50MB"},
		{"ldap.service_password", Masked},
	} {
		got, err := Get(cfg, c.key)
		if err != nil || got != c.want {
			t.Errorf("Get(%q) = %q, %v; want %q", c.key, got, err, c.want)
		}
	}
	if _, err := Get(cfg, "pop3.nope"); err == nil {
		t.Error("Get(pop3.nope) succeeded")
	}
	kv := List(cfg)
	if len(kv) != len(Keys()) || kv[0].Key != "mailroot" {
		t.Errorf("List has %d entries starting %v", len(kv), kv[0])
	}
	for _, e := range kv {
		if strings.Contains(e.Value, "secret") {
			t.Errorf("List shows a secret: %v", e)
		}
	}
}

func TestSetAliases(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "pop3d.toml")
	for _, c := range []struct{ key, value, get, want string }{
		{"port", "1999", "pop3.listen", "127.0.0.1:1999"},
		{"authentication", "2", "auth.method", "system"},
		{"authentication", "Active Directory", "auth.method", "directory"},
		{"authentication", "passwordfile", "auth.method", "passwordfile"},
		{"socketmin", "3", "pop3.socketmin", "3"},
		{"socketmax", "30", "pop3.socketmax", "30"},
		{"socketthreshold", "2", "pop3.socketthreshold", "2"},
		{"socketbacklog", "7", "pop3.socketbacklog", "7"},
		{"threadcount", "8", "pop3.threadcount", "8"},
		{"sparequired", "true", "auth.sparequired", "true"},
		{"logging", "1", "logging", "1"},
		{"mailroot", "/var/mail/pop3", "mailroot", "/var/mail/pop3"},
		{"greeting", "Welcome \"here\"", "greeting", "Welcome \"here\""},
		{"pop3.listen_tls", "127.0.0.1:995, [::1]:995", "pop3.listen_tls", "127.0.0.1:995,[::1]:995"},
		{"smtp.lmtp_listen", `["127.0.0.1:24"]`, "smtp.lmtp_listen", "127.0.0.1:24"},
		{"pop3.idle_timeout", "15m", "pop3.idle_timeout", "15m0s"},
		{"quota.domain_default", "1GB", "quota.domain_default", "1GB"},
		{"pop3.expire", "never", "pop3.expire", "never"},
		{"pop3.expire", "0", "pop3.expire", "0"},
		{"pop3.expire_domains", "example.org=7, other.test=never", "pop3.expire_domains", "example.org=7,other.test=never"},
		{"pop3.expire_mailboxes", "alice@example.org=30", "pop3.expire_mailboxes", "alice@example.org=30"},
		{"pop3.login_delay_domains", "example.org=900", "pop3.login_delay_domains", "example.org=900"},
		{"port", "2000", "port", "2000"},
	} {
		if c.key == "authentication" && c.want == "directory" {
			// directory needs its LDAP settings first.
			for _, kv := range [][2]string{{"ldap.url", "ldap://127.0.0.1"}, {"ldap.bind_dn", "uid=%u,dc=test"}} {
				if err := Set(p, kv[0], kv[1]); err != nil {
					t.Fatalf("Set(%s) = %v", kv[0], err)
				}
			}
		}
		if err := Set(p, c.key, c.value); err != nil {
			t.Fatalf("Set(%q, %q) = %v", c.key, c.value, err)
		}
		cfg, err := Load(p)
		if err != nil {
			t.Fatalf("Load after Set(%q) = %v", c.key, err)
		}
		if got, _ := Get(cfg, c.get); got != c.want {
			t.Errorf("after Set(%q, %q): Get(%q) = %q, want %q", c.key, c.value, c.get, got, c.want)
		}
	}
}

func TestSetKeepsCommentsAndOrder(t *testing.T) {
	body := "# pop3d settings\nmailroot = \"m\" # where mail lives\n\n[pop3]\n# sockets\nsocketmax = 100 # at once\n\n[tls]\nmin_version = \"1.2\"\n"
	p := writeFile(t, t.TempDir(), "pop3d.toml", body)
	if err := Set(p, "socketmax", "200"); err != nil {
		t.Fatal(err)
	}
	if err := Set(p, "pop3.threadcount", "4"); err != nil {
		t.Fatal(err)
	}
	if err := Set(p, "node", "5"); err != nil {
		t.Fatal(err)
	}
	if err := Set(p, "smtp.max_recipients", "10"); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(p)
	want := "# pop3d settings\nmailroot = \"m\" # where mail lives\nnode = 5\n\n[pop3]\n# sockets\nsocketmax = 200 # at once\nthreadcount = 4\n\n[tls]\nmin_version = \"1.2\"\n\n[smtp]\nmax_recipients = 10\n"
	if string(got) != want {
		t.Errorf("file after Set:\n%s\nwant:\n%s", got, want)
	}
}

func TestSetRefusesInvalid(t *testing.T) {
	body := "# keep me\n[pop3]\nsocketmax = 100\n"
	p := writeFile(t, t.TempDir(), "pop3d.toml", body)
	for _, c := range [][2]string{
		{"socketmax", "0"},
		{"socketmax", "many"},
		{"socketmin", "101"},
		{"pop3.idle_timeout", "soon"},
		{"auth.method", "kerberos"},
		{"greeting", "two\nlines"},
		{"port", "70000"},
		{"no.such.key", "1"},
		{"authentication", "directory"},
		{"smtp.max_message_size", "lots"},
		{"auth.hash", "md5-crypt"},
		{"auth.argon2_time", "0"},
		{"auth.argon2_memory", "32KB"},
		{"auth.argon2_threads", "0"},
		{"auth.bcrypt_cost", "17"},
		{"auth.sha512_rounds", "999"},
		{"pop3.expire", "-1"},
		{"pop3.expire", "soon"},
		{"pop3.expire_domains", "example.org"},
		{"pop3.expire_domains", "../x=3"},
		{"pop3.expire_mailboxes", "example.org=3"},
		{"pop3.expire_sweep", "1s"},
		{"pop3.login_delay", "-5"},
		{"pop3.login_delay_domains", "example.org=-1"},
	} {
		if err := Set(p, c[0], c[1]); err == nil {
			t.Errorf("Set(%q, %q) succeeded", c[0], c[1])
		}
		got, _ := os.ReadFile(p)
		if !bytes.Equal(got, []byte(body)) {
			t.Fatalf("Set(%q, %q) changed the file to:\n%s", c[0], c[1], got)
		}
	}
	ents, _ := os.ReadDir(filepath.Dir(p))
	if len(ents) != 1 {
		t.Errorf("folder holds %d entries after refused sets, want 1", len(ents))
	}
}

func TestSetCreatesFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "new.toml")
	if err := Set(p, "greeting", "hello"); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(p)
	if string(got) != "greeting = \"hello\"\n" {
		t.Errorf("new file = %q", got)
	}
	if err := Set("", "greeting", "x"); err == nil {
		t.Error("Set without a file succeeded")
	}
}

func TestSetThroughSymlinkAndInlineTable(t *testing.T) {
	dir := t.TempDir()
	real := writeFile(t, dir, "real.toml", "pop3 = { socketmax = 50 }\n")
	link := filepath.Join(dir, "link.toml")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	if err := Set(link, "socketmax", "60"); err == nil || !strings.Contains(err.Error(), "inline table") {
		t.Errorf("Set inside an inline table = %v, want a refusal", err)
	}
	if err := Set(link, "logging", "2"); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Lstat(link); err != nil || st.Mode()&os.ModeSymlink == 0 {
		t.Errorf("Set replaced the symbolic link: %v", err)
	}
	if cfg, err := Load(link); err != nil || cfg.Logging != 2 || cfg.POP3.SocketMax != 50 {
		t.Errorf("Load after Set = %+v, %v", cfg, err)
	}
}

func TestHostName(t *testing.T) {
	c := Default()
	c.SMTP.Hostname = "mx.example.org"
	if got := c.HostName(); got != "mx.example.org" {
		t.Fatalf("HostName() = %q with smtp.hostname set", got)
	}
	c.SMTP.Hostname = ""
	if got := c.HostName(); got == "" {
		t.Fatal("HostName() is empty without smtp.hostname")
	}
}
