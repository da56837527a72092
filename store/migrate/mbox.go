package migrate

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
)

// MboxUIDLPrefix starts the UIDL of an mbox message without X-UIDL.
const MboxUIDLPrefix = "mbox-"

// Mbox is an mbox file: messages each after a "From " line, with body
// lines ">From " (any number of '>') quoted by one '>' (mboxrd).
type Mbox struct {
	path string
	f    *os.File
	list []Message
}

type mboxMsg struct {
	start, end int64 // after the From line, up to the separating empty line
	uidl       string
}

// OpenMbox opens the mbox file path. A message's UIDL is its X-UIDL
// header where present; otherwise MboxUIDLPrefix, 32 hexadecimal digits
// of the SHA-256 of its text and, for the second and later copies of the
// same text, "-" and the copy's number: the same on every run.
func OpenMbox(path string) (*Mbox, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	return &Mbox{path: path, f: f}, nil
}

func (m *Mbox) Close() error { return m.f.Close() }

// List reads the file once, finding the messages and their UIDLs.
func (m *Mbox) List(ctx context.Context) ([]Message, error) {
	if m.list != nil {
		return m.list, nil
	}
	if _, err := m.f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	r := bufio.NewReaderSize(m.f, 64<<10)
	var msgs []mboxMsg
	var off int64
	var cur *mboxMsg
	inHeader := false
	h := sha256.New()
	prevEmpty := true
	var sums []string
	finish := func(end int64) {
		if cur == nil {
			return
		}
		cur.end = end
		msgs = append(msgs, *cur)
		sums = append(sums, hex.EncodeToString(h.Sum(nil)[:16]))
		cur = nil
	}
	var emptyAt int64 = -1
	var pending []byte
	for {
		line, err := r.ReadBytes('\n')
		if len(line) > 0 {
			if prevEmpty && bytes.HasPrefix(line, []byte("From ")) {
				end := off
				if emptyAt >= 0 {
					end = emptyAt // the empty line before From belongs to the format
				}
				finish(end)
				cur = &mboxMsg{start: off + int64(len(line))}
				h.Reset()
				pending = nil
				inHeader = true
			} else if cur != nil {
				// An empty line is hashed once the next line shows it is
				// not the one that separates messages.
				h.Write(pending)
				pending = nil
				if len(bytes.TrimRight(line, "\r\n")) == 0 {
					pending = append(pending, line...)
				} else {
					h.Write(line)
				}
				t := bytes.TrimRight(line, "\r\n")
				if inHeader {
					if len(t) == 0 {
						inHeader = false
					} else if cur.uidl == "" && len(t) > 7 && bytes.EqualFold(t[:7], []byte("x-uidl:")) {
						cur.uidl = string(bytes.TrimSpace(t[7:]))
					}
				}
			} else if len(bytes.TrimSpace(line)) > 0 {
				return nil, fmt.Errorf("%s does not start with a \"From \" line", m.path)
			}
			empty := len(bytes.TrimRight(line, "\r\n")) == 0
			if empty {
				emptyAt = off
			} else {
				emptyAt = -1
			}
			prevEmpty = empty
			off += int64(len(line))
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return nil, err
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
	end := off
	if emptyAt >= 0 {
		end = emptyAt
	}
	finish(end)
	copies := make(map[string]int)
	list := make([]Message, len(msgs))
	for i, mm := range msgs {
		uidl := mm.uidl
		if uidl == "" {
			copies[sums[i]]++
			uidl = MboxUIDLPrefix + sums[i]
			if n := copies[sums[i]]; n > 1 {
				uidl += "-" + strconv.Itoa(n)
			}
		}
		sec := io.NewSectionReader(m.f, mm.start, mm.end-mm.start)
		list[i] = Message{UIDL: uidl, Size: -1, Open: func(context.Context) (io.ReadCloser, error) {
			return io.NopCloser(&unquoteReader{r: bufio.NewReader(io.NewSectionReader(sec, 0, sec.Size()))}), nil
		}}
	}
	m.list = list
	return list, nil
}

// unquoteReader removes one '>' from lines matching ^>+From (mboxrd).
type unquoteReader struct {
	r   *bufio.Reader
	buf []byte
	err error
}

func (u *unquoteReader) Read(p []byte) (int, error) {
	for len(u.buf) == 0 {
		if u.err != nil {
			return 0, u.err
		}
		line, err := u.r.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			err = nil // a long line: the rest follows as its own piece
			u.buf = append(u.buf[:0], line...)
			break
		}
		u.err = err
		i := 0
		for i < len(line) && line[i] == '>' {
			i++
		}
		if i > 0 && bytes.HasPrefix(line[i:], []byte("From ")) {
			line = line[1:]
		}
		u.buf = append(u.buf[:0], line...)
	}
	n := copy(p, u.buf)
	u.buf = u.buf[n:]
	return n, nil
}
