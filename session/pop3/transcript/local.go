package transcript

import (
	"bytes"
	"errors"
	"io"
	"time"

	"github.com/pop3svc/pop3svc/session"
)

// DefaultMaxLine is Local's line limit in octets, line ending included
// (the configuration's limits.max_line default).
const DefaultMaxLine = 1024

// ErrNoReply is returned by Local.Read when the session owes no output:
// the transcript expects a reply the session did not give.
var ErrNoReply = errors.New("transcript: the server has sent everything and waits for input")

// Local is an in-process connection to a session.Session: it splits what
// is written into lines as the engine does (CRLF or bare LF removed, a line
// longer than MaxLine answered by LineTooLong), calls Handle for each line
// in order (a session.LineLimiter may raise the limit) and queues the replies (Out, then Body read to its end) for
// Read. Delays are recorded, not waited for. After a reply with Close, the
// session is closed and Read returns io.EOF once drained.
type Local struct {
	S       session.Session
	MaxLine int
	// Replies are the replies given so far, without bodies.
	Replies []session.Reply
	// Inline records Inline's answer for each line handled.
	Inline []bool
	// TotalDelay sums the replies' Delay.
	TotalDelay time.Duration

	in         []byte
	discarding bool
	out        bytes.Buffer
	closed     bool
}

// NewLocal starts s: its greeting is queued for Read.
func NewLocal(s session.Session) *Local {
	l := &Local{S: s, MaxLine: DefaultMaxLine}
	l.emit(s.Greeting())
	return l
}

// Write feeds input to the session. Input after the session closed is
// discarded, as a closed socket would.
func (l *Local) Write(p []byte) (int, error) {
	if l.closed {
		return len(p), nil
	}
	l.in = append(l.in, p...)
	for !l.closed {
		max := l.MaxLine
		if ll, ok := l.S.(session.LineLimiter); ok && ll.LineLimit() > 0 {
			max = ll.LineLimit()
		}
		i := bytes.IndexByte(l.in, '\n')
		if i < 0 {
			if len(l.in) > max {
				if !l.discarding {
					l.discarding = true
					l.emit(l.S.LineTooLong())
				}
				l.in = l.in[:0]
			}
			break
		}
		line := l.in[:i]
		rest := l.in[i+1:]
		if l.discarding {
			l.discarding = false
		} else if i+1 > max {
			l.emit(l.S.LineTooLong())
		} else {
			line = bytes.TrimSuffix(line, []byte{'\r'})
			cp := append([]byte(nil), line...)
			l.Inline = append(l.Inline, l.S.Inline(cp))
			r := l.S.Handle(cp)
			if r.StartTLS {
				// The engine discards input buffered after STLS (RFC
				// 2595 section 4); there is no TLS in-process.
				rest = nil
			}
			l.emit(r)
		}
		l.in = append(l.in[:0], rest...)
	}
	if l.closed {
		l.in = nil
	}
	return len(p), nil
}

func (l *Local) emit(r session.Reply) {
	l.out.Write(r.Out)
	if r.Body != nil {
		io.Copy(&l.out, r.Body)
		r.Body.Close()
		r.Body = nil
	}
	l.TotalDelay += r.Delay
	l.Replies = append(l.Replies, r)
	if r.Close {
		l.Close()
	}
}

// Read returns queued output; io.EOF after the session closed, ErrNoReply
// while it waits for input.
func (l *Local) Read(p []byte) (int, error) {
	if l.out.Len() == 0 {
		if l.closed {
			return 0, io.EOF
		}
		return 0, ErrNoReply
	}
	return l.out.Read(p)
}

// Close ends the session as a dropped connection would.
func (l *Local) Close() error {
	if !l.closed {
		l.closed = true
		l.S.Close()
	}
	return nil
}
