//go:build linux

package filestore

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pop3svc/pop3svc/store"
)

// DefaultCleanInterval is how often Run looks for crash leftovers.
const DefaultCleanInterval = time.Hour

// leftoverGrace is how old a leftover of the lock protocol must be before
// the cleaner touches it: steps in progress take milliseconds.
const leftoverGrace = time.Minute

// CleanReport counts what one Clean removed or put back.
type CleanReport struct {
	Tmp      int // files in .pop3/tmp of dead writers
	Locks    int // lock leftovers: stale holders freed, old temporary records, committed deletions
	Restored int // messages put back from an unfinished Commit of a dead session
	Trash    int // folders in .pop3/trash whose deletion a crash interrupted
}

// Clean removes what crashed processes left in the store: temporary files
// of writers that are gone (this node's at once, others' after
// TmpMaxAge), interrupted folder deletions, and in every mailbox the
// leftovers of the lock protocol: a stale session lock (its holder dead or
// its lease lapsed) is taken over and freed, putting back the messages an
// unfinished Commit had moved, messages a finished Commit left to remove
// are removed, and temporary lock records of the earlier protocol go.
// Every server sharing the store may run it at any time: each step is a
// rename or unlink by name that fails harmlessly when another did it first.
func (s *Store) Clean(ctx context.Context) CleanReport {
	var r CleanReport
	r.Tmp = s.cleanTmp()
	r.Trash = s.cleanTrash()
	ents, err := os.ReadDir(s.root)
	if err == nil {
		for _, e := range ents {
			if !e.IsDir() || store.ValidateDomain(e.Name()) != nil {
				continue
			}
			names, err := s.mailboxNames(e.Name())
			if err != nil {
				continue
			}
			for _, m := range names {
				if ctxErr(ctx) != nil {
					return r
				}
				s.cleanMailbox(s.mboxPath(store.Address{Mailbox: m, Domain: e.Name()}), &r)
			}
		}
	}
	mLeftoverTmp.Add(r.Tmp)
	mLeftoverLock.Add(r.Locks)
	mLeftoverRestored.Add(r.Restored)
	mLeftoverTrash.Add(r.Trash)
	if r != (CleanReport{}) {
		s.log.Info("cleaned crash leftovers", "tmp", r.Tmp, "locks", r.Locks, "restored", r.Restored, "trash", r.Trash)
	}
	return r
}

// Run cleans at once and then every interval (0: DefaultCleanInterval)
// until ctx ends.
func (s *Store) Run(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		interval = DefaultCleanInterval
	}
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s.Clean(ctx)
		t.Reset(interval)
	}
}

func (s *Store) cleanMailbox(dir string, r *CleanReport) {
	f, err := os.Open(dir)
	if err != nil {
		return
	}
	var stale, done, old []string
	hasLock := false
	for {
		names, err := f.Readdirnames(1024)
		for _, n := range names {
			switch {
			case n == LockName:
				hasLock = true
			case strings.HasPrefix(n, heldPrefix):
				if _, st := s.stale(dir, n); st {
					stale = append(stale, n)
				}
			case strings.HasPrefix(n, donePrefix):
				done = append(done, n)
			case strings.HasPrefix(n, legacyPrefix):
			case strings.HasPrefix(n, oldTmpPrefix) && len(n) == len(oldTmpPrefix)+32:
				old = append(old, n)
			}
		}
		if err != nil {
			break
		}
	}
	f.Close()
	for _, n := range old {
		if s.olderThan(filepath.Join(dir, n), leftoverGrace) && os.Remove(filepath.Join(dir, n)) == nil {
			r.Locks++
		}
	}
	for _, n := range done {
		p := filepath.Join(dir, n)
		if !s.olderThan(p, leftoverGrace) {
			continue
		}
		s.clearDone(p, dir, strings.TrimPrefix(n, donePrefix))
		if renameNoReplace(p, filepath.Join(dir, LockName)) != nil {
			_ = os.Remove(p) // a free lock exists already
		}
		r.Locks++
	}
	// A stale holder, or uncommitted deletions left in the free lock (a
	// take-over that crashed halfway): take the lock, which puts the
	// messages back, and release it.
	needLock := len(stale) > 0
	if !needLock && hasLock {
		if lf, err := os.Open(filepath.Join(dir, LockName)); err == nil {
			names, _ := lf.Readdirnames(1)
			lf.Close()
			needLock = len(names) > 0
		}
	}
	if !needLock {
		return
	}
	h, err := s.acquireLock(dir, "store cleaner")
	if err != nil {
		return
	}
	r.Restored += h.restored + s.restore(h.path(), dir)
	if len(stale) > 0 {
		r.Locks++
	}
	_ = s.releaseLock(h)
}

// olderThan reports whether path's status changed more than d ago (ctime:
// renames set it, so it dates the step that left the file there).
func (s *Store) olderThan(path string, d time.Duration) bool {
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		return false
	}
	return s.now().Sub(time.Unix(st.Ctim.Unix())) > d
}

// cleanTmp removes files left in the tmp folder by writers that died: at
// once for this node's writers whose process is gone (the name holds the
// node and pid), after TmpMaxAge for the others. Staged copies
// (staged.<key>, see Stage) are not leftovers: they stay until published.
func (s *Store) cleanTmp() int {
	ents, err := os.ReadDir(s.tmp)
	if err != nil {
		return 0
	}
	limit := s.now().Add(-s.opts.TmpMaxAge)
	n := 0
	for _, e := range ents {
		name := e.Name()
		if strings.HasPrefix(name, stagedPrefix) {
			continue // a staged copy: its delivery service publishes it
		}
		dead := false
		if f := strings.SplitN(name, ".", 3); len(f) == 3 && f[0] == strconv.Itoa(s.opts.Node) {
			if pid, err := strconv.Atoi(f[1]); err == nil && pid != s.self.PID {
				_, perr := procStart(pid)
				dead = perr != nil
			}
		}
		if !dead {
			fi, err := e.Info()
			if err != nil || fi.ModTime().After(limit) {
				continue
			}
		}
		if err := os.Remove(filepath.Join(s.tmp, name)); err == nil {
			s.log.Info("removed a temporary file left by a dead writer", "file", name)
			n++
		}
	}
	return n
}

// cleanTrash finishes deletions interrupted by a crash.
func (s *Store) cleanTrash() int {
	ents, err := os.ReadDir(s.trash)
	if err != nil {
		return 0
	}
	n := 0
	for _, e := range ents {
		p := filepath.Join(s.trash, e.Name())
		fi, err := os.Lstat(p)
		if err != nil || fi.ModTime().After(s.now().Add(-time.Minute)) {
			continue // possibly another server's deletion in progress
		}
		if os.RemoveAll(p) == nil {
			n++
		}
	}
	return n
}
