//go:build linux

package filestore

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pop3svc/pop3svc/store"
	"github.com/pop3svc/pop3svc/store/durable"
)

// Names of the lock objects in a mailbox folder; see the package doc.
const (
	heldPrefix   = KcolName + "."      // kcol.<holder>: held by a session
	donePrefix   = LockName + ".done." // lock.done.<token>: free, holding committed deletions
	legacyPrefix = ".kcol.legacy."     // a pre-directory lock file being converted
	oldTmpPrefix = ".kcol."            // temporary record files of the earlier lock protocol
)

// maxLockFileSize bounds what is read from a kcol file of the earlier
// lock protocol.
const maxLockFileSize = 4096

// holder is who holds a session lock. It is written in the lock folder's
// name, kcol.<token>_<node>_<pid>_<start>_<ms>_<boot>_<host>, so that
// taking the lock is one rename that needs no new disk space, and so that
// the name is unique to one taking of the lock: whoever renames it away
// (a take-over) makes every later use of it by the old holder fail.
type holder struct {
	Token string
	Proc  procIdentity
	Since time.Time // when the lock was taken, to the millisecond
}

func (h holder) name() string {
	var b strings.Builder
	b.WriteString(heldPrefix)
	b.WriteString(h.Token)
	b.WriteByte('_')
	b.WriteString(strconv.Itoa(h.Proc.Node))
	b.WriteByte('_')
	b.WriteString(strconv.Itoa(h.Proc.PID))
	b.WriteByte('_')
	b.WriteString(strconv.FormatUint(h.Proc.Start, 10))
	b.WriteByte('_')
	b.WriteString(strconv.FormatInt(h.Since.UnixMilli(), 10))
	b.WriteByte('_')
	b.WriteString(nameSafe(h.Proc.Boot, 40))
	b.WriteByte('_')
	b.WriteString(nameSafe(h.Proc.Host, 100))
	return b.String()
}

// nameSafe keeps [A-Za-z0-9.-] and writes every other octet as %XX, so a
// value cannot hold the field separator or a '/'; at most max octets.
func nameSafe(s string, max int) string {
	var b strings.Builder
	for i := 0; i < len(s) && b.Len() < max; i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' {
			b.WriteByte(c)
			continue
		}
		fmt.Fprintf(&b, "%%%02X", c)
	}
	return b.String()
}

func unNameSafe(s string) string {
	if !strings.Contains(s, "%") {
		return s
	}
	var b []byte
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+3], 16, 8); err == nil {
				b = append(b, byte(v))
				i += 2
				continue
			}
		}
		b = append(b, s[i])
	}
	return string(b)
}

// parseHolder reads a kcol.<holder> name.
func parseHolder(name string) (holder, bool) {
	rest, ok := strings.CutPrefix(name, heldPrefix)
	if !ok {
		return holder{}, false
	}
	f := strings.SplitN(rest, "_", 7)
	if len(f) != 7 || f[0] == "" {
		return holder{}, false
	}
	var h holder
	var err error
	h.Token = f[0]
	if h.Proc.Node, err = strconv.Atoi(f[1]); err != nil {
		return holder{}, false
	}
	if h.Proc.PID, err = strconv.Atoi(f[2]); err != nil {
		return holder{}, false
	}
	if h.Proc.Start, err = strconv.ParseUint(f[3], 10, 64); err != nil {
		return holder{}, false
	}
	ms, err := strconv.ParseInt(f[4], 10, 64)
	if err != nil {
		return holder{}, false
	}
	h.Since = time.UnixMilli(ms)
	h.Proc.Boot = unNameSafe(f[5])
	h.Proc.Host = unNameSafe(f[6])
	return h, true
}

// owner describes a holder for MailboxInfo.Owner and error messages.
func (h holder) owner() string {
	return fmt.Sprintf("node %d host %s pid %d since %s", h.Proc.Node, h.Proc.Host, h.Proc.PID, h.Since.UTC().Format(time.RFC3339))
}

// heldLock is a session lock this process holds: the folder kcol.<holder>
// in dir. Safe for concurrent use.
type heldLock struct {
	dir   string
	name  string
	token string
	lost  atomic.Bool // a renewal or a check found the lock taken over
	// trustUntil (wall clock, Unix nanoseconds) is half a lease after the
	// lock was taken or last renewed: until then no server may take it
	// over (see oursWithinLease).
	trustUntil atomic.Int64
	// restored counts the messages put back when the lock was taken over.
	restored int
}

func (h *heldLock) path() string { return filepath.Join(h.dir, h.name) }

// lockView is what a listing of a mailbox folder says about its lock.
type lockView struct {
	admin      bool // kcol: the administrator's lock (or an operator's "mv lock kcol")
	adminOwner string
	oldSession *oldRecord // kcol is a session lock file of the earlier protocol
	free       bool       // lock (a folder, or a file of the earlier protocol)
	done       []string   // lock.done.<token> folders: free, with committed deletions to remove
	held       []string   // kcol.<holder> folders
	legacy     []string   // .kcol.legacy.<token>: a conversion in progress (or left by a crash)
}

func (v lockView) empty() bool {
	return !v.admin && !v.free && len(v.done) == 0 && len(v.held) == 0 && len(v.legacy) == 0
}

// viewLock lists dir's lock objects. ErrNoSuchMailbox when dir is gone.
func (s *Store) viewLock(dir string) (lockView, error) {
	var v lockView
	f, err := os.Open(dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			return v, store.ErrNoSuchMailbox
		}
		return v, fmt.Errorf("cannot read lock in %q: %w", dir, err)
	}
	defer f.Close()
	for {
		names, err := f.Readdirnames(1024)
		for _, n := range names {
			switch {
			case n == KcolName:
				v.admin = true
			case n == LockName:
				v.free = true
			case strings.HasPrefix(n, heldPrefix):
				v.held = append(v.held, n)
			case strings.HasPrefix(n, donePrefix):
				v.done = append(v.done, n)
			case strings.HasPrefix(n, legacyPrefix):
				v.legacy = append(v.legacy, n)
			}
		}
		if err != nil {
			break
		}
	}
	if v.admin {
		v.adminOwner = "administrator"
		if r, ok := readOldRecord(filepath.Join(dir, KcolName)); ok && r.kind == "session" {
			v.oldSession = &r
		}
	}
	return v, nil
}

// oldRecord is a kcol file written by the earlier lock protocol.
type oldRecord struct {
	kind  string
	mtime time.Time
}

// readOldRecord reads kcol when it is a regular file with a record of the
// earlier protocol (key=value lines).
func readOldRecord(path string) (oldRecord, bool) {
	fi, err := os.Lstat(path)
	if err != nil || !fi.Mode().IsRegular() {
		return oldRecord{}, false
	}
	b, err := durable.ReadSmall(path, maxLockFileSize)
	if err != nil {
		return oldRecord{}, false
	}
	r := oldRecord{mtime: fi.ModTime()}
	for _, l := range bytes.Split(b, []byte("\n")) {
		if k, val, ok := bytes.Cut(l, []byte("=")); ok && string(k) == "kind" {
			r.kind = string(val)
		}
	}
	return r, r.kind != ""
}

// stale reports whether the holder named n in dir may be taken over: its
// process is gone (same machine: the pid runs no more, or runs another
// program), its machine rebooted, or its lease lapsed (the later of the
// time in its name and the folder's mtime, which Refresh renews, is older
// than the lease).
func (s *Store) stale(dir, n string) (holder, bool) {
	h, ok := parseHolder(n)
	if !ok {
		return h, false // not ours to judge: keep out
	}
	switch {
	case h.Proc.sameMachine(s.self):
		return h, !h.Proc.alive()
	case h.Proc.Host != "" && h.Proc.Host == s.self.Host && h.Proc.Boot != "" && s.self.Boot != "" &&
		h.Proc.Boot != s.self.Boot:
		return h, true // this machine rebooted since
	}
	last := h.Since
	if fi, err := os.Lstat(filepath.Join(dir, n)); err == nil && fi.ModTime().After(last) {
		last = fi.ModTime()
	} else if err != nil {
		return h, false // gone meanwhile: look again
	}
	return h, s.now().Sub(last) > s.lease
}

// acquireLock takes the session lock of the mailbox folder dir:
//
//   - the free mailbox has a folder named lock; renaming it to
//     kcol.<holder> takes it (rename is atomic: of racing sessions on any
//     server exactly one wins) and needs no new disk space, so a full file
//     system still lets users log in and delete;
//   - otherwise the folder is listed: an administrator's kcol refuses, a
//     lock.done.<token> (free, left by a Commit) is taken by renaming it,
//     a live holder refuses with ErrMailboxInUse and a stale one is taken
//     over by renaming its folder to our name, whereupon the messages its
//     unfinished Commit had moved into it are put back.
func (s *Store) acquireLock(dir, owner string) (*heldLock, error) {
	h := holder{Token: randomString()[:16], Proc: s.self, Since: s.now()}
	name := h.name()
	held := &heldLock{dir: dir, name: name, token: h.Token}
	held.trust(h.Since, s.lease)
	target := filepath.Join(dir, name)
	emptyViews := 0
	for attempt := 0; attempt < 8; attempt++ {
		if attempt > 1 {
			time.Sleep(time.Duration(attempt) * 5 * time.Millisecond)
		}
		// The trailing slash makes the rename fail (ENOTDIR) on a lock
		// file of the earlier protocol.
		err := unix.Rename(filepath.Join(dir, LockName)+"/", target)
		if err == nil {
			// A message in the free lock is a deletion that never reached
			// its commit point: a holder that lost its lock on a network
			// file system whose client still had the folder's old name
			// cached can land one there (see the package doc).
			if n := s.restore(target, dir); n > 0 {
				held.restored = n
				s.log.Warn("put back messages of an unfinished commit", "folder", dir, "restored", n)
			}
			s.writeOwner(target, h.Token, owner)
			return held, nil
		}
		switch err {
		case unix.ENOTDIR:
			err := s.convertLegacy(dir, target, h.Token)
			if err == nil {
				s.writeOwner(target, h.Token, owner)
				return held, nil
			}
			if !errors.Is(err, os.ErrNotExist) {
				return nil, err
			}
			continue
		case unix.ENOENT:
		default:
			return nil, fmt.Errorf("cannot take lock in %q: %w", dir, err)
		}
		v, err := s.viewLock(dir)
		if err != nil {
			return nil, err
		}
		if v.admin {
			if v.oldSession == nil {
				return nil, store.ErrMailboxLocked
			}
			// A session lock of the earlier protocol: live within the lease.
			if s.now().Sub(v.oldSession.mtime) <= s.lease {
				return nil, fmt.Errorf("%w (held by a session of an earlier version)", store.ErrMailboxInUse)
			}
			if err := renameNoReplace(filepath.Join(dir, KcolName), filepath.Join(dir, LockName)); err == nil {
				s.log.Warn("took over a stale session lock of an earlier version", "folder", dir)
			}
			continue
		}
		if v.free {
			continue // released meanwhile
		}
		for _, d := range v.done {
			if err := os.Rename(filepath.Join(dir, d), target); err == nil {
				s.clearDone(target, dir, strings.TrimPrefix(d, donePrefix))
				s.writeOwner(target, h.Token, owner)
				return held, nil
			}
		}
		var live *holder
		for _, n := range v.held {
			hh, stale := s.stale(dir, n)
			if !stale {
				live = &hh
				continue
			}
			if err := os.Rename(filepath.Join(dir, n), target); err != nil {
				continue // taken over or released by someone else meanwhile
			}
			restored := s.restore(target, dir)
			held.restored = restored
			s.writeOwner(target, h.Token, owner)
			mLocksTakenOver.Inc()
			s.log.Warn("took over a stale session lock", "folder", dir, "holder", hh.owner(), "restored", restored, "owner", owner)
			return held, nil
		}
		if live != nil {
			return nil, fmt.Errorf("%w (held by %s)", store.ErrMailboxInUse, live.owner())
		}
		if len(v.legacy) > 0 {
			s.recoverLegacy(dir, v.legacy)
			continue
		}
		if v.empty() {
			// No lock object at all: a folder made by hand, or one seen
			// between two renames. Twice in a row: make the free lock.
			emptyViews++
			if emptyViews >= 2 {
				// Under a temporary name, with its owner file: a lock
				// folder is never empty, so a plain rename (where
				// RENAME_NOREPLACE is missing) can never replace one.
				tmp := filepath.Join(dir, legacyPrefix+h.Token)
				if err := os.Mkdir(tmp, 0o700); err != nil {
					return nil, fmt.Errorf("cannot make the lock in %q: %w", dir, err)
				}
				s.writeOwner(tmp, "", "")
				if err := renameNoReplace(tmp, filepath.Join(dir, LockName)); err != nil {
					_ = os.RemoveAll(tmp)
				}
			}
		}
	}
	return nil, fmt.Errorf("%w (the lock keeps changing hands)", store.ErrMailboxInUse)
}

// convertLegacy takes a lock file of the earlier protocol and puts a lock
// folder in its place (this needs disk space once per mailbox). It
// returns os.ErrNotExist when another session took the file first.
func (s *Store) convertLegacy(dir, target, token string) error {
	legacy := filepath.Join(dir, legacyPrefix+token)
	if err := os.Rename(filepath.Join(dir, LockName), legacy); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return os.ErrNotExist
		}
		return fmt.Errorf("cannot take lock in %q: %w", dir, err)
	}
	if err := os.Mkdir(target, 0o700); err != nil {
		_ = renameNoReplace(legacy, filepath.Join(dir, LockName))
		return fmt.Errorf("cannot convert the lock file in %q to a folder: %w", dir, err)
	}
	_ = os.Remove(legacy)
	return nil
}

// recoverLegacy handles .kcol.legacy.* files: a conversion in progress
// takes microseconds, so one older than a lease was left by a crash and
// becomes the free lock again.
func (s *Store) recoverLegacy(dir string, names []string) {
	for _, n := range names {
		p := filepath.Join(dir, n)
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			continue
		}
		if s.now().Sub(time.Unix(st.Ctim.Unix())) <= s.lease {
			continue
		}
		if err := renameNoReplace(p, filepath.Join(dir, LockName)); err != nil {
			_ = os.Remove(p)
		}
	}
}

// delPrefix starts the name a deletion takes in its lock folder:
// del.<token>.P3_<uid>.eml, so that the deletions a commit committed (its
// own token) are told apart from anything else found there.
const delPrefix = "del."

func delName(token, msg string) string { return delPrefix + token + "." + msg }

// splitDel returns the token and message name of an entry of a lock
// folder; ok is false for anything that is not a message.
func splitDel(e string) (token, msg string, ok bool) {
	if rest, found := strings.CutPrefix(e, delPrefix); found {
		token, msg, _ = strings.Cut(rest, ".")
	} else {
		msg = e
	}
	return token, msg, isMessageName(msg)
}

// restore puts back into the mailbox folder dir the messages found in the
// lock folder lk: deletions of a session whose Commit did not reach its
// commit point. It returns how many it moved.
func (s *Store) restore(lk, dir string) int {
	return s.sortOut(lk, dir, "")
}

// clearDone empties the lock folder lk = lock.done.<token> left by a
// Commit: its own deletions (tagged with token) are removed, anything
// else is put back into dir.
func (s *Store) clearDone(lk, dir, token string) int {
	return s.sortOut(lk, dir, token)
}

func (s *Store) sortOut(lk, dir, committed string) int {
	f, err := os.Open(lk)
	if err != nil {
		return 0
	}
	names, _ := f.Readdirnames(-1)
	f.Close()
	n, back := 0, 0
	for _, e := range names {
		tok, msg, ok := splitDel(e)
		if !ok {
			continue
		}
		if committed != "" && tok == committed {
			if os.Remove(filepath.Join(lk, e)) == nil {
				n++
			}
			continue
		}
		if os.Rename(filepath.Join(lk, e), filepath.Join(dir, msg)) == nil {
			back++
		}
	}
	if back > 0 {
		_ = durable.SyncDir(dir)
	}
	if committed != "" {
		return n
	}
	return back
}

// ours reports whether h still holds the lock: its folder still has its
// name. A take-over is one rename, so this sees it either before or after.
func (h *heldLock) ours() bool {
	if h.lost.Load() {
		return false
	}
	fi, err := os.Lstat(h.path())
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			h.lost.Store(true)
			return false
		}
		return true // cannot tell: the rename-based steps decide
	}
	return fi.IsDir()
}

// trust records that the lock's lease runs from at (its taking, in the
// holder's name, or a renewal, in the folder's mtime).
func (h *heldLock) trust(at time.Time, lease time.Duration) {
	h.trustUntil.Store(at.Add(lease / 2).UnixNano())
}

// oursWithinLease is ours without a system call while the lease is fresh:
// another server takes a live holder's lock over only once a whole lease
// has passed since its taking or last renewal (stale: the later of the
// time in its name and the folder's mtime, by the taker's clock, which
// may see a renewal a cache timeout late), and a server on this machine
// only once this process is gone; administrators' tools refuse a held
// mailbox. So within half a lease of that time, by this server's wall
// clock, the lock is still ours as long as the machines' clocks differ by
// less than half a lease minus the file system's attribute cache time
// (clocks are kept in sync: README "Several machines"). The session
// renews every third of a lease, so the trust runs on; a renewal after
// the trust lapsed (a frozen process) does not restore it. Deletions do
// not rely on this check: the rename-based steps fence them (commitLock).
// It stops a session that lost its lock from serving more messages
// (RETR, TOP).
func (h *heldLock) oursWithinLease(now time.Time) bool {
	if h.lost.Load() {
		return false
	}
	if now.UnixNano() < h.trustUntil.Load() {
		return true
	}
	return h.ours()
}

// releaseLock renames kcol.<holder> back to lock. It returns
// store.ErrLockLost when the lock was taken over.
func (s *Store) releaseLock(h *heldLock) error {
	err := renameNoReplace(h.path(), filepath.Join(h.dir, LockName))
	switch {
	case err == nil:
		return nil
	case errors.Is(err, os.ErrNotExist):
		h.lost.Store(true)
		return fmt.Errorf("cannot release the lock in %q: %w", h.dir, store.ErrLockLost)
	case errors.Is(err, os.ErrExist):
		// A second free lock appeared (a folder made by hand): ours goes.
		if rerr := os.Remove(h.path()); rerr != nil {
			return fmt.Errorf("cannot release the lock in %q: %w", h.dir, rerr)
		}
		return nil
	}
	return fmt.Errorf("cannot release the lock in %q: %w", h.dir, err)
}

// refreshLock renews the lease: the lock folder's mtime is the time of
// the last renewal (this server's clock, like the time in its name).
func (s *Store) refreshLock(h *heldLock) error {
	if h.lost.Load() {
		return store.ErrLockLost
	}
	now := s.now()
	onTime := now.UnixNano() < h.trustUntil.Load()
	if err := os.Chtimes(h.path(), now, now); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			h.lost.Store(true)
			return fmt.Errorf("cannot renew the lock in %q: %w", h.dir, store.ErrLockLost)
		}
		return fmt.Errorf("cannot renew the lock in %q: %w", h.dir, err)
	}
	// Only a renewal within the trusted half lease extends it: after a
	// longer gap (a frozen process) a contender may have judged the lock
	// stale from the old mtime and take it right after this renewal.
	if onTime {
		h.trust(now, s.lease)
	}
	return nil
}

// commitLock deletes the messages named files (in dir) under h, atomically
// with respect to a take-over:
//
//  1. each message is renamed into the lock folder by its path, which
//     fails once the folder was renamed away by a take-over;
//  2. the lock folder is fsynced, then renamed to lock.done.<token>: the
//     commit point, one rename that fails if the lock was taken over (the
//     taker then puts the messages back);
//  3. the messages are removed and lock.done.<token> becomes lock.
//
// It returns store.ErrLockLost, with nothing deleted, when the lock was
// lost before the commit point.
func (s *Store) commitLock(h *heldLock, files []string) (int, error) {
	lk := h.path()
	moved := make([]string, 0, len(files))
	undo := func() {
		for _, f := range moved {
			_ = os.Rename(filepath.Join(lk, delName(h.token, f)), filepath.Join(h.dir, f))
		}
	}
	for _, f := range files {
		err := os.Rename(filepath.Join(h.dir, f), filepath.Join(lk, delName(h.token, f)))
		if err == nil {
			moved = append(moved, f)
			continue
		}
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			if !h.ours() {
				return 0, fmt.Errorf("cannot commit in %q: %w", h.dir, store.ErrLockLost)
			}
			continue // the message is gone already
		}
		undo()
		return 0, fmt.Errorf("cannot commit in %q: %w", h.dir, err)
	}
	if err := durable.SyncDir(lk); err != nil {
		if !h.ours() {
			return 0, fmt.Errorf("cannot commit in %q: %w", h.dir, store.ErrLockLost)
		}
		undo()
		return 0, fmt.Errorf("cannot commit in %q: %w", h.dir, err)
	}
	// Anything in the folder that this commit did not put there came from
	// an earlier holder: it is not ours to delete. (A stray that lands
	// later keeps its own token and is put back by whoever empties the
	// folder next.)
	s.putBackStrays(lk, h.dir, h.token)
	done := filepath.Join(h.dir, donePrefix+h.token)
	if err := os.Rename(lk, done); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			h.lost.Store(true)
			return 0, fmt.Errorf("cannot commit in %q: %w", h.dir, store.ErrLockLost)
		}
		undo()
		return 0, fmt.Errorf("cannot commit in %q: %w", h.dir, err)
	}
	h.lost.Store(true) // the lock is released: nothing may use it any more
	if err := durable.SyncDir(h.dir); err != nil {
		// The commit point may not be durable: report the failure, as
		// RFC 1939 section 6 lets QUIT report that messages were not removed.
		return len(moved), fmt.Errorf("cannot commit in %q: %w", h.dir, err)
	}
	all := true
	for _, f := range moved {
		if err := os.Remove(filepath.Join(done, delName(h.token, f))); err != nil && !errors.Is(err, os.ErrNotExist) {
			all = false
		}
	}
	if all {
		// Another session may have taken lock.done.<token> meanwhile; then
		// this rename fails and that session cleared it.
		_ = renameNoReplace(done, filepath.Join(h.dir, LockName))
	}
	return len(moved), nil
}

// putBackStrays moves back into dir the messages in lock folder lk that
// are not deletions of token.
func (s *Store) putBackStrays(lk, dir, token string) {
	f, err := os.Open(lk)
	if err != nil {
		return
	}
	names, _ := f.Readdirnames(-1)
	f.Close()
	for _, e := range names {
		if tok, msg, ok := splitDel(e); ok && tok != token {
			_ = os.Rename(filepath.Join(lk, e), filepath.Join(dir, msg))
		}
	}
}

// lockStatus is what an administrator's look at a mailbox's lock found.
type lockStatus struct {
	admin bool
	inUse bool
	owner string
}

// lockStatus judges dir's lock without changing it.
func (s *Store) lockStatus(dir string) (lockStatus, error) {
	v, err := s.viewLock(dir)
	if err != nil {
		return lockStatus{}, err
	}
	if v.admin && v.oldSession == nil {
		return lockStatus{admin: true, owner: v.adminOwner}, nil
	}
	if v.oldSession != nil && s.now().Sub(v.oldSession.mtime) <= s.lease {
		return lockStatus{inUse: true, owner: "a session of an earlier version"}, nil
	}
	for _, n := range v.held {
		if h, stale := s.stale(dir, n); !stale {
			owner := readOwner(filepath.Join(dir, n), h.Token)
			if owner == "" {
				owner = h.owner()
			}
			return lockStatus{inUse: true, owner: owner}, nil
		}
	}
	return lockStatus{}, nil
}

// The owner file in a lock folder holds the holder's owner string
// (store.Sessions.OpenSession) for MailboxInfo.Owner. It is made with
// ownerFileSize octets when the mailbox is created and overwritten in
// place by each holder, which needs no new disk space: on a full file
// system the owner is still recorded. It is only trusted when it names the
// token of the folder's holder.
const (
	ownerFile     = "owner"
	ownerFileSize = 1024
	maxOwnerLen   = 512
)

func ownerRecord(token, owner string) []byte {
	if len(owner) > maxOwnerLen {
		owner = owner[:maxOwnerLen]
	}
	owner = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '?'
		}
		return r
	}, owner)
	b := make([]byte, 0, ownerFileSize)
	b = append(b, "token="+token+"\nowner="+owner+"\n"...)
	for len(b) < ownerFileSize {
		b = append(b, ' ')
	}
	return b[:ownerFileSize]
}

// writeOwner records owner in the lock folder lk; best effort.
func (s *Store) writeOwner(lk, token, owner string) {
	f, err := os.OpenFile(filepath.Join(lk, ownerFile), os.O_WRONLY|os.O_CREATE|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return
	}
	_, _ = f.WriteAt(ownerRecord(token, owner), 0)
	f.Close()
}

// readOwner returns the owner recorded in lock folder lk by the holder
// with token, or "".
func readOwner(lk, token string) string {
	b, err := durable.ReadSmall(filepath.Join(lk, ownerFile), ownerFileSize)
	if err != nil {
		return ""
	}
	var tok, owner string
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "token="); ok {
			tok = v
		} else if v, ok := strings.CutPrefix(l, "owner="); ok {
			owner = v
		}
	}
	if tok != token {
		return ""
	}
	return owner
}
