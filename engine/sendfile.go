package engine

import (
	"errors"
	"io"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pop3svc/pop3svc/session"
)

// A reply body that is a file sent as it is (session.FileBody: a RETR of
// a message without a line to byte-stuff) goes out with sendfile(2) on a
// plaintext connection: the kernel moves the page cache to the socket, and
// no chunk is read into memory, copied or handed between worker and loop.
//
// The sending runs on a goroutine of its own, on a duplicate of the
// connection's descriptor registered with Go's poller: while the client
// reads slower than the server sends, the goroutine waits in the poller
// and holds no worker, no buffer and no thread. The loop writes nothing to
// the connection meanwhile (a stream is in flight: the next reply waits),
// and the goroutine touches nothing but the body, the duplicate and atomic
// counters. When the connection closes (the client went away, an idle
// timeout, shutdown) OnClose wakes the goroutine through the duplicate's
// write deadline and shuts the socket down (a sendfile blocked on its
// disk cannot see a deadline); the descriptor goes when the duplicate
// does. At most pop3.threadcount streams run at once. The
// goroutine holds a reference, so the session (and the message file) is
// not closed under it; a body closed at shutdown sends nothing more.

// sendfileMin is the smallest body sent with sendfile: a body up to one
// chunk goes out with the chunk the worker reads with the reply (work),
// in one hand-off, cheaper than duplicating and registering a descriptor.
const sendfileMin = chunkSize

// sendfileStep bounds one sendfile call, so that a fast client's progress
// reaches the idle timer at least every step.
const sendfileStep = 1 << 20

// sendfileBody returns r's body when it is to be sent with sendfile. On a
// worker, Sendable's first call may cost a system call.
func sendfileBody(r session.Reply) (session.FileBody, bool) {
	fb, ok := r.Body.(session.FileBody)
	if !ok || fb.Size() <= sendfileMin || !fb.Sendable() {
		return nil, false
	}
	return fb, true
}

func isSendfileBody(r session.Reply) bool { _, ok := sendfileBody(r); return ok }

// takeSendfileSlot reserves one of the sendfile streams allowed at once:
// pop3.threadcount of them, the bound the worker pool puts on threads
// blocked in file reads. Each holds a goroutine, the socket's duplicate
// and, while sendfile waits for the disk, an OS thread; beyond the bound
// a body is read by the pool as before.
func (s *Server) takeSendfileSlot() bool {
	max := int64(s.settings().threadCount)
	for {
		n := s.sendfiles.Load()
		if n >= max {
			return false
		}
		if s.sendfiles.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// startSendfile starts sending r's body with sendfile, on the loop, right
// after the status line. It reports false when the body must be streamed
// by reads instead: not a file to send as it is, a transport (TLS) in the
// way, or a descriptor that cannot be duplicated. While gnet still holds
// output for the client (the tail of a reply before a pipelined RETR),
// the stream parks until the waker sees gnet's buffer empty.
func (k *conn) startSendfile(r session.Reply) bool {
	if k.tr != nil {
		return false // before Sendable: its system calls were not made on a worker for TLS
	}
	fb, ok := sendfileBody(r)
	if !ok {
		return false
	}
	if !k.srv.takeSendfileSlot() {
		mStreamSendfileBusy.Inc()
		return false
	}
	st := &stream{body: r.Body, reply: r, file: fb, slot: true}
	k.stream = st
	if k.gc.OutboundBuffered() > 0 {
		st.parked = true
		k.srv.waker.add(k)
		return true
	}
	k.sendfileStart(st)
	return true
}

// sendfileStart duplicates the socket and starts the goroutine; when the
// descriptor cannot be had, the body is streamed by reads instead.
func (k *conn) sendfileStart(st *stream) {
	fd, err := unix.FcntlInt(uintptr(k.gc.Fd()), unix.F_DUPFD_CLOEXEC, 0)
	var sock *os.File
	var rc syscall.RawConn
	if err == nil {
		// The socket is non-blocking (gnet's), so the file is registered
		// with Go's poller.
		sock = os.NewFile(uintptr(fd), "pop3 sendfile")
		if rc, err = sock.SyscallConn(); err != nil {
			sock.Close()
		}
	}
	if err != nil {
		k.logger().Debug("cannot send with sendfile, reading instead", "err", err)
		st.file, st.slot = nil, false
		k.srv.sendfiles.Add(-1)
		k.streamRead()
		return
	}
	st.sock, st.slot = sock, false // the goroutine gives the slot back
	k.refs.Add(1)
	mStreamSendfile.Inc()
	go k.sendfile(st, st.file, rc)
}

// sendfile sends the body's file and posts the end to the loop.
func (k *conn) sendfile(st *stream, fb session.FileBody, rc syscall.RawConn) {
	defer k.release()
	defer k.srv.sendfiles.Add(-1)
	left := fb.Size()
	var serr error
	werr := rc.Write(func(fd uintptr) bool {
		for left > 0 {
			n, err := fb.SendFile(int(fd), int(min(left, sendfileStep)))
			if n > 0 {
				left -= int64(n)
				st.sent.Add(int64(n))
				mBytesSent.Add(n)
				k.touch()
			}
			switch {
			case err == unix.EAGAIN:
				return false // wait for room in the socket
			case err == unix.EINTR:
			case err != nil:
				serr = err
				return true
			case n == 0:
				serr = io.ErrUnexpectedEOF // the file is shorter than its size
				return true
			}
		}
		return true
	})
	_ = st.sock.Close()
	if serr == nil {
		serr = werr
	}
	k.post(func() { k.sendfileDone(st, fb, serr) }, nil)
}

// sendfileDone ends a sendfile stream on the loop: the trailer, then the
// reply's flags; after an error the connection closes, since the client
// cannot tell a cut body from a whole one.
func (k *conn) sendfileDone(st *stream, fb session.FileBody, err error) {
	k.written += st.sent.Load()
	if k.stream != st {
		return
	}
	if err != nil && st.sent.Load() == 0 && (errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EOPNOTSUPP)) {
		// A file system that cannot splice its files: nothing went out,
		// so the body is read and sent the usual way.
		k.logger().Debug("sendfile not supported here, reading instead", "err", err)
		st.sock, st.file = nil, nil
		k.streamRead()
		return
	}
	if err != nil {
		k.logger().Debug("sendfile stream failed, closing", "err", err)
		k.phase.Store(phaseClosing)
		k.endStream()
		_ = k.gc.Close()
		return
	}
	if !k.write(fb.Trailer()) {
		return // gone: finalize closes the body
	}
	k.touch()
	k.endStream()
}

// releaseSlot gives back the sendfile slot of a stream that closes
// before its goroutine started (parked while gnet held output).
func (st *stream) releaseSlot(s *Server) {
	if st.slot {
		st.slot = false
		s.sendfiles.Add(-1)
	}
}

// wakeSendfile ends a sendfile stream's wait for room in the socket (on
// the loop, from OnClose): the goroutine sees its deadline pass and stops.
func (k *conn) wakeSendfile() {
	st := k.stream
	if st == nil || st.sock == nil {
		return
	}
	_ = st.sock.SetWriteDeadline(time.Unix(1, 0))
	// The deadline cannot reach a sendfile blocked on the file's disk,
	// and the duplicate would keep the connection open meanwhile: shut
	// the socket down, so the client sees the end now and the call fails
	// when it returns. Control holds the duplicate open for the call, or
	// fails once the goroutine closed it.
	if rc, err := st.sock.SyscallConn(); err == nil {
		_ = rc.Control(func(fd uintptr) { _ = unix.Shutdown(int(fd), unix.SHUT_RDWR) })
	}
}
