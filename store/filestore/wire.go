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

// noDotsAttr is the extended attribute a message file carries when no line
// of it begins with '.' (store.WireFile): its value is the file's size and
// modification time (nanoseconds since 1970), "SIZE MTIME" in decimal, so
// that a file edited in place loses the mark, unless the edit keeps both
// the size and the time (message files are not meant to be edited). It is
// set on the temporary file before its fsync, so a message is never
// visible with a mark it has not earned. A file system without user
// extended attributes only costs the mark: such messages are dot-stuffed
// as they are sent, like every message stored before the mark existed.
const noDotsAttr = "user.pop3.nodots"

// noDotsValue is the mark's value for a file of this size and mtime.
func noDotsValue(size int64, mtime unix.Timespec) []byte {
	b := strconv.AppendInt(nil, size, 10)
	b = append(b, ' ')
	return strconv.AppendInt(b, mtime.Nano(), 10)
}

// writeMessage writes msg to the new file tmp with its line endings
// normalised (package crlf), marks it when no line begins with '.', and
// fsyncs it. It returns the octets written; on an error (crlf.ErrLimit
// past limit, 0: none) the caller removes tmp.
func writeMessage(ctx context.Context, tmp string, msg io.Reader, limit int64) (int64, error) {
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return 0, err
	}
	size, dotLine, err := crlf.CopyDots(ctx, f, msg, limit)
	if err == nil && !dotLine {
		// The last write set the mtime; setting an attribute does not.
		// ENOTSUP and friends: the message is sent stuffed, nothing lost.
		var st unix.Stat_t
		if unix.Fstat(int(f.Fd()), &st) == nil && st.Size == size {
			_ = unix.Fsetxattr(int(f.Fd()), noDotsAttr, noDotsValue(size, st.Mtim), 0)
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

// NoDotLines implements store.WireFile: the file carries the mark, and
// it names the file's size (the snapshot's too) and modification time.
func (f *msgFile) NoDotLines() bool {
	if f.closed || f.size < 0 {
		return false
	}
	var b [48]byte
	n, err := unix.Fgetxattr(f.fd, noDotsAttr, b[:])
	for err == unix.EINTR {
		n, err = unix.Fgetxattr(f.fd, noDotsAttr, b[:])
	}
	if err != nil || n <= 0 {
		return false
	}
	var st unix.Stat_t
	if unix.Fstat(f.fd, &st) != nil || st.Size != f.size {
		return false
	}
	return bytes.Equal(b[:n], noDotsValue(f.size, st.Mtim))
}

// SendFile implements store.WireFile.
func (f *msgFile) SendFile(sock, n int) (int, error) {
	if f.closed {
		return 0, os.ErrClosed
	}
	return unix.Sendfile(sock, f.fd, nil, n)
}
