package pop3

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"

	"github.com/pop3svc/pop3svc/session"
)

// maxMsgNumDigits bounds a message number argument: more digits than this
// cannot name a message (and must not overflow).
const maxMsgNumDigits = 10

// handleTransaction runs a command in the TRANSACTION state (RFC 1939 section 5).
func (s *Session) handleTransaction(cmd, arg string) session.Reply {
	switch cmd {
	case "STAT":
		if arg != "" {
			return line(replySyntax)
		}
		return line(fmt.Sprintf("%s %d %d", okPrefix, s.live, s.liveSize))
	case "LIST":
		return s.list(arg)
	case "UIDL":
		return s.uidl(arg)
	case "RETR":
		return s.retr(arg)
	case "TOP":
		return s.top(arg)
	case "DELE":
		return s.dele(arg)
	case "NOOP":
		if arg != "" {
			return line(replySyntax)
		}
		return line(okPrefix)
	case "RSET":
		if arg != "" {
			return line(replySyntax)
		}
		for i := range s.deleted {
			s.deleted[i] = false
		}
		s.live = len(s.msgs)
		s.liveSize = 0
		for _, m := range s.msgs {
			s.liveSize += m.Size
		}
		return line(fmt.Sprintf("%s maildrop has %d messages (%d octets)", okPrefix, s.live, s.liveSize))
	case "CAPA":
		if arg != "" {
			return line(replySyntax)
		}
		return s.capabilities()
	case "QUIT":
		return s.quit()
	case "USER", "PASS", "APOP", "AUTH", "STLS":
		return line(replyWrongState)
	}
	return line(replyUnknown)
}

// parseNumber reads a strict decimal number: digits only, at most
// maxMsgNumDigits of them.
func parseNumber(a string) (int, bool) {
	if a == "" || len(a) > maxMsgNumDigits {
		return 0, false
	}
	for i := 0; i < len(a); i++ {
		if a[i] < '0' || a[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(a, 10, 64)
	if err != nil {
		return 0, false
	}
	return int(n), true
}

// message parses a message-number argument and returns its 0-based index.
// Numbers out of range and messages marked deleted are "no such message"
// (RFC 1939 section 5).
func (s *Session) message(a string) (int, session.Reply, bool) {
	n, ok := parseNumber(a)
	if !ok {
		return 0, line(replySyntax), false
	}
	if n < 1 || n > len(s.msgs) || s.deleted[n-1] {
		return 0, line(replyNoSuchMessage), false
	}
	return n - 1, session.Reply{}, true
}

// oneArg splits arg into exactly one word.
func oneArg(arg string) (string, bool) {
	f := strings.Fields(arg)
	if len(f) != 1 {
		return "", false
	}
	return f[0], true
}

// messageArg parses a command's one message-number argument: the index of
// a live message, or the reply to send when there is none.
func (s *Session) messageArg(arg string) (int, session.Reply, bool) {
	a, ok := oneArg(arg)
	if !ok {
		return 0, line(replySyntax), false
	}
	return s.message(a)
}

func (s *Session) list(arg string) session.Reply {
	if arg != "" {
		i, r, ok := s.messageArg(arg)
		if !ok {
			return r
		}
		return line(fmt.Sprintf("%s %d %d", okPrefix, i+1, s.msgs[i].Size))
	}
	b := make([]byte, 0, 48+s.live*16)
	b = append(b, okPrefix+" "...)
	b = appendUint(b, int64(s.live))
	b = append(b, " messages ("...)
	b = appendUint(b, s.liveSize)
	b = append(b, " octets)\r\n"...)
	for i, m := range s.msgs {
		if s.deleted[i] {
			continue
		}
		b = appendUint(b, int64(i+1))
		b = append(b, ' ')
		b = appendUint(b, m.Size)
		b = append(b, '\r', '\n')
	}
	b = append(b, ".\r\n"...)
	return session.Reply{Out: b}
}

func (s *Session) uidl(arg string) session.Reply {
	if arg != "" {
		i, r, ok := s.messageArg(arg)
		if !ok {
			return r
		}
		return line(fmt.Sprintf("%s %d %s", okPrefix, i+1, s.msgs[i].UID))
	}
	b := make([]byte, 0, 8+s.live*36)
	b = append(b, okPrefix+"\r\n"...)
	for i, m := range s.msgs {
		if s.deleted[i] {
			continue
		}
		b = appendUint(b, int64(i+1))
		b = append(b, ' ')
		b = append(b, m.UID...)
		b = append(b, '\r', '\n')
	}
	b = append(b, ".\r\n"...)
	return session.Reply{Out: b}
}

func (s *Session) dele(arg string) session.Reply {
	i, r, ok := s.messageArg(arg)
	if !ok {
		return r
	}
	s.deleted[i] = true
	s.live--
	s.liveSize -= s.msgs[i].Size
	return line(fmt.Sprintf("%s message %d deleted", okPrefix, i+1))
}

func (s *Session) retr(arg string) session.Reply {
	i, r, ok := s.messageArg(arg)
	if !ok {
		return r
	}
	rc, err := s.mbox.Open(i)
	if err != nil {
		s.log.Error("cannot open a message", "msg", i+1, "uid", s.msgs[i].UID, "err", err)
		return line(errorLine(err))
	}
	messagesRetrieved.Inc()
	retrBytes.Add(int(s.msgs[i].Size))
	r = line(fmt.Sprintf("%s %d octets", okPrefix, s.msgs[i].Size))
	// The size is known: limiting the reader spares the read that would
	// only report end of file.
	r.Body = s.track(rc, NewDotReader(io.LimitReader(rc, s.msgs[i].Size)))
	return r
}

// top answers TOP msg n (RFC 1939 section 7): the header, the blank line
// and n lines of the body.
func (s *Session) top(arg string) session.Reply {
	f := strings.Fields(arg)
	if len(f) != 2 {
		return line(replySyntax)
	}
	lines, ok := parseNumber(f[1])
	if !ok {
		return line(replySyntax)
	}
	i, r, ok := s.message(f[0])
	if !ok {
		return r
	}
	rc, err := s.mbox.Open(i)
	if err != nil {
		s.log.Error("cannot open a message", "msg", i+1, "uid", s.msgs[i].UID, "err", err)
		return line(errorLine(err))
	}
	r = line(okPrefix + " top of message follows")
	r.Body = s.track(rc, NewDotReader(newTopReader(rc, lines)))
	return r
}

// quit enters the UPDATE state (RFC 1939 section 6): the deletions are
// committed and the mailbox released.
func (s *Session) quit() session.Reply {
	s.state = stateUpdate
	var del []int
	for i, d := range s.deleted {
		if d {
			del = append(del, i)
		}
	}
	ctx, cancel := s.ctx()
	err := s.mbox.Commit(ctx, del)
	cancel()
	var r session.Reply
	if err != nil {
		s.log.Error("cannot commit deletions", "deleted", len(del), "err", err)
		r = line(replyUpdateFailed)
		s.mbox.Close()
	} else {
		messagesDeleted.Add(len(del))
		s.log.Info("logout", "deleted", len(del))
		r = line(fmt.Sprintf("%s %s signing off (%d messages left)", okPrefix, greetingText(s.opts.Greeting), s.live))
	}
	r.Close = true
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
}

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
