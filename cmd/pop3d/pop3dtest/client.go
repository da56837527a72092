package pop3dtest

import (
	"bufio"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"
)

const (
	// DialTimeout bounds a connection attempt.
	DialTimeout = 5 * time.Second
	// ReadTimeout bounds the wait for one reply line, WriteTimeout one
	// write.
	ReadTimeout  = 20 * time.Second
	WriteTimeout = 5 * time.Second
)

// Conn is a minimal POP3 client for protocol-level checks (RFC 1939
// section 3: replies are CRLF-terminated lines, multi-line replies end
// with a line holding a single dot).
type Conn struct {
	T testing.TB
	C net.Conn
	R *bufio.Reader
}

// DialRaw connects to addr, from localIP when it is not empty, without
// reading the greeting. The connection is closed when the test ends.
func DialRaw(t testing.TB, addr, localIP string) *Conn {
	t.Helper()
	d := net.Dialer{Timeout: DialTimeout}
	if localIP != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(localIP)}
	}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &Conn{T: t, C: c, R: bufio.NewReader(c)}
}

// Dial connects like DialRaw and reads the greeting, which must be +OK.
func Dial(t testing.TB, addr, localIP string) *Conn {
	t.Helper()
	p := DialRaw(t, addr, localIP)
	if g := p.Line(); !strings.HasPrefix(g, "+OK") {
		t.Fatalf("greeting %q", g)
	}
	return p
}

// Send writes s as it is (the caller adds CRLF).
func (p *Conn) Send(s string) {
	p.T.Helper()
	p.C.SetWriteDeadline(time.Now().Add(WriteTimeout))
	if _, err := io.WriteString(p.C, s); err != nil {
		p.T.Fatalf("send: %v", err)
	}
}

// ReadLine reads one line without its CRLF; ok is false at the end of the
// stream or on a closed connection. A timeout fails the test.
func (p *Conn) ReadLine() (line string, ok bool) {
	p.T.Helper()
	p.C.SetReadDeadline(time.Now().Add(ReadTimeout))
	l, err := p.R.ReadString('\n')
	if err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			p.T.Fatalf("read timed out (got %q)", l)
		}
		return l, false
	}
	return strings.TrimRight(l, "\r\n"), true
}

// Line reads one line; any error fails the test.
func (p *Conn) Line() string {
	p.T.Helper()
	p.C.SetReadDeadline(time.Now().Add(ReadTimeout))
	l, err := p.R.ReadString('\n')
	if err != nil {
		p.T.Fatalf("reading a reply: %v (got %q)", err, l)
	}
	return strings.TrimRight(l, "\r\n")
}

// Cmd sends line with CRLF and returns the first reply line.
func (p *Conn) Cmd(line string) string {
	p.T.Helper()
	p.Send(line + "\r\n")
	return p.Line()
}

// Expect reads a line that must start with prefix.
func (p *Conn) Expect(prefix string) string {
	p.T.Helper()
	l, ok := p.ReadLine()
	if !ok || !strings.HasPrefix(l, prefix) {
		p.T.Fatalf("got %q (open %v), want %q...", l, ok, prefix)
	}
	return l
}

// Multi reads the body of a multi-line reply up to the terminating dot
// line, which it does not return; dot-stuffing is left in place.
func (p *Conn) Multi() []string {
	p.T.Helper()
	var out []string
	for {
		l, ok := p.ReadLine()
		if !ok {
			p.T.Fatalf("connection closed inside a multi-line reply")
		}
		if l == "." {
			return out
		}
		out = append(out, l)
	}
}

// Close closes the connection (it is also closed when the test ends).
func (p *Conn) Close() error { return p.C.Close() }
