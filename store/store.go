// Package store is the Mail Storage Access API: the one interface through
// which the POP3 service, the SMTP delivery service and the administrator's
// tool (pop3ctl) reach the mail store. Nothing else touches mail files.
//
// The interfaces here are implemented by the file store in store/filestore
// and by the in-memory store in store/memstore (for tests and embedding);
// both pass the conformance suite in store/storetest. The file store's
// package documentation describes the on-disk layout:
//
//	<mailroot>/<domain>/P3_<mailbox>.mbx/lock    (kcol while held)
//	<mailroot>/<domain>/P3_<mailbox>.mbx/quota
//	<mailroot>/<domain>/P3_<mailbox>.mbx/P3_<26 digits>.eml
//
// Rules every implementation keeps:
//   - every name is validated (ValidateDomain, ValidateMailbox) before it
//     reaches a path, so nothing can leave the mail root;
//   - readers never see a partial message, and a store whose mail outlives
//     its process makes a message durable before Deliver returns (the file
//     store: fsynced, renamed into place, directory fsynced);
//   - messages are kept with CRLF line endings so that a message's size is
//     the octet count that LIST reports;
//   - a message's UID is its 26-digit name, unique across every server that
//     shares the store, and never reused; a message brought in by Import
//     keeps instead the UIDL its old server gave it (see Importer), kept
//     beside its name as durably as the message itself;
//   - a session lock left by a dead session is taken over; an
//     administrator's lock is told apart from a session's;
//   - passwords are never stored in clear.
package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"
)

// Sentinel errors shared by every implementation. Implementations wrap them
// with %w and context; callers test with errors.Is.
var (
	ErrInvalidName    = errors.New("invalid name")           // a domain or mailbox name broke a naming rule
	ErrNoSuchDomain   = errors.New("no such domain")         //
	ErrNoSuchMailbox  = errors.New("no such mailbox")        //
	ErrDomainExists   = errors.New("domain already exists")  //
	ErrMailboxExists  = errors.New("mailbox already exists") //
	ErrDomainNotEmpty = errors.New("domain is not empty")    // DeleteDomain without force
	ErrMailboxInUse   = errors.New("mailbox in use")         // another session holds the mailbox (POP3 [IN-USE])
	ErrMailboxLocked  = errors.New("mailbox locked by the administrator")
	ErrDomainLocked   = errors.New("domain locked by the administrator")
	ErrOverQuota      = errors.New("over quota")              // a delivery would exceed the mailbox quota
	ErrAuthFailed     = errors.New("authentication failed")   // wrong password or unknown mailbox: never told apart
	ErrNoSecret       = errors.New("no secret for mechanism") // the mailbox has no secret a challenge mechanism needs
	ErrNoSuchMessage  = errors.New("no such message")
	ErrSessionClosed  = errors.New("mailbox session closed")
	// ErrLockLost: the session's lock lapsed and another session (on this
	// or another server) took the mailbox over. The session deletes
	// nothing and serves no more messages; it wraps ErrMailboxInUse.
	ErrLockLost        = fmt.Errorf("session lock lost to another session: %w", ErrMailboxInUse)
	ErrMessageTooLarge = errors.New("message too large")
	// ErrInvalidUIDL: an imported UIDL breaks RFC 1939's rules (1 to 70
	// characters in 0x21..0x7E).
	ErrInvalidUIDL = errors.New("invalid UIDL")
	// ErrDuplicateUIDL: an imported UIDL already is the UID of a message
	// in the mailbox; nothing was stored.
	ErrDuplicateUIDL = errors.New("UIDL already in the mailbox")
)

// MaxUIDLLen is the longest UIDL RFC 1939 section 7 allows.
const MaxUIDLLen = 70

// ValidUIDL reports whether s may be a UIDL (RFC 1939 section 7): 1 to
// MaxUIDLLen characters, each in 0x21..0x7E.
func ValidUIDL(s string) bool {
	if len(s) == 0 || len(s) > MaxUIDLLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// Address names one mailbox: Mailbox@Domain, both already validated and in
// canonical (lower-case) form. Use ParseAddress to build one from input.
type Address struct {
	Mailbox string
	Domain  string
}

// String returns mailbox@domain.
func (a Address) String() string { return a.Mailbox + "@" + a.Domain }

// SecretKind names a secret that a challenge-response mechanism needs.
type SecretKind int

const (
	// SecretPassword is the password itself, needed by APOP and CRAM-MD5.
	SecretPassword SecretKind = iota + 1
	// SecretNTHash is MD4(UTF-16LE(password)), needed by NTLM.
	SecretNTHash
	// SecretSCRAMSHA256 is the mailbox's SCRAM-SHA-256 keys in
	// MarshalSCRAM's form (no reversible secret), needed by SCRAM-SHA-256.
	// A record made before the store kept them has none (ErrNoSecret)
	// until its next password change or successful plaintext login.
	SecretSCRAMSHA256
)

// DomainInfo describes one domain.
type DomainInfo struct {
	Name      string
	Locked    bool  // locked by the administrator
	Mailboxes int   // number of mailboxes
	Messages  int   // messages in all its mailboxes
	Bytes     int64 // octets in all its mailboxes
}

// MailboxInfo describes one mailbox.
type MailboxInfo struct {
	Address     Address
	Locked      bool   // locked by the administrator (directly or through its domain)
	InUse       bool   // a session holds it now
	Owner       string // the session lock's owner record when InUse
	Messages    int
	Bytes       int64
	Quota       int64 // 0: no quota
	HasPassword bool  // a password-file password is set
}

// MessageInfo is one message in a session's snapshot.
type MessageInfo struct {
	UID  string // the POP3 UIDL: the 26-digit unique name, or the UIDL an imported message kept
	Size int64  // octets, CRLF line endings; what LIST reports
	// Retrieved is when a session first retrieved the message, as
	// PolicyState.MarkRetrieved recorded it; zero: never (or a store
	// without PolicyState).
	Retrieved time.Time
}

// Domains manages domains. A new domain is one the SMTP service accepts mail for.
type Domains interface {
	CreateDomain(ctx context.Context, name string) error
	// DeleteDomain removes the domain. A domain with mailboxes is refused
	// with ErrDomainNotEmpty unless force is set.
	DeleteDomain(ctx context.Context, name string, force bool) error
	ListDomains(ctx context.Context) ([]DomainInfo, error)
	Domain(ctx context.Context, name string) (DomainInfo, error)
	// LockDomain locks every mailbox of the domain, present and future, for the administrator.
	LockDomain(ctx context.Context, name string) error
	UnlockDomain(ctx context.Context, name string) error
}

// Mailboxes manages mailboxes.
type Mailboxes interface {
	// CreateMailbox creates a mailbox with its lock and quota files. An
	// empty password creates a mailbox without password-file credentials
	// (for system or directory authentication).
	CreateMailbox(ctx context.Context, addr Address, password string) error
	// DeleteMailbox removes the mailbox and every message in it.
	DeleteMailbox(ctx context.Context, addr Address) error
	// RenameMailbox renames a mailbox within its domain.
	RenameMailbox(ctx context.Context, from Address, to string) error
	ListMailboxes(ctx context.Context, domain string) ([]MailboxInfo, error)
	Mailbox(ctx context.Context, addr Address) (MailboxInfo, error)
	// LockMailbox takes the administrator's lock: sessions are refused
	// with ErrMailboxLocked until UnlockMailbox.
	LockMailbox(ctx context.Context, addr Address) error
	UnlockMailbox(ctx context.Context, addr Address) error
}

// MailboxLister is implemented by stores that list a domain's mailbox
// names without describing each mailbox, which ListMailboxes does (the
// console pages through a domain of thousands with it, describing only
// the mailboxes it shows). Optional: found by type assertion.
type MailboxLister interface {
	// ListMailboxNames returns the mailbox names (the part before the @)
	// of the domain, sorted; ErrNoSuchDomain when there is no such domain.
	ListMailboxNames(ctx context.Context, domain string) ([]string, error)
}

// Credentials is the encrypted password file.
type Credentials interface {
	// SetPassword stores a slow hash of password for plaintext logins and,
	// encrypted with the store key, the secrets that APOP, CRAM-MD5 and
	// NTLM need.
	SetPassword(ctx context.Context, addr Address, password string) error
	// VerifyPassword checks a plaintext password in constant time. A wrong
	// password and an unknown mailbox both return ErrAuthFailed and take
	// the same time.
	VerifyPassword(ctx context.Context, addr Address, password string) error
	// Secret returns a decrypted secret for a challenge-response mechanism.
	// An unknown mailbox returns ErrAuthFailed; a mailbox without
	// password-file credentials returns ErrNoSecret.
	Secret(ctx context.Context, addr Address, kind SecretKind) ([]byte, error)
}

// CredentialCache is implemented by stores that remember successful
// password checks. Cached computes no hash: it reports whether password
// was verified for addr lately, and otherwise the memory, in octets, that
// VerifyPassword's hash for addr will take.
type CredentialCache interface {
	Cached(ctx context.Context, addr Address, password string) (ok bool, memory int64)
}

// Quotas manages per-mailbox quotas (the quota file).
type Quotas interface {
	// SetQuota sets the mailbox quota in octets; 0 removes it.
	SetQuota(ctx context.Context, addr Address, bytes int64) error
	// Quota returns the quota in octets, 0 when there is none.
	Quota(ctx context.Context, addr Address) (int64, error)
	// Usage returns the messages and octets stored in the mailbox.
	Usage(ctx context.Context, addr Address) (messages int, bytes int64, err error)
}

// Delivery puts messages into mailboxes.
type Delivery interface {
	// Deliver stores one message into one mailbox and returns its UID once
	// the message is durable. Bare LF line endings are stored as CRLF. It
	// works while a session holds the mailbox (the message appears in the
	// next session). A delivery that would exceed the quota returns
	// ErrOverQuota and stores nothing. An administrator's lock does not
	// stop delivery.
	Deliver(ctx context.Context, addr Address, msg io.Reader) (uid string, err error)
}

// StagedDelivery is a Delivery whose copies are stored durably before they
// become visible, in two steps with the caller's progress record between
// them. A crash between a copy landing and its record then leaves the copy
// staged, where no session can have retrieved and deleted it, so the
// caller never has to search a mailbox for a copy that may already be
// gone (and deliver it a second time).
type StagedDelivery interface {
	// Stage stores msg for addr under key (1 to 128 octets of
	// [0-9A-Za-z._-], unique per copy), durably and invisible to
	// sessions, and returns the UID that Publish will give it. Staging a
	// key again replaces its earlier copy. It refuses what Deliver
	// refuses (ErrOverQuota, ErrMessageTooLarge, ErrNoSuchMailbox).
	Stage(ctx context.Context, addr Address, key string, msg io.Reader) (uid string, err error)
	// Publish makes the copy staged under key visible in addr's mailbox
	// as uid, atomically: the staged copy is gone exactly when the message
	// appears. A key with nothing staged (published before) is not an
	// error, so Publish may be repeated after a crash.
	Publish(ctx context.Context, addr Address, key, uid string) error
}

// Importer stores messages moved in from another server with the UIDL
// that server gave them, so that clients which leave mail on the server
// download nothing twice. Optional; callers find it by type assertion.
//
// An imported message gets a fresh 26-digit name like a delivered one,
// so messages imported one after another keep the order they are
// imported in (the old server's order), ahead of later deliveries; its
// UID (MessageInfo.UID, the POP3 UIDL) is the old UIDL. UIDs stay unique
// within a mailbox: Import of a UIDL that already is the UID of a message
// there stores nothing and returns ErrDuplicateUIDL, which an importer
// takes as "already imported". An old UIDL outside RFC 1939's rules
// (ValidUIDL) is refused with ErrInvalidUIDL; the importer then decides
// (pop3ctl import keeps such a message under a substitute UIDL and
// reports it).
type Importer interface {
	// Import stores msg as Deliver does (line endings, durability, works
	// under a session) with uidl as its UID and returns its 26-digit name.
	// Neither the quota nor the message size limit applies: mail the old
	// server held moves in whole, even when the mailbox ends over quota.
	Import(ctx context.Context, addr Address, uidl string, msg io.Reader) (name string, err error)
}

// WireFile is implemented by a message reader (what MailboxSession.Open
// returns) whose store recorded, when it wrote the message, where its lines
// that begin with '.' are, when there are few. Only those lines are
// byte-stuffed in the body of a POP3 multi-line reply (RFC 1939 section 3),
// and a stored message ends with CRLF, so a server may send the file with
// sendfile(2), a '.' more before each of those lines, and then the
// terminating ".\r\n".
type WireFile interface {
	// DotLines returns the offsets, in order, of the '.'s that begin a
	// line of the message, and whether the record is there and still
	// matches the file (its size). A store that cannot tell says false;
	// so does one whose message has too many such lines to record, or
	// is too small for their record to be worth keeping.
	DotLines() ([]int64, bool)
	// SendFile sends up to n octets of the message, from where the last
	// read or send stopped, to the socket sock with sendfile(2), and
	// returns what sendfile returned: octets sent, and its error
	// (EAGAIN from a non-blocking socket included). 0 octets and no
	// error: the file has no more.
	SendFile(sock, n int) (int, error)
}

// Sessions opens mailboxes for POP3 sessions.
type Sessions interface {
	// OpenSession takes the session lock of the mailbox and returns a
	// snapshot of its messages. owner is recorded in the lock (for example
	// "pop3d node 1 pid 42 conn 7 from 127.0.0.1:5000"). It returns
	// ErrMailboxInUse when another live session holds the mailbox,
	// ErrMailboxLocked / ErrDomainLocked for an administrator's lock.
	// Opening reads no message body.
	OpenSession(ctx context.Context, addr Address, owner string) (MailboxSession, error)
}

// MailboxSession is an open mailbox with its session lock held. It is not
// safe for concurrent use; a POP3 session uses it from one goroutine at a time.
type MailboxSession interface {
	// Messages is the snapshot taken at open, in message-number order
	// (message n is Messages()[n-1]). It does not change during the session.
	Messages() []MessageInfo
	// Open returns a reader of message i (0-based index into Messages()),
	// CRLF line endings, exactly Messages()[i].Size octets.
	Open(i int) (io.ReadCloser, error)
	// Commit deletes the messages at the given indexes, durably, then
	// releases the lock. The session is closed afterwards.
	Commit(ctx context.Context, deleted []int) error
	// Close releases the lock without deleting anything. Safe to call
	// more than once and after Commit.
	Close() error
	// Refresh keeps the session lock's lease alive; the server calls it
	// for every open session well within the lease, so that other
	// servers do not take the lock over. It returns ErrLockLost once the
	// lock was taken over. Unlike the other methods it is safe to call
	// concurrently with them (from the server's renewal tick).
	Refresh() error
}

// PolicyState is implemented by the MailboxSessions of stores that keep
// what the POP3 policies of RFC 2449 section 6 need, in the store itself so
// that every server sharing it sees them: when each message was first
// retrieved (EXPIRE, MessageInfo.Retrieved) and when the mailbox last
// logged in (LOGIN-DELAY). Callers find it by type assertion; such stores
// implement PolicyStore.
type PolicyState interface {
	// LastLogin is the time RecordLogin last recorded for the mailbox, as
	// read when the session opened; zero: none.
	LastLogin() time.Time
	// RecordLogin records at as the mailbox's last login, durably.
	RecordLogin(at time.Time) error
	// MarkRetrieved records, durably, that the messages at the given
	// indexes were retrieved at at; a message's earlier record is kept.
	// Records of messages no longer in the snapshot are dropped. Call it
	// before Commit, while the lock is held.
	MarkRetrieved(ctx context.Context, indexes []int, at time.Time) error
}

// PolicyStore is implemented by stores whose mailbox sessions implement
// PolicyState.
type PolicyStore interface {
	KeepsPolicyState()
}

// Snapshots reads a mailbox without taking its session lock: the delivery
// service uses it to look for a copy that landed before a crash while a
// POP3 session holds the mailbox. Optional; callers find it by type
// assertion.
type Snapshots interface {
	// Snapshot lists the mailbox's messages now and opens them for
	// reading; a message deleted meanwhile gives ErrNoSuchMessage.
	Snapshot(ctx context.Context, addr Address) (MailboxSnapshot, error)
}

// MailboxSnapshot is a read-only listing of a mailbox.
type MailboxSnapshot interface {
	Messages() []MessageInfo
	Open(i int) (io.ReadCloser, error)
}

// Store is the whole Mail Storage Access API.
type Store interface {
	Domains
	Mailboxes
	Credentials
	Quotas
	Delivery
	Sessions
	// Root returns the mail root folder.
	Root() string
	Close() error
}

// DefaultLockLease is how long a session lock stays valid without Refresh
// before another server may take it over (the lock_lease setting). Locks
// of dead processes on the same machine are taken over at once.
const DefaultLockLease = 90 * time.Second

// Backups writes the whole store (the key, domains, mailboxes with their
// credentials, quotas and locks, every message with its UID) to an archive
// and merges such an archive back. Optional; pop3ctl backup and restore
// find it by type assertion.
type Backups interface {
	// Backup writes the archive. Each mailbox is copied as it was at one
	// instant: its messages are listed and read while Backup holds the
	// mailbox's session lock, so no POP3 session commits deletions in
	// between; messages delivered meanwhile are not in this archive (they
	// are in the store, and in the next backup).
	Backup(ctx context.Context, w io.Writer, opts BackupOptions) (BackupReport, error)
	// Restore merges the archive into the store: it deletes nothing and
	// replaces nothing. Missing domains and mailboxes are created with the
	// archive's credentials, quota and locks; existing ones keep theirs.
	// Each archived message whose UID the mailbox lacks is stored with
	// that UID.
	Restore(ctx context.Context, r io.Reader) (RestoreReport, error)
}

// BackupOptions tune Backup.
type BackupOptions struct {
	// LockWait bounds the wait for a mailbox that a POP3 session holds;
	// past it Backup fails with ErrMailboxInUse. 0: DefaultBackupLockWait.
	LockWait time.Duration
}

// DefaultBackupLockWait is BackupOptions.LockWait's default.
const DefaultBackupLockWait = 2 * time.Minute

// BackupReport counts what Backup wrote.
type BackupReport struct {
	Domains, Mailboxes, Messages int
	Octets                       int64
}

// RestoreReport counts what Restore added and what it found present.
type RestoreReport struct {
	Domains, Mailboxes, Messages int   // created / stored
	Present                      int   // messages already in the store (same UID)
	Octets                       int64 // of the stored messages
	// KeyReplaced: the store was empty and its key differed from the
	// archive's; the archive's key now is the store key (a running pop3d
	// must be restarted to use it).
	KeyReplaced bool
}
