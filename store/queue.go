package store

import (
	"errors"
	"io"
	"time"
)

// The mail queue: where the SMTP service leaves each accepted message for
// the delivery service, and Badmail, where a message whose non-delivery
// report could not be sent ends up. store/queue implements it on disk; the
// SMTP service, the delivery service, pop3ctl and the console reach it
// only through Queue.

// Queue errors. Implementations wrap them with %w and context.
var (
	// ErrQueueBusy: another worker (in this or another process) holds the entry.
	ErrQueueBusy = errors.New("queue entry is busy")
	// ErrQueueNotFound: no such entry (already delivered and removed).
	ErrQueueNotFound = errors.New("no such queue entry")
	// ErrQueueExists: Enqueue with an id that is already queued.
	ErrQueueExists = errors.New("queue entry already exists")
	// ErrQueueBadID: an id with characters other than [0-9A-Za-z_-].
	ErrQueueBadID = errors.New("invalid queue id")
	// ErrQueueDamaged: the entry's envelope or progress cannot be read
	// (retrying will not help); Quarantine moves such an entry to Badmail.
	ErrQueueDamaged = errors.New("damaged queue entry")
)

// MaxQueueIDLen is the longest queue id.
const MaxQueueIDLen = 64

// ValidQueueID reports whether id may name a queue entry: 1 to
// MaxQueueIDLen octets of [0-9A-Za-z_-].
func ValidQueueID(id string) bool {
	if id == "" || len(id) > MaxQueueIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// Envelope is what the SMTP transaction said about a message (RFC 5321
// §2.3.1): its reverse-path and forward-paths, plus trace information.
type Envelope struct {
	ID       string    `json:"id"`
	From     string    `json:"from"`  // reverse-path; "" is the null sender <>
	Rcpts    []string  `json:"rcpts"` // mailbox@domain, canonical, distinct
	Received time.Time `json:"received"`
	Helo     string    `json:"helo,omitempty"`
	Remote   string    `json:"remote,omitempty"`
	// Report marks a non-delivery report made by the delivery service;
	// a report never gets a report of its own.
	Report bool `json:"report,omitempty"`
}

// RcptState is what the queue knows of one recipient's delivery.
type RcptState struct {
	Done   bool   // the copy landed
	UID    string // its UID when Done
	Failed bool   // permanent failure: no copy
	Status string // RFC 3463 status code when Failed, e.g. "5.2.2"
	Reason string // diagnostic when Failed
}

// Resolved reports whether nothing more is to be done for the recipient.
func (r RcptState) Resolved() bool { return r.Done || r.Failed }

// Queue is the mail queue and Badmail folder of one mail root. Its methods
// are safe for concurrent use.
type Queue interface {
	// Enqueue stores a message and its envelope durably and returns the
	// entry's id (env.ID when set, else a new one). It returns only once
	// the entry is durable. An env.ID already queued returns
	// ErrQueueExists and leaves the queued entry alone.
	Enqueue(env Envelope, body io.Reader) (string, error)
	// NewSpool starts writing a message that Commit turns into an entry.
	NewSpool() (Spool, error)
	// List returns the ids of the live entries, oldest first.
	List() ([]string, error)
	// Lock opens an entry and takes its lock: ErrQueueNotFound when it is
	// gone, ErrQueueBusy when another worker holds it.
	Lock(id string) (QueueEntry, error)
	// Quarantine moves an entry that cannot be read (ErrQueueDamaged) to
	// Badmail with the reason.
	Quarantine(id, reason string) error
	// Clean removes what a dead writer left behind.
	Clean(now time.Time)
	// Depth counts the queued entries and the messages in Badmail.
	Depth() (queued, badmail int, err error)
	// Badmail lists the ids of the messages in Badmail.
	Badmail() ([]string, error)
	// BadmailReason returns why a message went to Badmail.
	BadmailReason(id string) (string, error)
}

// Spool is a message being written into the queue: Write the body, then
// Commit it with its envelope, or Abort. It is not safe for concurrent use.
type Spool interface {
	io.Writer
	// Size returns the octets written so far.
	Size() int64
	// Commit makes the message a queue entry (durable before it returns)
	// and returns its id.
	Commit(env Envelope) (string, error)
	// Abort discards the message. Safe after Commit and more than once.
	Abort()
}

// QueueEntry is a queued message held under its lock. Its methods are not
// safe for concurrent use; Close releases the lock.
type QueueEntry interface {
	ID() string
	Envelope() Envelope
	// Rcpts is the progress of each recipient, by index into Envelope().Rcpts.
	Rcpts() []RcptState
	// Starts are the tokens of the delivery attempts recorded, in order.
	Starts() []string
	// NDR says how the non-delivery report was handled; "" when not yet.
	NDR() string

	// Start records a delivery attempt by the process with this token.
	Start(token string) error
	// NeedsCheck reports whether an attempt by another process may have
	// delivered copies it did not record (look before delivering again).
	NeedsCheck(token string) bool
	// Done records that recipient i has its copy, with that UID.
	Done(i int, uid string) error
	// Fail records a permanent failure for recipient i.
	Fail(i int, status, reason string) error
	// RecordNDR records how the non-delivery report was handled.
	RecordNDR(how string) error
	// Resolved reports whether every recipient is done or failed.
	Resolved() bool
	// Failed lists the recipients that failed, by index.
	Failed() []int

	// Open returns the message.
	Open() (io.ReadCloser, error)
	// Size returns the message's size in octets.
	Size() (int64, error)
	// Remove deletes the entry; the lock stays held until Close.
	Remove() error
	// ToBadmail moves the message to Badmail with the reason.
	ToBadmail(reason string) error
	// MovedToBadmail reports whether the message is already in Badmail.
	MovedToBadmail() bool
	// Close releases the lock.
	Close() error
}

// BadmailAdmin is implemented by queues whose Badmail messages an
// administrator can read, put back into the queue and delete (the
// console's Badmail viewer). Optional: found by type assertion. Each
// returns ErrQueueNotFound for an id Badmail does not hold and
// ErrQueueBadID for an id that cannot name one.
type BadmailAdmin interface {
	// OpenBadmail returns a Badmail message.
	OpenBadmail(id string) (io.ReadCloser, error)
	// RetryBadmail queues the message again for its recipients that got
	// no copy and removes it from Badmail; it returns the new queue id.
	RetryBadmail(id string) (string, error)
	// DeleteBadmail removes a Badmail message and its reason.
	DeleteBadmail(id string) error
}

// QueueSchedule is implemented by queue entries that record when their
// next attempt is due, so that every server serving one queue waits for
// the same time and a postponed entry is retried once in the whole
// cluster. Optional: the delivery service finds it by type assertion.
type QueueSchedule interface {
	// NextAttempt returns when the next attempt is due and how many
	// attempts were postponed; zero when none was.
	NextAttempt() (next time.Time, attempts int)
	// Postpone records the next attempt's time and the attempt count.
	Postpone(next time.Time, attempts int) error
}

// QueueLeader is implemented by queues that elect one of the servers
// serving them, which alone reports the queue's depth. Optional.
type QueueLeader interface {
	// Leader reports whether this server leads, taking the lead when free.
	Leader() bool
	// Release gives the lead up.
	Release()
}
