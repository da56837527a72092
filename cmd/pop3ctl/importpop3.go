package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/pop3svc/pop3svc/store/migrate"
)

// Limits of the POP3 client that import pop3 uses.
const (
	pop3DialTimeout = 30 * time.Second
	pop3IdleTimeout = 5 * time.Minute // no octet from the old server for this long: give up
	pop3MaxLine     = 8192            // longest response line accepted (RFC 1939 allows 512)
)

// pop3Options say how to reach the old server.
type pop3Options struct {
	addr     string
	tls      bool   // POP3S: TLS from the first octet
	stls     bool   // STLS before logging in
	caFile   string // PEM certificates to trust instead of the system's
	insecure bool   // accept any certificate (tests, known hosts only)
	user     string
	password string
}

// pop3Source is one mailbox of a live POP3 server, read with UIDL, LIST
// and RETR; it never sends DELE, and QUIT only after RSET.
type pop3Source struct {
	conn net.Conn
	r    *bufio.Reader
	list []migrate.Message
	busy bool // a RETR's reader is open
}

func dialPOP3(ctx context.Context, o pop3Options) (*pop3Source, error) {
	d := net.Dialer{Timeout: pop3DialTimeout}
	conn, err := d.DialContext(ctx, "tcp", o.addr)
	if err != nil {
		return nil, fmt.Errorf("cannot reach the old server: %w", err)
	}
	host, _, _ := net.SplitHostPort(o.addr)
	cfg := &tls.Config{ServerName: host, InsecureSkipVerify: o.insecure, MinVersion: tls.VersionTLS12}
	if o.caFile != "" {
		pem, err := os.ReadFile(o.caFile)
		if err != nil {
			conn.Close()
			return nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			conn.Close()
			return nil, fmt.Errorf("%s holds no PEM certificate", o.caFile)
		}
		cfg.RootCAs = pool
	}
	if o.tls {
		conn = tls.Client(conn, cfg)
	}
	p := &pop3Source{conn: conn, r: bufio.NewReaderSize(conn, 64<<10)}
	fail := func(err error) (*pop3Source, error) { conn.Close(); return nil, err }
	if _, err := p.status(); err != nil {
		return fail(fmt.Errorf("greeting: %w", err))
	}
	if o.stls {
		if _, err := p.cmd("STLS"); err != nil {
			return fail(fmt.Errorf("STLS: %w", err))
		}
		tc := tls.Client(p.conn, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			return fail(fmt.Errorf("STLS: %w", err))
		}
		p.conn, p.r = tc, bufio.NewReaderSize(tc, 64<<10)
	}
	if _, err := p.cmd("USER " + o.user); err != nil {
		return fail(fmt.Errorf("USER: %w", err))
	}
	if _, err := p.cmd("PASS " + o.password); err != nil {
		return fail(fmt.Errorf("login as %s refused: %w", o.user, err))
	}
	return p, nil
}

// line reads one line without its CRLF.
func (p *pop3Source) line() (string, error) {
	p.conn.SetReadDeadline(time.Now().Add(pop3IdleTimeout))
	var b []byte
	for {
		frag, err := p.r.ReadSlice('\n')
		b = append(b, frag...)
		if len(b) > pop3MaxLine {
			return "", fmt.Errorf("the old server sent a line longer than %d octets", pop3MaxLine)
		}
		if err == nil {
			break
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			return "", err
		}
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}

func (p *pop3Source) status() (string, error) {
	l, err := p.line()
	if err != nil {
		return "", err
	}
	if rest, ok := strings.CutPrefix(l, "+OK"); ok {
		return strings.TrimSpace(rest), nil
	}
	return "", fmt.Errorf("the old server answered %q", l)
}

func (p *pop3Source) cmd(c string) (string, error) {
	if p.busy {
		return "", errors.New("a message is still being read")
	}
	p.conn.SetWriteDeadline(time.Now().Add(pop3IdleTimeout))
	if _, err := io.WriteString(p.conn, c+"\r\n"); err != nil {
		return "", err
	}
	return p.status()
}

// multi reads a multi-line response's lines (dot-unstuffed).
func (p *pop3Source) multi() ([]string, error) {
	var out []string
	for {
		l, err := p.line()
		if err != nil {
			return nil, err
		}
		if l == "." {
			return out, nil
		}
		out = append(out, strings.TrimPrefix(l, "."))
	}
}

// List asks UIDL and LIST: the old server's order is its message numbers.
func (p *pop3Source) List(ctx context.Context) ([]migrate.Message, error) {
	if p.list != nil {
		return p.list, nil
	}
	if _, err := p.cmd("UIDL"); err != nil {
		return nil, fmt.Errorf("UIDL (the old server must support it): %w", err)
	}
	ul, err := p.multi()
	if err != nil {
		return nil, err
	}
	if _, err := p.cmd("LIST"); err != nil {
		return nil, fmt.Errorf("LIST: %w", err)
	}
	ll, err := p.multi()
	if err != nil {
		return nil, err
	}
	sizes := make(map[int]int64)
	for _, l := range ll {
		f := strings.Fields(l)
		if len(f) >= 2 {
			n, _ := strconv.Atoi(f[0])
			sizes[n], _ = strconv.ParseInt(f[1], 10, 64)
		}
	}
	list := make([]migrate.Message, 0, len(ul))
	for _, l := range ul {
		num, uidl, ok := strings.Cut(l, " ")
		n, err := strconv.Atoi(num)
		if !ok || err != nil {
			return nil, fmt.Errorf("bad UIDL line %q", l)
		}
		size, ok := sizes[n]
		if !ok {
			size = -1
		}
		list = append(list, migrate.Message{UIDL: uidl, Size: size, Open: func(ctx context.Context) (io.ReadCloser, error) { return p.retr(n) }})
	}
	p.list = list
	return list, nil
}

// retr returns message n, dot-unstuffed, CRLF line endings.
func (p *pop3Source) retr(n int) (io.ReadCloser, error) {
	if _, err := p.cmd("RETR " + strconv.Itoa(n)); err != nil {
		return nil, fmt.Errorf("RETR %d: %w", n, err)
	}
	p.busy = true
	return &retrReader{p: p}, nil
}

type retrReader struct {
	p    *pop3Source
	buf  []byte
	mid  bool // inside a line
	done bool
	err  error
}

func (r *retrReader) Read(b []byte) (int, error) {
	for len(r.buf) == 0 {
		if r.done {
			return 0, io.EOF
		}
		if r.err != nil {
			return 0, r.err
		}
		r.p.conn.SetReadDeadline(time.Now().Add(pop3IdleTimeout))
		l, err := r.p.r.ReadSlice('\n')
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			r.err = err
			if errors.Is(err, io.EOF) {
				r.err = io.ErrUnexpectedEOF
			}
			return 0, r.err
		}
		start := !r.mid
		r.mid = err != nil // a line longer than the buffer goes on
		if start && (string(l) == ".\r\n" || string(l) == ".\n") {
			r.done = true
			r.p.busy = false
			return 0, io.EOF
		}
		if start && bytes.HasPrefix(l, []byte(".")) {
			l = l[1:]
		}
		r.buf = append(r.buf[:0], l...)
	}
	n := copy(b, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

// Close reads what is left of the message, so the connection stays usable.
func (r *retrReader) Close() error {
	if r.done || r.err != nil {
		return nil
	}
	_, err := io.Copy(io.Discard, r)
	return err
}

// Close ends the session without deleting anything: RSET, then QUIT.
func (p *pop3Source) Close() error {
	if !p.busy {
		_, _ = p.cmd("RSET")
		_, _ = p.cmd("QUIT")
	}
	return p.conn.Close()
}
