package pop3

import (
	"bytes"
	"io"
	"sync"
)

// dotBufSize is how much of the message a DotReader reads at a time.
const dotBufSize = 32 << 10

// dotBufs recycles DotReader buffers: one RETR per message would otherwise
// allocate (and the collector clear) 32 KiB each time.
var dotBufs = sync.Pool{New: func() any { b := make([]byte, dotBufSize); return &b }}

// indexLFDot returns the index of the first line feed in b that is
// followed by a '.', or -1: the only place where stuffing happens inside a
// buffer. It looks for the '.' first: dots are rarer than line ends in
// text and absent from base64, so most of a message is skipped by one
// vectorised IndexByte.
func indexLFDot(b []byte) int {
	for i := 1; i < len(b); {
		j := bytes.IndexByte(b[i:], '.')
		if j < 0 {
			return -1
		}
		j += i
		if b[j-1] == '\n' {
			return j - 1
		}
		i = j + 1
	}
	return -1
}

// DotReader streams a message in the wire form of a POP3 multi-line
// response (RFC 1939 section 3): every line that begins with '.' gets one
// more '.', and the data ends with CRLF "." CRLF; a CRLF is added first when
// the message does not end with one. It is a state machine over the bytes
// read, so it gives the same output whatever the chunking of the source and
// of the caller's buffers, and it holds at most dotBufSize octets.
type DotReader struct {
	src     io.Reader
	buf     []byte
	r, w    int
	srcErr  error // io.EOF or a read error, returned once buf is drained
	bol     bool  // the next input byte begins a line
	last2   [2]byte
	pending []byte // output that did not fit the caller's buffer (at most 5 octets)
	pend    [5]byte
	done    bool
}

// NewDotReader returns a DotReader over src.
func NewDotReader(src io.Reader) *DotReader {
	// Before any data the "previous" octets are CRLF: an empty message is
	// just the terminating ".\r\n".
	return &DotReader{src: src, bol: true, last2: [2]byte{'\r', '\n'}}
}

// Read implements io.Reader.
func (d *DotReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if len(d.pending) > 0 {
			c := copy(p[n:], d.pending)
			d.pending = d.pending[c:]
			n += c
			continue
		}
		if d.done {
			break
		}
		if d.r == d.w {
			if d.srcErr != nil {
				if d.srcErr != io.EOF {
					if n > 0 {
						return n, nil
					}
					return 0, d.srcErr
				}
				d.finish()
				continue
			}
			if n > 0 && d.buf != nil {
				// Hand back what we have rather than block on the source.
				return n, nil
			}
			d.fill()
			continue
		}
		in := d.buf[d.r:d.w]
		if d.bol && in[0] == '.' {
			// RFC 1939 section 3: byte-stuff a leading termination octet.
			p[n] = '.'
			n++
			d.bol = false
			d.last2 = [2]byte{d.last2[1], '.'}
			if n == len(p) {
				break
			}
		}
		// Copy up to and including the next LF that precedes a '.': no
		// other octet needs looking at. A line feed at the very end of
		// the buffer leaves bol set, and the next buffer's first octet is
		// checked above.
		end := len(in)
		if i := indexLFDot(in); i >= 0 {
			end = i + 1
		}
		c := copy(p[n:], in[:end])
		n += c
		d.r += c
		if c > 0 {
			if c >= 2 {
				d.last2 = [2]byte{in[c-2], in[c-1]}
			} else {
				d.last2 = [2]byte{d.last2[1], in[0]}
			}
			d.bol = in[c-1] == '\n'
		}
	}
	if n == 0 && d.done && len(d.pending) == 0 {
		return 0, io.EOF
	}
	return n, nil
}

func (d *DotReader) fill() {
	if d.buf == nil {
		d.buf = *(dotBufs.Get().(*[]byte))
	}
	d.r, d.w = 0, 0
	for range 100 { // bounded retries on (0, nil) reads
		m, err := d.src.Read(d.buf)
		d.w = m
		if err != nil {
			d.srcErr = err
		}
		if m > 0 || err != nil {
			return
		}
	}
	d.srcErr = io.ErrNoProgress
}

// Release returns the reader's buffer for reuse. The reader must not be
// used afterwards.
func (d *DotReader) Release() {
	if d.buf != nil && cap(d.buf) == dotBufSize {
		b := d.buf[:dotBufSize]
		dotBufs.Put(&b)
	}
	d.buf = nil
	d.r, d.w = 0, 0
	d.srcErr = io.ErrClosedPipe
}

// finish queues the terminator: CRLF unless the data already ended with
// one, then ".\r\n".
func (d *DotReader) finish() {
	b := d.pend[:0]
	if d.last2 != [2]byte{'\r', '\n'} {
		b = append(b, '\r', '\n')
	}
	b = append(b, '.', '\r', '\n')
	d.pending = b
	d.done = true
}

// topReader passes a message's header, the blank line that ends it, and
// then at most lines lines of the body (RFC 1939 section 7, TOP). A message
// without a blank line is passed whole.
type topReader struct {
	src      io.Reader
	inHeader bool
	blank    bool // the current line has no octet but CR so far
	lines    int  // body lines still to pass
	eof      bool
}

func newTopReader(src io.Reader, lines int) *topReader {
	return &topReader{src: src, inHeader: true, blank: true, lines: lines}
}

func (t *topReader) Read(p []byte) (int, error) {
	if t.eof {
		return 0, io.EOF
	}
	if !t.inHeader && t.lines == 0 {
		t.eof = true
		return 0, io.EOF
	}
	n, err := t.src.Read(p)
	for i := 0; i < n; i++ {
		c := p[i]
		if t.inHeader {
			switch {
			case c == '\n' && t.blank:
				t.inHeader = false
			case c == '\n':
				t.blank = true
			case c != '\r':
				t.blank = false
			}
		} else if c == '\n' {
			t.lines--
		}
		if !t.inHeader && t.lines == 0 {
			t.eof = true
			return i + 1, nil
		}
	}
	return n, err
}
