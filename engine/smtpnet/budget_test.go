package smtpnet

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"

	smtpsvc "github.com/pop3svc/pop3svc/session/smtp"
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
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}, MinVersion: tls.VersionTLS12}
}

// tlsEnv serves SMTP with STARTTLS, read_timeout an hour.
func tlsEnv(t *testing.T, o Options) *env {
	t.Helper()
	return newEnvWith(t, smtpsvc.Options{Hostname: "mx.test", ReadTimeout: time.Hour, TLSConfig: testTLSConfig(t)}, o)
}

// send writes raw octets.
func (c *client) send(s string) {
	c.t.Helper()
	if _, err := io.WriteString(c.w, s); err != nil {
		c.t.Fatal(err)
	}
	if err := c.w.Flush(); err != nil {
		c.t.Fatal(err)
	}
}

// dialFrom connects from a loopback source address and reads the first line.
func dialFrom(t *testing.T, addr, src string) (net.Conn, string) {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	l, _ := bufio.NewReader(c).ReadString('\n')
	return c, l
}

// TestNetworkLimit: smtp.max_conns_per_net caps the sessions of one /24.
func TestNetworkLimit(t *testing.T) {
	e := newEnv(t, 0, Options{MaxConnsPerNet: 2})
	for _, src := range []string{"127.0.0.1", "127.0.0.2"} {
		if _, l := dialFrom(t, e.smtp, src); !strings.HasPrefix(l, "220") {
			t.Fatalf("from %s: %q, want 220", src, l)
		}
	}
	if _, l := dialFrom(t, e.smtp, "127.0.0.3"); !strings.HasPrefix(l, "421 4.7.0") {
		t.Fatalf("third from 127.0.0.0/24: %q, want 421 4.7.0", l)
	}
	if _, l := dialFrom(t, e.smtp, "127.0.1.1"); !strings.HasPrefix(l, "220") {
		t.Fatalf("from another /24: %q, want 220", l)
	}
}

// readToClose reads until the server closes, with a generous bound, and
// returns what came.
func readToClose(t *testing.T, c net.Conn) string {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(15 * time.Second))
	b, err := io.ReadAll(c)
	if err != nil {
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatalf("the server did not close the connection (read %q)", b)
		}
	}
	return string(b)
}

// TestTransactionDeadline: a client that keeps sending commands but never
// starts a transaction is closed at smtp.transaction_deadline, though it
// is never silent for read_timeout; one that started a transaction goes on.
func TestTransactionDeadline(t *testing.T) {
	e := newEnv(t, time.Hour, Options{TransactionDeadline: 3 * time.Second})
	e.domain("example.com")
	e.mailbox("a@example.com")

	idler := e.dial(e.smtp)
	worker := e.dial(e.smtp)
	start := time.Now()
	worker.cmd("EHLO client.test", "250")
	worker.cmd("MAIL FROM:<s@remote.test>", "250")
	idler.cmd("EHLO client.test", "250")
	closed := make(chan string, 1)
	go func() {
		// NOOPs every 200 ms; the replies are read until the close.
		for {
			if _, err := idler.w.WriteString("NOOP\r\n"); err != nil {
				break
			}
			if err := idler.w.Flush(); err != nil {
				break
			}
			time.Sleep(200 * time.Millisecond) // the client's pace, part of the scenario
		}
	}()
	go func() { closed <- readToClose(t, idler.conn) }()
	// Only the deadline can close it: read_timeout is an hour.
	if got := <-closed; !strings.Contains(got, "421") {
		t.Fatalf("closed without a 421: %q", got)
	}
	// The transaction's session outlives the deadline.
	for time.Since(start) < 4500*time.Millisecond {
		worker.cmd("NOOP", "250")
		time.Sleep(200 * time.Millisecond) // a busy client's pace past the deadline, part of the scenario
	}
	worker.cmd("RCPT TO:<a@example.com>", "250")
	worker.cmd("DATA", "354")
	worker.send("Subject: t\r\n\r\nbody\r\n.\r\n")
	worker.expect("250")
}

// startTLSClient opens a session and sends STARTTLS; it returns once the
// server said 220.
func startTLSClient(t *testing.T, e *env) *client {
	t.Helper()
	c := e.dial(e.smtp)
	c.cmd("EHLO client.test", "250")
	c.cmd("STARTTLS", "220")
	return c
}

// TestSTARTTLSSilentClient: a client silent after STARTTLS is closed at
// tls.handshake_timeout, well before read_timeout.
func TestSTARTTLSSilentClient(t *testing.T) {
	e := tlsEnv(t, Options{HandshakeTimeout: 500 * time.Millisecond})
	c := startTLSClient(t, e)
	if got := readToClose(t, c.conn); got != "" {
		t.Fatalf("plaintext after a failed handshake: %q", got)
	}
}

// TestSTARTTLSDribbledHello: a ClientHello sent a byte at a time is cut
// at tls.handshake_timeout.
func TestSTARTTLSDribbledHello(t *testing.T) {
	e := tlsEnv(t, Options{HandshakeTimeout: time.Second, DataTimeout: time.Hour})
	c := startTLSClient(t, e)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		// A handshake record header announcing 512 octets, then the
		// octets one every 50 ms (25 s in all).
		hello := append([]byte{0x16, 0x03, 0x01, 0x02, 0x00, 0x01}, make([]byte, 511)...)
		for _, b := range hello {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			if _, err := c.conn.Write([]byte{b}); err != nil {
				return
			}
		}
	}()
	start := time.Now()
	readToClose(t, c.conn)
	// The bound is generous for a loaded machine; the dribble itself
	// would take 25 s.
	if d := time.Since(start); d > 15*time.Second {
		t.Fatalf("closed after %v", d)
	}
}

// TestSTARTTLSFailureEndsSession: a failed STARTTLS handshake ends the
// session; nothing sent after it in plaintext is served.
func TestSTARTTLSFailureEndsSession(t *testing.T) {
	e := tlsEnv(t, Options{})
	e.domain("example.com")
	e.mailbox("a@example.com")
	c := startTLSClient(t, e)
	// Not a TLS record: the handshake fails at once.
	c.send("MAIL FROM:<s@remote.test>\r\nRCPT TO:<a@example.com>\r\nDATA\r\n")
	got := readToClose(t, c.conn)
	if strings.Contains(got, "250") || strings.Contains(got, "354") || strings.Contains(got, "550") {
		t.Fatalf("the session went on after a failed handshake: %q", got)
	}
	e.waitIdle()
	if n := e.messages("a@example.com"); n != 0 {
		t.Fatalf("%d messages delivered", n)
	}
}
