//go:build linux

package filestore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"github.com/pop3svc/pop3svc/store/durable"

	"golang.org/x/sys/unix"

	"github.com/pop3svc/pop3svc/store"
	"github.com/pop3svc/pop3svc/store/credential"
)

// CreateDomain makes the domain folder.
func (s *Store) CreateDomain(ctx context.Context, name string) error {
	d, err := store.CanonicalDomain(name)
	if err != nil {
		return fmt.Errorf("cannot create domain: %w", err)
	}
	if err := ctxErr(ctx); err != nil {
		return err
	}
	if err := os.Mkdir(s.domainPath(d), 0o700); err != nil {
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("cannot create domain %s: %w", d, store.ErrDomainExists)
		}
		return fmt.Errorf("cannot create domain %s: %w", d, err)
	}
	return durable.SyncDir(s.root)
}

// DeleteDomain removes a domain; with force, its mailboxes too, unless a
// live session holds one of them (ErrMailboxInUse).
func (s *Store) DeleteDomain(ctx context.Context, name string, force bool) error {
	d, err := store.CanonicalDomain(name)
	if err != nil {
		return fmt.Errorf("cannot delete domain: %w", err)
	}
	if err := ctxErr(ctx); err != nil {
		return err
	}
	if err := s.checkDomain(d); err != nil {
		return fmt.Errorf("cannot delete domain %s: %w", d, err)
	}
	names, err := s.mailboxNames(d)
	if err != nil {
		return fmt.Errorf("cannot delete domain %s: %w", d, err)
	}
	if len(names) > 0 && !force {
		return fmt.Errorf("cannot delete domain %s: %d mailboxes: %w", d, len(names), store.ErrDomainNotEmpty)
	}
	// Hold every mailbox (a held one refuses the whole deletion) so that
	// no session opens while the folder goes.
	var held []*heldLock
	defer func() {
		for _, h := range held {
			_ = s.releaseLock(h)
		}
	}()
	for _, m := range names {
		h, err := s.acquireLock(s.mboxPath(store.Address{Mailbox: m, Domain: d}), "delete domain")
		switch {
		case err == nil:
			held = append(held, h)
		case errors.Is(err, store.ErrMailboxLocked), errors.Is(err, store.ErrNoSuchMailbox):
		default:
			return fmt.Errorf("cannot delete domain %s: mailbox %s@%s: %w", d, m, d, err)
		}
	}
	if err := s.removeTree(s.domainPath(d), s.root, "domain "+d); err != nil {
		return err
	}
	held = nil // gone with the folder
	return nil
}

// removeTree moves a folder into the trash (one atomic rename: it is gone
// for every reader at once), fsyncs its parent, then deletes it.
func (s *Store) removeTree(path, parent, what string) error {
	aside := filepath.Join(s.trash, filepath.Base(path)+"."+randomString())
	if err := os.Rename(path, aside); err != nil {
		return fmt.Errorf("cannot delete %s: %w", what, err)
	}
	if err := durable.SyncDir(parent); err != nil {
		return err
	}
	if err := os.RemoveAll(aside); err != nil {
		s.log.Warn("cannot empty trash", "folder", aside, "err", err)
	}
	return nil
}

// ListDomains lists the domains in name order.
func (s *Store) ListDomains(ctx context.Context) ([]store.DomainInfo, error) {
	ents, err := os.ReadDir(s.root)
	if err != nil {
		return nil, fmt.Errorf("cannot list domains: %w", err)
	}
	var out []store.DomainInfo
	for _, e := range ents {
		if !e.IsDir() || store.ValidateDomain(e.Name()) != nil {
			continue
		}
		if err := ctxErr(ctx); err != nil {
			return nil, err
		}
		di, err := s.domainInfo(e.Name())
		if err != nil {
			if errors.Is(err, store.ErrNoSuchDomain) {
				continue // deleted meanwhile
			}
			return nil, err
		}
		out = append(out, di)
	}
	return out, nil
}

// Domain describes one domain with its totals.
func (s *Store) Domain(ctx context.Context, name string) (store.DomainInfo, error) {
	d, err := store.CanonicalDomain(name)
	if err != nil {
		return store.DomainInfo{}, fmt.Errorf("cannot read domain: %w", err)
	}
	if err := ctxErr(ctx); err != nil {
		return store.DomainInfo{}, err
	}
	return s.domainInfo(d)
}

func (s *Store) domainInfo(d string) (store.DomainInfo, error) {
	if err := s.checkDomain(d); err != nil {
		return store.DomainInfo{}, err
	}
	names, err := s.mailboxNames(d)
	if err != nil {
		return store.DomainInfo{}, fmt.Errorf("cannot read domain %s: %w", d, err)
	}
	di := store.DomainInfo{Name: d, Locked: s.domainLocked(d), Mailboxes: len(names)}
	for _, m := range names {
		n, b, err := usage(s.mboxPath(store.Address{Mailbox: m, Domain: d}))
		if err != nil {
			continue // deleted meanwhile
		}
		di.Messages += n
		di.Bytes += b
	}
	return di, nil
}

// mailboxNames lists the valid mailbox folders of a domain, sorted.
func (s *Store) mailboxNames(d string) ([]string, error) {
	ents, err := os.ReadDir(s.domainPath(d))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("domain %s: %w", d, store.ErrNoSuchDomain)
		}
		return nil, err
	}
	var out []string
	for _, e := range ents {
		n := e.Name()
		if !e.IsDir() || !strings.HasPrefix(n, mboxPrefix) || !strings.HasSuffix(n, mboxSuffix) {
			continue
		}
		m := n[len(mboxPrefix) : len(n)-len(mboxSuffix)]
		if store.ValidateMailbox(m) != nil || strings.ToLower(m) != m {
			continue
		}
		out = append(out, m)
	}
	sort.Strings(out)
	return out, nil
}

// LockDomain creates the domain lock marker.
func (s *Store) LockDomain(ctx context.Context, name string) error {
	d, err := store.CanonicalDomain(name)
	if err != nil {
		return fmt.Errorf("cannot lock domain: %w", err)
	}
	if err := s.checkDomain(d); err != nil {
		return fmt.Errorf("cannot lock domain %s: %w", d, err)
	}
	return durable.WriteFile(filepath.Join(s.domainPath(d), DomainLocked), []byte("locked by the administrator\n"), 0o600)
}

// UnlockDomain removes the domain lock marker.
func (s *Store) UnlockDomain(ctx context.Context, name string) error {
	d, err := store.CanonicalDomain(name)
	if err != nil {
		return fmt.Errorf("cannot unlock domain: %w", err)
	}
	if err := s.checkDomain(d); err != nil {
		return fmt.Errorf("cannot unlock domain %s: %w", d, err)
	}
	if err := os.Remove(filepath.Join(s.domainPath(d), DomainLocked)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("cannot unlock domain %s: %w", d, err)
	}
	return durable.SyncDir(s.domainPath(d))
}

// CreateMailbox makes the mailbox folder with its lock and quota files
// and, for a non-empty password, its password file.
func (s *Store) CreateMailbox(ctx context.Context, addr store.Address, password string) error {
	a, err := canonAddr(addr)
	if err != nil {
		return fmt.Errorf("cannot create mailbox: %w", err)
	}
	if err := ctxErr(ctx); err != nil {
		return err
	}
	if len(password) > MaxPasswordLen {
		return fmt.Errorf("cannot create mailbox %s: password longer than %d octets", a, MaxPasswordLen)
	}
	if err := s.checkDomain(a.Domain); err != nil {
		return fmt.Errorf("cannot create mailbox %s: %w", a, err)
	}
	dir := s.mboxPath(a)
	if err := os.Mkdir(dir, 0o700); err != nil {
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("cannot create mailbox %s: %w", a, store.ErrMailboxExists)
		}
		return fmt.Errorf("cannot create mailbox %s: %w", a, err)
	}
	err = func() error {
		// The free lock is a folder: taking it is a rename (see lock.go).
		if err := os.Mkdir(filepath.Join(dir, LockName), 0o700); err != nil {
			return err
		}
		if err := durable.WriteFile(filepath.Join(dir, LockName, ownerFile), ownerRecord("", ""), 0o600); err != nil {
			return err
		}
		if err := durable.WriteFile(filepath.Join(dir, QuotaName), []byte("0\n"), 0o600); err != nil {
			return err
		}
		if password != "" {
			r, err := s.hasher.New(ctx, s.key, a, password)
			if err != nil {
				return err
			}
			if err := writePasswd(dir, r); err != nil {
				return err
			}
		}
		return durable.SyncDir(s.domainPath(a.Domain))
	}()
	if err != nil {
		_ = os.RemoveAll(dir)
		return fmt.Errorf("cannot create mailbox %s: %w", a, err)
	}
	return nil
}

// DeleteMailbox removes a mailbox and its messages. A mailbox held by a
// live session is refused with ErrMailboxInUse (deleting files under a
// session that is reading them would break its RETR and its QUIT); an
// administrator's lock does not stop the administrator.
func (s *Store) DeleteMailbox(ctx context.Context, addr store.Address) error {
	a, err := canonAddr(addr)
	if err != nil {
		return fmt.Errorf("cannot delete mailbox: %w", err)
	}
	if err := ctxErr(ctx); err != nil {
		return err
	}
	if err := s.checkMailbox(a); err != nil {
		return fmt.Errorf("cannot delete mailbox %s: %w", a, err)
	}
	dir := s.mboxPath(a)
	h, err := s.acquireLock(dir, "delete mailbox")
	if err != nil && !errors.Is(err, store.ErrMailboxLocked) {
		return fmt.Errorf("cannot delete mailbox %s: %w", a, err)
	}
	if err := s.removeTree(dir, s.domainPath(a.Domain), "mailbox "+a.String()); err != nil {
		if h != nil {
			_ = s.releaseLock(h)
		}
		return err
	}
	return nil
}

// RenameMailbox renames a mailbox in its domain. A mailbox held by a live
// session is refused with ErrMailboxInUse. The password file is sealed to
// the address, so it is sealed again under the new name.
func (s *Store) RenameMailbox(ctx context.Context, from store.Address, to string) error {
	a, err := canonAddr(from)
	if err != nil {
		return fmt.Errorf("cannot rename mailbox: %w", err)
	}
	b, err := canonAddr(store.Address{Mailbox: to, Domain: a.Domain})
	if err != nil {
		return fmt.Errorf("cannot rename mailbox %s: %w", a, err)
	}
	if err := ctxErr(ctx); err != nil {
		return err
	}
	if err := s.checkMailbox(a); err != nil {
		return fmt.Errorf("cannot rename mailbox %s: %w", a, err)
	}
	if a == b {
		return nil
	}
	src, dst := s.mboxPath(a), s.mboxPath(b)
	if _, err := os.Lstat(dst); err == nil {
		return fmt.Errorf("cannot rename mailbox %s to %s: %w", a, b, store.ErrMailboxExists)
	}
	h, err := s.acquireLock(src, "rename mailbox")
	if err != nil && !errors.Is(err, store.ErrMailboxLocked) {
		return fmt.Errorf("cannot rename mailbox %s: %w", a, err)
	}
	var resealed *credential.Record
	rec, perr := readPasswd(src)
	if perr == nil {
		if resealed, err = rec.Reseal(s.key, a, b); err != nil {
			s.log.Warn("cannot re-seal the password file on rename", "mailbox", a.String(), "err", err)
		}
	}
	if err := renameNoReplace(src, dst); err != nil {
		if h != nil {
			_ = s.releaseLock(h)
		}
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("cannot rename mailbox %s to %s: %w", a, b, store.ErrMailboxExists)
		}
		return fmt.Errorf("cannot rename mailbox %s to %s: %w", a, b, err)
	}
	if err := durable.SyncDir(s.domainPath(a.Domain)); err != nil {
		return err
	}
	if resealed != nil {
		if err := writePasswd(dst, resealed); err != nil {
			s.log.Warn("cannot re-seal the password file on rename", "mailbox", b.String(), "err", err)
		}
	}
	if h != nil {
		h.dir = dst
		return s.releaseLock(h)
	}
	return nil
}

// renameNoReplace renames without ever replacing an existing target
// (a plain rename would replace an empty folder).
func renameNoReplace(src, dst string) error {
	err := unix.Renameat2(unix.AT_FDCWD, src, unix.AT_FDCWD, dst, unix.RENAME_NOREPLACE)
	if err == nil {
		return nil
	}
	if err == unix.EEXIST {
		return os.ErrExist
	}
	if err != unix.EINVAL && err != unix.ENOSYS {
		return &os.LinkError{Op: "rename", Old: src, New: dst, Err: err}
	}
	// The file system lacks RENAME_NOREPLACE (NFS, GlusterFS): check, then
	// rename. A plain rename replaces only a file or an empty folder; lock
	// folders always hold their owner file, so a lock is never replaced.
	if _, err := os.Lstat(dst); err == nil {
		return os.ErrExist
	}
	err = os.Rename(src, dst)
	if errors.Is(err, syscall.ENOTEMPTY) || errors.Is(err, syscall.EEXIST) {
		return os.ErrExist
	}
	return err
}

// ListMailboxes describes every mailbox of a domain, in name order.
func (s *Store) ListMailboxes(ctx context.Context, domain string) ([]store.MailboxInfo, error) {
	d, err := store.CanonicalDomain(domain)
	if err != nil {
		return nil, fmt.Errorf("cannot list mailboxes: %w", err)
	}
	names, err := s.mailboxNames(d)
	if err != nil {
		return nil, fmt.Errorf("cannot list mailboxes of %s: %w", d, err)
	}
	out := make([]store.MailboxInfo, 0, len(names))
	for _, m := range names {
		if err := ctxErr(ctx); err != nil {
			return nil, err
		}
		mi, err := s.mailboxInfo(store.Address{Mailbox: m, Domain: d})
		if err != nil {
			if errors.Is(err, store.ErrNoSuchMailbox) {
				continue
			}
			return nil, err
		}
		out = append(out, mi)
	}
	return out, nil
}

// ListMailboxNames lists the domain's mailbox names, sorted, reading
// only the domain's folder (store.MailboxLister).
func (s *Store) ListMailboxNames(ctx context.Context, domain string) ([]string, error) {
	d, err := store.CanonicalDomain(domain)
	if err != nil {
		return nil, fmt.Errorf("cannot list mailboxes: %w", err)
	}
	if err := ctxErr(ctx); err != nil {
		return nil, err
	}
	names, err := s.mailboxNames(d)
	if err != nil {
		return nil, fmt.Errorf("cannot list mailboxes of %s: %w", d, err)
	}
	return names, nil
}

var _ store.MailboxLister = (*Store)(nil)

// Mailbox describes one mailbox.
func (s *Store) Mailbox(ctx context.Context, addr store.Address) (store.MailboxInfo, error) {
	a, err := canonAddr(addr)
	if err != nil {
		return store.MailboxInfo{}, fmt.Errorf("cannot read mailbox: %w", err)
	}
	if err := ctxErr(ctx); err != nil {
		return store.MailboxInfo{}, err
	}
	if err := s.checkMailbox(a); err != nil {
		return store.MailboxInfo{}, err
	}
	return s.mailboxInfo(a)
}

func (s *Store) mailboxInfo(a store.Address) (store.MailboxInfo, error) {
	dir := s.mboxPath(a)
	ls, err := s.lockStatus(dir)
	if err != nil {
		if errors.Is(err, store.ErrNoSuchMailbox) {
			return store.MailboxInfo{}, fmt.Errorf("mailbox %s: %w", a, store.ErrNoSuchMailbox)
		}
		return store.MailboxInfo{}, err
	}
	mi := store.MailboxInfo{Address: a}
	mi.Locked = ls.admin || s.domainLocked(a.Domain)
	if ls.inUse {
		mi.InUse = true
		mi.Owner = ls.owner
	}
	if mi.Messages, mi.Bytes, err = usage(dir); err != nil {
		return store.MailboxInfo{}, fmt.Errorf("cannot read mailbox %s: %w", a, err)
	}
	if mi.Quota, err = s.effectiveQuota(dir); err != nil {
		return store.MailboxInfo{}, fmt.Errorf("cannot read mailbox %s: %w", a, err)
	}
	_, err = os.Lstat(filepath.Join(dir, PasswdName))
	mi.HasPassword = err == nil
	return mi, nil
}

// LockMailbox takes the administrator's lock: it takes the session lock
// and renames it to kcol. A mailbox held by a live session is refused
// with ErrMailboxInUse; locking a locked mailbox is not an error.
func (s *Store) LockMailbox(ctx context.Context, addr store.Address) error {
	a, err := canonAddr(addr)
	if err != nil {
		return fmt.Errorf("cannot lock mailbox: %w", err)
	}
	if err := s.checkMailbox(a); err != nil {
		return fmt.Errorf("cannot lock mailbox %s: %w", a, err)
	}
	dir := s.mboxPath(a)
	h, err := s.acquireLock(dir, "administrator")
	if err != nil {
		if errors.Is(err, store.ErrMailboxLocked) {
			return nil
		}
		return fmt.Errorf("cannot lock mailbox %s: %w", a, err)
	}
	if err := renameNoReplace(h.path(), filepath.Join(dir, KcolName)); err != nil {
		_ = s.releaseLock(h)
		if errors.Is(err, os.ErrExist) {
			return nil
		}
		return fmt.Errorf("cannot lock mailbox %s: %w", a, err)
	}
	return durable.SyncDir(dir)
}

// UnlockMailbox releases the administrator's lock (kcol becomes lock
// again); a mailbox not locked by the administrator is left as it is.
func (s *Store) UnlockMailbox(ctx context.Context, addr store.Address) error {
	a, err := canonAddr(addr)
	if err != nil {
		return fmt.Errorf("cannot unlock mailbox: %w", err)
	}
	if err := s.checkMailbox(a); err != nil {
		return fmt.Errorf("cannot unlock mailbox %s: %w", a, err)
	}
	dir := s.mboxPath(a)
	ls, err := s.lockStatus(dir)
	if err != nil {
		return fmt.Errorf("cannot unlock mailbox %s: %w", a, err)
	}
	if !ls.admin {
		return nil
	}
	kcol := filepath.Join(dir, KcolName)
	if err := renameNoReplace(kcol, filepath.Join(dir, LockName)); err != nil {
		if !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("cannot unlock mailbox %s: %w", a, err)
		}
		// A free lock exists as well (made by hand): kcol goes.
		if err := os.Remove(kcol); err != nil {
			return fmt.Errorf("cannot unlock mailbox %s: %w", a, err)
		}
	}
	return durable.SyncDir(dir)
}

// SetQuota writes the quota file; 0 removes the quota.
func (s *Store) SetQuota(ctx context.Context, addr store.Address, bytes int64) error {
	a, err := canonAddr(addr)
	if err != nil {
		return fmt.Errorf("cannot set quota: %w", err)
	}
	if bytes < 0 {
		return fmt.Errorf("cannot set quota of %s: %d octets is negative", a, bytes)
	}
	if err := s.checkMailbox(a); err != nil {
		return fmt.Errorf("cannot set quota of %s: %w", a, err)
	}
	return durable.WriteFile(filepath.Join(s.mboxPath(a), QuotaName), []byte(strconv.FormatInt(bytes, 10)+"\n"), 0o600)
}

// Quota returns the quota enforced on the mailbox: its quota file, or
// Options.DomainQuotaDefault when the file holds 0 or is missing.
func (s *Store) Quota(ctx context.Context, addr store.Address) (int64, error) {
	a, err := canonAddr(addr)
	if err != nil {
		return 0, fmt.Errorf("cannot read quota: %w", err)
	}
	if err := s.checkMailbox(a); err != nil {
		return 0, fmt.Errorf("cannot read quota of %s: %w", a, err)
	}
	return s.effectiveQuota(s.mboxPath(a))
}

// Usage counts the mailbox's messages and octets.
func (s *Store) Usage(ctx context.Context, addr store.Address) (int, int64, error) {
	a, err := canonAddr(addr)
	if err != nil {
		return 0, 0, fmt.Errorf("cannot read usage: %w", err)
	}
	if err := s.checkMailbox(a); err != nil {
		return 0, 0, fmt.Errorf("cannot read usage of %s: %w", a, err)
	}
	n, b, err := usage(s.mboxPath(a))
	if err != nil {
		return 0, 0, fmt.Errorf("cannot read usage of %s: %w", a, err)
	}
	return n, b, nil
}
