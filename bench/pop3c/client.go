// Package pop3c is the bench harness's POP3 client: just enough of RFC 1939
// to run full sessions and to check every RETR, with deadlines on every
// read and write so that a stalled server fails a session instead of
// hanging the harness.
package pop3c

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"
)

// MaxLine is the longest response line accepted, CRLF included. RFC 1939
// section 3 limits responses to 512 octets; message lines may be longer,
// so this is generous.
const MaxLine = 64 << 10

// ReadBufferSize is the client's read buffer per connection.
const ReadBufferSize = 64 << 10

// ErrResponse is wrapped by every -ERR reply.
var ErrResponse = errors.New("server replied -ERR")

// Conn is one POP3 connection.
type Conn struct {
	nc      net.Conn
	r       *bufio.Reader
	timeout time.Duration
	Greet   string // the greeting line without "+OK "
}

// Options for Dial.
type Options struct {
	Local   string        // local IP to bind, "" for any (spreads load over 127.0.0.x)
	TLS     *tls.Config   // non-nil: implicit TLS (POP3S, RFC 8314)
	Timeout time.Duration // per read or write; 0: 30 s
}

// Dial connects, reads the greeting and returns the connection.
func Dial(ctx context.Context, addr string, o Options) (*Conn, error) {
	if o.Timeout == 0 {
		o.Timeout = 30 * time.Second
	}
	d := net.Dialer{Timeout: o.Timeout}
	if o.Local != "" {
		ip := net.ParseIP(o.Local)
		if ip == nil {
			return nil, fmt.Errorf("bad local address %q", o.Local)
		}
		d.LocalAddr = &net.TCPAddr{IP: ip}
	}
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	if o.TLS != nil {
		tc := tls.Client(nc, o.TLS)
		_ = tc.SetDeadline(time.Now().Add(o.Timeout))
		if err := tc.HandshakeContext(ctx); err != nil {
			nc.Close()
			return nil, fmt.Errorf("TLS handshake: %w", err)
		}
		nc = tc
	}
	c := &Conn{nc: nc, r: bufio.NewReaderSize(&renewReader{nc: nc, timeout: o.Timeout}, ReadBufferSize), timeout: o.Timeout}
	g, err := c.status()
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("greeting: %w", err)
	}
	c.Greet = g
	return c, nil
}

// Close closes the connection without QUIT.
func (c *Conn) Close() error { return c.nc.Close() }

// renewReader moves the read deadline forward before a read when a
// quarter of the timeout has passed since it was last set, so a transfer
// fails only when the server stalls for about the timeout, at the cost of
// one clock read per read call.
type renewReader struct {
	nc      net.Conn
	timeout time.Duration
	set     time.Time
}

func (r *renewReader) Read(p []byte) (int, error) {
	if now := time.Now(); now.Sub(r.set) > r.timeout/4 {
		_ = r.nc.SetReadDeadline(now.Add(r.timeout))
		r.set = now
	}
	return r.nc.Read(p)
}

// line reads one line, CRLF included.
func (c *Conn) line() ([]byte, error) {
	b, err := c.r.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		buf := append([]byte(nil), b...)
		for err == bufio.ErrBufferFull && len(buf) < MaxLine {
			b, err = c.r.ReadSlice('\n')
			buf = append(buf, b...)
		}
		if err == bufio.ErrBufferFull {
			return nil, fmt.Errorf("line longer than %d octets", MaxLine)
		}
		b = buf
	}
	if err == io.EOF && len(b) > 0 {
		err = io.ErrUnexpectedEOF
	}
	return b, err
}

// status reads a status line: "+OK text" gives text, "-ERR text" an error.
func (c *Conn) status() (string, error) {
	b, err := c.line()
	if err != nil {
		return "", err
	}
	s := strings.TrimRight(string(b), "\r\n")
	switch {
	case s == "+OK" || strings.HasPrefix(s, "+OK "):
		return strings.TrimPrefix(strings.TrimPrefix(s, "+OK"), " "), nil
	case strings.HasPrefix(s, "-ERR"):
		return "", fmt.Errorf("%w: %s", ErrResponse, s)
	}
	return "", fmt.Errorf("bad status line %q", s)
}

// Cmd sends one command line and reads its status line.
func (c *Conn) Cmd(format string, args ...any) (string, error) {
	if err := c.send(format, args...); err != nil {
		return "", err
	}
	return c.status()
}

func (c *Conn) send(format string, args ...any) error {
	_ = c.nc.SetWriteDeadline(time.Now().Add(c.timeout))
	_, err := fmt.Fprintf(c.nc, format+"\r\n", args...)
	return err
}

// Login sends USER and PASS (RFC 1939 section 7).
func (c *Conn) Login(user, pass string) error {
	if _, err := c.Cmd("USER %s", user); err != nil {
		return fmt.Errorf("USER: %w", err)
	}
	if _, err := c.Cmd("PASS %s", pass); err != nil {
		return fmt.Errorf("PASS: %w", err)
	}
	return nil
}

// Stat returns the STAT counts.
func (c *Conn) Stat() (n int, size int64, err error) {
	s, err := c.Cmd("STAT")
	if err != nil {
		return 0, 0, err
	}
	if _, err := fmt.Sscanf(s, "%d %d", &n, &size); err != nil {
		return 0, 0, fmt.Errorf("bad STAT reply %q", s)
	}
	return n, size, nil
}

// multi sends a command and calls fn for each line of its multi-line
// reply, dot-unstuffed (RFC 1939 section 3), CRLF removed.
func (c *Conn) multi(cmd string, fn func(line []byte) error) error {
	if _, err := c.Cmd("%s", cmd); err != nil {
		return err
	}
	for {
		b, err := c.line()
		if err != nil {
			return err
		}
		b = bytes.TrimRight(b, "\r\n")
		if len(b) == 1 && b[0] == '.' {
			return nil
		}
		if len(b) > 0 && b[0] == '.' {
			b = b[1:]
		}
		if err := fn(b); err != nil {
			return err
		}
	}
}

// Entry is one line of a LIST or UIDL reply.
type Entry struct {
	N    int
	Size int64  // LIST
	UID  string // UIDL
}

// List returns the scan listing (RFC 1939 section 5).
func (c *Conn) List() ([]Entry, error) {
	var out []Entry
	err := c.multi("LIST", func(l []byte) error {
		f := strings.Fields(string(l))
		if len(f) < 2 {
			return fmt.Errorf("bad LIST line %q", l)
		}
		n, err1 := strconv.Atoi(f[0])
		sz, err2 := strconv.ParseInt(f[1], 10, 64)
		if err1 != nil || err2 != nil {
			return fmt.Errorf("bad LIST line %q", l)
		}
		out = append(out, Entry{N: n, Size: sz})
		return nil
	})
	return out, err
}

// UIDL returns the unique-id listing (RFC 1939 section 7).
func (c *Conn) UIDL() ([]Entry, error) {
	var out []Entry
	err := c.multi("UIDL", func(l []byte) error {
		f := strings.Fields(string(l))
		if len(f) != 2 {
			return fmt.Errorf("bad UIDL line %q", l)
		}
		n, err := strconv.Atoi(f[0])
		if err != nil {
			return fmt.Errorf("bad UIDL line %q", l)
		}
		out = append(out, Entry{N: n, UID: f[1]})
		return nil
	})
	return out, err
}

// Top returns the header of message n and its first lines body lines
// (RFC 1939 section 7), dot-unstuffed, each line ending with CRLF.
func (c *Conn) Top(n, lines int) ([]byte, error) {
	var out []byte
	err := c.multi(fmt.Sprintf("TOP %d %d", n, lines), func(l []byte) error {
		out = append(append(out, l...), '\r', '\n')
		return nil
	})
	return out, err
}

// Retr retrieves message n and returns its octet count after
// dot-unstuffing, CRLF counted, which must equal its LIST size.
func (c *Conn) Retr(n int) (int64, error) {
	if err := c.send("RETR %d", n); err != nil {
		return 0, err
	}
	if _, err := c.status(); err != nil {
		return 0, err
	}
	return UnstuffCount(c.r, nil)
}

// RetrTo retrieves message n, writes it dot-unstuffed to w and returns
// its octet count.
func (c *Conn) RetrTo(n int, w io.Writer) (int64, error) {
	if err := c.send("RETR %d", n); err != nil {
		return 0, err
	}
	if _, err := c.status(); err != nil {
		return 0, err
	}
	return UnstuffCount(c.r, w)
}

// UnstuffCount reads a multi-line reply body from r up to and including
// its terminating ".\r\n", removes the stuffed leading '.' of each line
// (RFC 1939 section 3) and returns the octets of the message as the server
// stores it, line endings included. When w is not nil the unstuffed bytes
// are written to it. A reply that ends before the terminator is an error.
// It scans for line starts with a dot ("\n.") rather than line by line,
// so ordinary lines cost one pass of bytes.Index.
func UnstuffCount(r *bufio.Reader, w io.Writer) (int64, error) {
	var n int64
	eof := func(err error) error {
		if err == io.EOF {
			return fmt.Errorf("reply ended after %d octets without the terminating dot line: %w", n, io.ErrUnexpectedEOF)
		}
		return err
	}
	start := true // at the start of a line
	for {
		if start {
			p, err := r.Peek(3)
			if len(p) == 0 {
				return n, eof(err)
			}
			if p[0] == '.' {
				if len(p) >= 2 && p[1] == '\n' || len(p) >= 3 && p[1] == '\r' && p[2] == '\n' {
					_, _ = r.Discard(bytes.IndexByte(p, '\n') + 1)
					return n, nil
				}
				if len(p) < 3 && err != nil {
					return n, eof(err)
				}
				_, _ = r.Discard(1) // the stuffed dot
			}
			start = false
		}
		if r.Buffered() == 0 {
			if _, err := r.Peek(1); err != nil {
				return n, eof(err)
			}
		}
		buf, _ := r.Peek(r.Buffered())
		// Stuffed dots whose line is whole enough in buf to tell from the
		// terminator are skipped here; the terminator, or a dot too near
		// the buffer's end, is left to the line-start step above.
		done := 0 // octets of buf emitted or skipped
		emit := func(b []byte) error {
			n += int64(len(b))
			if w != nil {
				if _, err := w.Write(b); err != nil {
					return err
				}
			}
			return nil
		}
		for i := 0; ; {
			j := indexLFDot(buf[i:])
			if j < 0 {
				if err := emit(buf[done:]); err != nil {
					return n, err
				}
				done = len(buf)
				start = buf[len(buf)-1] == '\n'
				break
			}
			j += i
			if err := emit(buf[done : j+1]); err != nil {
				return n, err
			}
			if j+3 >= len(buf) || buf[j+2] == '\n' || buf[j+2] == '\r' && buf[j+3] == '\n' {
				done = j + 1
				start = true
				break
			}
			done = j + 2 // the stuffed dot
			i = done
		}
		if _, err := r.Discard(done); err != nil {
			return n, err
		}
	}
}

// indexLFDot returns the index of the first line feed in b followed by a
// '.', or -1. It looks for the '.' first: dots are rarer than line ends,
// so most of a reply is skipped by one vectorised IndexByte rather than
// one call per line.
func indexLFDot(b []byte) int {
	for i := 1; i < len(b); {
		j := bytes.IndexByte(b[i:], '.')
		if j < 0 {
			return -1
		}
		j += i
		if b[j-1] == '\n' {
			return j - 1
		}
		i = j + 1
	}
	return -1
}

// Dele marks message n deleted.
func (c *Conn) Dele(n int) error {
	_, err := c.Cmd("DELE %d", n)
	return err
}

// Quit sends QUIT and reads its reply (the UPDATE state, RFC 1939 section 6),
// then closes the connection.
func (c *Conn) Quit() error {
	_, err := c.Cmd("QUIT")
	c.nc.Close()
	return err
}
