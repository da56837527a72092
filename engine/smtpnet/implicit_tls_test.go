package smtpnet

import (
	"bufio"
	"crypto/tls"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// implicitTLS serves e's protocol on an implicit-TLS listener too and
// returns its address.
func implicitTLS(t *testing.T, e *env) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := e.net.ServeTLS(l, testTLSConfig(t)); err != nil {
		t.Fatal(err)
	}
	return l.Addr().String()
}

// TestImplicitTLSGreetsAfterHandshake: the greeting comes over TLS, and
// the session takes mail.
func TestImplicitTLSGreetsAfterHandshake(t *testing.T) {
	e := newEnv(t, 0, Options{})
	addr := implicitTLS(t, e)
	c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // the test's self-signed pair
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "220 ") {
		t.Fatalf("greeting over implicit TLS: %q, %v", line, err)
	}
}

// TestImplicitTLSSilentClient: a client that connects and never starts
// the handshake is closed after tls.handshake_timeout, before any greeting;
// a client that sends no TLS is closed at once; both count as failed
// handshakes.
func TestImplicitTLSSilentClient(t *testing.T) {
	e := newEnv(t, 0, Options{HandshakeTimeout: 300 * time.Millisecond})
	addr := implicitTLS(t, e)
	before := mTLSFail.Get()
	for _, send := range []string{"", "EHLO plaintext.test\r\n"} {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		if send != "" {
			_, _ = io.WriteString(c, send)
		}
		// The server must close within the handshake timeout; the
		// test waits far longer so that a loaded machine does not fail it.
		_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
		b, err := io.ReadAll(c)
		c.Close()
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatalf("client sending %q: not closed within 30s (handshake timeout 300ms)", send)
		}
		if strings.Contains(string(b), "220") {
			t.Errorf("client sending %q got a greeting in plaintext: %q", send, b)
		}
	}
	// The server counts a failed handshake before it closes the
	// connection, and each client above read until that close.
	if n := mTLSFail.Get() - before; n < 2 {
		t.Fatalf("smtp_tls_handshake_failed_total rose by %d, want at least 2", n)
	}
}
