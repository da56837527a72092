package certs

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func TestSelfSignedCreatedAndReused(t *testing.T) {
	root := t.TempDir()
	m, err := New(Options{MailRoot: root, Hosts: []string{"mail.example.org", "192.0.2.7"}, Log: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	if !m.SelfSigned() {
		t.Error("SelfSigned() = false")
	}
	dir := filepath.Join(root, ".pop3", "tls")
	st, err := os.Stat(filepath.Join(dir, "key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("key mode = %v, want 0600", st.Mode().Perm())
	}
	leaf := m.Certificate().Leaf
	for _, h := range []string{"localhost", "127.0.0.1", "::1", "mail.example.org", "192.0.2.7"} {
		if err := leaf.VerifyHostname(h); err != nil {
			t.Errorf("VerifyHostname(%q): %v", h, err)
		}
	}
	if leaf.PublicKeyAlgorithm != x509.ECDSA {
		t.Errorf("key algorithm = %v, want ECDSA", leaf.PublicKeyAlgorithm)
	}
	// No temporary files left behind.
	ents, _ := os.ReadDir(dir)
	if len(ents) != 2 {
		t.Errorf("%s holds %d entries, want 2", dir, len(ents))
	}
	m2, err := New(Options{MailRoot: root, Log: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	if m2.Fingerprint() != m.Fingerprint() {
		t.Errorf("second start made a new certificate: %s != %s", m2.Fingerprint(), m.Fingerprint())
	}
}

func TestSelfSignedDamagedOrExpiringReplaced(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, ".pop3", "tls")
	m, err := New(Options{MailRoot: root, Log: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "cert.pem"), []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := m.Reload(); err != nil {
		t.Fatalf("Reload over a damaged pair: %v", err)
	}
	fp := m.Fingerprint()
	if err := m.Reload(); err != nil || m.Fingerprint() != fp {
		t.Errorf("Reload over a sound pair changed it (%v)", err)
	}
	// A pair that has expired, or expires within RenewBefore, is renewed.
	later := time.Now().Add(DefaultSelfSignedValidity)
	if _, created, err := loadOrCreateSelfSigned(dir, nil, time.Hour, later); err != nil || !created {
		t.Errorf("an expired pair was reused (created=%v, err=%v)", created, err)
	}
	if _, created, err := loadOrCreateSelfSigned(dir, nil, DefaultSelfSignedValidity, later); err != nil || !created {
		t.Errorf("a pair expiring within RenewBefore was reused (created=%v, err=%v)", created, err)
	}
	if _, created, err := loadOrCreateSelfSigned(dir, nil, DefaultSelfSignedValidity, later); err != nil || created {
		t.Errorf("a sound pair was replaced (created=%v, err=%v)", created, err)
	}
}

func writePair(t *testing.T, dir, name string) (string, string) {
	t.Helper()
	certPEM, keyPEM, err := makeSelfSigned([]string{name}, time.Hour*24, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	c, k := filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	if err := os.WriteFile(c, certPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(k, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return c, k
}

func TestConfiguredPairAndErrors(t *testing.T) {
	dir := t.TempDir()
	c1, k1 := writePair(t, dir, "one.example")
	_, k2 := writePair(t, dir, "two.example")
	m, err := New(Options{CertFile: c1, KeyFile: k1, Log: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	if m.SelfSigned() {
		t.Error("SelfSigned() = true for a configured pair")
	}
	for _, tc := range []Options{
		{CertFile: c1},                         // key missing
		{KeyFile: k1},                          // cert missing
		{CertFile: c1, KeyFile: k2},            // mismatched
		{CertFile: dir + "/none", KeyFile: k1}, // no such file
		{CertFile: c1, KeyFile: k1, MinVersion: "1.4"},
		{}, // neither pair nor mail root
	} {
		tc.Log = quiet()
		if _, err := New(tc); err == nil {
			t.Errorf("New(%+v) succeeded, want an error", tc)
		}
	}
	// A failed Apply keeps the old certificate.
	fp := m.Fingerprint()
	if err := m.Apply(Options{CertFile: c1, KeyFile: k2, Log: quiet()}); err == nil {
		t.Error("Apply(mismatched) succeeded")
	}
	if m.Fingerprint() != fp {
		t.Error("failed Apply changed the certificate")
	}
}

func TestParseMinVersion(t *testing.T) {
	for in, want := range map[string]uint16{"": tls.VersionTLS12, "1.0": tls.VersionTLS10, "1.1": tls.VersionTLS11, "1.2": tls.VersionTLS12, "1.3": tls.VersionTLS13} {
		if got, err := ParseMinVersion(in); err != nil || got != want {
			t.Errorf("ParseMinVersion(%q) = %x, %v, want %x", in, got, err, want)
		}
	}
	for _, in := range []string{"1", "2.0", "TLS1.2", "ssl3"} {
		if _, err := ParseMinVersion(in); err == nil {
			t.Errorf("ParseMinVersion(%q) succeeded", in)
		}
	}
}

// serve accepts connections on a loopback listener with cfg and echoes lines.
func serve(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				tc := tls.Server(c, cfg)
				tc.SetDeadline(time.Now().Add(10 * time.Second))
				io.Copy(tc, tc)
			}()
		}
	}()
	return ln.Addr().String()
}

func dial(addr string, maxVer uint16) (*tls.Conn, error) {
	return tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr,
		&tls.Config{InsecureSkipVerify: true, MaxVersion: maxVer})
}

func TestReloadKeepsSessionsAndSwapsCertificate(t *testing.T) {
	dir := t.TempDir()
	c1, k1 := writePair(t, dir, "one.example")
	m, err := New(Options{CertFile: c1, KeyFile: k1, Log: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, m.TLSConfig())
	old, err := dial(addr, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	if got := old.ConnectionState().PeerCertificates[0].DNSNames; !contains(got, "one.example") {
		t.Fatalf("first certificate names %v", got)
	}
	// Replace the files and reload, as SIGHUP does.
	c2, k2 := writePair(t, dir, "two.example")
	if err := os.Rename(c2, c1); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(k2, k1); err != nil {
		t.Fatal(err)
	}
	if err := m.Reload(); err != nil {
		t.Fatal(err)
	}
	nc, err := dial(addr, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if got := nc.ConnectionState().PeerCertificates[0].DNSNames; !contains(got, "two.example") {
		t.Errorf("after Reload the certificate names %v, want two.example", got)
	}
	// The session made before the reload still works.
	if _, err := old.Write([]byte("ping\n")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 5)
	old.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(old, buf); err != nil || string(buf) != "ping\n" {
		t.Errorf("old session after reload: %q, %v", buf, err)
	}
}

func TestMinVersion(t *testing.T) {
	m, err := New(Options{MailRoot: t.TempDir(), Log: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, m.TLSConfig())
	if c, err := dial(addr, tls.VersionTLS11); err == nil {
		c.Close()
		t.Error("a TLS 1.1 client was accepted with the default minimum 1.2")
	}
	c, err := dial(addr, tls.VersionTLS12)
	if err != nil {
		t.Fatalf("TLS 1.2 client: %v", err)
	}
	c.Close()
	// Raising the minimum applies to the next handshake.
	opts := m.opts
	opts.MinVersion = "1.3"
	if err := m.Apply(opts); err != nil {
		t.Fatal(err)
	}
	if c, err := dial(addr, tls.VersionTLS12); err == nil {
		c.Close()
		t.Error("a TLS 1.2 client was accepted after min_version = 1.3")
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
