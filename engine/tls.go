package engine

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/panjf2000/gnet/v2"

	"github.com/pop3svc/pop3svc/engine/tlsconn"
	"github.com/pop3svc/pop3svc/session"
)

// TLS on gnet, which has none: the adapter design (see tlsconn). The
// ciphertext gnet reads is fed to crypto/tls through Transport.Inbound on
// the event loop; the handshake, the one blocking part, runs on its own
// goroutine with a deadline (tls.handshake_timeout) and waits on a
// condition variable for input; once it is done, reads never block and
// every later write is sealed on the loop, so TLS connections keep the
// plaintext ones' ordering, pipelining, backpressure (gnet's outbound
// buffer holds ciphertext), admission and idle sweep.
//
// Handshake goroutines are bounded by admission (every TLS connection holds
// a socket-pool slot or a backlog place) and live at most
// tls.handshake_timeout; a client that connects and sends nothing is closed
// when it expires and frees its slot.
//
// The alternative, handing the socket to a goroutine running plain
// crypto/tls after STLS (dup the fd, let gnet forget it), costs about 23 KB
// per idle session against about 7 KB here (tlsconn benchmarks) and a
// second I/O path that admission and the idle sweep would have to count.

// DefaultHandshakeTimeout applies when tls.handshake_timeout is zero.
const DefaultHandshakeTimeout = 15 * time.Second

// maxHeldPlain caps plaintext written before the handshake completed (the
// greeting, or an idle-timeout reply), sent once it does.
const maxHeldPlain = 4 << 10

// plainChunk is the buffer ReadPlain decrypts into.
const plainChunk = 16 << 10

var (
	mTLSHandshakeOK     = metrics.NewCounter(`pop3_tls_handshakes_total{result="ok"}`)
	mTLSHandshakeFailed = metrics.NewCounter(`pop3_tls_handshakes_total{result="failed"}`)
	mTLSCurrent         = metrics.NewGauge("pop3_tls_connections_current", nil)
)

// TLSTransports returns an Options.NewTransport that serves TLS with cfg
// (for example certs.Manager.TLSConfig(), which follows certificate
// reloads) on implicit-TLS listeners and after STLS. handshake bounds each
// handshake; zero means DefaultHandshakeTimeout.
func TLSTransports(cfg *tls.Config, handshake time.Duration) func(session.ConnInfo, bool) (Transport, error) {
	if handshake <= 0 {
		handshake = DefaultHandshakeTimeout
	}
	return func(ci session.ConnInfo, implicit bool) (Transport, error) {
		if cfg == nil {
			return nil, errNoTLS
		}
		t := &tlsTransport{timeout: handshake, implicit: implicit, cfg: cfg}
		t.c = tlsconn.New(tlsconn.Options{Config: cfg, Output: t.output})
		return t, nil
	}
}

// tlsTransport is one connection's TLS adapter.
type tlsTransport struct {
	k        *conn
	c        *tlsconn.Conn
	timeout  time.Duration
	implicit bool
	cfg      *tls.Config // for the certificate the channel binding hashes

	ready   bool        // the handshake's end was handled on the loop (loop only)
	closing bool        // close_notify sent: later input is ignored (loop only)
	onLoop  atomic.Bool // ready, readable off the loop
	counted atomic.Bool // counted in pop3_tls_connections_current
	held    []byte      // plaintext written before ready (loop only)
}

// transportBinder is implemented by transports that need their connection
// (to write and post from the handshake goroutine). The engine calls bind
// on the loop right after installing the transport.
type transportBinder interface {
	bind(k *conn)
	// abort runs from OnClose: the socket is gone.
	abort()
	// closeNotify sends close_notify before a clean close (RFC 8446
	// section 6.1); nothing before the handshake completed.
	closeNotify()
}

// bindTransport lets the connection's transport start (called on the loop
// after k.tr is set).
func bindTransport(k *conn) {
	if b, ok := k.tr.(transportBinder); ok {
		b.bind(k)
	}
}

// abortTransport tells the transport the connection is gone (OnClose).
func abortTransport(k *conn) {
	if b, ok := k.tr.(transportBinder); ok {
		b.abort()
	}
}

// sendCloseNotify writes the transport's close_notify, if any, before a
// clean close (on the loop).
func sendCloseNotify(k *conn) {
	if b, ok := k.tr.(transportBinder); ok && !k.closed.Load() {
		b.closeNotify()
	}
}

func (t *tlsTransport) bind(k *conn) {
	t.k = k
	k.refs.Add(1) // held by the handshake goroutine
	go t.handshake()
}

// handshake runs off the loop and reports the outcome there.
func (t *tlsTransport) handshake() {
	k := t.k
	defer k.release()
	ctx, cancel := context.WithTimeout(context.Background(), t.timeout)
	err := t.c.Handshake(ctx)
	cancel()
	if err != nil {
		mTLSHandshakeFailed.Inc()
		if errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("no handshake within tls.handshake_timeout (%v)", t.timeout)
		}
		k.post(func() {
			k.logger().Info("TLS handshake failed", "err", err, "implicit", t.implicit)
			k.phase.Store(phaseClosing)
			_ = k.gc.Close()
		}, nil)
		return
	}
	mTLSHandshakeOK.Inc()
	k.post(t.start, nil)
}

// start runs on the loop once the handshake succeeded: it sends what was
// written meanwhile (the greeting) and hands on plaintext that came with
// the client's last handshake flight.
func (t *tlsTransport) start() {
	k := t.k
	t.ready = true
	t.onLoop.Store(true)
	t.counted.Store(true)
	mTLSCurrent.Inc()
	k.touch()
	st := t.c.ConnectionState()
	k.logger().Debug("TLS established", "version", tls.VersionName(st.Version),
		"cipher", tls.CipherSuiteName(st.CipherSuite), "implicit", t.implicit)
	if b, ok := k.sess.(session.ChannelBinder); ok {
		b.SetChannelBinding(session.ChannelBindingOf(st, session.ServerCertificate(t.cfg, st)))
	}
	if len(t.held) > 0 {
		held := t.held
		t.held = nil
		if !k.write(held) {
			return
		}
	}
	plain, err := t.drain()
	if err != nil {
		k.logger().Debug("TLS read failed", "err", err)
		k.phase.Store(phaseClosing)
		_ = k.gc.Close()
		return
	}
	if len(plain) > 0 && k.input(plain) == gnet.Close {
		k.phase.Store(phaseClosing)
		_ = k.gc.Close()
	}
}

// output sends records crypto/tls writes by itself: handshake flights (from
// the handshake goroutine, posted to the loop in order) and alerts (on the
// loop once ready).
func (t *tlsTransport) output(b []byte, done func(error)) error {
	k := t.k
	if k == nil {
		return net.ErrClosed
	}
	if t.onLoop.Load() {
		if k.closed.Load() {
			// A write that failed earlier in this callback ran OnClose and
			// gnet closed the fd, whose number a new connection may reuse:
			// never write through the stale gnet.Conn.
			if done != nil {
				done(net.ErrClosed)
			}
			return net.ErrClosed
		}
		_, err := k.gc.Write(b)
		if err == nil {
			mBytesSent.Add(len(b))
		}
		if done != nil {
			done(err)
		}
		return err
	}
	k.post(func() {
		_, err := k.gc.Write(b)
		if err == nil {
			mBytesSent.Add(len(b))
		}
		if done != nil {
			done(err)
		}
	}, func() {
		if done != nil {
			done(net.ErrClosed)
		}
	})
	return nil
}

// Inbound feeds ciphertext and returns the plaintext now complete.
func (t *tlsTransport) Inbound(p []byte) ([]byte, error) {
	if t.closing {
		// The engine closes once its output is flushed; the peer's own
		// close_notify must not close it sooner.
		return nil, nil
	}
	if !t.ready {
		n, err := t.c.Feed(p)
		if err != nil {
			return nil, err
		}
		if n < len(p) {
			return nil, errors.New("tls: too much input before the handshake completed")
		}
		return nil, nil
	}
	var out []byte
	for len(p) > 0 {
		n, err := t.c.Feed(p)
		if err != nil {
			return nil, err
		}
		p = p[n:]
		plain, err := t.drain()
		out = append(out, plain...)
		if err != nil {
			return out, err
		}
	}
	return out, nil
}

// drain decrypts every complete record pending.
func (t *tlsTransport) drain() ([]byte, error) {
	var out []byte
	buf := getPlainBuf()
	defer putPlainBuf(buf)
	for {
		n, err := t.c.ReadPlain(buf)
		out = append(out, buf[:n]...)
		if errors.Is(err, tlsconn.ErrWouldBlock) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
	}
}

// Outbound seals plaintext; before the handshake completed it is held.
func (t *tlsTransport) Outbound(p []byte) ([]byte, error) {
	if !t.ready {
		if len(t.held)+len(p) > maxHeldPlain {
			return nil, errors.New("tls: too much output before the handshake completed")
		}
		t.held = append(t.held, p...)
		return nil, nil
	}
	var dst []byte
	if bp, ok := sealBufs.Get().(*[]byte); ok {
		dst = *bp
	}
	return t.c.SealAppend(dst, p)
}

// releaseOutbound takes back a buffer Outbound returned, once the engine
// has written it (gnet copies what the socket does not take at once).
func (t *tlsTransport) releaseOutbound(b []byte) {
	if cap(b) > 0 && cap(b) <= maxPooledSeal {
		b = b[:0]
		sealBufs.Put(&b)
	}
}

// sealBufs hold the records of one write to a TLS socket, from the seal to
// the socket write on the loop: reused across writes and connections
// instead of a new slice each time, and held by no idle connection.
var sealBufs sync.Pool // *[]byte

// maxPooledSeal is the largest sealed buffer kept for reuse: a RETR chunk
// (chunkSize) and its record overhead fit.
const maxPooledSeal = 2 * chunkSize

func (t *tlsTransport) abort() {
	t.c.Abort()
	if t.counted.CompareAndSwap(true, false) {
		mTLSCurrent.Dec()
	}
}

// closeNotify sends close_notify (through output, which writes on the
// loop once ready) and stops the session's TLS.
func (t *tlsTransport) closeNotify() {
	if t.ready && !t.closing {
		t.closing = true
		_ = t.c.Close()
	}
}

var plainBufs = sync.Pool{New: func() any { b := make([]byte, plainChunk); return &b }}

func getPlainBuf() []byte  { return *plainBufs.Get().(*[]byte) }
func putPlainBuf(b []byte) { plainBufs.Put(&b) }
