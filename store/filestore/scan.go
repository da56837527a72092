//go:build linux

package filestore

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/pop3svc/pop3svc/store"
)

// direntBufSize is the buffer getdents fills; 32 KiB holds ~800 entries.
const direntBufSize = 32 << 10

// direntBufs keeps the getdents buffers: a login scans its mailbox once,
// and a fresh 32 KiB per scan was a fifth of what a busy server allocated.
var direntBufs = sync.Pool{New: func() any { return new([direntBufSize]byte) }}

// msgNameLen is len("P3_") + 26 + len(".eml").
const msgNameLen = len(msgPrefix) + UIDLen + len(msgSuffix)

// scanFunc receives each message file of a mailbox folder: its name, its
// 26 digits, its UID (the digits or an imported UIDL) and its size; the
// slices are valid only during the call.
type scanFunc func(name, digits, uid []byte, size int64)

// scanMailbox lists the message files of a mailbox folder with getdents
// and takes each size from fstatat (unless sizes is false): it reads no
// message and allocates nothing per message. A file removed while scanning
// is skipped.
func scanMailbox(dir string, sizes bool, fn scanFunc) error {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: dir, Err: err}
	}
	defer unix.Close(fd)
	bp := direntBufs.Get().(*[direntBufSize]byte)
	defer direntBufs.Put(bp)
	buf := bp[:]
	var name [maxNameLen + 1]byte // NUL-terminated for fstatat
	var uidl [store.MaxUIDLLen]byte
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
			digits, uid, ok := parseMessageName(nm, uidl[:])
			if !ok || (typ != unix.DT_REG && typ != unix.DT_UNKNOWN) {
				continue
			}
			if !sizes && typ == unix.DT_REG {
				fn(nm, digits, uid, 0)
				continue
			}
			copy(name[:], nm)
			name[len(nm)] = 0
			if err := fstatat(fd, &name[0], len(nm), &st); err != nil {
				if errors.Is(err, unix.ENOENT) {
					continue // deleted meanwhile
				}
				return &os.PathError{Op: "stat", Path: dir + "/" + string(nm), Err: err}
			}
			if st.Mode&unix.S_IFMT != unix.S_IFREG {
				continue
			}
			fn(nm, digits, uid, st.Size)
		}
	}
}

// snapshot lists a mailbox folder in the order of the 26 digits (=
// arrival, and for imported messages the old server's order) and returns
// the messages and their file names. All UIDs share one string and all
// names another, so a mailbox of any size costs a handful of allocations.
func snapshot(dir string) ([]store.MessageInfo, []string, error) {
	type entry struct {
		name, uid   int32 // offsets into names, uids
		nameN, uidN int16
		size        int64
	}
	var names, uids []byte
	var ents []entry
	err := scanMailbox(dir, true, func(nm, _, uid []byte, size int64) {
		ents = append(ents, entry{name: int32(len(names)), nameN: int16(len(nm)), uid: int32(len(uids)), uidN: int16(len(uid)), size: size})
		names = append(names, nm...)
		uids = append(uids, uid...)
	})
	if err != nil {
		return nil, nil, err
	}
	digits := func(e entry) []byte {
		return names[int(e.name)+len(msgPrefix) : int(e.name)+len(msgPrefix)+UIDLen]
	}
	slices.SortFunc(ents, func(a, b entry) int { return bytes.Compare(digits(a), digits(b)) })
	allNames := unsafe.String(unsafe.SliceData(names), len(names)) // never written again
	allUIDs := unsafe.String(unsafe.SliceData(uids), len(uids))
	msgs := make([]store.MessageInfo, len(ents))
	files := make([]string, len(ents))
	for k, e := range ents {
		msgs[k] = store.MessageInfo{UID: allUIDs[e.uid : int(e.uid)+int(e.uidN)], Size: e.size}
		files[k] = allNames[e.name : int(e.name)+int(e.nameN)]
	}
	return msgs, files, nil
}

// uidSet returns the UIDs of a mailbox folder (no sizes: getdents only).
func uidSet(dir string) (map[string]struct{}, error) {
	set := make(map[string]struct{})
	err := scanMailbox(dir, false, func(_, _, uid []byte, _ int64) { set[string(uid)] = struct{}{} })
	return set, err
}

// usage counts the messages and octets of a mailbox folder.
func usage(dir string) (n int, total int64, err error) {
	err = scanMailbox(dir, true, func(_, _, _ []byte, size int64) {
		n++
		total += size
	})
	return n, total, err
}
