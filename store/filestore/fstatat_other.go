//go:build linux && !amd64 && !arm64

package filestore

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// fstatat stats a NUL-terminated name relative to dirfd without following a symlink.
func fstatat(dirfd int, name *byte, n int, st *unix.Stat_t) error {
	nm := unsafe.String(name, n)
	return unix.Fstatat(dirfd, nm, st, unix.AT_SYMLINK_NOFOLLOW)
}
