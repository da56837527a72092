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
//   - an imported message (store.Importer) keeps its old UIDL as its UID,
//     unique within its mailbox, and takes its place after the messages
//     already there;
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
	"context"
	"errors"
	"fmt"
	"runtime"
	"sort"
	"sync"
	"time"

	"github.com/pop3svc/pop3svc/store"
	"github.com/pop3svc/pop3svc/store/credential"
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
	// Hash chooses the hash of new passwords, and of stored ones at their
	// next successful login; zero fields: their defaults (argon2id with
	// credential.DefaultArgon2). SetHashParams changes it later.
	Hash credential.HashParams
	// Argon2 overrides Hash.Argon2 when set (tests).
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
	// lastLogin is the last login RecordLogin recorded (store.PolicyState).
	lastLogin time.Time
}

// message is one stored message; its body never changes.
type message struct {
	uid       string // the 26-digit name
	uidl      string // the imported UIDL; "": the name is the UID
	body      []byte
	retrieved time.Time // first retrieval (store.PolicyState); guarded by Store.mu
}

// id is the message's UID (MessageInfo.UID).
func (m *message) id() string {
	if m.uidl != "" {
		return m.uidl
	}
	return m.uid
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
	hp := opts.Hash
	if opts.Argon2 != (credential.Argon2Params{}) {
		hp.Argon2 = opts.Argon2
	}
	h, err := credential.NewHasher(hp, opts.HashConcurrency)
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
