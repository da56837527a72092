package pop3

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/pop3svc/pop3svc/session"
	"github.com/pop3svc/pop3svc/store"
)

// retr answers RETR msg (RFC 1939 section 5): the message, dot-stuffed,
// streamed by the engine from the open file.
func (s *Session) retr(arg string) session.Reply {
	i, r, ok := s.messageArg(arg)
	if !ok {
		return r
	}
	rc, err := s.mbox.Open(i)
	if err != nil {
		s.log.Error("cannot open a message", "msg", i+1, "uid", s.msgs[i].UID, "err", err)
		return errorReply(err)
	}
	messagesRetrieved.Inc()
	s.retrieved[i] = true
	retrBytes.Add(int(s.msgs[i].Size))
	r = line(fmt.Sprintf("%s %d octets", okPrefix, s.msgs[i].Size))
	// The size is known: limiting the reader spares the read that would
	// only report end of file.
	b := s.track(rc, NewDotReader(io.LimitReader(rc, s.msgs[i].Size)))
	if wf, ok := rc.(store.WireFile); ok {
		b.wire, b.size = wf, s.msgs[i].Size
		r.Body = &fileBody{b}
	} else {
		r.Body = b
	}
	return r
}

// top answers TOP msg n (RFC 1939 section 7): the header, the blank line
// and n lines of the body.
func (s *Session) top(arg string) session.Reply {
	f := strings.Fields(arg)
	if len(f) != 2 {
		return errorReply(errSyntax)
	}
	lines, ok := parseNumber(f[1])
	if !ok {
		return errorReply(errSyntax)
	}
	i, r, ok := s.message(f[0])
	if !ok {
		return r
	}
	rc, err := s.mbox.Open(i)
	if err != nil {
		s.log.Error("cannot open a message", "msg", i+1, "uid", s.msgs[i].UID, "err", err)
		return errorReply(err)
	}
	messagesTopped.Inc()
	r = line(okPrefix + " top of message follows")
	r.Body = s.track(rc, NewDotReader(newTopReader(rc, lines)))
	return r
}

// messageBody is a Reply.Body: the wire-form reader over an open message.
// The engine closes it when done; Session.Close closes it when the
// connection goes away first. Close is safe concurrently with Read.
type messageBody struct {
	r     io.Reader
	rc    io.Closer
	s     *Session
	mu    sync.Mutex
	done  bool
	close sync.Once

	// A RETR's body, when the store can send the message from its file
	// (store.WireFile), is a fileBody: wire is then set, and size is the
	// message's size. sendable caches wire.DotLines (0 not asked, 1 yes,
	// 2 no); dots are the offsets of the lines to stuff, pos the octets
	// of the file sent so far and next the index of the next dot to
	// stuff.
	wire     store.WireFile
	size     int64
	sendable int8
	dots     []int64
	pos      int64
	next     int
}

// trailer ends a multi-line reply sent from a file (RFC 1939 section 3);
// a stored message ends with CRLF.
var trailer = []byte(".\r\n")

// stuffedDot is the '.' sent before a line that begins with one.
var stuffedDot = []byte{'.'}

// fileBody is a RETR's body that the engine may send from the file
// (session.FileBody); a TOP's body never is one.
type fileBody struct{ *messageBody }

// Size implements session.FileBody: the message and a '.' for each line
// to stuff, once Sendable said so.
func (b fileBody) Size() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.size + int64(len(b.dots))
}

// Sendable implements session.FileBody.
func (b fileBody) Sendable() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.sendable == 0 {
		b.sendable = 2
		// A message that begins with '.' is read instead: its first
		// octet sent would be the stuffed dot, and a file system that
		// cannot splice would then fail the send after an octet went
		// out, too late to read the body instead (the engine falls
		// back only before any).
		if b.wire != nil && !b.done {
			if dots, ok := b.wire.DotLines(); ok && (len(dots) == 0 || dots[0] > 0) {
				b.sendable, b.dots = 1, dots
			}
		}
	}
	return b.sendable == 1
}

// SendFile implements session.FileBody: the file with sendfile, up to the
// next line to stuff, where it writes the '.' more itself (RFC 1939
// section 3) and counts it as one octet sent. Like Read, it is safe
// concurrently with Close: a closed body sends nothing.
func (b fileBody) SendFile(sock, n int) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.done {
		return 0, io.ErrClosedPipe
	}
	if b.sendable != 1 {
		return 0, errors.New("pop3: the message cannot be sent from its file")
	}
	if b.next < len(b.dots) {
		d := b.dots[b.next]
		if d == b.pos {
			k, err := unix.Write(sock, stuffedDot)
			if k == 1 {
				b.next++
				return 1, nil
			}
			if err == nil {
				err = unix.EAGAIN
			}
			return 0, err
		}
		n = int(min(int64(n), d-b.pos))
	}
	k, err := b.wire.SendFile(sock, n)
	if k < 0 {
		k = 0 // sendfile's -1 with its error
	}
	b.pos += int64(k)
	return k, err
}

// Trailer implements session.FileBody.
func (b fileBody) Trailer() []byte { return trailer }

func (b *messageBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.done {
		return 0, io.ErrClosedPipe
	}
	return b.r.Read(p)
}

func (b *messageBody) Close() error {
	var err error
	b.close.Do(func() {
		b.mu.Lock()
		b.done = true
		b.mu.Unlock()
		err = b.rc.Close()
		if d, ok := b.r.(*DotReader); ok {
			d.Release()
		}
		b.s.untrack(b)
	})
	return err
}

// track remembers the open message so that Close can close it.
func (s *Session) track(rc io.Closer, r io.Reader) *messageBody {
	b := &messageBody{r: r, rc: rc, s: s}
	s.mu.Lock()
	prev := s.body
	s.body = b
	s.mu.Unlock()
	if prev != nil {
		prev.Close()
	}
	return b
}

func (s *Session) untrack(b *messageBody) {
	s.mu.Lock()
	if s.body == b {
		s.body = nil
	}
	s.mu.Unlock()
}
