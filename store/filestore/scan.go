//go:build linux

package filestore

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"slices"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/pop3svc/pop3svc/store"
)

// direntBufSize is the buffer getdents fills; 32 KiB holds ~800 entries.
const direntBufSize = 32 << 10

// msgNameLen is len("P3_") + 26 + len(".eml").
const msgNameLen = len(msgPrefix) + UIDLen + len(msgSuffix)

// scanFunc receives each message file of a mailbox folder: its 26 digits
// (valid only during the call) and its size.
type scanFunc func(uid []byte, size int64)

// scanMailbox lists the message files of a mailbox folder with getdents
// and takes each size from fstatat: it reads no message and allocates
// nothing per message. A file removed while scanning is skipped.
func scanMailbox(dir string, fn scanFunc) error {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: dir, Err: err}
	}
	defer unix.Close(fd)
	buf := make([]byte, direntBufSize)
	var name [msgNameLen + 1]byte // NUL-terminated for fstatat
	var st unix.Stat_t
	for {
		n, err := unix.ReadDirent(fd, buf)
		if err != nil {
			return &os.PathError{Op: "getdents", Path: dir, Err: err}
		}
		if n <= 0 {
			return nil
		}
		for off := 0; off < n; {
			// struct linux_dirent64: ino u64, off s64, reclen u16, type u8, name.
			reclen := int(*(*uint16)(unsafe.Pointer(&buf[off+16])))
			if reclen == 0 || off+reclen > n {
				return fmt.Errorf("cannot list %q: bad directory entry", dir)
			}
			typ := buf[off+18]
			nm := buf[off+19 : off+reclen]
			if i := bytes.IndexByte(nm, 0); i >= 0 {
				nm = nm[:i]
			}
			off += reclen
			if len(nm) != msgNameLen || !bytes.HasPrefix(nm, []byte(msgPrefix)) || !bytes.HasSuffix(nm, []byte(msgSuffix)) {
				continue
			}
			uid := nm[len(msgPrefix) : len(msgPrefix)+UIDLen]
			if !isUID(uid) || (typ != unix.DT_REG && typ != unix.DT_UNKNOWN) {
				continue
			}
			copy(name[:], nm)
			name[msgNameLen] = 0
			if err := fstatat(fd, &name[0], &st); err != nil {
				if errors.Is(err, unix.ENOENT) {
					continue // deleted meanwhile
				}
				return &os.PathError{Op: "stat", Path: dir + "/" + string(nm), Err: err}
			}
			if st.Mode&unix.S_IFMT != unix.S_IFREG {
				continue
			}
			fn(uid, st.Size)
		}
	}
}

// snapshot lists a mailbox folder in name (= arrival) order. All UIDs
// share one string, so a mailbox of any size costs a handful of allocations.
func snapshot(dir string) ([]store.MessageInfo, error) {
	var uids []byte
	var sizes []int64
	err := scanMailbox(dir, func(uid []byte, size int64) {
		uids = append(uids, uid...)
		sizes = append(sizes, size)
	})
	if err != nil {
		return nil, err
	}
	n := len(sizes)
	order := make([]int32, n)
	for i := range order {
		order[i] = int32(i)
	}
	slices.SortFunc(order, func(a, b int32) int {
		return bytes.Compare(uids[int(a)*UIDLen:int(a+1)*UIDLen], uids[int(b)*UIDLen:int(b+1)*UIDLen])
	})
	sorted := make([]byte, 0, len(uids))
	for _, i := range order {
		sorted = append(sorted, uids[int(i)*UIDLen:int(i+1)*UIDLen]...)
	}
	all := unsafe.String(unsafe.SliceData(sorted), len(sorted)) // sorted is never written again
	msgs := make([]store.MessageInfo, n)
	for k, i := range order {
		msgs[k] = store.MessageInfo{UID: all[k*UIDLen : (k+1)*UIDLen], Size: sizes[i]}
	}
	return msgs, nil
}

// usage counts the messages and octets of a mailbox folder.
func usage(dir string) (n int, total int64, err error) {
	err = scanMailbox(dir, func(_ []byte, size int64) {
		n++
		total += size
	})
	return n, total, err
}
