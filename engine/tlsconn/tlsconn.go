// Package tlsconn runs crypto/tls over a connection that the caller drives
// with byte slices instead of a socket: the engine's event loop feeds the
// ciphertext it read (Feed), takes the plaintext out without blocking
// (ReadPlain), and receives ciphertext to send through a callback (the
// engine's AsyncWrite). The handshake is the only blocking part; it runs off
// the event loop (Handshake, on a bounded pool with a deadline) and waits on
// a condition variable for input.
//
// After the handshake the transport's reads return ErrWouldBlock, a
// temporary net.Error, when no ciphertext is pending. crypto/tls keeps a
// partial record across temporary read errors (crypto/tls conn.go,
// readRecordOrCCS: only a non-temporary error becomes the connection's
// sticky error), so a record split over any number of Feed calls is
// decrypted once its last byte arrives; the byte-at-a-time tests guard this.
//
// Implements the transport for RFC 2595 (STLS) and RFC 8314 (implicit TLS);
// the protocol itself is crypto/tls's.
package tlsconn

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultMaxPending caps the ciphertext fed but not yet consumed. A full
// TLS record is at most 16 KiB plus 256 octets of overhead (RFC 8446
// section 5.2), so two records fit.
const DefaultMaxPending = 40 << 10

// MinMaxPending is the largest TLS record on the wire: 5 octets of header
// and 2^14+256 of ciphertext (RFC 8446 section 5.2; TLS 1.2's limit,
// 2^14+2048, is not produced by crypto/tls peers but is accepted by it, so
// the minimum also covers it).
const MinMaxPending = 5 + 1<<14 + 2048

// wouldBlock is returned by the transport, and by ReadPlain, when no
// complete record is available. It is temporary, which makes crypto/tls keep
// a partial record instead of failing the connection.
type wouldBlock struct{}

func (wouldBlock) Error() string   { return "tlsconn: no complete record yet (would block)" }
func (wouldBlock) Timeout() bool   { return false }
func (wouldBlock) Temporary() bool { return true }

// Errors returned by Conn's methods.
var (
	// ErrWouldBlock: ReadPlain has no plaintext until more ciphertext is fed.
	ErrWouldBlock net.Error = wouldBlock{}
	// ErrHandshakeIncomplete: ReadPlain or WritePlain before Handshake succeeded.
	ErrHandshakeIncomplete = errors.New("tlsconn: handshake not complete")
	// ErrClosed: the connection was closed or aborted.
	ErrClosed = net.ErrClosed
)

// Output sends ciphertext. It takes ownership of b and must not block (an
// event loop's AsyncWrite, or a task posted to the loop). done, when not nil, must
// be called once b has been handed to the socket or has failed. Calls are
// made in the order the records must go on the wire.
type Output func(b []byte, done func(error)) error

// Options configure a Conn.
type Options struct {
	Config *tls.Config // required
	Output Output      // required
	// MaxPending caps ciphertext fed but not yet consumed; 0 means
	// DefaultMaxPending. Values below MinMaxPending are raised to it, so
	// that one Feed can always take a whole record.
	MaxPending int
	// Client makes a client-side Conn (tests and benchmarks); default server.
	Client      bool
	Local, Peer net.Addr // the transport's LocalAddr and RemoteAddr; may be nil
}

// Conn is one TLS session over fed bytes. Feed and ReadPlain belong to one
// goroutine at a time (the event loop); WritePlain may run on another (a
// worker) concurrently with them; Handshake runs once, on its own goroutine.
type Conn struct {
	tc   *tls.Conn
	tr   *transport
	wmu  sync.Mutex // one WritePlain or Seal at a time
	done atomic.Bool
}

// New makes a Conn. Nothing is sent until Handshake.
func New(opts Options) *Conn {
	max := opts.MaxPending
	if max <= 0 {
		max = DefaultMaxPending
	}
	if max < MinMaxPending {
		max = MinMaxPending
	}
	tr := &transport{out: opts.Output, max: max, local: opts.Local, peer: opts.Peer, blocking: true}
	tr.cond.L = &tr.mu
	c := &Conn{tr: tr}
	if opts.Client {
		c.tc = tls.Client(tr, opts.Config)
	} else {
		c.tc = tls.Server(tr, opts.Config)
	}
	return c
}

// Feed hands over ciphertext read from the socket and returns how many
// octets of b it took (copied): no more than keeps MaxPending octets
// waiting. Leave the rest in the socket's buffer and feed it again once
// ReadPlain has consumed input or Handshake has returned. After the
// handshake, call ReadPlain until it returns ErrWouldBlock after each Feed.
// It fails with ErrClosed after Close or Abort.
func (c *Conn) Feed(b []byte) (int, error) { return c.tr.feed(b) }

// Room returns how many octets Feed would take now.
func (c *Conn) Room() int {
	c.tr.mu.Lock()
	defer c.tr.mu.Unlock()
	return c.tr.max - (len(c.tr.buf) - c.tr.r)
}

// Pending returns the ciphertext octets fed and not yet consumed.
func (c *Conn) Pending() int {
	c.tr.mu.Lock()
	defer c.tr.mu.Unlock()
	return len(c.tr.buf) - c.tr.r
}

// Handshake runs the TLS handshake, blocking until it completes, fails, or
// ctx ends (then the connection is closed and ctx's error returned). Run it
// off the event loop. Plaintext that arrived with the last handshake flight
// is kept: call ReadPlain afterwards even if nothing more is fed.
func (c *Conn) Handshake(ctx context.Context) error {
	err := c.tc.HandshakeContext(ctx)
	if err != nil {
		c.tr.close()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return err
	}
	c.tr.mu.Lock()
	c.tr.blocking = false
	c.tr.mu.Unlock()
	c.done.Store(true)
	return nil
}

// HandshakeComplete reports whether Handshake succeeded.
func (c *Conn) HandshakeComplete() bool { return c.done.Load() }

// ReadPlain decrypts into buf without blocking. It returns ErrWouldBlock
// when no complete record is pending, io.EOF after the peer's close_notify,
// and another error when the input is not valid TLS (the connection should
// be closed; an alert has already been sent through Output).
func (c *Conn) ReadPlain(buf []byte) (int, error) {
	if !c.done.Load() {
		return 0, ErrHandshakeIncomplete
	}
	n, err := c.tc.Read(buf)
	if err != nil && errors.Is(err, ErrWouldBlock) {
		if n > 0 {
			return n, nil
		}
		return 0, ErrWouldBlock
	}
	return n, err
}

// WritePlain encrypts p and passes all of its records to Output in one
// call with done attached (nil allowed). Safe to call from a worker while
// the event loop feeds and reads.
func (c *Conn) WritePlain(p []byte, done func(error)) error {
	return c.sealWith(p, func(buf []byte, err error) error {
		if err != nil {
			if len(buf) > 0 {
				// An alert produced by the failure still goes out.
				c.tr.out(buf, nil)
			}
			return err
		}
		return c.tr.out(buf, done)
	})
}

// Seal encrypts p on the caller's goroutine and returns the records instead
// of passing them to Output: for a caller that writes synchronously (the
// engine's writes on its event loop). Records that crypto/tls writes at the
// same moment for its own reasons are included, in order.
func (c *Conn) Seal(p []byte) ([]byte, error) { return c.SealAppend(nil, p) }

// SealAppend is Seal writing the records into dst[:0] when it has room for
// them (sealedSize), so that a caller can reuse one buffer for many writes
// instead of a new slice each time. The records are returned; dst is not
// used when it is too small.
func (c *Conn) SealAppend(dst, p []byte) ([]byte, error) {
	var out []byte
	err := c.sealInto(dst, p, func(buf []byte, err error) error {
		out = buf
		return err
	})
	return out, err
}

// sealWith runs crypto/tls's Write of p, collecting the records it
// produces, and hands them to f while the output lock is still held, so
// that nothing crypto/tls writes meanwhile can overtake them.
func (c *Conn) sealWith(p []byte, f func(buf []byte, err error) error) error {
	return c.sealInto(nil, p, f)
}

// sealInto is sealWith collecting into dst[:0] when its capacity holds
// sealedSize(len(p)).
func (c *Conn) sealInto(dst, p []byte, f func(buf []byte, err error) error) error {
	if !c.done.Load() {
		return ErrHandshakeIncomplete
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	tr := c.tr
	tr.omu.Lock()
	tr.collecting = true
	if need := sealedSize(len(p)); cap(dst) >= need {
		tr.collect = dst[:0]
	} else {
		tr.collect = make([]byte, 0, need)
	}
	tr.omu.Unlock()
	_, err := c.tc.Write(p)
	tr.omu.Lock()
	defer tr.omu.Unlock()
	buf := tr.collect
	tr.collecting, tr.collect = false, nil
	return f(buf, err)
}

// sealedSize estimates the ciphertext of n plaintext octets: records of at
// most 16 KiB (RFC 8446 section 5.1), each with a 5-octet header, a 16-octet
// tag, a content-type octet (TLS 1.3) or an 8-octet explicit nonce (TLS
// 1.2 GCM); small records while crypto/tls sizes them dynamically.
func sealedSize(n int) int { return n + (n/1024+2)*32 }

// Close sends close_notify (RFC 8446 section 6.1) through Output if the
// handshake completed, then closes the transport: Feed and the read and
// write methods fail afterwards. The caller closes the socket once Output's
// bytes are flushed.
func (c *Conn) Close() error {
	err := c.tc.Close()
	c.tr.close()
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

// Abort closes without an alert (the socket is already gone) and wakes a
// Handshake that waits for input.
func (c *Conn) Abort() { c.tr.close() }

// ConnectionState returns the negotiated parameters.
func (c *Conn) ConnectionState() tls.ConnectionState { return c.tc.ConnectionState() }

// transport is the net.Conn under tls.Conn.
type transport struct {
	mu       sync.Mutex
	cond     sync.Cond
	buf      []byte // pending ciphertext is buf[r:]
	r        int
	max      int
	blocking bool // reads wait for input (during the handshake)
	closed   bool

	omu        sync.Mutex // orders calls to out
	out        Output
	collecting bool // WritePlain gathers records into collect
	collect    []byte

	local, peer net.Addr
}

func (t *transport) feed(b []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return 0, ErrClosed
	}
	room := t.max - (len(t.buf) - t.r)
	if len(b) > room {
		b = b[:room]
	}
	if len(b) == 0 {
		return 0, nil
	}
	if t.r > 0 {
		n := copy(t.buf, t.buf[t.r:])
		t.buf, t.r = t.buf[:n], 0
	}
	t.buf = append(t.buf, b...)
	t.cond.Signal()
	return len(b), nil
}

func (t *transport) Read(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for t.r == len(t.buf) {
		if t.closed {
			return 0, ErrClosed
		}
		if !t.blocking {
			return 0, ErrWouldBlock
		}
		t.cond.Wait()
	}
	n := copy(p, t.buf[t.r:])
	t.r += n
	if t.r == len(t.buf) {
		// Drained: drop the buffer so that an idle connection holds none.
		t.buf, t.r = nil, 0
	}
	return n, nil
}

func (t *transport) Write(p []byte) (int, error) {
	t.mu.Lock()
	closed := t.closed
	t.mu.Unlock()
	if closed {
		return 0, ErrClosed
	}
	t.omu.Lock()
	defer t.omu.Unlock()
	if t.collecting {
		t.collect = append(t.collect, p...)
		return len(p), nil
	}
	if err := t.out(append([]byte(nil), p...), nil); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (t *transport) close() {
	t.mu.Lock()
	t.closed = true
	t.buf, t.r = nil, 0
	t.cond.Broadcast()
	t.mu.Unlock()
}

func (t *transport) Close() error { t.close(); return nil }

func (t *transport) LocalAddr() net.Addr {
	if t.local != nil {
		return t.local
	}
	return dummyAddr{}
}

func (t *transport) RemoteAddr() net.Addr {
	if t.peer != nil {
		return t.peer
	}
	return dummyAddr{}
}

// Deadlines are the caller's business (the engine's idle sweep and the
// handshake context); crypto/tls only sets one while sending close_notify.
func (t *transport) SetDeadline(time.Time) error      { return nil }
func (t *transport) SetReadDeadline(time.Time) error  { return nil }
func (t *transport) SetWriteDeadline(time.Time) error { return nil }

type dummyAddr struct{}

func (dummyAddr) Network() string { return "tlsconn" }
func (dummyAddr) String() string  { return "tlsconn" }

var _ net.Conn = (*transport)(nil)
