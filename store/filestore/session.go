//go:build linux

package filestore

import (
	"context"
	"errors"
	"fmt"
	"github.com/pop3svc/pop3svc/store/durable"
	"io"
	"os"
	"path/filepath"
	"slices"
	"syscall"

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
	h, err := s.acquireLock(dir, kindSession, owner)
	if err != nil {
		return nil, fmt.Errorf("cannot open mailbox %s: %w", a, err)
	}
	msgs, err := snapshot(dir)
	if err != nil {
		_ = s.releaseLock(h)
		return nil, fmt.Errorf("cannot open mailbox %s: %w", a, err)
	}
	return &session{s: s, addr: a, dir: dir, lock: h, msgs: msgs}, nil
}

// domainLocked reports whether the administrator locked the domain.
func (s *Store) domainLocked(domain string) bool {
	_, err := os.Lstat(filepath.Join(s.domainPath(domain), DomainLocked))
	return err == nil
}

// session is an open mailbox. Not safe for concurrent use.
type session struct {
	s      *Store
	addr   store.Address
	dir    string
	lock   *heldLock
	msgs   []store.MessageInfo
	closed bool
}

func (m *session) Messages() []store.MessageInfo { return m.msgs }

func (m *session) path(i int) string {
	return filepath.Join(m.dir, msgPrefix+m.msgs[i].UID+msgSuffix)
}

// Open returns the message file itself, open for plain read(2) calls (a
// *msgFile, not an *os.File).
func (m *session) Open(i int) (io.ReadCloser, error) {
	if m.closed {
		return nil, store.ErrSessionClosed
	}
	if i < 0 || i >= len(m.msgs) {
		return nil, fmt.Errorf("message %d of %s: %w", i+1, m.addr, store.ErrNoSuchMessage)
	}
	f, err := openMessage(m.path(i))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ELOOP) {
			return nil, fmt.Errorf("message %s of %s is gone: %w", m.msgs[i].UID, m.addr, store.ErrNoSuchMessage)
		}
		return nil, fmt.Errorf("cannot open message %s of %s: %w", m.msgs[i].UID, m.addr, err)
	}
	return f, nil
}

// Commit removes the deleted messages, fsyncs the folder, releases the lock.
func (m *session) Commit(ctx context.Context, deleted []int) error {
	if m.closed {
		return store.ErrSessionClosed
	}
	for _, i := range deleted {
		if i < 0 || i >= len(m.msgs) {
			return fmt.Errorf("cannot commit %s: message %d: %w", m.addr, i+1, store.ErrNoSuchMessage)
		}
	}
	del := slices.Clone(deleted)
	slices.Sort(del)
	del = slices.Compact(del)
	var firstErr error
	for _, i := range del {
		if err := os.Remove(m.path(i)); err != nil && !errors.Is(err, os.ErrNotExist) && firstErr == nil {
			firstErr = fmt.Errorf("cannot delete message %s of %s: %w", m.msgs[i].UID, m.addr, err)
		}
	}
	if len(del) > 0 {
		if err := durable.SyncDir(m.dir); err != nil && firstErr == nil {
			firstErr = err
		}
	}
	if err := m.Close(); err != nil {
		// The deletions are durable: reporting them failed would make the
		// client's QUIT fail (RFC 1939 section 6) for what is only a lock
		// left to release, which a later Close tries again.
		m.s.log.Error("cannot release the session lock after committing", "mailbox", m.addr.String(), "err", err)
	}
	return firstErr
}

// Close releases the lock; later calls do nothing. When the lock could
// not be released (its record unreadable) the session stays open for
// messages and a later Close tries again.
func (m *session) Close() error {
	if m.closed {
		return nil
	}
	if err := m.s.releaseLock(m.lock); err != nil {
		return err
	}
	m.closed = true
	return nil
}

// Refresh renews the lock's lease.
func (m *session) Refresh() error {
	if m.closed {
		return store.ErrSessionClosed
	}
	return m.s.refreshLock(m.lock)
}

// msgFile is an open message file read with plain read(2) calls: message
// files are regular files, which the runtime's poller cannot wait on, so
// *os.File's poller registration and locking would only add system calls
// to every RETR. Not safe for concurrent use; Close is idempotent.
type msgFile struct {
	fd     int
	closed bool
}

func openMessage(path string) (*msgFile, error) {
	for {
		fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return nil, &os.PathError{Op: "open", Path: path, Err: err}
		}
		return &msgFile{fd: fd}, nil
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
