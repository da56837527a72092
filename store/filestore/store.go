package filestore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pop3svc/pop3svc/store"
	"github.com/pop3svc/pop3svc/store/credential"
	"github.com/pop3svc/pop3svc/store/crlf"
	"github.com/pop3svc/pop3svc/store/uid"
)

// Names of the store-wide folder and of the files kept in it and in the
// mailbox folders. A domain name never starts with '.', so MetaDir cannot
// collide with a domain; a mailbox folder is always P3_<name>.mbx, so the
// other names cannot collide with a mailbox.
const (
	MetaDir      = ".pop3"         // <mailroot>/.pop3: store-wide files
	KeyFile      = "key"           // <mailroot>/.pop3/key: the store key (hex)
	TmpDir       = "tmp"           // <mailroot>/.pop3/tmp: messages being written
	TrashDir     = "trash"         // <mailroot>/.pop3/trash: folders being deleted
	LockName     = "lock"          // mailbox free
	KcolName     = "kcol"          // mailbox held (session or administrator)
	QuotaName    = "quota"         // mailbox quota in octets, decimal text
	PasswdName   = "passwd"        // password-file credentials
	DomainLocked = "domain.locked" // <mailroot>/<domain>/domain.locked: administrator's domain lock
	mboxPrefix   = "P3_"
	mboxSuffix   = ".mbx"
	msgPrefix    = "P3_"
	msgSuffix    = ".eml"
)

// Limits and defaults; each is a named setting of Options where it can vary.
const (
	// MaxNode is the largest node number (5 digits in a message name).
	MaxNode = uid.MaxNode
	// DefaultTmpMaxAge is how old a file left in the tmp folder (by a
	// process that died while writing) must be before Open removes it.
	DefaultTmpMaxAge = 24 * time.Hour
	// DefaultWriteBuffer is the size of the buffer a delivery writes through.
	DefaultWriteBuffer = crlf.BufferSize
	// maxNameRetries bounds the attempts to find a free message name.
	maxNameRetries = 100000
)

// Options configures a Store.
type Options struct {
	// Node is this server's number among those sharing the store, 0..99999.
	// It is the last 5 digits of every message name this server writes.
	Node int
	// DomainQuotaDefault is the quota, in octets, of a mailbox without a
	// quota file (or with 0 in it). 0: no quota.
	DomainQuotaDefault int64
	// MaxMessageSize is the largest message Deliver accepts, in octets
	// after line-ending normalisation. 0: no limit.
	MaxMessageSize int64
	// TmpMaxAge overrides DefaultTmpMaxAge.
	TmpMaxAge time.Duration
	// LockLease is how long a session lock of another machine stays valid
	// without renewal (MailboxSession.Refresh) before it is taken over.
	// Every server sharing a store must use the same. 0: store.DefaultLockLease.
	LockLease time.Duration
	// Logger receives lock take-overs and cleanup notes. nil: discard.
	Logger *slog.Logger
	// Now returns the current time (tests). nil: time.Now.
	Now func() time.Time
	// Hash chooses the hash of new passwords, and of stored ones at their
	// next successful login; zero fields: their defaults (argon2id with
	// DefaultArgon2). SetLimits changes it later.
	Hash HashParams
	// Argon2 overrides Hash.Argon2 when set (tests).
	Argon2 Argon2Params
	// HashConcurrency bounds the argon2id computations running at once
	// (each takes Argon2.MemoryKiB of memory), so that a burst of logins
	// queues instead of exhausting memory. 0: 2 x GOMAXPROCS.
	HashConcurrency int
	// HashProcesses, when not nil, runs password checks in worker
	// processes (credential.Workers) with these options, each at its
	// nice value; nil: on the calling goroutine. SetLimits changes it.
	HashProcesses *credential.WorkerOptions
	// AuthCacheTTL is how long a successful password check is remembered
	// (see authCache). 0: DefaultAuthCacheTTL; negative: no cache.
	AuthCacheTTL time.Duration
}

// Store is the file store. It is safe for concurrent use.
type Store struct {
	root      string
	meta      string
	tmp       string
	trash     string
	key       []byte
	opts      Options
	log       *slog.Logger
	now       func() time.Time
	names     *uid.Generator
	self      procIdentity
	hasher    *credential.Hasher // password records: argon2id with HashConcurrency slots
	workersMu sync.Mutex
	workers   *credential.Workers       // the hasher's runner (Options.HashProcesses); nil: none
	authCache atomic.Pointer[authCache] // remembered successful password checks; nil: off
	// quotaDefault and maxMessage are Options.DomainQuotaDefault and
	// Options.MaxMessageSize, changed by SetLimits while the store runs.
	quotaDefault atomic.Int64
	maxMessage   atomic.Int64
	quotaMu      [quotaShards]sync.Mutex
	closed       chan struct{}
	lease        time.Duration // Options.LockLease
}

var _ store.Store = (*Store)(nil)

// Open opens (creating if needed) the file store at root.
func Open(root string, opts Options) (*Store, error) {
	if root == "" {
		return nil, errors.New("cannot open mail store: the mail root is empty")
	}
	if opts.Node < 0 || opts.Node > MaxNode {
		return nil, fmt.Errorf("cannot open mail store: node %d is out of range 0..%d", opts.Node, MaxNode)
	}
	if opts.DomainQuotaDefault < 0 || opts.MaxMessageSize < 0 {
		return nil, errors.New("cannot open mail store: quota and message size limits must not be negative")
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("cannot open mail store %q: %w", root, err)
	}
	s := &Store{
		root:   abs,
		meta:   filepath.Join(abs, MetaDir),
		opts:   opts,
		log:    opts.Logger,
		now:    opts.Now,
		closed: make(chan struct{}),
	}
	s.tmp = filepath.Join(s.meta, TmpDir)
	s.trash = filepath.Join(s.meta, TrashDir)
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.opts.TmpMaxAge = opts.TmpMaxAge
	if s.opts.TmpMaxAge <= 0 {
		s.opts.TmpMaxAge = DefaultTmpMaxAge
	}
	s.names = uid.NewGenerator(opts.Node)
	s.lease = opts.LockLease
	if s.lease <= 0 {
		s.lease = store.DefaultLockLease
	}
	if opts.HashConcurrency < 0 {
		return nil, errors.New("cannot open mail store: HashConcurrency must not be negative")
	}
	if s.opts.HashConcurrency == 0 {
		s.opts.HashConcurrency = 2 * runtime.GOMAXPROCS(0)
	}
	hp := opts.Hash
	if opts.Argon2 != (Argon2Params{}) {
		hp.Argon2 = opts.Argon2
	}
	if s.hasher, err = credential.NewHasher(hp, s.opts.HashConcurrency); err != nil {
		return nil, fmt.Errorf("cannot open mail store %q: %w", abs, err)
	}
	if err := s.setHashProcesses(opts.HashProcesses); err != nil {
		return nil, fmt.Errorf("cannot open mail store %q: %w", abs, err)
	}
	s.authCache.Store(newAuthCache(s.opts.AuthCacheTTL))
	s.quotaDefault.Store(opts.DomainQuotaDefault)
	s.maxMessage.Store(opts.MaxMessageSize)
	for _, d := range []string{abs, s.meta, s.tmp, s.trash} {
		if err := os.Mkdir(d, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("cannot create %q: %w", d, err)
		}
		fi, err := os.Lstat(d)
		if err != nil {
			return nil, fmt.Errorf("cannot open mail store: %w", err)
		}
		if !fi.IsDir() {
			return nil, fmt.Errorf("cannot open mail store: %q is not a folder", d)
		}
	}
	if s.key, err = loadOrCreateKey(s.meta, s.tmp); err != nil {
		return nil, fmt.Errorf("cannot open mail store %q: %w", abs, err)
	}
	s.self = currentProcess(opts.Node)
	s.cleanTmp()
	s.cleanTrash()
	return s, nil
}

// Root returns the mail root folder (absolute).
func (s *Store) Root() string { return s.root }

// Close releases nothing but marks the store closed; sessions stay usable
// until they are closed themselves.
//
// Password checks after Close run on the calling goroutine: the hash
// workers stop once their checks end.
func (s *Store) Close() error {
	select {
	case <-s.closed:
	default:
		close(s.closed)
	}
	s.setHashProcesses(nil)
	return nil
}

// setHashProcesses starts, changes or stops the hash workers.
func (s *Store) setHashProcesses(opt *credential.WorkerOptions) error {
	s.workersMu.Lock()
	defer s.workersMu.Unlock()
	if opt == nil {
		if s.workers != nil {
			s.hasher.SetRunner(nil)
			s.workers.Close()
			s.workers = nil
		}
		return nil
	}
	o := *opt
	if o.Log == nil {
		o.Log = s.log
	}
	if s.workers != nil {
		return s.workers.SetOptions(o)
	}
	w, err := credential.NewWorkers(o)
	if err != nil {
		return err
	}
	s.workers = w
	s.hasher.SetRunner(w)
	return nil
}

func randomString() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	return hex.EncodeToString(b[:])
}

// canonAddr lower-cases and validates an address before it reaches a path.
func canonAddr(a store.Address) (store.Address, error) { return store.CanonicalAddress(a) }

func (s *Store) domainPath(domain string) string { return filepath.Join(s.root, domain) }

func (s *Store) mboxPath(a store.Address) string {
	return filepath.Join(s.root, a.Domain, mboxPrefix+a.Mailbox+mboxSuffix)
}

// checkDomain reports ErrNoSuchDomain when the domain folder is missing.
func (s *Store) checkDomain(domain string) error {
	fi, err := os.Lstat(s.domainPath(domain))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("domain %s: %w", domain, store.ErrNoSuchDomain)
		}
		return fmt.Errorf("cannot open domain %s: %w", domain, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("domain %s: %w (not a folder)", domain, store.ErrNoSuchDomain)
	}
	return nil
}

// checkMailbox reports ErrNoSuchDomain / ErrNoSuchMailbox.
// Both the domain and the mailbox must be real folders, not symlinks.
func (s *Store) checkMailbox(a store.Address) error {
	if err := s.checkDomain(a.Domain); err != nil {
		return err
	}
	fi, err := os.Lstat(s.mboxPath(a))
	if err == nil && fi.IsDir() {
		return nil
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("cannot open mailbox %s: %w", a, err)
	}
	return fmt.Errorf("mailbox %s: %w", a, store.ErrNoSuchMailbox)
}

func ctxErr(ctx context.Context) error {
	if ctx == nil {
		return nil
	}
	return ctx.Err()
}

// Limits are the settings of a running store that a reload may change.
type Limits struct {
	DomainQuotaDefault int64         // as Options.DomainQuotaDefault
	MaxMessageSize     int64         // as Options.MaxMessageSize
	AuthCacheTTL       time.Duration // as Options.AuthCacheTTL
	Hash               HashParams    // as Options.Hash
	// HashProcesses as Options.HashProcesses: workers start, take the
	// new nice values (once idle, the running ones exit and new ones
	// start), or stop.
	HashProcesses *credential.WorkerOptions
}

// SetLimits applies changed limits to the running store: deliveries and
// quota lookups from now on use the new quota default and size limit; the
// password cache keeps what it remembers under a new TTL (entries expire
// by the TTL they were remembered with), starts empty when it is turned on
// and is dropped when it is turned off. New passwords, and stored ones at
// their next successful login, get the new hash parameters.
func (s *Store) SetLimits(l Limits) error {
	if l.DomainQuotaDefault < 0 || l.MaxMessageSize < 0 {
		return errors.New("quota and message size limits must not be negative")
	}
	if err := s.hasher.SetParams(l.Hash); err != nil {
		return err
	}
	if err := s.setHashProcesses(l.HashProcesses); err != nil {
		return err
	}
	s.quotaDefault.Store(l.DomainQuotaDefault)
	s.maxMessage.Store(l.MaxMessageSize)
	old := s.authCache.Load()
	switch {
	case l.AuthCacheTTL < 0:
		s.authCache.Store(nil)
	case old == nil:
		s.authCache.Store(newAuthCache(l.AuthCacheTTL))
	default:
		old.setTTL(l.AuthCacheTTL)
	}
	return nil
}
