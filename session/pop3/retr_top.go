package pop3

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"

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

	// A RETR's body, when the store can send the message as it is
	// (store.WireFile), is a fileBody: wire is then set, and size is the
	// message's size. sendable caches wire.NoDotLines (0 not asked, 1
	// yes, 2 no).
	wire     store.WireFile
	size     int64
	sendable int8
}

// trailer ends a multi-line reply sent from a file (RFC 1939 section 3);
// a stored message ends with CRLF.
var trailer = []byte(".\r\n")

// fileBody is a RETR's body that the engine may send from the file
// (session.FileBody); a TOP's body never is one.
type fileBody struct{ *messageBody }

// Size implements session.FileBody.
func (b fileBody) Size() int64 { return b.size }

// Sendable implements session.FileBody.
func (b fileBody) Sendable() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.sendable == 0 {
		b.sendable = 2
		if b.wire != nil && !b.done && b.wire.NoDotLines() {
			b.sendable = 1
		}
	}
	return b.sendable == 1
}

// SendFile implements session.FileBody. Like Read, it is safe
// concurrently with Close: a closed body sends nothing.
func (b fileBody) SendFile(sock, n int) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.done {
		return 0, io.ErrClosedPipe
	}
	if b.sendable != 1 {
		return 0, errors.New("pop3: the message cannot be sent as it is stored")
	}
	return b.wire.SendFile(sock, n)
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
