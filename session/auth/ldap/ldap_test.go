package ldap

import (
	"context"
	"errors"
	"fmt"
	goldap "github.com/go-ldap/ldap/v3"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pop3svc/pop3svc/cmd/pop3d/pop3dtest"
	"github.com/pop3svc/pop3svc/session/auth"
	"github.com/pop3svc/pop3svc/store"
)

// The tests run a real OpenLDAP slapd (Debian package "slapd") configured
// in a temporary folder on a loopback port. Without slapd they are skipped,
// except in CI (CI=true), where that is a failure.

const (
	suffix    = "dc=example,dc=com"
	rootDN    = "cn=admin," + suffix
	rootPW    = "admin-secret"
	slapdPath = "/usr/sbin/slapd"
	slapadd   = "/usr/sbin/slapadd"
)

var slapdURL string // ldap://127.0.0.1:<port>, "" when slapd is not running
var slapdSkip string

const ldif = `dn: dc=example,dc=com
objectClass: dcObject
objectClass: organization
o: Example
dc: example

dn: ou=people,dc=example,dc=com
objectClass: organizationalUnit
ou: people

dn: uid=alice,ou=people,dc=example,dc=com
objectClass: inetOrgPerson
uid: alice
cn: Alice
sn: A
mail: alice@example.com
userPassword: alice-pw

dn: uid=bob,ou=people,dc=example,dc=com
objectClass: inetOrgPerson
uid: bob
cn: Bob
sn: B
mail: bob@example.com
userPassword: bob-pw

dn: uid=twin1,ou=people,dc=example,dc=com
objectClass: inetOrgPerson
uid: twin1
cn: Twin
sn: T
mail: twin@example.com
userPassword: twin-pw

dn: uid=twin2,ou=people,dc=example,dc=com
objectClass: inetOrgPerson
uid: twin2
cn: Twin
sn: T
mail: twin@example.com
userPassword: twin-pw

dn: uid=nopw,ou=people,dc=example,dc=com
objectClass: inetOrgPerson
uid: nopw
cn: No Password
sn: N
mail: nopw@example.com
`

func TestMain(m *testing.M) {
	stop, err := startSlapd()
	if err != nil {
		slapdSkip = err.Error()
	}
	code := m.Run()
	pop3dtest.Cleanup()
	if stop != nil {
		stop()
	}
	os.Exit(code)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// startSlapd configures and starts slapd; it returns a function that
// stops it and removes its folder.
func startSlapd() (func(), error) {
	if _, err := os.Stat(slapdPath); err != nil {
		return nil, fmt.Errorf("slapd not installed (Debian: apt-get install slapd ldap-utils)")
	}
	dir, err := os.MkdirTemp("", "pop3d-slapd-")
	if err != nil {
		return nil, err
	}
	cleanup := func() { os.RemoveAll(dir) }
	db := filepath.Join(dir, "db")
	if err := os.Mkdir(db, 0o700); err != nil {
		cleanup()
		return nil, err
	}
	conf := filepath.Join(dir, "slapd.conf")
	confText := fmt.Sprintf(`include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
modulepath /usr/lib/ldap
moduleload back_mdb
pidfile %s/slapd.pid
database mdb
maxsize 16777216
suffix "%s"
rootdn "%s"
rootpw %s
directory %s
access to attrs=userPassword by anonymous auth by * none
access to * by * read
`, dir, suffix, rootDN, rootPW, db)
	if err := os.WriteFile(conf, []byte(confText), 0o600); err != nil {
		cleanup()
		return nil, err
	}
	data := filepath.Join(dir, "data.ldif")
	if err := os.WriteFile(data, []byte(ldif), 0o600); err != nil {
		cleanup()
		return nil, err
	}
	if out, err := exec.Command(slapadd, "-f", conf, "-l", data).CombinedOutput(); err != nil {
		cleanup()
		return nil, fmt.Errorf("slapadd: %v: %s", err, out)
	}
	port, err := freePort()
	if err != nil {
		cleanup()
		return nil, err
	}
	url := fmt.Sprintf("ldap://127.0.0.1:%d", port)
	// -d 0: stay in the foreground so that the test owns the process.
	cmd := exec.Command(slapdPath, "-f", conf, "-h", url+"/", "-d", "0")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		cleanup()
		return nil, fmt.Errorf("starting slapd: %v", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	stop := func() {
		cmd.Process.Kill()
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
		}
		cleanup()
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 200*time.Millisecond)
		if err == nil {
			c.Close()
			break
		}
		select {
		case <-exited:
			cleanup()
			return nil, errors.New("slapd exited at start")
		default:
		}
		if time.Now().After(deadline) {
			stop()
			return nil, errors.New("slapd did not listen within 15s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	slapdURL = url
	return stop, nil
}

func needSlapd(t *testing.T) {
	t.Helper()
	if slapdURL == "" {
		pop3dtest.Unavailable(t, "slapd cannot run: "+slapdSkip, "slapd ldap-utils")
	}
}

func addr(s string) store.Address {
	a, err := store.ParseAddress(s, "")
	if err != nil {
		panic(err)
	}
	return a
}

func check(t *testing.T, d *Directory, login, pw string, want error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := d.Plaintext(ctx, addr(login), pw)
	switch {
	case want == nil && err != nil:
		t.Errorf("Plaintext(%s, %q) = %v, want success", login, pw, err)
	case want != nil && !errors.Is(err, want):
		t.Errorf("Plaintext(%s, %q) = %v, want %v", login, pw, err, want)
	case errors.Is(err, auth.ErrAuthFailed) && errors.Is(err, auth.ErrUnavailable):
		t.Errorf("Plaintext(%s) = %v: both failed and unavailable", login, err)
	}
}

func TestBindTemplate(t *testing.T) {
	needSlapd(t)
	d, err := New(Options{URL: slapdURL, BindDN: "uid=%u,ou=people," + suffix, Timeout: 5 * time.Second, PoolSize: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	check(t, d, "alice@example.com", "alice-pw", nil)
	check(t, d, "bob@example.com", "bob-pw", nil)
	check(t, d, "alice@example.com", "wrong", auth.ErrAuthFailed)
	check(t, d, "alice@example.com", "bob-pw", auth.ErrAuthFailed)
	check(t, d, "nobody@example.com", "x", auth.ErrAuthFailed)
	check(t, d, "nopw@example.com", "x", auth.ErrAuthFailed)
	check(t, d, "alice@example.com", "", auth.ErrAuthFailed) // never an unauthenticated bind
	check(t, d, "alice@example.com", "alice-pw", nil)        // the pool still works
}

func TestSearch(t *testing.T) {
	needSlapd(t)
	for _, svc := range []struct{ dn, pw string }{{"", ""}, {rootDN, rootPW}} {
		d, err := New(Options{URL: slapdURL, SearchBase: suffix, SearchFilter: "(&(objectClass=inetOrgPerson)(mail=%s))",
			ServiceDN: svc.dn, ServicePass: svc.pw, Timeout: 5 * time.Second, PoolSize: 2})
		if err != nil {
			t.Fatal(err)
		}
		check(t, d, "alice@example.com", "alice-pw", nil)
		check(t, d, "alice@example.com", "wrong", auth.ErrAuthFailed)
		check(t, d, "bob@example.com", "bob-pw", nil)
		check(t, d, "nobody@example.com", "x", auth.ErrAuthFailed)
		check(t, d, "twin@example.com", "twin-pw", auth.ErrAuthFailed) // ambiguous
		check(t, d, "alice@example.com", "", auth.ErrAuthFailed)
		d.Close()
	}
	// A wrong service password is the operator's fault: unavailable.
	d, err := New(Options{URL: slapdURL, SearchBase: suffix, SearchFilter: "(mail=%s)", ServiceDN: rootDN, ServicePass: "bad", Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	check(t, d, "alice@example.com", "alice-pw", auth.ErrUnavailable)
	d.Close()
}

func TestConcurrentPool(t *testing.T) {
	needSlapd(t)
	d, err := New(Options{URL: slapdURL, BindDN: "uid=%u,ou=people," + suffix, Timeout: 5 * time.Second, PoolSize: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	errs := make(chan error, 20)
	for i := range 20 {
		go func() {
			pw := "alice-pw"
			if i%2 == 1 {
				pw = "wrong"
			}
			err := d.Plaintext(context.Background(), addr("alice@example.com"), pw)
			if (i%2 == 0) != (err == nil) {
				errs <- fmt.Errorf("request %d: %v", i, err)
				return
			}
			errs <- nil
		}()
	}
	for range 20 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	if n := len(d.idle); n > 2 {
		t.Errorf("%d idle connections, pool size 2", n)
	}
}

func TestDirectoryDown(t *testing.T) {
	// A closed port: connection refused.
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	d, err := New(Options{URL: fmt.Sprintf("ldap://127.0.0.1:%d", port), BindDN: "uid=%u," + suffix, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	check(t, d, "alice@example.com", "alice-pw", auth.ErrUnavailable)

	// A server that accepts and never answers: a timeout.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	for _, o := range []Options{
		{URL: "ldap://" + l.Addr().String(), BindDN: "uid=%u," + suffix, Timeout: 300 * time.Millisecond},
		{URL: "ldap://" + l.Addr().String(), SearchBase: suffix, SearchFilter: "(mail=%s)", Timeout: 300 * time.Millisecond},
		{URL: "ldap://" + l.Addr().String(), BindDN: "uid=%u," + suffix, StartTLS: true, Timeout: 300 * time.Millisecond},
	} {
		d, err := New(o)
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		check(t, d, "alice@example.com", "alice-pw", auth.ErrUnavailable)
		if el := time.Since(start); el > 3*time.Second {
			t.Errorf("a silent directory took %v to give up (timeout 300ms)", el)
		}
		d.Close()
	}
}

func TestStartTLSRefused(t *testing.T) {
	needSlapd(t)
	// The test slapd has no certificate: StartTLS fails, and that is
	// unavailability, not a failed login.
	d, err := New(Options{URL: slapdURL, StartTLS: true, BindDN: "uid=%u,ou=people," + suffix, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	check(t, d, "alice@example.com", "alice-pw", auth.ErrUnavailable)
}

func TestExpandEscapes(t *testing.T) {
	got := expand("uid=%u,dc=%d,x=%s,p=%%,q=%z", "a,b", "c+d", func(s string) string { return strings.ReplaceAll(strings.ReplaceAll(s, ",", `\,`), "+", `\+`) })
	want := `uid=a\,b,dc=c\+d,x=a\,b@c\+d,p=%,q=%z`
	if got != want {
		t.Errorf("expand = %q, want %q", got, want)
	}
	if f := expand("(mail=%s)", "a*)(uid=*", "example.com", escapeFilterForTest); f != `(mail=a\2a\29\28uid=\2a@example.com)` {
		t.Errorf("filter injection not escaped: %q", f)
	}
}

func TestNewRejects(t *testing.T) {
	for _, o := range []Options{
		{URL: "", BindDN: "uid=%u"},
		{URL: "http://x", BindDN: "uid=%u"},
		{URL: "ldap://x"},
		{URL: "ldaps://x", StartTLS: true, BindDN: "uid=%u"},
		{URL: "ldap://x", SearchBase: suffix},
		{URL: "ldap://x", SearchBase: suffix, SearchFilter: "(mail=%s"},
		{URL: "ldap://x", SearchBase: suffix, SearchFilter: "(mail=%s)", ServiceDN: rootDN},
	} {
		if _, err := New(o); err == nil {
			t.Errorf("New(%+v) accepted", o)
		}
	}
}

func escapeFilterForTest(s string) string { return goldap.EscapeFilter(s) }

func TestExists(t *testing.T) {
	needSlapd(t)
	for _, o := range []Options{
		{URL: slapdURL, BindDN: "uid=%u,ou=people," + suffix},
		{URL: slapdURL, SearchBase: suffix, SearchFilter: "(mail=%s)", ServiceDN: rootDN, ServicePass: rootPW},
	} {
		d, err := New(o)
		if err != nil {
			t.Fatal(err)
		}
		for login, want := range map[string]bool{"alice@example.com": true, "nobody@example.com": false} {
			got, err := d.Exists(context.Background(), addr(login))
			if err != nil || got != want {
				t.Errorf("%+v: Exists(%s) = %v, %v; want %v", o, login, got, err, want)
			}
		}
		d.Close()
	}
	port, _ := freePort()
	d, _ := New(Options{URL: fmt.Sprintf("ldap://127.0.0.1:%d", port), BindDN: "uid=%u", Timeout: time.Second})
	if _, err := d.Exists(context.Background(), addr("alice@example.com")); !errors.Is(err, auth.ErrUnavailable) {
		t.Errorf("Exists with the directory down: %v, want ErrUnavailable", err)
	}
}
