//go:build linux

package filestore

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"github.com/pop3svc/pop3svc/store/durable"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pop3svc/pop3svc/store"
)

// Lock kinds recorded in kcol.
const (
	kindSession = "session" // a POP3 session or a short administrative operation
	kindAdmin   = "admin"   // the administrator's lock (LockMailbox)
)

// maxOwnerLen bounds the owner string kept in a lock record.
const maxOwnerLen = 512

// maxLockFileSize bounds what is read from a kcol file.
const maxLockFileSize = 4096

// lockRecord is the content of kcol: who holds the mailbox.
type lockRecord struct {
	Token string // random, unique to one taking of the lock
	Kind  string
	Proc  procIdentity
	Time  time.Time
	Owner string
}

func (r lockRecord) encode() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "token=%s\nkind=%s\nnode=%d\nhost=%s\nboot=%s\npid=%d\nstart=%d\ntime=%s\nowner=%s\n",
		clean(r.Token), r.Kind, r.Proc.Node, clean(r.Proc.Host), clean(r.Proc.Boot), r.Proc.PID, r.Proc.Start,
		r.Time.UTC().Format(time.RFC3339Nano), clean(r.Owner))
	return b.Bytes()
}

// clean keeps a value on one line and bounded.
func clean(s string) string {
	if len(s) > maxOwnerLen {
		s = s[:maxOwnerLen]
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '?'
		}
		return r
	}, s)
}

// decodeLock parses a kcol file. An empty or unreadable record is reported
// as !ok: such a kcol was made by hand (the seed's administrator lock is a
// bare rename of lock to kcol) and is treated as an administrator's lock.
func decodeLock(b []byte) (r lockRecord, ok bool) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, found := strings.Cut(sc.Text(), "=")
		if !found {
			continue
		}
		switch k {
		case "token":
			r.Token = v
		case "kind":
			r.Kind = v
		case "node":
			r.Proc.Node, _ = strconv.Atoi(v)
		case "host":
			r.Proc.Host = v
		case "boot":
			r.Proc.Boot = v
		case "pid":
			r.Proc.PID, _ = strconv.Atoi(v)
		case "start":
			r.Proc.Start, _ = strconv.ParseUint(v, 10, 64)
		case "time":
			r.Time, _ = time.Parse(time.RFC3339Nano, v)
		case "owner":
			r.Owner = v
		}
	}
	return r, r.Kind == kindSession || r.Kind == kindAdmin
}

// lockState is what inspectLock found in a mailbox folder.
type lockState int

const (
	lockFree    lockState = iota // no kcol
	lockAdmin                    // administrator's lock
	lockLive                     // a live session holds it
	lockStale                    // a dead or expired session's lock
	lockMissing                  // the mailbox folder vanished
)

type lockInfo struct {
	state lockState
	rec   lockRecord
}

// inspectLock reads kcol and judges it. A session lock is stale when its
// process is gone (same machine and boot: the pid is not running or runs
// another program, told by its start time) or when it was not refreshed
// (kcol's mtime) for store.LockLease.
func (s *Store) inspectLock(dir string) (lockInfo, error) {
	kcol := filepath.Join(dir, KcolName)
	f, err := os.OpenFile(kcol, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			if _, derr := os.Lstat(dir); derr != nil {
				return lockInfo{state: lockMissing}, nil
			}
			return lockInfo{state: lockFree}, nil
		}
		if errors.Is(err, syscall.ELOOP) {
			return lockInfo{state: lockAdmin}, nil // a symlink: not ours, never followed
		}
		return lockInfo{}, fmt.Errorf("cannot read lock %q: %w", kcol, err)
	}
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return lockInfo{}, fmt.Errorf("cannot stat lock %q: %w", kcol, err)
	}
	buf := make([]byte, maxLockFileSize)
	n, _ := io.ReadFull(f, buf)
	rec, ok := decodeLock(buf[:n])
	li := lockInfo{rec: rec}
	switch {
	case !ok || rec.Kind == kindAdmin:
		li.state = lockAdmin
	case rec.Proc.sameMachine(s.self):
		if rec.Proc.alive() {
			li.state = lockLive
		} else {
			li.state = lockStale
		}
	case rec.Proc.Host != "" && rec.Proc.Host == s.self.Host && rec.Proc.Boot != s.self.Boot && rec.Proc.Boot != "" && s.self.Boot != "":
		li.state = lockStale // this machine rebooted since
	default:
		mtime := time.Unix(st.Mtim.Unix())
		if s.now().Sub(mtime) > store.LockLease {
			li.state = lockStale
		} else {
			li.state = lockLive
		}
	}
	return li, nil
}

// heldLock is a kcol this process created, known by its token (an inode
// number is no identity: a file system reuses it at once).
type heldLock struct {
	dir   string
	token string
}

// acquireLock takes kcol in dir. The protocol:
//
//  1. write the full owner record to a new file .kcol.<random> in the
//     mailbox folder and fsync it;
//  2. link it to kcol: link never replaces, so of racing sessions exactly
//     one wins, and kcol is never seen without its complete record;
//  3. the winner removes the temporary name and the old lock file (lock
//     only tells an operator that the mailbox is free).
//
// A loser reads kcol: a live holder gives ErrMailboxInUse, an
// administrator's lock ErrMailboxLocked, a stale holder is taken over
// (takeOver) and the attempt repeated.
func (s *Store) acquireLock(dir, kind, owner string) (*heldLock, error) {
	rec := lockRecord{Token: randomString(), Kind: kind, Proc: s.self, Time: s.now(), Owner: owner}
	data := rec.encode()
	kcol := filepath.Join(dir, KcolName)
	for attempt := 0; attempt < 4; attempt++ {
		tmp := filepath.Join(dir, ".kcol."+randomString())
		f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o600)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil, store.ErrNoSuchMailbox
			}
			return nil, fmt.Errorf("cannot create lock: %w", err)
		}
		_, err = f.Write(data)
		if err == nil {
			err = f.Sync()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			err = os.Link(tmp, kcol)
		}
		_ = os.Remove(tmp)
		if err == nil {
			// No folder fsync: a lock that a crash loses was held by a
			// process that the crash killed, and one that a crash keeps
			// names a boot that is over, so it is taken over.
			_ = os.Remove(filepath.Join(dir, LockName))
			return &heldLock{dir: dir, token: rec.Token}, nil
		}
		if !errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("cannot take lock: %w", err)
		}
		li, err := s.inspectLock(dir)
		if err != nil {
			return nil, err
		}
		switch li.state {
		case lockFree:
			continue // released meanwhile
		case lockMissing:
			return nil, store.ErrNoSuchMailbox
		case lockAdmin:
			return nil, store.ErrMailboxLocked
		case lockLive:
			return nil, fmt.Errorf("%w (held by %s)", store.ErrMailboxInUse, li.rec.Owner)
		case lockStale:
			s.takeOver(dir, li)
		}
	}
	return nil, store.ErrMailboxInUse
}

// takeOver removes a stale kcol. It moves kcol aside to a unique name and
// checks that what it moved is the record it judged stale (same token); if
// another server took the stale lock over first and a new holder made a
// fresh kcol in between, the fresh one is linked back.
func (s *Store) takeOver(dir string, li lockInfo) {
	kcol := filepath.Join(dir, KcolName)
	aside := filepath.Join(dir, ".kcol.stale."+randomString())
	if err := os.Rename(kcol, aside); err != nil {
		return // someone else took it over, or it was released
	}
	if readToken(aside) != li.rec.Token {
		if err := os.Link(aside, kcol); err != nil {
			s.log.Error("lost a fresh session lock while taking over a stale one", "folder", dir, "err", err)
		}
		_ = os.Remove(aside)
		return
	}
	_ = os.Remove(aside)
	s.log.Warn("took over a stale session lock", "folder", dir, "owner", li.rec.Owner,
		"node", li.rec.Proc.Node, "host", li.rec.Proc.Host, "pid", li.rec.Proc.PID, "since", li.rec.Time)
}

// ours reports whether kcol in h.dir is still the record h created. An
// error means kcol exists (or may) but could not be read, for example with
// the process out of file descriptors: that proves nothing either way.
func (h *heldLock) ours() (bool, error) {
	b, err := durable.ReadSmall(filepath.Join(h.dir, KcolName), maxLockFileSize)
	if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ELOOP) {
		return false, nil // gone, or a symbolic link: not the file we made
	}
	if err != nil {
		return false, err
	}
	r, _ := decodeLock(b)
	return r.Token == h.token, nil
}

// releaseRetries are the pauses between attempts to read a lock record
// that could not be read at release: a failure taken for "not ours" would
// leave the mailbox locked by this live process until it exits.
var releaseRetries = []time.Duration{10 * time.Millisecond, 50 * time.Millisecond, 250 * time.Millisecond}

// readToken returns the token of a lock record; "" for none, "\x00" when
// the file cannot be read.
func readToken(path string) string {
	b, err := durable.ReadSmall(path, maxLockFileSize)
	if err != nil {
		return "\x00"
	}
	r, _ := decodeLock(b)
	return r.Token
}

// releaseLock renames kcol back to lock (the seed's free state) if kcol
// is still ours; a lock taken over by another server is left alone.
func (s *Store) releaseLock(h *heldLock) error {
	ours, err := h.ours()
	for _, d := range releaseRetries {
		if err == nil {
			break
		}
		if unreadableLockHook != nil {
			unreadableLockHook()
		}
		time.Sleep(d)
		ours, err = h.ours()
	}
	if err != nil {
		return fmt.Errorf("cannot release lock in %q: cannot read it: %w", h.dir, err)
	}
	if !ours {
		s.log.Warn("session lock was taken over before release", "folder", h.dir)
		return nil
	}
	if err := os.Rename(filepath.Join(h.dir, KcolName), filepath.Join(h.dir, LockName)); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("cannot release lock in %q: %w", h.dir, err)
	}
	return nil
}

// unreadableLockHook, set only by tests, runs each time releaseLock found
// the lock record unreadable, before it waits to read it again: the test
// repairs the record there, at the moment a real passing failure would end.
var unreadableLockHook func()

// refreshLock renews the lease: kcol's mtime is the time of the last refresh.
func (s *Store) refreshLock(h *heldLock) error {
	ours, err := h.ours()
	if err != nil {
		return fmt.Errorf("cannot renew lock in %q: %w", h.dir, err)
	}
	if !ours {
		return fmt.Errorf("session lock in %q was taken over: %w", h.dir, store.ErrMailboxInUse)
	}
	now := s.now()
	return os.Chtimes(filepath.Join(h.dir, KcolName), now, now)
}
