//go:build linux && !amd64 && !arm64

package filestore

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// fstatat stats a NUL-terminated name relative to dirfd without following a symlink.
func fstatat(dirfd int, name *byte, st *unix.Stat_t) error {
	n := unsafe.String(name, msgNameLen)
	return unix.Fstatat(dirfd, n, st, unix.AT_SYMLINK_NOFOLLOW)
}
