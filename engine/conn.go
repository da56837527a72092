package engine

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"log/slog"
	"runtime/debug"
	"sync/atomic"
	"time"

	"container/list"
	"net/netip"

	"github.com/panjf2000/ants/v2"
	"github.com/panjf2000/gnet/v2"

	"github.com/pop3svc/pop3svc/session"
)

// Replies the engine writes itself.
var (
	replyBusy        = []byte("-ERR [SYS/TEMP] server busy, try again\r\n")
	replyInternal    = []byte("-ERR [SYS/TEMP] internal error\r\n")
	replyTooMany     = []byte("-ERR [SYS/TEMP] too many connections, try again later\r\n")
	replyPerIP       = []byte("-ERR [SYS/TEMP] too many connections from your address\r\n")
	replyWaitTimeout = []byte("-ERR [SYS/TEMP] no free connection slot, try again later\r\n")
	replyIdle        = []byte("-ERR idle timeout\r\n")
	replyDraining    = []byte("-ERR [SYS/TEMP] server shutting down, try again later\r\n")
	replyPreIP       = []byte("-ERR [SYS/TEMP] too many connections from your address awaiting login\r\n")
	replyPreNet      = []byte("-ERR [SYS/TEMP] too many connections from your network awaiting login\r\n")
	replyShed        = []byte("-ERR [SYS/TEMP] server busy, connection closed to serve others\r\n")
	replyDeadline    = []byte("-ERR [SYS/TEMP] login not completed in time\r\n")
	replyPipelined   = []byte("-ERR [SYS/PERM] too many pipelined commands\r\n")
)

// Connection phases, read by the sweep.
const (
	phaseWaiting  int32 = iota // accepted, held silent in the backlog
	phaseActive                // greeted (or being greeted)
	phaseClosing               // no more input; closes once output drained
	phaseRefusing              // refused for a full pool, held silent until its refusal (refuse_delay)
)

// conn is the per-connection I/O context (the seed's "I/O context"). Fields
// without a note are touched only on the connection's event loop; the
// atomics are read by the sweep and the workers. A conn is recycled through
// the socket pool's free list once refs drops to zero.
type conn struct {
	srv    *Server
	gc     gnet.Conn
	id     uint64
	remote string
	local  string
	ip     string
	tls    bool
	sess   session.Session
	tr     Transport // optional inbound/outbound filter (TLS); nil for plaintext

	split splitter
	// qbuf holds the pipelined lines waiting, in order, from qhead: each
	// a 4-octet length (tooLongMark for a line over the limit) and its
	// octets. qlines counts them. overflow: more arrived than
	// limits.max_inbound or limits.max_pipelined allow; what is queued is
	// answered, then the client is told and the connection closed.
	qbuf     []byte
	qhead    int
	qlines   int
	overflow bool
	received int // octets received while waiting in the backlog

	busy     bool // a command (or the greeting) is in flight
	pumping  bool // pump is on the stack
	drain    bool // shutting down: close after the current command
	flushing bool // close once OutboundBuffered() == 0
	// written counts the octets handed to gnet; with what gnet and the
	// kernel still hold it tells how much reached the client (see
	// outputProgress). delivered is that amount at the last idle check.
	written   int64
	delivered int64
	stream    *stream

	// Guarded by srv.sockets.mu: the socket pool's and the
	// unauthenticated counts' view of the connection (prelogin.go).
	admitted         bool // holds a slot of socketmax
	counted          bool // counted in perIP (served or waiting)
	held             bool // held for a delayed refusal (sockets.held)
	implicitTLS      bool // accepted on an implicit-TLS listener (set for a held refusal)
	listed           bool // on its wide network's list of served unauthenticated connections
	waitElem         *list.Element
	addr             netip.Addr
	pre              [3]*preEntry // address, /24 or /64, /48
	preNext, prePrev *conn

	phase      atomic.Int32
	authed     atomic.Bool
	expiring   atomic.Bool // an idle or backlog expiry is on its way
	closed     atomic.Bool // gnet closed the connection (OnClose ran)
	lastActive atomic.Int64
	openedAt   atomic.Int64 // connect time: pop3.login_deadline counts from it
	waitSince  atomic.Int64
	refs       atomic.Int32
	shard      *shard // registry shard, set while registered
}

// tooLongMark is the queued length of a line over the limit.
const tooLongMark = 0xFFFFFFFF

// qbufKeep is the largest queue buffer kept once the queue is empty.
const qbufKeep = 512

func (k *conn) logger() *slog.Logger {
	return k.srv.log.With("conn", k.id, "remote", k.remote)
}

func (k *conn) touch() { k.lastActive.Store(k.srv.now().UnixNano()) }

// release drops one reference; the last one ends the session off the loop.
func (k *conn) release() {
	if k.refs.Add(-1) == 0 {
		k.finalize()
	}
}

// finalize closes the stream and the session on a worker (session.Close
// may do disk I/O) and recycles the context.
func (k *conn) finalize() {
	s := k.srv
	s.final.Add(1)
	task := func() {
		defer s.final.Done()
		if _, ok := s.live.LoadAndDelete(k); !ok {
			return // closed by Shutdown after the loops stopped
		}
		if st := k.stream; st != nil {
			_ = st.body.Close()
			st.releaseSlot(s)
			k.stream = nil
		}
		if k.sess != nil {
			func() {
				defer func() {
					if v := recover(); v != nil {
						mPanics.Inc()
						k.logger().Error("panic in session Close", "panic", v, "stack", string(debug.Stack()))
					}
				}()
				k.sess.Close()
			}()
		}
		set := s.settings()
		k.reset()
		s.sockets.put(k, set)
	}
	if err := s.submit(task); err != nil {
		go task()
	}
}

func (k *conn) reset() {
	buf := k.split.buf[:0]
	*k = conn{}
	k.split.buf = buf
}

// post runs fn on the connection's event loop. If the connection is gone
// by then, or the engine no longer runs tasks, drop runs instead (on the
// loop or on the calling goroutine). It holds a reference until then.
func (k *conn) post(fn func(), drop func()) {
	k.refs.Add(1)
	err := k.gc.EventLoop().Execute(context.Background(), gnet.RunnableFunc(func(context.Context) error {
		defer k.release()
		if k.closed.Load() {
			if drop != nil {
				drop()
			}
			return nil
		}
		fn()
		return nil
	}))
	if err != nil {
		if drop != nil {
			drop()
		}
		k.release()
	}
}

// write sends p (through the transport when there is one). It reports
// false when the connection is gone: gnet closes it on a write error, and
// OnClose has then already run.
func (k *conn) write(p []byte) bool {
	if k.closed.Load() {
		return false
	}
	if k.tr != nil {
		var err error
		if p, err = k.tr.Outbound(p); err != nil {
			k.logger().Debug("transport write failed", "err", err)
			_ = k.gc.Close()
			return false
		}
		if r, ok := k.tr.(outboundReleaser); ok && cap(p) > 0 {
			defer r.releaseOutbound(p)
		}
	}
	if k.closed.Load() {
		return false // the transport's own write failed and closed it
	}
	if len(p) == 0 {
		return true
	}
	if _, err := k.gc.Write(p); err != nil || k.closed.Load() {
		return false
	}
	k.written += int64(len(p))
	mBytesSent.Add(len(p))
	return true
}

// input takes plaintext octets read from the client.
func (k *conn) input(p []byte) gnet.Action {
	set := k.srv.settings()
	switch k.phase.Load() {
	case phaseClosing:
		return gnet.None
	case phaseRefusing:
		k.received += len(p)
		if k.received > set.backlogMaxInput {
			return gnet.Close
		}
		return gnet.None // refused: what it sends is dropped
	case phaseWaiting:
		k.received += len(p)
		if k.received > set.backlogMaxInput {
			k.logger().Info("connection in the backlog sent too much, closing", "octets", k.received)
			return gnet.Close
		}
	}
	if k.overflow {
		return gnet.None // the rest is discarded; the refusal follows what is queued
	}
	k.split.feed(p, set.maxLine, k.enqueue)
	if !k.overflow && k.queuedOctets()+k.split.pending() > set.maxInbound {
		k.overflowed()
	}
	if k.phase.Load() == phaseActive {
		k.pump()
	}
	return gnet.None
}

func (k *conn) queuedOctets() int { return len(k.qbuf) - k.qhead }

func (k *conn) enqueue(line []byte, tooLong bool) {
	if k.overflow {
		return
	}
	set := k.srv.settings()
	n := len(line)
	if tooLong {
		n = 0
	}
	if k.qlines >= set.maxPipelined || k.queuedOctets()+n+lineOverhead > set.maxInbound {
		k.overflowed()
		return
	}
	if k.qhead > 0 && k.qhead >= len(k.qbuf)/2 {
		k.qbuf = k.qbuf[:copy(k.qbuf, k.qbuf[k.qhead:])]
		k.qhead = 0
	}
	size := uint32(n)
	if tooLong {
		size = tooLongMark
	}
	k.qbuf = binary.BigEndian.AppendUint32(k.qbuf, size)
	if !tooLong {
		k.qbuf = append(k.qbuf, line...)
	}
	k.qlines++
}

// overflowed stops taking input: the lines queued are answered, then the
// client gets replyPipelined and the connection closes.
func (k *conn) overflowed() {
	k.overflow = true
	k.split.reset()
	mInboundOverflow.Inc()
	k.logger().Info("too much pipelined input, refusing the rest", "octets", k.queuedOctets(), "lines", k.qlines,
		"max_inbound", k.srv.settings().maxInbound, "max_pipelined", k.srv.settings().maxPipelined)
}

// dequeue takes the next queued line (a copy: the queue's buffer is
// reused).
func (k *conn) dequeue() (line []byte, tooLong bool) {
	n := binary.BigEndian.Uint32(k.qbuf[k.qhead:])
	k.qhead += 4
	if n == tooLongMark {
		tooLong = true
	} else {
		line = bytes.Clone(k.qbuf[k.qhead : k.qhead+int(n)])
		k.qhead += int(n)
	}
	k.qlines--
	if k.qhead >= len(k.qbuf) {
		if cap(k.qbuf) > qbufKeep {
			k.qbuf = nil
		} else {
			k.qbuf = k.qbuf[:0]
		}
		k.qhead = 0
	}
	return line, tooLong
}

func (k *conn) clearQueue() {
	k.qbuf = nil
	k.qhead = 0
	k.qlines = 0
}

// pump hands queued lines to the session, one command in flight at a time.
func (k *conn) pump() {
	if k.pumping {
		return
	}
	k.pumping = true
	defer func() { k.pumping = false }()
	for !k.busy && k.qlines > 0 && k.phase.Load() == phaseActive && !k.closed.Load() {
		line, tooLong := k.dequeue()
		k.busy = true
		if !tooLong && k.overLimit(line) {
			tooLong = true
		}
		if tooLong {
			k.deliver(k.call(func() session.Reply { return k.sess.LineTooLong() }))
			continue
		}
		inline, ok := k.inline(line)
		if !ok {
			continue // the panic reply is on its way
		}
		if inline {
			k.deliver(k.call(func() session.Reply { return k.sess.Handle(line) }))
			continue
		}
		k.refs.Add(1)
		plain := k.tr == nil // read on the loop, which owns it
		err := k.srv.submit(func() {
			defer k.release()
			k.work(func() session.Reply { return k.sess.Handle(line) }, plain)
		})
		if err != nil {
			k.refs.Add(-1) // the task will not run; the open connection still holds a reference
			if errors.Is(err, ants.ErrPoolOverload) {
				mPoolOverload.Inc()
				k.logger().Warn("worker pool full, command refused", "threads", k.srv.pool.Cap())
				if rf, ok := k.sess.(session.Refuser); ok {
					rf.Refused()
				}
				k.busy = false
				if !k.write(replyBusy) {
					return
				}
				continue
			}
			k.deliver(session.Reply{Out: replyBusy, Close: true})
		}
	}
	if k.overflow && !k.busy && k.qlines == 0 && k.phase.Load() == phaseActive && !k.closed.Load() {
		k.write(replyPipelined)
		k.closeAfterFlush()
	}
}

// work runs f (Handle, or the finish of a pending command) on the calling
// worker and posts its reply to the loop. plain: the connection has no
// transport (TLS), as the loop saw it when it handed the command over.
func (k *conn) work(f func() session.Reply, plain bool) {
	r := k.call(f)
	if r.Body != nil && r.Delay == 0 && r.Pending == nil && !(plain && isFileStreamBody(r)) {
		// Read the body's first chunk on this worker: one hand-off
		// between worker and loop fewer per RETR/TOP, which is most of a
		// small message's cost. A body a goroutine of its own sends
		// (sendfile.go) is not read here.
		buf := getChunk()
		n, rerr := readChunk(r.Body, buf)
		k.post(func() { k.deliverFirst(r, buf, n, rerr) }, func() { putChunk(buf); closeBody(r) })
		return
	}
	k.post(func() { k.deliver(r) }, func() { closeBody(r) })
}

// startPending hands a pending command to the session's queue (see
// session.Reply.Pending). The command stays in flight, holding no worker;
// resume brings its finish back to a worker. When every worker is busy and
// the task queue is full, finish runs on the goroutine that resumed it (the
// auth queue's), so that a checked password always gets its answer. The
// connection is held until then.
func (k *conn) startPending(p func(resume func(finish func() session.Reply))) {
	k.refs.Add(1)
	var resumed atomic.Bool
	plain := k.tr == nil
	resume := func(finish func() session.Reply) {
		if !resumed.CompareAndSwap(false, true) {
			return
		}
		task := func() {
			defer k.release()
			k.work(finish, plain)
		}
		if err := k.srv.submit(task); err != nil {
			task()
		}
	}
	defer func() {
		if v := recover(); v != nil {
			mPanics.Inc()
			k.logger().Error("panic in a pending command", "panic", v, "stack", string(debug.Stack()))
			resume(func() session.Reply { return session.Reply{Out: replyInternal, Close: true} })
		}
	}()
	p(resume)
}

// overLimit applies the line limit of the session's present state. The
// splitter cuts lines with the larger of limits.max_line and
// limits.max_auth_line, because a pipelined SASL continuation line is split
// before the session has entered its exchange; here, with the previous
// command answered, the session's state is known: a line longer than its
// LineLimit (session.LineLimiter; max_line when it reports 0 or does not
// implement it) goes to LineTooLong. The length counts CRLF, as the
// splitter does (RFC 1939 section 3 asks clients for CRLF).
func (k *conn) overLimit(line []byte) (over bool) {
	limit := k.srv.settings().cmdLine
	if ll, ok := k.sess.(session.LineLimiter); ok {
		func() {
			defer func() {
				if v := recover(); v != nil {
					mPanics.Inc()
					k.logger().Error("panic in session LineLimit", "panic", v, "stack", string(debug.Stack()))
				}
			}()
			if n := ll.LineLimit(); n > 0 {
				limit = n
			}
		}()
	}
	return len(line)+2 > limit
}

// inline asks the session whether line is cheap; ok is false after a panic.
func (k *conn) inline(line []byte) (inline, ok bool) {
	defer func() {
		if v := recover(); v != nil {
			k.panicked(v)
			ok = false
		}
	}()
	return k.sess.Inline(line), true
}

// call runs a session method with recover: a panic becomes a temporary
// error reply and the connection is closed.
func (k *conn) call(f func() session.Reply) (r session.Reply) {
	defer func() {
		if v := recover(); v != nil {
			mPanics.Inc()
			k.logger().Error("panic in session", "panic", v, "stack", string(debug.Stack()))
			r = session.Reply{Out: replyInternal, Close: true}
		}
	}()
	return f()
}

func (k *conn) panicked(v any) {
	mPanics.Inc()
	k.logger().Error("panic in session", "panic", v, "stack", string(debug.Stack()))
	k.deliver(session.Reply{Out: replyInternal, Close: true})
}

func closeBody(r session.Reply) {
	if r.Body != nil {
		_ = r.Body.Close()
	}
}

// deliver writes a reply on the loop: after its delay, Out, then Body
// streamed, then the flags.
func (k *conn) deliver(r session.Reply) {
	if r.Pending != nil {
		k.startPending(r.Pending)
		return
	}
	if r.Delay > 0 {
		d := r.Delay
		r.Delay = 0
		k.refs.Add(1)
		// One runtime timer per delayed reply: delays follow failed logins
		// only, and the runtime's timer heap costs nothing while idle.
		time.AfterFunc(d, func() {
			defer k.release()
			k.post(func() { k.deliver(r) }, func() { closeBody(r) })
		})
		return
	}
	if r.Authenticated {
		// Before the reply: a client that read it finds the session
		// already under idle_timeout.
		k.loggedIn()
	}
	if len(r.Out) > 0 && !k.write(r.Out) {
		closeBody(r)
		return
	}
	if r.Body != nil {
		k.startStream(r)
		return
	}
	k.finish(r)
}

// loggedIn marks the connection authenticated: the idle limit becomes
// pop3.idle_timeout, and it leaves the unauthenticated counts.
func (k *conn) loggedIn() {
	if !k.authed.Swap(true) {
		k.srv.sockets.loggedIn(k)
	}
	k.touch()
}

// deliverFirst is deliver for a reply whose body's first chunk was read
// with it: the status line and the chunk go out in one system call, then
// the rest of the stream follows.
func (k *conn) deliverFirst(r session.Reply, buf []byte, n int, err error) {
	if r.Authenticated {
		k.loggedIn()
	}
	if n > 0 && len(r.Out) > 0 && k.tr == nil {
		ok := k.writev(r.Out, buf[:n])
		putChunk(buf)
		if !ok {
			closeBody(r)
			return
		}
		k.touch()
		k.stream = &stream{body: r.Body, reply: r}
		k.streamChunk(nil, 0, err)
		return
	}
	if len(r.Out) > 0 && !k.write(r.Out) {
		putChunk(buf)
		closeBody(r)
		return
	}
	k.stream = &stream{body: r.Body, reply: r}
	k.streamChunk(buf, n, err)
}

// writev sends a and b with one system call (plaintext connections only).
func (k *conn) writev(a, b []byte) bool {
	if k.closed.Load() {
		return false
	}
	if _, err := k.gc.Writev([][]byte{a, b}); err != nil || k.closed.Load() {
		return false
	}
	n := len(a) + len(b)
	k.written += int64(n)
	mBytesSent.Add(n)
	return true
}

// finish acts on a reply's flags once everything was written, and pumps the
// next pipelined line.
func (k *conn) finish(r session.Reply) {
	if r.Close {
		k.closeAfterFlush()
		return
	}
	if r.StartTLS {
		if !k.startTLS() {
			return
		}
	}
	k.busy = false
	if k.drain {
		k.closeAfterFlush()
		return
	}
	k.pump()
}

// startTLS switches the connection to TLS after the +OK to STLS: input
// already buffered is discarded (RFC 2595 §4; the STARTTLS injection
// class). The next command is read once the handshake is done.
func (k *conn) startTLS() bool {
	k.clearQueue()
	k.split.reset()
	nt := k.srv.opts.NewTransport
	if nt == nil {
		k.logger().Error("the session asked for TLS, but no TLS transport is configured")
		k.closeAfterFlush()
		return false
	}
	tr, err := nt(k.info(), false)
	if err != nil {
		k.logger().Warn("cannot start TLS", "err", err)
		k.closeAfterFlush()
		return false
	}
	k.tr = tr
	k.tls = true
	bindTransport(k) // starts the handshake (tls.go)
	k.sess.SetTLS()
	return true
}

func (k *conn) info() session.ConnInfo {
	return session.ConnInfo{ID: k.id, Remote: k.remote, Local: k.local, TLS: k.tls}
}

// closeAfterFlush stops reading commands and closes the connection once
// gnet's outbound buffer is empty (gnet's close drops what is still
// buffered).
func (k *conn) closeAfterFlush() {
	k.phase.Store(phaseClosing)
	k.clearQueue()
	if k.closed.Load() {
		return
	}
	sendCloseNotify(k) // TLS: close_notify before a clean close (tls.go)
	if k.gc.OutboundBuffered() == 0 {
		_ = k.gc.Close()
		return
	}
	k.flushing = true
	k.srv.waker.add(k)
}

// recheck runs on the loop for connections in the waker: a parked stream
// resumes below the low mark, a closing connection closes once drained,
// and drained output counts as activity. It reports whether the
// connection still needs rechecks.
func (k *conn) recheck() bool {
	out := k.gc.OutboundBuffered()
	if st := k.stream; st != nil {
		if out < st.lastOut {
			k.touch()
		}
		st.lastOut = out
		if st.parked && st.file != nil {
			if out > 0 {
				return true
			}
			st.parked = false
			k.sendfileStart(st)
			// A start that falls back to reading parks again when the
			// pool is full: keep looking at such a stream.
			return k.stream == st && st.parked
		}
		if st.parked && out <= k.srv.settings().outboundLow {
			st.parked = false
			mStreamResumes.Inc()
			k.streamRead()
		}
		return k.stream != nil && k.stream.parked
	}
	if k.flushing {
		if out == 0 {
			k.flushing = false
			_ = k.gc.Close()
			return false
		}
		return true
	}
	return false
}

// admit greets a connection that got a slot (on its loop).
func (k *conn) admit() {
	if k.phase.Load() == phaseClosing {
		// Refused meanwhile (backlog_wait expired, or shutdown) with its
		// close still on the way: a greeting now would follow the -ERR.
		// Its slot is given back when OnClose runs.
		return
	}
	k.phase.Store(phaseActive)
	k.touch()
	k.busy = true
	k.deliver(k.call(func() session.Reply { return k.sess.Greeting() }))
}

// expire ends a connection idle too long (RFC 1939 §3: the server may
// close an idle connection; the reply tells the user why).
func (k *conn) expire() {
	k.expiring.Store(false)
	if k.outputProgress() {
		// Still sending a reply the client is reading, slowly: that is
		// activity, though no write happened lately.
		k.touch()
		return
	}
	if k.phase.Load() == phaseClosing {
		_ = k.gc.Close()
		return
	}
	mIdleTimeouts.Inc()
	k.logger().Info("idle timeout", "authenticated", k.authed.Load())
	if k.busy {
		// A command or stream is in flight: a reply now would corrupt it.
		k.phase.Store(phaseClosing)
		_ = k.gc.Close()
		return
	}
	k.write(replyIdle)
	k.closeAfterFlush()
}

// outputProgress reports whether output is still queued for the client
// and some of it reached the client since the last idle check. Writes stop
// touching the connection once gnet holds the rest of a reply, and the
// waker's look at gnet's buffer sees no change while the kernel's send
// queue (megabytes on a fast link) drains: a client reading a long RETR,
// or the tail of one after QUIT, slower than that would be cut off as idle
// and lose the tail (with QUIT's deletions already committed). Asked only
// when the sweep finds the connection idle, so its system call costs
// nothing on the busy path. The first check after a long quiet spell may
// count progress made before it: at most one more idle period.
func (k *conn) outputProgress() bool {
	queued := int64(k.gc.OutboundBuffered() + kernelUnsent(k.gc.Fd()))
	written := k.written
	if st := k.stream; st != nil && st.sock != nil {
		// A sendfile stream's goroutine counts its own. Its socket queue
		// may have just drained with the goroutine not yet woken to fill
		// it: what left the queue since the last look is progress.
		written += st.sent.Load()
	} else if queued == 0 {
		return false
	}
	delivered := written - queued
	if delivered > k.delivered {
		k.delivered = delivered
		return true
	}
	return false
}

// deadlineExpire ends a connection that did not authenticate within
// pop3.login_deadline of connecting, whatever it sent meanwhile. Output
// still draining is no reason to wait: a second sweep after the refusal
// closes it outright.
func (k *conn) deadlineExpire() {
	k.expiring.Store(false)
	if k.authed.Load() {
		return
	}
	if k.phase.Load() == phaseClosing {
		_ = k.gc.Close()
		return
	}
	mLoginDeadline.Inc()
	k.logger().Info("no login within pop3.login_deadline, closing")
	if k.busy {
		k.phase.Store(phaseClosing)
		_ = k.gc.Close()
		return
	}
	k.write(replyDeadline)
	k.closeAfterFlush()
}

// backlogExpire refuses a connection that waited too long for a slot.
func (k *conn) backlogExpire() {
	k.expiring.Store(false)
	if k.phase.Load() != phaseWaiting {
		return
	}
	mRefusedTimeout.Inc()
	k.logger().Info("connection refused", "result", "refused", "reason", "backlog_timeout")
	k.write(replyWaitTimeout)
	k.closeAfterFlush()
}

// refuseNow ends a connection held for a delayed refusal: the refusal
// line, except on an implicit-TLS listener, which never answers in
// plaintext.
func (k *conn) refuseNow() {
	k.expiring.Store(false)
	if k.phase.Load() != phaseRefusing {
		return
	}
	k.phase.Store(phaseClosing)
	if k.implicitTLS {
		_ = k.gc.Close()
		return
	}
	k.write(replyTooMany)
	k.closeAfterFlush()
}

// drainNow is the shutdown step for one connection.
func (k *conn) drainNow() {
	switch {
	case k.phase.Load() == phaseRefusing:
		k.refuseNow()
	case k.phase.Load() == phaseWaiting:
		k.write(replyDraining)
		k.closeAfterFlush()
	case k.busy:
		k.drain = true
	default:
		k.closeAfterFlush()
	}
}
