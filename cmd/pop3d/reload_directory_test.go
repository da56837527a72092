package main

import (
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pop3svc/pop3svc/cmd/pop3d/pop3dtest"
)

const (
	dirSuffix = "dc=example,dc=com"
	dirRootDN = "cn=admin," + dirSuffix
	dirRootPW = "admin-secret"
	dirPeople = "ou=people," + dirSuffix
)

const dirLDIF = `dn: dc=example,dc=com
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
`

// slapdEnv is what the directory cases need: the test slapd (StartTLS
// with a certificate from the test's own authority, searches only for
// bound clients), that authority's certificate, a port nobody listens
// on, a listener that never answers, and a proxy to slapd that holds
// its first connection.
type slapdEnv struct {
	url, ca, down, silent string
	proxy                 *holdingProxy
}

// TestReloadAppliesDirectoryKeys changes each [ldap] key on a running
// pop3d with auth.method = "directory" and logs in on a new connection.
func TestReloadAppliesDirectoryKeys(t *testing.T) {
	dir := t.TempDir()
	caKey, srvKey := newKey(t), newKey(t)
	ca := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test authority"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	srv := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:   time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	srvDER, err := x509.CreateCertificate(rand.Reader, srv, caCert, &srvKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	env := &slapdEnv{ca: filepath.Join(dir, "ca.pem")}
	for name, der := range map[string][]byte{env.ca: caDER, filepath.Join(dir, "slapd.pem"): srvDER} {
		if err := os.WriteFile(name, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeKey(t, filepath.Join(dir, "slapd.key"), srvKey)

	d, err := pop3dtest.StartSlapd(pop3dtest.SlapdOptions{
		Suffix: dirSuffix, RootDN: dirRootDN, RootPW: dirRootPW, LDIF: dirLDIF,
		NoAnonymousSearch: true,
		CertFile:          filepath.Join(dir, "slapd.pem"), KeyFile: filepath.Join(dir, "slapd.key"),
	})
	if err != nil {
		pop3dtest.Unavailable(t, "slapd cannot run: "+err.Error(), "slapd ldap-utils")
	}
	t.Cleanup(d.Stop)
	env.url = d.URL
	env.down = "ldap://" + freeLoopbackAddr(t)
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { silent.Close() })
	go func() {
		var held []net.Conn // accepted, never answered
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	}()
	env.silent = "ldap://" + silent.Addr().String()
	env.proxy = newHoldingProxy(t, strings.TrimPrefix(d.URL, "ldap://"))

	c := reloadConfig(t, "", nil)
	// net_failures = 0: the cases' failed logins would otherwise make
	// 127.0.0.0/24 a suspect network, whose checks may use only half of
	// the auth workers; the login ldap.pool_size holds would then take
	// the only one, and the probe's second login would wait behind it.
	c.Auth = `method = "directory"
fail_delay = "5ms"
penalty = "0s"
penalty_max = "0s"
net_failures = 0`
	c.Tables = `[ldap]
url = "` + env.url + `"
bind_dn = "uid=%u,` + dirPeople + `"
timeout = "5s"
pool_size = 2
`
	c.Setup = [][]string{{"add", "example.com"}, {"add", "alice@example.com"}}
	in := pop3dtest.Start(t, c)
	if got := dirLogin(t, in, "127.0.0.1"); got != "+OK" {
		t.Fatalf("the directory login at start: %s", got)
	}
	runLiveCases(t, in, directoryCases(env), func(i int) string { return "127.0.0.1" })
}

// dirLogin logs alice in with her directory password.
func dirLogin(t *testing.T, in *pop3dtest.Server, ip string) string {
	return loginAs(t, in, ip, "alice@example.com", "alice-pw")
}

func directoryCases(env *slapdEnv) []liveCase {
	search := [][2]string{{"ldap.search_base", dirPeople}, {"ldap.search_filter", "(mail=%s)"}, {"ldap.service_password", dirRootPW}, {"ldap.service_dn", dirRootDN}}
	return []liveCase{
		{key: "ldap.url", value: env.url, prep: [][2]string{{"ldap.url", env.down}}, want: "+OK", probe: dirLogin},
		{key: "ldap.bind_dn", value: "uid=%u," + dirPeople, prep: [][2]string{{"ldap.bind_dn", "uid=%u,ou=nobody," + dirSuffix}}, want: "+OK", probe: dirLogin},
		// Searches: only the service account may read the entries.
		{key: "ldap.search_base", value: dirPeople, prep: slices.Concat(search[1:], [][2]string{{"ldap.search_base", "ou=nowhere," + dirSuffix}}), want: "+OK", probe: dirLogin},
		{key: "ldap.search_filter", value: "(mail=%s)", prep: slices.Concat(search, [][2]string{{"ldap.search_filter", "(uid=%s)"}}), want: "+OK", probe: dirLogin},
		{key: "ldap.service_dn", value: dirRootDN, prep: slices.Concat(search, [][2]string{{"ldap.service_dn", "cn=nobody," + dirSuffix}}), want: "+OK", probe: dirLogin},
		{key: "ldap.service_password", value: dirRootPW, prep: slices.Concat(search, [][2]string{{"ldap.service_password", "wrong"}}), want: "+OK", probe: dirLogin},
		// StartTLS: slapd's certificate comes from the test's authority.
		{key: "ldap.starttls", value: "true", want: "-ERR [SYS/TEMP]", probe: dirLogin},
		{key: "ldap.ca_cert", value: env.ca, prep: [][2]string{{"ldap.starttls", "true"}}, want: "+OK", probe: dirLogin},
		{key: "ldap.insecure_skip_verify", value: "true", prep: [][2]string{{"ldap.starttls", "true"}}, want: "+OK", probe: dirLogin},
		// A directory that never answers: with an hour's timeout the
		// login would wait for the session's own 30s limit, past the
		// client's 20s read timeout.
		{key: "ldap.timeout", value: "1s", prep: [][2]string{{"ldap.url", env.silent}, {"ldap.timeout", "1h"}}, noBefore: true, want: "-ERR [SYS/TEMP]", probe: dirLogin},
		// The proxy holds the first connection unanswered: a second login
		// gets through only on a second pooled connection (with one, it
		// would wait past the client's read timeout).
		{key: "ldap.pool_size", value: "2", prep: [][2]string{{"ldap.url", env.proxyURL()}, {"ldap.timeout", "1h"}, {"ldap.pool_size", "1"}}, noBefore: true, want: "+OK", probe: func(t *testing.T, in *pop3dtest.Server, ip string) string {
			a := pop3dtest.Dial(t, in.POP3, ip)
			defer a.Close()
			a.Send("USER alice@example.com\r\nPASS alice-pw\r\n")
			pop3dtest.WaitFor(t, 30*time.Second, "the proxy to hold the first directory connection", env.proxy.holding)
			return dirLogin(t, in, ip)
		}},
	}
}

func (e *slapdEnv) proxyURL() string {
	if e.proxy == nil {
		return ""
	}
	return "ldap://" + e.proxy.addr
}

// holdingProxy forwards connections to a directory, except the first,
// which it reads and never answers.
type holdingProxy struct {
	addr string
	held atomic.Bool // the first connection sent its request
	n    atomic.Int64
}

func newHoldingProxy(t *testing.T, upstream string) *holdingProxy {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &holdingProxy{addr: l.Addr().String()}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	track := func(c net.Conn) { mu.Lock(); conns = append(conns, c); mu.Unlock() }
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			track(c)
			if p.n.Add(1) == 1 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					var b [1]byte
					if _, err := c.Read(b[:]); err == nil {
						p.held.Store(true)
					}
					io.Copy(io.Discard, c)
				}()
				continue
			}
			up, err := net.Dial("tcp", upstream)
			if err != nil {
				c.Close()
				continue
			}
			track(up)
			wg.Add(2)
			go func() { defer wg.Done(); io.Copy(up, c); up.Close() }()
			go func() { defer wg.Done(); io.Copy(c, up); c.Close() }()
		}
	}()
	return p
}

func (p *holdingProxy) holding() bool { return p.held.Load() }
