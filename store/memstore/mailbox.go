package memstore

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/pop3svc/pop3svc/store"
	"github.com/pop3svc/pop3svc/store/credential"
)

// CreateMailbox adds an empty mailbox with, for a non-empty password,
// password-file credentials. The existence checks come before the hash.
func (s *Store) CreateMailbox(ctx context.Context, addr store.Address, password string) error {
	a, err := store.CanonicalAddress(addr)
	if err != nil {
		return fmt.Errorf("cannot create mailbox: %w", err)
	}
	if err := ctxErr(ctx); err != nil {
		return err
	}
	if len(password) > credential.MaxPasswordLen {
		return fmt.Errorf("cannot create mailbox %s: password longer than %d octets", a, credential.MaxPasswordLen)
	}
	check := func() error {
		_, m, err := s.lookup(a)
		if m != nil {
			return fmt.Errorf("cannot create mailbox %s: %w", a, store.ErrMailboxExists)
		}
		if errors.Is(err, store.ErrNoSuchDomain) {
			return fmt.Errorf("cannot create mailbox %s: %w", a, err)
		}
		return nil
	}
	s.mu.RLock()
	err = check()
	s.mu.RUnlock()
	if err != nil {
		return err
	}
	var rec *credential.Record
	if password != "" {
		if rec, err = s.hasher.New(ctx, s.key, a, password); err != nil {
			return fmt.Errorf("cannot create mailbox %s: %w", a, err)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := check(); err != nil {
		return err
	}
	s.domains[a.Domain].boxes[a.Mailbox] = &mailbox{cred: rec}
	return nil
}

// DeleteMailbox removes a mailbox and its messages. A mailbox held by a
// session is refused with ErrMailboxInUse; an administrator's lock does
// not stop the administrator.
func (s *Store) DeleteMailbox(ctx context.Context, addr store.Address) error {
	a, err := store.CanonicalAddress(addr)
	if err != nil {
		return fmt.Errorf("cannot delete mailbox: %w", err)
	}
	if err := ctxErr(ctx); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	d, m, err := s.lookup(a)
	if err != nil {
		return fmt.Errorf("cannot delete mailbox %s: %w", a, err)
	}
	if m.holder != nil {
		return fmt.Errorf("cannot delete mailbox %s: %w (held by %s)", a, store.ErrMailboxInUse, m.holder.owner)
	}
	delete(d.boxes, a.Mailbox)
	return nil
}

// RenameMailbox renames a mailbox in its domain, with its messages, quota
// and locks. A mailbox held by a session is refused with ErrMailboxInUse.
// The credentials are sealed to the address, so they are sealed again
// under the new name.
func (s *Store) RenameMailbox(ctx context.Context, from store.Address, to string) error {
	a, err := store.CanonicalAddress(from)
	if err != nil {
		return fmt.Errorf("cannot rename mailbox: %w", err)
	}
	b, err := store.CanonicalAddress(store.Address{Mailbox: to, Domain: a.Domain})
	if err != nil {
		return fmt.Errorf("cannot rename mailbox %s: %w", a, err)
	}
	if err := ctxErr(ctx); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	d, m, err := s.lookup(a)
	if err != nil {
		return fmt.Errorf("cannot rename mailbox %s: %w", a, err)
	}
	if a == b {
		return nil
	}
	if d.boxes[b.Mailbox] != nil {
		return fmt.Errorf("cannot rename mailbox %s to %s: %w", a, b, store.ErrMailboxExists)
	}
	if m.holder != nil {
		return fmt.Errorf("cannot rename mailbox %s: %w (held by %s)", a, store.ErrMailboxInUse, m.holder.owner)
	}
	if m.cred != nil {
		rec, err := m.cred.Reseal(s.key, a, b)
		if err != nil {
			return fmt.Errorf("cannot rename mailbox %s: %w", a, err)
		}
		m.cred = rec
	}
	delete(d.boxes, a.Mailbox)
	d.boxes[b.Mailbox] = m
	return nil
}

// ListMailboxes describes every mailbox of a domain, in name order.
func (s *Store) ListMailboxes(ctx context.Context, domain string) ([]store.MailboxInfo, error) {
	d, dom, unlock, err := s.readDomain(ctx, domain)
	if err != nil {
		return nil, err
	}
	defer unlock()
	out := make([]store.MailboxInfo, 0, len(dom.boxes))
	for name, m := range dom.boxes {
		out = append(out, s.mailboxInfo(store.Address{Mailbox: name, Domain: d}, dom, m))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Address.Mailbox < out[j].Address.Mailbox })
	return out, nil
}

// readDomain finds a domain for listing, under the store's read lock,
// which the caller releases with unlock.
func (s *Store) readDomain(ctx context.Context, name string) (string, *domain, func(), error) {
	d, err := store.CanonicalDomain(name)
	if err != nil {
		return "", nil, nil, fmt.Errorf("cannot list mailboxes: %w", err)
	}
	if err := ctxErr(ctx); err != nil {
		return "", nil, nil, err
	}
	s.mu.RLock()
	dom := s.domains[d]
	if dom == nil {
		s.mu.RUnlock()
		return "", nil, nil, fmt.Errorf("cannot list mailboxes of %s: %w", d, store.ErrNoSuchDomain)
	}
	return d, dom, s.mu.RUnlock, nil
}

// ListMailboxNames lists the domain's mailbox names, sorted
// (store.MailboxLister).
func (s *Store) ListMailboxNames(ctx context.Context, domain string) ([]string, error) {
	_, dom, unlock, err := s.readDomain(ctx, domain)
	if err != nil {
		return nil, err
	}
	defer unlock()
	out := make([]string, 0, len(dom.boxes))
	for name := range dom.boxes {
		out = append(out, name)
	}
	sort.Strings(out)
	return out, nil
}

var _ store.MailboxLister = (*Store)(nil)

// Mailbox describes one mailbox.
func (s *Store) Mailbox(ctx context.Context, addr store.Address) (store.MailboxInfo, error) {
	a, err := store.CanonicalAddress(addr)
	if err != nil {
		return store.MailboxInfo{}, fmt.Errorf("cannot read mailbox: %w", err)
	}
	if err := ctxErr(ctx); err != nil {
		return store.MailboxInfo{}, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	d, m, err := s.lookup(a)
	if err != nil {
		return store.MailboxInfo{}, err
	}
	return s.mailboxInfo(a, d, m), nil
}

func (s *Store) mailboxInfo(a store.Address, d *domain, m *mailbox) store.MailboxInfo {
	mi := store.MailboxInfo{
		Address:     a,
		Locked:      m.admin || d.locked,
		InUse:       m.holder != nil,
		Messages:    len(m.msgs),
		Bytes:       m.bytes,
		Quota:       s.effectiveQuota(m),
		HasPassword: m.cred != nil,
	}
	if m.holder != nil {
		mi.Owner = m.holder.owner
	}
	return mi
}

// LockMailbox takes the administrator's lock. A mailbox held by a session
// is refused with ErrMailboxInUse; locking a locked mailbox is not an
// error.
func (s *Store) LockMailbox(ctx context.Context, addr store.Address) error {
	return s.withMailbox(addr, true, "lock mailbox", func(a store.Address, _ *domain, m *mailbox) error {
		if m.holder != nil {
			return fmt.Errorf("cannot lock mailbox %s: %w (held by %s)", a, store.ErrMailboxInUse, m.holder.owner)
		}
		m.admin = true
		return nil
	})
}

// UnlockMailbox releases the administrator's lock; a mailbox not locked
// by the administrator is left as it is.
func (s *Store) UnlockMailbox(ctx context.Context, addr store.Address) error {
	return s.withMailbox(addr, true, "unlock mailbox", func(_ store.Address, _ *domain, m *mailbox) error {
		m.admin = false
		return nil
	})
}

// SetPassword replaces the mailbox's credentials; an empty password
// removes them. The hash is computed outside the store's lock.
func (s *Store) SetPassword(ctx context.Context, addr store.Address, password string) error {
	a, err := store.CanonicalAddress(addr)
	if err != nil {
		return fmt.Errorf("cannot set password: %w", err)
	}
	if err := ctxErr(ctx); err != nil {
		return err
	}
	if len(password) > credential.MaxPasswordLen {
		return fmt.Errorf("cannot set password of %s: longer than %d octets", a, credential.MaxPasswordLen)
	}
	s.mu.RLock()
	_, _, err = s.lookup(a)
	s.mu.RUnlock()
	if err != nil {
		return fmt.Errorf("cannot set password of %s: %w", a, err)
	}
	var rec *credential.Record
	if password != "" {
		if rec, err = s.hasher.New(ctx, s.key, a, password); err != nil {
			return fmt.Errorf("cannot set password of %s: %w", a, err)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	// Renamed or deleted meanwhile: the record is sealed to a name that
	// is gone.
	_, m, err := s.lookup(a)
	if err != nil {
		return fmt.Errorf("cannot set password of %s: %w", a, err)
	}
	m.cred = rec
	return nil
}

// VerifyPassword checks password against the mailbox's hash (argon2id,
// bcrypt or SHA-512-crypt). An invalid name, an unknown mailbox, a
// mailbox without a password and a wrong password all cost one hash with
// the current parameters and return ErrAuthFailed. A success with a hash
// made with other parameters than the current ones, or without the
// challenge secrets, replaces the record with the current hash, unless
// the password was changed meanwhile.
func (s *Store) VerifyPassword(ctx context.Context, addr store.Address, password string) error {
	if err := ctxErr(ctx); err != nil {
		return err
	}
	var rec *credential.Record
	a, err := store.CanonicalAddress(addr)
	if err == nil {
		s.mu.RLock()
		if _, m, err := s.lookup(a); err == nil {
			rec = m.cred
		}
		s.mu.RUnlock()
	}
	if err := s.hasher.Verify(ctx, rec, password); err != nil {
		return err
	}
	if s.hasher.NeedsUpgrade(rec) {
		if nr, err := s.hasher.New(ctx, s.key, a, password); err == nil {
			s.mu.Lock()
			if _, m, err := s.lookup(a); err == nil && m.cred == rec {
				m.cred = nr
			}
			s.mu.Unlock()
		}
	}
	return nil
}

// SetPasswordHash sets the mailbox's password from a bcrypt or
// SHA-512-crypt hash brought from another system (credential.FromCrypt).
func (s *Store) SetPasswordHash(ctx context.Context, addr store.Address, hash string) error {
	a, err := store.CanonicalAddress(addr)
	if err != nil {
		return fmt.Errorf("cannot set password hash: %w", err)
	}
	if err := ctxErr(ctx); err != nil {
		return err
	}
	rec, err := credential.FromCrypt(hash)
	if err != nil {
		return fmt.Errorf("cannot set password hash of %s: %w", a, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	_, m, err := s.lookup(a)
	if err != nil {
		return fmt.Errorf("cannot set password hash of %s: %w", a, err)
	}
	m.cred = rec
	return nil
}

// SetHashParams changes the hash of new passwords, and of stored ones at
// their next successful login; zero fields take their defaults.
func (s *Store) SetHashParams(p credential.HashParams) error { return s.hasher.SetParams(p) }

// Secret decrypts the password or the NT hash for a challenge mechanism.
func (s *Store) Secret(ctx context.Context, addr store.Address, kind store.SecretKind) ([]byte, error) {
	if err := ctxErr(ctx); err != nil {
		return nil, err
	}
	if kind != store.SecretPassword && kind != store.SecretNTHash && kind != store.SecretSCRAMSHA256 {
		return nil, fmt.Errorf("unknown secret kind %d: %w", kind, store.ErrNoSecret)
	}
	a, err := store.CanonicalAddress(addr)
	if err != nil {
		return nil, store.ErrAuthFailed
	}
	s.mu.RLock()
	_, m, err := s.lookup(a)
	var rec *credential.Record
	if err == nil {
		rec = m.cred
	}
	s.mu.RUnlock()
	if err != nil {
		return nil, store.ErrAuthFailed
	}
	if rec == nil {
		return nil, fmt.Errorf("mailbox %s has no password: %w", a, store.ErrNoSecret)
	}
	return rec.Secret(s.key, a, kind)
}

// SetQuota sets the mailbox's quota in octets; 0 removes it.
func (s *Store) SetQuota(ctx context.Context, addr store.Address, bytes int64) error {
	a, err := store.CanonicalAddress(addr)
	if err != nil {
		return fmt.Errorf("cannot set quota: %w", err)
	}
	if bytes < 0 {
		return fmt.Errorf("cannot set quota of %s: %d octets is negative", a, bytes)
	}
	return s.withMailbox(a, true, "set quota of", func(_ store.Address, _ *domain, m *mailbox) error {
		m.quota = bytes
		return nil
	})
}

// Quota returns the quota enforced on the mailbox: its own, or
// Options.DomainQuotaDefault when it has none.
func (s *Store) Quota(ctx context.Context, addr store.Address) (int64, error) {
	var q int64
	err := s.withMailbox(addr, false, "read quota of", func(_ store.Address, _ *domain, m *mailbox) error {
		q = s.effectiveQuota(m)
		return nil
	})
	return q, err
}

// Usage counts the mailbox's messages and octets.
func (s *Store) Usage(ctx context.Context, addr store.Address) (int, int64, error) {
	var n int
	var octets int64
	err := s.withMailbox(addr, false, "read usage of", func(_ store.Address, _ *domain, m *mailbox) error {
		n, octets = len(m.msgs), m.bytes
		return nil
	})
	return n, octets, err
}

// withMailbox runs f on the mailbox under the store's lock (exclusive when
// write is set); a bad address or a missing mailbox becomes "cannot <verb> ...".
func (s *Store) withMailbox(addr store.Address, write bool, verb string, f func(store.Address, *domain, *mailbox) error) error {
	a, err := store.CanonicalAddress(addr)
	if err != nil {
		return fmt.Errorf("cannot %s %s: %w", verb, addr, err)
	}
	if write {
		s.mu.Lock()
		defer s.mu.Unlock()
	} else {
		s.mu.RLock()
		defer s.mu.RUnlock()
	}
	d, m, err := s.lookup(a)
	if err != nil {
		return fmt.Errorf("cannot %s %s: %w", verb, a, err)
	}
	return f(a, d, m)
}
