// Package crlf normalises the line endings of a message as every store
// keeps them, so that a message's size is the octet count that LIST
// reports (RFC 1939 section 11): a bare LF becomes CRLF, a bare CR is kept
// as it is, and a non-empty message that does not end with a line ending
// gets CRLF appended (a final bare CR becomes CRLF).
package crlf

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"sync"
)

// BufferSize is the size of the buffers a copy reads and writes through.
const BufferSize = 64 << 10

// ErrLimit is returned by Copy when the normalised message passes its limit.
var ErrLimit = errors.New("message larger than the limit")

// buffers is the pair of buffers a copy goes through, pooled so that a
// delivery allocates little.
type buffers struct {
	in []byte
	w  *bufio.Writer
}

var pool = sync.Pool{New: func() any {
	return &buffers{in: make([]byte, BufferSize), w: bufio.NewWriterSize(nil, BufferSize)}
}}

// Copy copies r to w with its line endings normalised and returns the
// octets written. It stops with ErrLimit as soon as they pass limit (0:
// none), and with ctx's error when ctx ends between two reads.
func Copy(ctx context.Context, w io.Writer, r io.Reader, limit int64) (int64, error) {
	n, _, _, err := CopyDots(ctx, w, r, limit, 0)
	return n, err
}

// CopyDots is Copy that also finds the lines of the normalised message
// that begin with '.': the lines a POP3 multi-line reply must byte-stuff
// (RFC 1939 section 3). It returns the offsets of the first max of those
// dots in the output, in order, and how many such lines there are in all.
// A message without any is sent as it is stored, followed by the
// terminating ".\r\n"; one with a few, by sending the stored octets with
// a '.' more before each of them.
func CopyDots(ctx context.Context, w io.Writer, r io.Reader, limit int64, max int) (n int64, dots []int64, count int, err error) {
	b := pool.Get().(*buffers)
	defer pool.Put(b)
	bw, in := b.w, b.in
	bw.Reset(w)
	defer bw.Reset(nil)
	var last byte = '\n' // last octet written; a message starts a line
	for {
		if ctx != nil {
			if err := ctx.Err(); err != nil {
				return n, dots, count, err
			}
		}
		k, rerr := r.Read(in)
		p := in[:k]
		for len(p) > 0 {
			i := bytes.IndexByte(p, '\n')
			seg := p
			if i >= 0 {
				seg = p[:i]
			}
			if len(seg) > 0 {
				if last == '\n' && seg[0] == '.' {
					if count < max {
						dots = append(dots, n)
					}
					count++
				}
				bw.Write(seg)
				n += int64(len(seg))
				last = seg[len(seg)-1]
			}
			if i < 0 {
				break
			}
			if last != '\r' {
				bw.WriteByte('\r')
				n++
			}
			bw.WriteByte('\n')
			n++
			last = '\n'
			p = p[i+1:]
		}
		if limit > 0 && n > limit {
			return n, dots, count, ErrLimit
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return n, dots, count, rerr
		}
	}
	switch {
	case last == '\n':
	case last == '\r':
		bw.WriteByte('\n')
		n++
	default:
		bw.WriteString("\r\n")
		n += 2
	}
	if limit > 0 && n > limit {
		return n, dots, count, ErrLimit
	}
	return n, dots, count, bw.Flush()
}
