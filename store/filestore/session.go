//go:build linux

package filestore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/pop3svc/pop3svc/store"
)

// OpenSession takes the session lock and snapshots the mailbox.
func (s *Store) OpenSession(ctx context.Context, addr store.Address, owner string) (store.MailboxSession, error) {
	a, err := canonAddr(addr)
	if err != nil {
		return nil, fmt.Errorf("cannot open mailbox: %w", err)
	}
	if err := ctxErr(ctx); err != nil {
		return nil, err
	}
	if err := s.checkMailbox(a); err != nil {
		return nil, fmt.Errorf("cannot open mailbox %s: %w", a, err)
	}
	if s.domainLocked(a.Domain) {
		return nil, fmt.Errorf("cannot open mailbox %s: %w", a, store.ErrDomainLocked)
	}
	dir := s.mboxPath(a)
	h, err := s.acquireLock(dir, owner)
	if err != nil {
		return nil, fmt.Errorf("cannot open mailbox %s: %w", a, err)
	}
	msgs, files, err := snapshot(dir)
	if err != nil {
		_ = s.releaseLock(h)
		return nil, fmt.Errorf("cannot open mailbox %s: %w", a, err)
	}
	last, err := readPolicy(dir, msgs)
	if err != nil {
		_ = s.releaseLock(h)
		return nil, fmt.Errorf("cannot open mailbox %s: %w", a, err)
	}
	return &session{s: s, addr: a, dir: dir, lock: h, msgs: msgs, files: files, lastLogin: last}, nil
}

// domainLocked reports whether the administrator locked the domain.
func (s *Store) domainLocked(domain string) bool {
	_, err := os.Lstat(filepath.Join(s.domainPath(domain), DomainLocked))
	return err == nil
}

// session is an open mailbox. Not safe for concurrent use, except Refresh.
type session struct {
	s      *Store
	addr   store.Address
	dir    string
	lock   *heldLock
	msgs   []store.MessageInfo
	files  []string // file names, parallel to msgs
	closed atomic.Bool
	// lastLogin is the mailbox's last recorded login when the session opened.
	lastLogin time.Time
}

func (m *session) Messages() []store.MessageInfo { return m.msgs }

func (m *session) path(i int) string {
	return filepath.Join(m.dir, m.files[i])
}

// Open returns the message file itself, open for plain read(2) calls (a
// *msgFile, not an *os.File). It first checks that the session
// still holds its lock: a session whose lock was taken over serves nothing
// (without a system call while the lease is fresh: oursWithinLease).
func (m *session) Open(i int) (io.ReadCloser, error) {
	if m.closed.Load() {
		return nil, store.ErrSessionClosed
	}
	if i < 0 || i >= len(m.msgs) {
		return nil, fmt.Errorf("message %d of %s: %w", i+1, m.addr, store.ErrNoSuchMessage)
	}
	if !m.lock.oursWithinLease(m.s.now()) {
		mLocksLost.Inc()
		return nil, fmt.Errorf("cannot open message %s of %s: %w", m.msgs[i].UID, m.addr, store.ErrLockLost)
	}
	return openFile(m.path(i), m.msgs[i].UID, m.addr, m.msgs[i].Size)
}

// openFile opens a message of size octets (its size in the snapshot: the
// mark of store.WireFile must name it).
func openFile(path, uid string, a store.Address, size int64) (io.ReadCloser, error) {
	f, err := openMessage(path, size)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ELOOP) {
			return nil, fmt.Errorf("message %s of %s is gone: %w", uid, a, store.ErrNoSuchMessage)
		}
		return nil, fmt.Errorf("cannot open message %s of %s: %w", uid, a, err)
	}
	return f, nil
}

// Commit removes the deleted messages and releases the lock, atomically
// with respect to a take-over (commitLock): a session that lost its lock
// deletes nothing and gets store.ErrLockLost.
func (m *session) Commit(ctx context.Context, deleted []int) error {
	if m.closed.Load() {
		return store.ErrSessionClosed
	}
	for _, i := range deleted {
		if i < 0 || i >= len(m.msgs) {
			return fmt.Errorf("cannot commit %s: message %d: %w", m.addr, i+1, store.ErrNoSuchMessage)
		}
	}
	if len(deleted) == 0 {
		return m.Close()
	}
	del := slices.Clone(deleted)
	slices.Sort(del)
	del = slices.Compact(del)
	files := make([]string, len(del))
	for k, i := range del {
		files[k] = m.files[i]
	}
	_, err := m.s.commitLock(m.lock, files)
	if err == nil || errors.Is(err, store.ErrLockLost) || m.lock.lost.Load() {
		if errors.Is(err, store.ErrLockLost) {
			mLocksLost.Inc()
		}
		m.closed.Store(true)
		if err != nil {
			return fmt.Errorf("cannot commit %s: %w", m.addr, err)
		}
		return nil
	}
	// Nothing was deleted and the lock is still held: release it.
	if cerr := m.Close(); cerr != nil {
		m.s.log.Error("cannot release the session lock", "mailbox", m.addr.String(), "err", cerr)
	}
	return fmt.Errorf("cannot commit %s: %w", m.addr, err)
}

// Close releases the lock; later calls do nothing. A lock taken over
// meanwhile is left to its new holder (store.ErrLockLost).
func (m *session) Close() error {
	if m.closed.Swap(true) {
		return nil
	}
	if err := m.s.releaseLock(m.lock); err != nil {
		if errors.Is(err, store.ErrLockLost) {
			mLocksLost.Inc()
			return err
		}
		m.closed.Store(false) // a later Close tries again
		return err
	}
	return nil
}

// Refresh renews the lock's lease. Safe concurrently with the other methods.
func (m *session) Refresh() error {
	if m.closed.Load() {
		return store.ErrSessionClosed
	}
	err := m.s.refreshLock(m.lock)
	if errors.Is(err, store.ErrLockLost) && !m.closed.Load() {
		mLocksLost.Inc()
	}
	return err
}

// Snapshot lists a mailbox without taking its lock (store.Snapshots).
func (s *Store) Snapshot(ctx context.Context, addr store.Address) (store.MailboxSnapshot, error) {
	a, err := canonAddr(addr)
	if err != nil {
		return nil, fmt.Errorf("cannot read mailbox: %w", err)
	}
	if err := ctxErr(ctx); err != nil {
		return nil, err
	}
	if err := s.checkMailbox(a); err != nil {
		return nil, fmt.Errorf("cannot read mailbox %s: %w", a, err)
	}
	dir := s.mboxPath(a)
	msgs, files, err := snapshot(dir)
	if err != nil {
		return nil, fmt.Errorf("cannot read mailbox %s: %w", a, err)
	}
	return &readOnly{addr: a, dir: dir, msgs: msgs, files: files}, nil
}

type readOnly struct {
	addr  store.Address
	dir   string
	msgs  []store.MessageInfo
	files []string
}

func (r *readOnly) Messages() []store.MessageInfo { return r.msgs }

func (r *readOnly) Open(i int) (io.ReadCloser, error) {
	if i < 0 || i >= len(r.msgs) {
		return nil, fmt.Errorf("message %d of %s: %w", i+1, r.addr, store.ErrNoSuchMessage)
	}
	return openFile(filepath.Join(r.dir, r.files[i]), r.msgs[i].UID, r.addr, r.msgs[i].Size)
}

// msgFile is an open message file read with plain read(2) calls: message
// files are regular files, which the runtime's poller cannot wait on, so
// *os.File's poller registration and locking would only add system calls
// to every RETR. Not safe for concurrent use; Close is idempotent. It is a
// store.WireFile (wire.go).
type msgFile struct {
	fd     int
	closed bool
	size   int64 // the snapshot's size
}

func openMessage(path string, size int64) (*msgFile, error) {
	for {
		fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return nil, &os.PathError{Op: "open", Path: path, Err: err}
		}
		return &msgFile{fd: fd, size: size}, nil
	}
}

func (f *msgFile) Read(p []byte) (int, error) {
	if f.closed {
		return 0, os.ErrClosed
	}
	if len(p) == 0 {
		return 0, nil
	}
	for {
		n, err := syscall.Read(f.fd, p)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return 0, err
		}
		if n == 0 {
			return 0, io.EOF
		}
		return n, nil
	}
}

func (f *msgFile) Close() error {
	if f.closed {
		return nil
	}
	f.closed = true
	return syscall.Close(f.fd)
}
