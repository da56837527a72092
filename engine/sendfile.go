package engine

import (
	"errors"
	"io"
	"os"
	"runtime/debug"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pop3svc/pop3svc/session"
)

// A reply body that is a file (session.FileBody: a RETR's message) over
// one chunk goes out, on a plaintext connection, from a goroutine of its
// own writing to a duplicate of the connection's descriptor registered
// with Go's poller. A body that is Sendable (a message whose few lines to
// byte-stuff, or none, its store recorded) goes with SendFile: sendfile(2)
// moves the page cache to the socket, a one-octet write stuffs each such
// line, and no chunk is read into memory, copied or handed between worker
// and loop. Any other (more lines to stuff, or a message stored without
// the mark) is read in its wire form into one chunk buffer and written
// from it by the same goroutine ("copied"): no hand-off between worker
// and loop per chunk, and no copy into gnet's buffer.
//
// While the client reads slower than the server sends, the goroutine
// waits in the poller and holds no worker and no thread (a copy holds its
// one chunk). The loop writes nothing to the connection meanwhile (a
// stream is in flight: the next reply waits), and the goroutine touches
// nothing but the body, the duplicate and atomic counters. When the
// connection closes (the client went away, an idle timeout, shutdown)
// OnClose wakes the goroutine through the duplicate's write deadline and
// shuts the socket down (a sendfile or a read blocked on its disk cannot
// see a deadline); the descriptor goes when the duplicate does. At most
// pop3.threadcount such streams run at once. The goroutine holds a
// reference, so the session (and the message file) is not closed under
// it; a body closed at shutdown sends nothing more. A panic in the body's
// code is recovered there, as on a worker: the connection closes.

// sendfileMin is the smallest body sent with sendfile: a body up to one
// chunk goes out with the chunk the worker reads with the reply (work),
// in one hand-off, cheaper than duplicating and registering a descriptor.
const sendfileMin = chunkSize

// sendfileStep bounds one sendfile call, so that a fast client's progress
// reaches the idle timer at least every step.
const sendfileStep = 1 << 20

// fileStreamBody returns r's body when a goroutine of its own is to send
// it, and whether with sendfile (else copied). On a worker, Sendable's
// first call may cost a system call.
func fileStreamBody(r session.Reply) (fb session.FileBody, send, ok bool) {
	fb, ok = r.Body.(session.FileBody)
	if !ok || fb.Size() <= sendfileMin {
		return nil, false, false
	}
	return fb, fb.Sendable(), true
}

func isFileStreamBody(r session.Reply) bool { _, _, ok := fileStreamBody(r); return ok }

// takeSendfileSlot reserves one of the sendfile streams allowed at once:
// pop3.threadcount of them, the bound the worker pool puts on threads
// blocked in file reads. Each holds a goroutine, the socket's duplicate
// (a copy also its chunk and its body's read buffer) and, while sendfile
// or a read waits for the disk, an OS thread; beyond the bound a body is
// read by the pool as before.
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

// startSendfile starts sending r's body from a goroutine (sendfile or a
// copy), on the loop, right after the status line. It reports false when
// the body must be streamed by the pool instead: not a file body over a
// chunk, a transport (TLS) in the way, or every slot taken. While gnet still holds
// output for the client (the tail of a reply before a pipelined RETR),
// the stream parks until the waker sees gnet's buffer empty.
func (k *conn) startSendfile(r session.Reply) bool {
	if k.tr != nil {
		return false // before Sendable: its system calls were not made on a worker for TLS
	}
	fb, send, ok := fileStreamBody(r)
	if !ok {
		return false
	}
	if !k.srv.takeSendfileSlot() {
		mStreamSendfileBusy.Inc()
		return false
	}
	st := &stream{body: r.Body, reply: r, file: fb, copy: !send, slot: true}
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
		k.logger().Debug("cannot send from a goroutine, reading instead", "err", err)
		st.file, st.slot, st.copy = nil, false, false
		k.srv.sendfiles.Add(-1)
		k.streamRead()
		return
	}
	st.sock, st.slot = sock, false // the goroutine gives the slot back
	k.refs.Add(1)
	if st.copy {
		mStreamCopy.Inc()
	} else {
		mStreamSendfile.Inc()
	}
	go k.runStream(st, rc)
}

// runStream sends st's body on its own goroutine, with SendFile or
// copied through one chunk buffer, then gives back the slot and the
// duplicate and posts the end to the loop.
func (k *conn) runStream(st *stream, rc syscall.RawConn) {
	defer k.release()
	defer k.srv.sendfiles.Add(-1)
	var fb session.FileBody // whose trailer the loop writes: a sendfile's; a copy sends its own
	var err error
	if st.copy {
		buf := getChunk()
		err = k.copyBody(st, rc, buf)
		putChunk(buf)
	} else {
		fb = st.file
		err = k.sendFileBody(st, fb, rc)
	}
	_ = st.sock.Close()
	k.post(func() { k.sendfileDone(st, fb, err) }, nil)
}

// sendFileBody sends fb with its SendFile (sendOut).
func (k *conn) sendFileBody(st *stream, fb session.FileBody, rc syscall.RawConn) (err error) {
	defer k.recoverStream(&err)
	return k.sendOut(st, rc, fb.Size(), fb.SendFile)
}

// sendOut calls send on the duplicate behind rc, at most sendfileStep
// octets at a time, until left octets went out, waiting in the poller
// while the socket is full; every octet counts as progress. A send that
// has nothing more to give before that (0 octets, no error) is an error.
func (k *conn) sendOut(st *stream, rc syscall.RawConn, left int64, send func(fd, n int) (int, error)) error {
	var serr error
	werr := rc.Write(func(fd uintptr) bool {
		for left > 0 {
			n, err := send(int(fd), int(min(left, sendfileStep)))
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
	if serr != nil {
		return serr
	}
	return werr
}

// copyBody reads the body's wire form into buf and writes it to the
// duplicate behind rc until the body ends (its trailer included).
func (k *conn) copyBody(st *stream, rc syscall.RawConn, buf []byte) (err error) {
	defer k.recoverStream(&err)
	for {
		n, rerr := readChunk(st.body, buf)
		if n > 0 {
			if werr := k.writeOut(st, rc, buf[:n]); werr != nil {
				return werr
			}
		}
		switch {
		case rerr == io.EOF || rerr == io.ErrUnexpectedEOF:
			return nil
		case rerr != nil:
			return &bodyReadError{rerr}
		}
	}
}

// errStreamPanic ends a stream whose body panicked in its goroutine.
var errStreamPanic = errors.New("the reply body panicked")

// recoverStream, deferred in a stream goroutine, turns a panic in the
// body's code (a store's or a session's bug) into the stream's error, as
// the worker pool does for a body read on a worker: the panic is logged
// and counted, and the connection closes, instead of the whole server.
func (k *conn) recoverStream(err *error) {
	if v := recover(); v != nil {
		mPanics.Inc()
		k.logger().Error("panic in a reply body's stream", "panic", v, "stack", string(debug.Stack()))
		*err = errStreamPanic
	}
}

// bodyReadError is a copy's failure to read its body, rather than to
// write to the client.
type bodyReadError struct{ err error }

func (e *bodyReadError) Error() string { return "reading the reply body: " + e.err.Error() }
func (e *bodyReadError) Unwrap() error { return e.err }

// writeOut writes p whole to the duplicate behind rc (sendOut).
func (k *conn) writeOut(st *stream, rc syscall.RawConn, p []byte) error {
	return k.sendOut(st, rc, int64(len(p)), func(fd, n int) (int, error) {
		m, err := unix.Write(fd, p[:n])
		if m > 0 {
			p = p[m:]
		}
		return m, err
	})
}

// sendfileDone ends a sendfile or copy stream on the loop: the trailer
// (a sendfile's: fb; a copy wrote its own), then the reply's flags; after
// an error the connection closes, since the client cannot tell a cut body
// from a whole one.
func (k *conn) sendfileDone(st *stream, fb session.FileBody, err error) {
	k.written += st.sent.Load()
	if k.stream != st {
		return
	}
	if err != nil && !st.copy && st.sent.Load() == 0 && (errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EOPNOTSUPP)) {
		// A file system that cannot splice its files: nothing went out,
		// so the body is read and sent the usual way.
		k.logger().Debug("sendfile not supported here, reading instead", "err", err)
		st.sock, st.file = nil, nil
		k.streamRead()
		return
	}
	if err != nil {
		var re *bodyReadError
		if errors.As(err, &re) {
			k.logger().Error("cannot read the reply body, closing", "err", re.err)
		} else {
			k.logger().Debug("file stream failed, closing", "err", err)
		}
		k.phase.Store(phaseClosing)
		k.endStream()
		_ = k.gc.Close()
		return
	}
	if fb != nil && !k.write(fb.Trailer()) {
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
