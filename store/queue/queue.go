// Package queue is the mail queue and the Badmail folder: the seed's Queue
// folder, where the SMTP service leaves each accepted message for the
// delivery service, and the folder where a message whose non-delivery report
// could not be sent ends up.
//
// On-disk layout, under the mail root (beside the file store's own
// store-wide folder <mailroot>/.pop3, see store/filestore):
//
//	<mailroot>/.pop3/queue/<id>.msg     the message (CRLF line endings)
//	<mailroot>/.pop3/queue/<id>.log     per-recipient progress, append-only
//	<mailroot>/.pop3/queue/<id>.env     the envelope (JSON); its presence makes the entry live
//	<mailroot>/.pop3/queue/tmp/         files being written
//	<mailroot>/Badmail/<id>.eml         a message whose NDR could not be sent
//	<mailroot>/Badmail/<id>.reason      why, as text
//
// A domain name never starts with '.', so ".pop3" cannot collide with a
// domain folder; "Badmail" contains upper-case letters, which no canonical
// (lower-case) domain name can.
//
// Durability. Enqueue writes the message, an empty progress log and the
// envelope to temporary names, fsyncs each, renames them into place (the
// envelope last) and fsyncs the queue folder before it returns: the SMTP
// service answers 250 only after that (RFC 5321 §6.1: a server that
// accepts a message takes responsibility for it).
//
// Progress log. One line per event, each appended and fsynced:
//
//	start <token>            a delivery attempt by process <token> begins
//	done <i> <uid>           recipient i has its copy, with that UID
//	fail <i> <status> <why>  recipient i gets no copy (permanent failure)
//	ndr <how>                the non-delivery report was handled
//	retry <ms> <n>           attempt n was postponed until Unix time <ms>
//
// A crash between a copy landing in a mailbox and its "done" line being
// written leaves a recipient that is neither done nor failed in an entry
// with a "start" line from a process that is gone. The delivery service
// then looks in that mailbox for the copy (each copy carries the entry's id
// in an X-Pop3-Queue-Id header) before delivering again. That search
// cannot see a copy that a POP3 user already retrieved and deleted, so
// with a store that stages copies (store.StagedDelivery: the file store)
// a copy is staged first, recorded "done", and only then made visible; a
// crash in between leaves it staged, and the next attempt stages it again
// or publishes it. A crash then neither loses nor duplicates a copy.
//
// Several processes (servers sharing the mail root) may serve one queue: an
// entry is worked on only under an exclusive flock of its .log file, and a
// postponed attempt records its next time in the log ("retry"), which
// every server honours: each postponed message or report is retried once
// in the whole cluster. One server at a time holds the queue's leader lock
// (an flock of <mailroot>/.pop3/queue/leader, released when its process
// ends) and is the one that reports the queue's depth.
//
// Other programs may drop messages into the queue: write <id>.msg, then an
// empty <id>.log, then <id>.env, each by rename from a temporary name in
// the same file system, with an id made of [0-9A-Za-z_-] (1 to 64 octets).
package queue

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pop3svc/pop3svc/store"
	"github.com/pop3svc/pop3svc/store/durable"
)

// Folder and file names; see the package documentation.
const (
	MetaDir     = ".pop3"   // the store-wide folder, shared with store/filestore
	QueueDir    = "queue"   // <mailroot>/.pop3/queue
	TmpDir      = "tmp"     // <mailroot>/.pop3/queue/tmp
	BadmailDir  = "Badmail" // <mailroot>/Badmail
	MsgSuffix   = ".msg"
	LogSuffix   = ".log"
	EnvSuffix   = ".env"
	BadSuffix   = ".eml"
	ReasonSufix = ".reason"
)

// Limits.
const (
	// MaxIDLen is the longest queue id.
	MaxIDLen = store.MaxQueueIDLen
	// MaxEnvelopeSize bounds an envelope file read from disk.
	MaxEnvelopeSize = 4 << 20
	// MaxLogSize bounds a progress log read from disk.
	MaxLogSize = 4 << 20
	// OrphanAge is how old a message or log file without an envelope, or
	// a file in tmp, must be before Clean removes it (a writer in another
	// process may still be about to rename the envelope into place).
	OrphanAge = time.Hour
	// copyBuffer is the buffer size Enqueue copies the body with.
	copyBuffer = 64 << 10
)

// Errors: the store's queue errors, under the names this package has
// always used.
var (
	ErrBusy     = store.ErrQueueBusy
	ErrNotFound = store.ErrQueueNotFound
	ErrExists   = store.ErrQueueExists
	ErrBadID    = store.ErrQueueBadID
	ErrDamaged  = store.ErrQueueDamaged
)

// Envelope is store.Envelope.
type Envelope = store.Envelope

// Queue is the queue folder of one mail root: store.Queue on disk. It is
// safe for concurrent use.
type Queue struct {
	root string // mail root
	dir  string
	tmp  string
	bad  string

	leaderMu sync.Mutex
	leader   *os.File // the leader file, held with flock; nil: not the leader
}

// LeaderFile is the file whose flock makes a server the queue's leader.
const LeaderFile = "leader"

// Leader reports whether this Queue holds the leader lock, taking it when
// it is free. Of all the processes serving one queue, one holds it until
// it ends (or calls Release).
func (q *Queue) Leader() bool {
	q.leaderMu.Lock()
	defer q.leaderMu.Unlock()
	if q.leader != nil {
		return true
	}
	f, err := os.OpenFile(filepath.Join(q.dir, LeaderFile), os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return false
	}
	if err := flock(f); err != nil {
		f.Close()
		return false
	}
	q.leader = f
	return true
}

// Release gives up the leader lock, if held.
func (q *Queue) Release() {
	q.leaderMu.Lock()
	defer q.leaderMu.Unlock()
	if q.leader != nil {
		q.leader.Close()
		q.leader = nil
	}
}

var _ store.Queue = (*Queue)(nil)

// At names the queue of a mail root without creating anything: enough for
// Depth, List, Badmail and reading (pop3ctl stat). Open prepares the
// folders a writer needs.
func At(mailroot string) (*Queue, error) {
	if mailroot == "" {
		return nil, errors.New("cannot open the mail queue: the mail root is empty")
	}
	abs, err := filepath.Abs(mailroot)
	if err != nil {
		return nil, fmt.Errorf("cannot open the mail queue in %q: %w", mailroot, err)
	}
	q := &Queue{root: abs}
	q.dir = filepath.Join(abs, MetaDir, QueueDir)
	q.tmp = filepath.Join(q.dir, TmpDir)
	q.bad = filepath.Join(abs, BadmailDir)
	return q, nil
}

// OutboundDir is the outbound queue's folder, <mailroot>/.pop3/outbound:
// submitted mail for other domains, waiting for the delivery agent. It
// has the mail queue's layout and durability; its Badmail is the mail
// root's one.
const OutboundDir = "outbound"

// AtOutbound names the outbound queue of a mail root without creating
// anything (see At).
func AtOutbound(mailroot string) (*Queue, error) {
	q, err := At(mailroot)
	if err != nil {
		return nil, err
	}
	q.dir = filepath.Join(q.root, MetaDir, OutboundDir)
	q.tmp = filepath.Join(q.dir, TmpDir)
	return q, nil
}

// OpenOutbound opens, creating if needed, the outbound queue of a mail root.
func OpenOutbound(mailroot string) (*Queue, error) {
	q, err := AtOutbound(mailroot)
	if err != nil {
		return nil, err
	}
	return q.open()
}

// Open opens, creating if needed, the queue and Badmail folders of a mail root.
func Open(mailroot string) (*Queue, error) {
	q, err := At(mailroot)
	if err != nil {
		return nil, err
	}
	return q.open()
}

func (q *Queue) open() (*Queue, error) {
	abs := q.root
	for _, d := range []string{q.tmp, q.bad} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("cannot open the mail queue: %w", err)
		}
	}
	for _, d := range []string{filepath.Join(abs, MetaDir), q.dir, abs} {
		if err := durable.SyncDir(d); err != nil {
			return nil, fmt.Errorf("cannot open the mail queue: %w", err)
		}
	}
	return q, nil
}

// Dir returns the queue folder.
func (q *Queue) Dir() string { return q.dir }

// BadmailDir returns the Badmail folder.
func (q *Queue) BadmailDir() string { return q.bad }

var idSeq atomic.Uint64

// NewID returns a new queue id: the time in milliseconds, a counter and 48
// random bits, so that ids sort roughly by age and never collide between
// processes.
func NewID() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%013d-%06d-%s", time.Now().UnixMilli(), idSeq.Add(1)%1000000, hex.EncodeToString(b[:]))
}

// ValidID reports whether id may name a queue entry (store.ValidQueueID).
func ValidID(id string) bool { return store.ValidQueueID(id) }

// Enqueue stores a message and its envelope durably and returns the entry's
// id (env.ID when set, else a new one). It returns only once the message,
// its progress log and its envelope are fsynced and renamed into place and
// the folder is fsynced. body is stored as given: callers normalise line
// endings. An env.ID that is already queued returns ErrExists and leaves
// the queued entry alone.
func (q *Queue) Enqueue(env Envelope, body io.Reader) (string, error) {
	sp, err := q.newSpool()
	if err != nil {
		return "", err
	}
	if _, err := io.Copy(sp, body); err != nil {
		sp.Abort()
		return "", fmt.Errorf("cannot queue: %w", err)
	}
	return sp.Commit(env)
}

// Spool is a message being written into the queue: Write the body, then
// Commit it with its envelope, or Abort. It is not safe for concurrent use.
type Spool struct {
	q    *Queue
	path string
	f    *os.File
	bw   *bufio.Writer
	size int64
	err  error
}

// NewSpool starts writing a message in the queue's tmp folder.
func (q *Queue) NewSpool() (store.Spool, error) { return q.newSpool() }

func (q *Queue) newSpool() (*Spool, error) {
	p := filepath.Join(q.tmp, strconv.Itoa(os.Getpid())+"."+strconv.FormatUint(tmpSeq.Add(1), 10)+".spool")
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, fmt.Errorf("cannot queue: %w", err)
	}
	return &Spool{q: q, path: p, f: f, bw: bufio.NewWriterSize(f, copyBuffer)}, nil
}

// Write appends to the message.
func (s *Spool) Write(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	n, err := s.bw.Write(p)
	s.size += int64(n)
	if err != nil {
		s.err = err
	}
	return n, err
}

// Size returns the octets written so far.
func (s *Spool) Size() int64 { return s.size }

// Abort discards the message. Safe after Commit and more than once.
func (s *Spool) Abort() {
	if s.f != nil {
		s.f.Close()
		s.f = nil
	}
	if s.path != "" {
		os.Remove(s.path)
		s.path = ""
	}
}

// Commit makes the message a queue entry; see Enqueue.
func (s *Spool) Commit(env Envelope) (string, error) {
	defer s.Abort()
	if s.f == nil {
		return "", errors.New("cannot queue: the spool is closed")
	}
	q := s.q
	if env.ID == "" {
		env.ID = NewID()
	}
	if !ValidID(env.ID) {
		return "", fmt.Errorf("cannot queue: %w: %q", ErrBadID, env.ID)
	}
	if len(env.Rcpts) == 0 {
		return "", errors.New("cannot queue: the envelope has no recipients")
	}
	if env.Received.IsZero() {
		env.Received = time.Now()
	}
	id := env.ID
	if _, err := os.Lstat(q.path(id, EnvSuffix)); err == nil {
		return id, fmt.Errorf("cannot queue %s: %w", id, ErrExists)
	}
	envData, err := json.Marshal(env)
	if err != nil {
		return "", fmt.Errorf("cannot queue %s: %w", id, err)
	}
	err = s.err
	if err == nil {
		err = s.bw.Flush()
	}
	if err == nil {
		err = s.f.Sync()
	}
	if cerr := s.f.Close(); err == nil {
		err = cerr
	}
	s.f = nil
	if err != nil {
		return "", fmt.Errorf("cannot queue %s: %w", id, err)
	}
	// The log starts empty: nothing to fsync, its creation is made
	// durable by the folder's fsync below.
	logTmp, err := q.createEmpty(id + LogSuffix)
	if err != nil {
		return "", fmt.Errorf("cannot queue %s: %w", id, err)
	}
	defer os.Remove(logTmp)
	envTmp, err := q.writeTmp(id+EnvSuffix, func(w io.Writer) error { _, err := w.Write(envData); return err })
	if err != nil {
		return "", fmt.Errorf("cannot queue %s: %w", id, err)
	}
	defer os.Remove(envTmp)
	// The envelope goes last: an entry is live only once it is complete.
	for _, r := range [][2]string{{s.path, q.path(id, MsgSuffix)}, {logTmp, q.path(id, LogSuffix)}} {
		if err := os.Rename(r[0], r[1]); err != nil {
			return "", fmt.Errorf("cannot queue %s: %w", id, err)
		}
	}
	s.path = ""
	// link, unlike rename, never replaces an envelope queued meanwhile.
	if err := os.Link(envTmp, q.path(id, EnvSuffix)); err != nil {
		if errors.Is(err, os.ErrExist) {
			return id, fmt.Errorf("cannot queue %s: %w", id, ErrExists)
		}
		return "", fmt.Errorf("cannot queue %s: %w", id, err)
	}
	if err := durable.SyncDir(q.dir); err != nil {
		return "", fmt.Errorf("cannot queue %s: %w", id, err)
	}
	return id, nil
}

var tmpSeq atomic.Uint64

// writeTmp writes a file in the tmp folder through fill, fsyncs and closes
// it, and returns its path.
func (q *Queue) writeTmp(name string, fill func(io.Writer) error) (string, error) {
	p := filepath.Join(q.tmp, strconv.Itoa(os.Getpid())+"."+strconv.FormatUint(tmpSeq.Add(1), 10)+"."+name)
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return "", err
	}
	bw := bufio.NewWriterSize(f, copyBuffer)
	err = fill(bw)
	if err == nil {
		err = bw.Flush()
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(p)
		return "", err
	}
	return p, nil
}

// createEmpty creates an empty file in the tmp folder and returns its path.
func (q *Queue) createEmpty(name string) (string, error) {
	p := filepath.Join(q.tmp, strconv.Itoa(os.Getpid())+"."+strconv.FormatUint(tmpSeq.Add(1), 10)+"."+name)
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return "", err
	}
	return p, f.Close()
}

func (q *Queue) path(id, suffix string) string { return filepath.Join(q.dir, id+suffix) }

// List returns the ids of the live entries (those with an envelope),
// oldest first.
func (q *Queue) List() ([]string, error) {
	ents, err := os.ReadDir(q.dir)
	if err != nil {
		return nil, fmt.Errorf("cannot list the mail queue: %w", err)
	}
	var ids []string
	for _, e := range ents {
		name := e.Name()
		if id, ok := strings.CutSuffix(name, EnvSuffix); ok && ValidID(id) && e.Type().IsRegular() {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	return ids, nil
}

// Clean removes what a dead writer left behind: files in tmp and message
// or log files without an envelope, older than OrphanAge.
func (q *Queue) Clean(now time.Time) {
	if ents, err := os.ReadDir(q.tmp); err == nil {
		for _, e := range ents {
			if fi, err := e.Info(); err == nil && now.Sub(fi.ModTime()) > OrphanAge {
				os.Remove(filepath.Join(q.tmp, e.Name()))
			}
		}
	}
	ents, err := os.ReadDir(q.dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		name := e.Name()
		var id string
		if s, ok := strings.CutSuffix(name, MsgSuffix); ok {
			id = s
		} else if s, ok := strings.CutSuffix(name, LogSuffix); ok {
			id = s
		} else {
			continue
		}
		if _, err := os.Lstat(q.path(id, EnvSuffix)); err == nil {
			continue
		}
		if fi, err := e.Info(); err == nil && now.Sub(fi.ModTime()) > OrphanAge {
			os.Remove(filepath.Join(q.dir, name))
		}
	}
}

// Depth counts the queued entries and the messages in Badmail, for
// pop3ctl stat and the console. Missing folders count as empty.
func (q *Queue) Depth() (queued, badmail int, err error) {
	queued, err = countSuffix(q.dir, EnvSuffix)
	if err != nil {
		return 0, 0, fmt.Errorf("cannot read the mail queue: %w", err)
	}
	badmail, err = countSuffix(q.bad, BadSuffix)
	if err != nil {
		return 0, 0, fmt.Errorf("cannot read the Badmail folder: %w", err)
	}
	return queued, badmail, nil
}

func countSuffix(dir, suffix string) (int, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	n := 0
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), suffix) && e.Type().IsRegular() {
			n++
		}
	}
	return n, nil
}

// Badmail lists the ids of the messages in the Badmail folder.
func (q *Queue) Badmail() ([]string, error) {
	ents, err := os.ReadDir(q.bad)
	if err != nil {
		return nil, fmt.Errorf("cannot list the Badmail folder: %w", err)
	}
	var ids []string
	for _, e := range ents {
		if id, ok := strings.CutSuffix(e.Name(), BadSuffix); ok {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	return ids, nil
}

// BadmailReason returns the reason file of a Badmail message.
func (q *Queue) BadmailReason(id string) (string, error) {
	if !ValidID(id) {
		return "", fmt.Errorf("%w: %q", ErrBadID, id)
	}
	b, err := durable.ReadSmall(filepath.Join(q.bad, id+ReasonSufix), MaxEnvelopeSize)
	return string(b), err
}

// flock takes an exclusive, non-blocking lock on f.
func flock(f *os.File) error {
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == unix.EINTR {
			continue
		}
		if err == unix.EWOULDBLOCK {
			return ErrBusy
		}
		return err
	}
}

// trimReason makes a reason fit on one log line.
func trimReason(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	if len(s) > 500 {
		s = s[:500]
	}
	return strings.TrimSpace(s)
}
