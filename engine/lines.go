package engine

import "bytes"

// splitter cuts a byte stream into lines. It is resumable: input may arrive
// in pieces of any size, a partial line is kept until its end arrives. A
// line ends with LF; a CR right before the LF is removed too, so CRLF and
// bare LF are both accepted (RFC 1939 §3 requires CRLF from clients, but
// being liberal here costs nothing).
//
// A line whose octets, its terminator included, exceed max is reported once
// as too long as soon as that is known, and everything up to its LF is
// discarded.
type splitter struct {
	buf        []byte // the partial line, without LF
	discarding bool   // inside a line already reported as too long
}

// feed splits p. emit is called for each complete line (without its line
// ending; the slice is only valid during the call) or with tooLong set for
// a line that exceeded max. max below 3 is treated as 3.
func (s *splitter) feed(p []byte, max int, emit func(line []byte, tooLong bool)) {
	if max < 3 {
		max = 3
	}
	for len(p) > 0 {
		i := indexLF(p)
		if s.discarding {
			if i < 0 {
				return
			}
			s.discarding = false
			p = p[i+1:]
			continue
		}
		if i < 0 {
			// No line end yet: keep at most max-1 octets (the LF makes max).
			if len(s.buf)+len(p) > max-1 {
				s.buf = s.buf[:0]
				s.discarding = true
				emit(nil, true)
				return
			}
			s.buf = append(s.buf, p...)
			return
		}
		if len(s.buf)+i+1 > max {
			s.buf = s.buf[:0]
			emit(nil, true)
			p = p[i+1:]
			continue
		}
		var line []byte
		if len(s.buf) == 0 {
			line = p[:i]
		} else {
			s.buf = append(s.buf, p[:i]...)
			line = s.buf
		}
		if n := len(line); n > 0 && line[n-1] == '\r' {
			line = line[:n-1]
		}
		emit(line, false)
		s.buf = s.buf[:0]
		p = p[i+1:]
	}
}

// pending is the number of octets of the partial line held.
func (s *splitter) pending() int { return len(s.buf) }

// reset forgets any partial line (STLS: plaintext after the command is
// discarded, RFC 2595 §4).
func (s *splitter) reset() {
	s.buf = s.buf[:0]
	s.discarding = false
}

func indexLF(p []byte) int { return bytes.IndexByte(p, '\n') }
