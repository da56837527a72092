package ldap

import (
	"context"
	"errors"
	"fmt"
	goldap "github.com/go-ldap/ldap/v3"
	"net"
	"os"
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
	suffix = "dc=example,dc=com"
	rootDN = "cn=admin," + suffix
	rootPW = "admin-secret"
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
	d, err := pop3dtest.StartSlapd(pop3dtest.SlapdOptions{Suffix: suffix, RootDN: rootDN, RootPW: rootPW, LDIF: ldif})
	if err != nil {
		slapdSkip = err.Error()
	} else {
		slapdURL = d.URL
	}
	code := m.Run()
	pop3dtest.Cleanup()
	if d != nil {
		d.Stop()
	}
	os.Exit(code)
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
	d, err := New(Options{URL: "ldap://" + unusedAddr(t), BindDN: "uid=%u," + suffix, Timeout: time.Second})
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
		if el := time.Since(start); el > 10*time.Second {
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
	d, _ := New(Options{URL: "ldap://" + unusedAddr(t), BindDN: "uid=%u", Timeout: time.Second})
	if _, err := d.Exists(context.Background(), addr("alice@example.com")); !errors.Is(err, auth.ErrUnavailable) {
		t.Errorf("Exists with the directory down: %v, want ErrUnavailable", err)
	}
}
