// Package memstore is an in-memory implementation of the Mail Storage
// Access API (package store). It keeps the rules of store.Store that do
// not depend on files, with the same code where the file store has it:
//
//   - names are lower-cased and validated by store.CanonicalAddress and
//     store.CanonicalDomain;
//   - messages get 26-digit UIDs from store/uid, unique within the store,
//     growing in delivery order and never reused, and are kept with their
//     line endings normalised by store/crlf, so a message's size is the
//     octet count that LIST reports;
//   - passwords are kept as store/credential records (an argon2id hash and
//     the challenge secrets sealed under a store key made at New), checked
//     in constant time, with an unknown mailbox costing what a wrong
//     password costs;
//   - a session lock is told apart from an administrator's lock: the first
//     gives store.ErrMailboxInUse, the second store.ErrMailboxLocked, and
//     a domain lock store.ErrDomainLocked for every mailbox of the domain,
//     present and future;
//   - a delivery over the quota (the mailbox's, or Options.DomainQuotaDefault)
//     stores nothing and returns store.ErrOverQuota; deliveries into one
//     mailbox are checked and stored one at a time, so concurrent ones
//     never overrun it together.
//
// What it does not have: a mail root (Root returns ""), durability (the
// store is gone with its process) and sharing (one Store is one process's
// view; two Stores never see each other's mail). A session lock therefore
// lasts exactly as long as its MailboxSession: it cannot outlive the
// process that took it, so there is never a stale lock to take over, and
// Refresh only reports a closed session.
//
// A Store is safe for concurrent use. It holds every message in memory;
// Options.MaxMessageSize and the quotas bound what a delivery may add.
package memstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pop3svc/pop3svc/store"
	"github.com/pop3svc/pop3svc/store/credential"
	"github.com/pop3svc/pop3svc/store/crlf"
	"github.com/pop3svc/pop3svc/store/uid"
)

// Options configures a Store. The zero value is valid.
type Options struct {
	// Node is the last 5 digits of every UID, 0..uid.MaxNode.
	Node int
	// DomainQuotaDefault is the quota, in octets, of a mailbox whose quota
	// is 0. 0: no quota.
	DomainQuotaDefault int64
	// MaxMessageSize is the largest message Deliver accepts, in octets
	// after line-ending normalisation. 0: no limit.
	MaxMessageSize int64
	// Argon2 sets the password hash parameters. Zero: credential.DefaultArgon2.
	Argon2 credential.Argon2Params
	// HashConcurrency bounds the argon2id computations running at once.
	// 0: 2 x GOMAXPROCS.
	HashConcurrency int
	// Now returns the current time, for UIDs. nil: time.Now.
	Now func() time.Time
}

// Store is the in-memory store.
type Store struct {
	opts   Options
	now    func() time.Time
	key    []byte // the store key the challenge secrets are sealed under
	hasher *credential.Hasher
	names  *uid.Generator

	mu      sync.RWMutex
	domains map[string]*domain
}

var _ store.Store = (*Store)(nil)

type domain struct {
	locked bool // the administrator's domain lock
	boxes  map[string]*mailbox
}

type mailbox struct {
	msgs   []*message // in UID order, which is delivery order
	bytes  int64      // octets of msgs
	quota  int64      // 0: Options.DomainQuotaDefault
	cred   *credential.Record
	admin  bool     // the administrator's lock
	holder *session // the session holding the session lock; nil: free
}

// message is one stored message; its body never changes.
type message struct {
	uid  string
	body []byte
}

// New returns an empty store.
func New(opts Options) (*Store, error) {
	if opts.Node < 0 || opts.Node > uid.MaxNode {
		return nil, fmt.Errorf("cannot make the store: node %d is out of range 0..%d", opts.Node, uid.MaxNode)
	}
	if opts.DomainQuotaDefault < 0 || opts.MaxMessageSize < 0 || opts.HashConcurrency < 0 {
		return nil, errors.New("cannot make the store: quota, message size and hash concurrency must not be negative")
	}
	if opts.HashConcurrency == 0 {
		opts.HashConcurrency = 2 * runtime.GOMAXPROCS(0)
	}
	h, err := credential.NewHasher(opts.Argon2, opts.HashConcurrency)
	if err != nil {
		return nil, fmt.Errorf("cannot make the store: %w", err)
	}
	s := &Store{
		opts:    opts,
		now:     opts.Now,
		key:     credential.NewKey(),
		hasher:  h,
		names:   uid.NewGenerator(opts.Node),
		domains: make(map[string]*domain),
	}
	if s.now == nil {
		s.now = time.Now
	}
	return s, nil
}

// Root returns "": the store has no mail root.
func (s *Store) Root() string { return "" }

// Close does nothing: the mail stays until the Store is dropped, and
// sessions stay usable until they are closed themselves.
func (s *Store) Close() error { return nil }

func ctxErr(ctx context.Context) error {
	if ctx == nil {
		return nil
	}
	return ctx.Err()
}

// lookup returns the mailbox of a canonical address; s.mu is held.
func (s *Store) lookup(a store.Address) (*domain, *mailbox, error) {
	d := s.domains[a.Domain]
	if d == nil {
		return nil, nil, fmt.Errorf("domain %s: %w", a.Domain, store.ErrNoSuchDomain)
	}
	m := d.boxes[a.Mailbox]
	if m == nil {
		return d, nil, fmt.Errorf("mailbox %s: %w", a, store.ErrNoSuchMailbox)
	}
	return d, m, nil
}

func (s *Store) effectiveQuota(m *mailbox) int64 {
	if m.quota == 0 {
		return s.opts.DomainQuotaDefault
	}
	return m.quota
}

// CreateDomain adds an empty domain.
func (s *Store) CreateDomain(ctx context.Context, name string) error {
	d, err := store.CanonicalDomain(name)
	if err != nil {
		return fmt.Errorf("cannot create domain: %w", err)
	}
	if err := ctxErr(ctx); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.domains[d] != nil {
		return fmt.Errorf("cannot create domain %s: %w", d, store.ErrDomainExists)
	}
	s.domains[d] = &domain{boxes: make(map[string]*mailbox)}
	return nil
}

// DeleteDomain removes a domain; with force, its mailboxes too, unless a
// session holds one of them (ErrMailboxInUse).
func (s *Store) DeleteDomain(ctx context.Context, name string, force bool) error {
	d, err := store.CanonicalDomain(name)
	if err != nil {
		return fmt.Errorf("cannot delete domain: %w", err)
	}
	if err := ctxErr(ctx); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	dom := s.domains[d]
	if dom == nil {
		return fmt.Errorf("cannot delete domain %s: %w", d, store.ErrNoSuchDomain)
	}
	if len(dom.boxes) > 0 && !force {
		return fmt.Errorf("cannot delete domain %s: %d mailboxes: %w", d, len(dom.boxes), store.ErrDomainNotEmpty)
	}
	for name, m := range dom.boxes {
		if m.holder != nil {
			return fmt.Errorf("cannot delete domain %s: mailbox %s@%s: %w (held by %s)", d, name, d, store.ErrMailboxInUse, m.holder.owner)
		}
	}
	delete(s.domains, d)
	return nil
}

// ListDomains lists the domains in name order.
func (s *Store) ListDomains(ctx context.Context) ([]store.DomainInfo, error) {
	if err := ctxErr(ctx); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]store.DomainInfo, 0, len(s.domains))
	for name, d := range s.domains {
		out = append(out, domainInfo(name, d))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
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
	s.mu.RLock()
	defer s.mu.RUnlock()
	dom := s.domains[d]
	if dom == nil {
		return store.DomainInfo{}, fmt.Errorf("domain %s: %w", d, store.ErrNoSuchDomain)
	}
	return domainInfo(d, dom), nil
}

func domainInfo(name string, d *domain) store.DomainInfo {
	di := store.DomainInfo{Name: name, Locked: d.locked, Mailboxes: len(d.boxes)}
	for _, m := range d.boxes {
		di.Messages += len(m.msgs)
		di.Bytes += m.bytes
	}
	return di
}

// LockDomain locks every mailbox of the domain, present and future.
func (s *Store) LockDomain(ctx context.Context, name string) error {
	return s.setDomainLock(name, true)
}

// UnlockDomain removes the domain lock.
func (s *Store) UnlockDomain(ctx context.Context, name string) error {
	return s.setDomainLock(name, false)
}

func (s *Store) setDomainLock(name string, locked bool) error {
	verb := "lock"
	if !locked {
		verb = "unlock"
	}
	d, err := store.CanonicalDomain(name)
	if err != nil {
		return fmt.Errorf("cannot %s domain: %w", verb, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	dom := s.domains[d]
	if dom == nil {
		return fmt.Errorf("cannot %s domain %s: %w", verb, d, store.ErrNoSuchDomain)
	}
	dom.locked = locked
	return nil
}

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
	d, err := store.CanonicalDomain(domain)
	if err != nil {
		return nil, fmt.Errorf("cannot list mailboxes: %w", err)
	}
	if err := ctxErr(ctx); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	dom := s.domains[d]
	if dom == nil {
		return nil, fmt.Errorf("cannot list mailboxes of %s: %w", d, store.ErrNoSuchDomain)
	}
	out := make([]store.MailboxInfo, 0, len(dom.boxes))
	for name, m := range dom.boxes {
		out = append(out, s.mailboxInfo(store.Address{Mailbox: name, Domain: d}, dom, m))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Address.Mailbox < out[j].Address.Mailbox })
	return out, nil
}

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
	a, err := store.CanonicalAddress(addr)
	if err != nil {
		return fmt.Errorf("cannot lock mailbox: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	_, m, err := s.lookup(a)
	if err != nil {
		return fmt.Errorf("cannot lock mailbox %s: %w", a, err)
	}
	if m.holder != nil {
		return fmt.Errorf("cannot lock mailbox %s: %w (held by %s)", a, store.ErrMailboxInUse, m.holder.owner)
	}
	m.admin = true
	return nil
}

// UnlockMailbox releases the administrator's lock; a mailbox not locked
// by the administrator is left as it is.
func (s *Store) UnlockMailbox(ctx context.Context, addr store.Address) error {
	a, err := store.CanonicalAddress(addr)
	if err != nil {
		return fmt.Errorf("cannot unlock mailbox: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	_, m, err := s.lookup(a)
	if err != nil {
		return fmt.Errorf("cannot unlock mailbox %s: %w", a, err)
	}
	m.admin = false
	return nil
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

// VerifyPassword checks password against the mailbox's argon2id hash. An
// invalid name, an unknown mailbox, a mailbox without a password and a
// wrong password all cost one argon2id computation and return
// ErrAuthFailed.
func (s *Store) VerifyPassword(ctx context.Context, addr store.Address, password string) error {
	if err := ctxErr(ctx); err != nil {
		return err
	}
	var rec *credential.Record
	if a, err := store.CanonicalAddress(addr); err == nil {
		s.mu.RLock()
		if _, m, err := s.lookup(a); err == nil {
			rec = m.cred
		}
		s.mu.RUnlock()
	}
	return s.hasher.Verify(ctx, rec, password)
}

// Secret decrypts the password or the NT hash for a challenge mechanism.
func (s *Store) Secret(ctx context.Context, addr store.Address, kind store.SecretKind) ([]byte, error) {
	if err := ctxErr(ctx); err != nil {
		return nil, err
	}
	if kind != store.SecretPassword && kind != store.SecretNTHash {
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
	s.mu.Lock()
	defer s.mu.Unlock()
	_, m, err := s.lookup(a)
	if err != nil {
		return fmt.Errorf("cannot set quota of %s: %w", a, err)
	}
	m.quota = bytes
	return nil
}

// Quota returns the quota enforced on the mailbox: its own, or
// Options.DomainQuotaDefault when it has none.
func (s *Store) Quota(ctx context.Context, addr store.Address) (int64, error) {
	a, err := store.CanonicalAddress(addr)
	if err != nil {
		return 0, fmt.Errorf("cannot read quota: %w", err)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	_, m, err := s.lookup(a)
	if err != nil {
		return 0, fmt.Errorf("cannot read quota of %s: %w", a, err)
	}
	return s.effectiveQuota(m), nil
}

// Usage counts the mailbox's messages and octets.
func (s *Store) Usage(ctx context.Context, addr store.Address) (int, int64, error) {
	a, err := store.CanonicalAddress(addr)
	if err != nil {
		return 0, 0, fmt.Errorf("cannot read usage: %w", err)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	_, m, err := s.lookup(a)
	if err != nil {
		return 0, 0, fmt.Errorf("cannot read usage of %s: %w", a, err)
	}
	return len(m.msgs), m.bytes, nil
}

// maxPooledBuffer is the largest copy buffer kept for the next delivery.
const maxPooledBuffer = 1 << 20

var copyBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// Deliver stores one message; see store.Delivery. The message is read and
// normalised before the store's lock is taken; the quota is checked and
// the message stored under it, so deliveries racing into one mailbox
// cannot overrun its quota together.
func (s *Store) Deliver(ctx context.Context, addr store.Address, msg io.Reader) (string, error) {
	a, err := store.CanonicalAddress(addr)
	if err != nil {
		return "", fmt.Errorf("cannot deliver: %w", err)
	}
	if err := ctxErr(ctx); err != nil {
		return "", err
	}
	s.mu.RLock()
	_, m, err := s.lookup(a)
	var quota int64
	if err == nil {
		quota = s.effectiveQuota(m)
	}
	s.mu.RUnlock()
	if err != nil {
		return "", fmt.Errorf("cannot deliver to %s: %w", a, err)
	}
	limit := s.opts.MaxMessageSize
	if quota > 0 && (limit == 0 || quota < limit) {
		limit = quota // a message larger than the whole quota never fits
	}
	buf := copyBuffers.Get().(*bytes.Buffer)
	defer func() {
		if buf.Cap() <= maxPooledBuffer {
			buf.Reset()
			copyBuffers.Put(buf)
		}
	}()
	size, err := crlf.Copy(ctx, buf, msg, limit)
	if err != nil {
		if errors.Is(err, crlf.ErrLimit) {
			if s.opts.MaxMessageSize > 0 && size > s.opts.MaxMessageSize {
				return "", fmt.Errorf("cannot deliver to %s: the message exceeds %d octets: %w", a, s.opts.MaxMessageSize, store.ErrMessageTooLarge)
			}
			return "", fmt.Errorf("cannot deliver to %s: the message exceeds the quota of %d octets: %w", a, quota, store.ErrOverQuota)
		}
		return "", fmt.Errorf("cannot deliver to %s: %w", a, err)
	}
	body := bytes.Clone(buf.Bytes())
	if body == nil {
		body = []byte{}
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if _, m, err = s.lookup(a); err != nil { // deleted meanwhile
		return "", fmt.Errorf("cannot deliver to %s: %w", a, err)
	}
	if q := s.effectiveQuota(m); q > 0 && m.bytes+size > q {
		return "", fmt.Errorf("cannot deliver to %s: %d octets stored + %d > quota %d: %w", a, m.bytes, size, q, store.ErrOverQuota)
	}
	// Names are made under the lock, so each mailbox's list stays sorted.
	msg1 := &message{uid: s.names.Next(s.now()), body: body}
	m.msgs = append(m.msgs, msg1)
	m.bytes += size
	return msg1.uid, nil
}

// OpenSession takes the session lock and snapshots the mailbox.
func (s *Store) OpenSession(ctx context.Context, addr store.Address, owner string) (store.MailboxSession, error) {
	a, err := store.CanonicalAddress(addr)
	if err != nil {
		return nil, fmt.Errorf("cannot open mailbox: %w", err)
	}
	if err := ctxErr(ctx); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	d, m, err := s.lookup(a)
	switch {
	case err != nil:
		return nil, fmt.Errorf("cannot open mailbox %s: %w", a, err)
	case d.locked:
		return nil, fmt.Errorf("cannot open mailbox %s: %w", a, store.ErrDomainLocked)
	case m.admin:
		return nil, fmt.Errorf("cannot open mailbox %s: %w", a, store.ErrMailboxLocked)
	case m.holder != nil:
		return nil, fmt.Errorf("cannot open mailbox %s: %w (held by %s)", a, store.ErrMailboxInUse, m.holder.owner)
	}
	ms := &session{s: s, addr: a, box: m, owner: owner, bodies: slices.Clone(m.msgs)}
	ms.msgs = make([]store.MessageInfo, len(ms.bodies))
	for i, msg := range ms.bodies {
		ms.msgs[i] = store.MessageInfo{UID: msg.uid, Size: int64(len(msg.body))}
	}
	m.holder = ms
	return ms, nil
}

// session is an open mailbox holding its session lock. Like every
// store.MailboxSession it is used from one goroutine at a time.
type session struct {
	s      *Store
	addr   store.Address
	box    *mailbox
	owner  string
	msgs   []store.MessageInfo
	bodies []*message // the snapshot, parallel to msgs
	closed atomic.Bool
}

func (m *session) Messages() []store.MessageInfo { return m.msgs }

// Open returns a reader of message i of the snapshot.
func (m *session) Open(i int) (io.ReadCloser, error) {
	if m.closed.Load() {
		return nil, store.ErrSessionClosed
	}
	if i < 0 || i >= len(m.msgs) {
		return nil, fmt.Errorf("message %d of %s: %w", i+1, m.addr, store.ErrNoSuchMessage)
	}
	r := &msgReader{}
	r.r.Reset(m.bodies[i].body)
	return r, nil
}

// Commit removes the deleted messages and releases the lock.
func (m *session) Commit(ctx context.Context, deleted []int) error {
	if m.closed.Load() {
		return store.ErrSessionClosed
	}
	for _, i := range deleted {
		if i < 0 || i >= len(m.msgs) {
			return fmt.Errorf("cannot commit %s: message %d: %w", m.addr, i+1, store.ErrNoSuchMessage)
		}
	}
	gone := make(map[*message]bool, len(deleted))
	for _, i := range deleted {
		gone[m.bodies[i]] = true
	}
	s := m.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(gone) > 0 {
		box := m.box
		kept := box.msgs[:0]
		for _, msg := range box.msgs {
			if gone[msg] {
				box.bytes -= int64(len(msg.body))
				continue
			}
			kept = append(kept, msg)
		}
		clear(box.msgs[len(kept):])
		box.msgs = kept
	}
	m.release()
	return nil
}

// release frees the session lock; s.mu is held.
func (m *session) release() {
	if m.box.holder == m {
		m.box.holder = nil
	}
	m.closed.Store(true)
}

// Close releases the lock without deleting anything; later calls do nothing.
func (m *session) Close() error {
	if m.closed.Load() {
		return nil
	}
	m.s.mu.Lock()
	m.release()
	m.s.mu.Unlock()
	return nil
}

// Refresh has no lease to renew: the lock lasts as long as the session.
func (m *session) Refresh() error {
	if m.closed.Load() {
		return store.ErrSessionClosed
	}
	return nil
}

// errReaderClosed is returned by a message reader read after its Close.
var errReaderClosed = errors.New("read of a closed message")

// msgReader reads one message's body, which never changes.
type msgReader struct {
	r      bytes.Reader
	closed atomic.Bool
}

func (r *msgReader) Read(p []byte) (int, error) {
	if r.closed.Load() {
		return 0, errReaderClosed
	}
	return r.r.Read(p)
}

func (r *msgReader) Close() error {
	r.closed.Store(true)
	return nil
}
