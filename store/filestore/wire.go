package filestore

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/pop3svc/pop3svc/store/crlf"
)

// tmpPath names a new file in the tmp folder: node, process, a counter and
// random letters, so that no two writers of a shared store pick the same.
func (s *Store) tmpPath() string {
	return filepath.Join(s.tmp, strconv.Itoa(s.opts.Node)+"."+strconv.Itoa(s.self.PID)+"."+
		strconv.FormatUint(tmpSeq.Add(1), 10)+"."+randomString()+".tmp")
}

// dotsAttr is the extended attribute a message file carries when none of
// its lines begins with '.', or, over dotsMarkMin, when at most
// maxMarkedDots of them do (store.WireFile): its value is
// the file's size and modification time (nanoseconds since 1970), then
// the offset of each such line's '.', "SIZE MTIME[ OFFSET...]" in decimal,
// so that a file edited in place loses the mark, unless the edit keeps
// both the size and the time (message files are not meant to be edited).
// It is set on the temporary file before its fsync, so a message is never
// visible with a mark it has not earned. A file system without user
// extended attributes only costs the mark: such messages are dot-stuffed
// as they are read, like every message stored before the mark existed.
// legacyNoDotsAttr is the mark of earlier versions, "SIZE MTIME" for a
// message without a line beginning with '.': still honoured.
const (
	dotsAttr         = "user.pop3.dots"
	legacyNoDotsAttr = "user.pop3.nodots"
)

// maxMarkedDots bounds the offsets a mark lists: a message with more lines
// beginning with '.' is read and stuffed. 128 offsets keep the value
// under 1.5 KiB, within the room file systems give attributes.
const maxMarkedDots = 128

// dotsMarkMin is the smallest message whose lines beginning with '.' the
// mark lists: a POP3 server reads a message up to one chunk (256 KiB)
// with its reply and never asks (engine's sendfileMin). Offsets make the
// value longer than the room the inode keeps for attributes (about 60
// octets on ext4 with 256-octet inodes), and each such message would pay
// an attribute block (4 KiB) and its write at delivery for nothing. A
// message without such lines is marked whatever its size: its value fits.
const dotsMarkMin = 256 << 10

// dotsValue is the mark's value for a file of this size and mtime whose
// lines beginning with '.' start at dots.
func dotsValue(size int64, mtime unix.Timespec, dots []int64) []byte {
	b := strconv.AppendInt(make([]byte, 0, 48+12*len(dots)), size, 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, mtime.Nano(), 10)
	for _, d := range dots {
		b = append(b, ' ')
		b = strconv.AppendInt(b, d, 10)
	}
	return b
}

// writeMessage writes msg to the new file tmp with its line endings
// normalised (package crlf), marks it when no line begins with '.', or
// when at most maxMarkedDots do and it is over dotsMarkMin, and fsyncs it. It returns the octets written; on an
// error (crlf.ErrLimit past limit, 0: none) the caller removes tmp.
func writeMessage(ctx context.Context, tmp string, msg io.Reader, limit int64) (int64, error) {
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return 0, err
	}
	size, dots, count, err := crlf.CopyDots(ctx, f, msg, limit, maxMarkedDots)
	if err == nil && (count == 0 || count <= maxMarkedDots && size > dotsMarkMin) {
		// The last write set the mtime; setting an attribute does not.
		// ENOTSUP and friends: the message is read and stuffed, nothing
		// lost.
		var st unix.Stat_t
		if unix.Fstat(int(f.Fd()), &st) == nil && st.Size == size {
			_ = unix.Fsetxattr(int(f.Fd()), dotsAttr, dotsValue(size, st.Mtim, dots), 0)
		}
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return size, err
}

// DotLines implements store.WireFile: the file carries the mark, and it
// names the file's size (the snapshot's too) and modification time.
func (f *msgFile) DotLines() ([]int64, bool) {
	if f.closed || f.size < 0 {
		return nil, false
	}
	var buf [2048]byte
	b, ok := f.getMark(dotsAttr, buf[:])
	if !ok {
		if b, ok = f.getMark(legacyNoDotsAttr, buf[:]); !ok {
			return nil, false
		}
	}
	var st unix.Stat_t
	if unix.Fstat(f.fd, &st) != nil || st.Size != f.size {
		return nil, false
	}
	want := dotsValue(f.size, st.Mtim, nil)
	if !bytes.HasPrefix(b, want) || len(b) > len(want) && b[len(want)] != ' ' {
		return nil, false
	}
	return parseDots(b[len(want):], f.size)
}

// getMark reads the attribute name into buf.
func (f *msgFile) getMark(name string, buf []byte) ([]byte, bool) {
	n, err := unix.Fgetxattr(f.fd, name, buf)
	for err == unix.EINTR {
		n, err = unix.Fgetxattr(f.fd, name, buf)
	}
	if err != nil || n <= 0 {
		return nil, false
	}
	return buf[:n], true
}

// parseDots reads a mark's offsets, " OFFSET" each: increasing, inside a
// file of size octets, at most maxMarkedDots. Anything else is no mark.
func parseDots(b []byte, size int64) ([]int64, bool) {
	if len(b) == 0 {
		return nil, true
	}
	fields := bytes.Fields(b)
	if len(fields) > maxMarkedDots {
		return nil, false
	}
	dots := make([]int64, 0, len(fields))
	prev := int64(-1)
	for _, fl := range fields {
		d, err := strconv.ParseInt(string(fl), 10, 64)
		if err != nil || d <= prev || d >= size {
			return nil, false
		}
		dots = append(dots, d)
		prev = d
	}
	return dots, true
}

// SendFile implements store.WireFile.
func (f *msgFile) SendFile(sock, n int) (int, error) {
	if f.closed {
		return 0, os.ErrClosed
	}
	return unix.Sendfile(sock, f.fd, nil, n)
}
