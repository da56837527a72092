package smtp

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/pop3svc/pop3svc/cmd/pop3d/pop3dtest"
)

// testTLSConfig returns a server configuration with a fresh self-signed
// certificate for 127.0.0.1.
func testTLSConfig(t *testing.T) *tls.Config {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "mx.test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:     []string{"localhost", "mx.test"},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}},
		MinVersion:   tls.VersionTLS12,
	}
}

// needTool skips a test whose client program is missing, or fails it in
// CI, naming the Debian package.
func needTool(t *testing.T, name string) {
	t.Helper()
	pop3dtest.NeedTool(t, name)
}

// TestSTARTTLSWithSwaks sends a message over SMTP STARTTLS (RFC 3207) with
// swaks, and checks that LMTP does not offer it.
func TestSTARTTLSWithSwaks(t *testing.T) {
	needTool(t, "swaks")
	e := newEnv(t, envOpts{smtp: Options{TLSConfig: testTLSConfig(t)}})
	e.domain("example.com")
	e.mailbox("a@example.com", 0)

	c := e.dial(e.smtp)
	c.send("EHLO client.test")
	if r := c.expect("250"); !strings.Contains(r, "STARTTLS") {
		t.Errorf("EHLO does not offer STARTTLS: %q", r)
	}
	l := e.dial(e.lmtp)
	l.send("LHLO client.test")
	if r := l.expect("250"); strings.Contains(r, "STARTTLS") {
		t.Errorf("LHLO offers STARTTLS: %q", r)
	}

	host, port, _ := net.SplitHostPort(e.smtp)
	out, err := exec.Command("swaks", "--server", host, "--port", port, "--tls",
		"--from", "s@remote.test", "--to", "a@example.com",
		"--header", "Subject: over tls", "--body", "secret body\n", "--timeout", "10").CombinedOutput()
	if err != nil && strings.Contains(string(out), "Net::SSLeay") {
		pop3dtest.Unavailable(t, "swaks cannot do TLS: "+strings.TrimSpace(string(out)), "libnet-ssleay-perl libio-socket-ssl-perl")
	}
	if err != nil {
		t.Fatalf("swaks --tls: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "TLS started") {
		t.Errorf("swaks did not start TLS:\n%s", out)
	}
	e.waitIdle()
	msgs := e.messages("a@example.com")
	if len(msgs) != 1 || !strings.Contains(string(msgs[0]), "secret body") {
		t.Fatalf("a@example.com has %d messages, want the one sent over TLS", len(msgs))
	}
}
