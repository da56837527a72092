package queue

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pop3svc/pop3svc/store"
	"github.com/pop3svc/pop3svc/store/durable"
)

// RcptState is store.RcptState: what the progress log says about one
// recipient.
type RcptState = store.RcptState

// Entry is a queued message held under its lock. Its methods are not safe
// for concurrent use; Close releases the lock.
type Entry struct {
	q      *Queue
	id     string
	env    Envelope
	rcpts  []RcptState // by index into env.Rcpts
	starts []string    // tokens of the attempts recorded, in order
	ndr    string      // how the non-delivery report was handled; "" when not yet
	// next is when the next attempt is due, as the last postponed attempt
	// recorded it (any server); attempts counts postponed attempts.
	next     time.Time
	attempts int
	log      *os.File
}

var _ store.QueueEntry = (*Entry)(nil)

// ID returns the entry's id.
func (e *Entry) ID() string { return e.id }

// Envelope returns the entry's envelope.
func (e *Entry) Envelope() Envelope { return e.env }

// Rcpts returns the progress of each recipient, by index into
// Envelope().Rcpts.
func (e *Entry) Rcpts() []RcptState { return e.rcpts }

// Starts returns the tokens of the attempts recorded, in order.
func (e *Entry) Starts() []string { return e.starts }

// NDR says how the non-delivery report was handled; "" when not yet.
func (e *Entry) NDR() string { return e.ndr }

// Lock opens an entry and takes its lock. It returns ErrNotFound when the
// entry is gone and ErrBusy when another worker holds it.
func (q *Queue) Lock(id string) (store.QueueEntry, error) { return q.lock(id) }

func (q *Queue) lock(id string) (*Entry, error) {
	if !ValidID(id) {
		return nil, fmt.Errorf("%w: %q", ErrBadID, id)
	}
	f, err := os.OpenFile(q.path(id, LogSuffix), os.O_RDWR|os.O_APPEND|syscall.O_NOFOLLOW, 0)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("queue entry %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("cannot open queue entry %s: %w", id, err)
	}
	if err := flock(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("queue entry %s: %w", id, err)
	}
	e := &Entry{q: q, id: id, log: f}
	if err := e.load(); err != nil {
		f.Close()
		return nil, err
	}
	return e, nil
}

func (e *Entry) load() error {
	envData, err := durable.ReadSmall(e.q.path(e.id, EnvSuffix), MaxEnvelopeSize)
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("queue entry %s: %w", e.id, ErrNotFound)
	}
	if err != nil {
		var pe *os.PathError
		if !errors.As(err, &pe) {
			return fmt.Errorf("%w %s: %v", ErrDamaged, e.id, err) // over the size limit
		}
		return fmt.Errorf("cannot read queue entry %s: %w", e.id, err)
	}
	if err := json.Unmarshal(envData, &e.env); err != nil {
		return fmt.Errorf("%w %s: bad envelope: %v", ErrDamaged, e.id, err)
	}
	e.env.ID = e.id
	if e.env.Received.IsZero() {
		// An envelope dropped by another program may omit the time: take
		// the envelope's own, so that retries are timed from its arrival.
		e.env.Received = time.Now()
		if fi, err := os.Lstat(e.q.path(e.id, EnvSuffix)); err == nil {
			e.env.Received = fi.ModTime()
		}
	}
	if len(e.env.Rcpts) == 0 {
		return fmt.Errorf("%w %s: the envelope has no recipients", ErrDamaged, e.id)
	}
	e.rcpts = make([]RcptState, len(e.env.Rcpts))
	freshen(e.log)
	logData, err := io.ReadAll(io.LimitReader(e.log, MaxLogSize+1))
	if err != nil {
		return fmt.Errorf("cannot read queue entry %s: %w", e.id, err)
	}
	if len(logData) > MaxLogSize {
		return fmt.Errorf("%w %s: progress log larger than %d octets", ErrDamaged, e.id, MaxLogSize)
	}
	// A crash in the middle of an append leaves a last line without its
	// newline: ignore it, and end it so the next record starts clean.
	if n := len(logData); n > 0 && logData[n-1] != '\n' {
		if _, err := e.log.Write([]byte("\n")); err != nil {
			return fmt.Errorf("cannot repair queue entry %s: %w", e.id, err)
		}
		if i := bytes.LastIndexByte(logData, '\n'); i >= 0 {
			logData = logData[:i+1]
		} else {
			logData = nil
		}
	}
	sc := bufio.NewScanner(bytes.NewReader(logData))
	sc.Buffer(make([]byte, 4096), MaxLogSize)
	for sc.Scan() {
		e.apply(sc.Text())
	}
	return nil
}

// freshen makes the next read of f come from the file system's server
// rather than this client's caches, which a network file system (a FUSE
// GlusterFS client, for up to its attribute timeout) may keep across an
// open: another server may have appended to the progress log under the
// lock just released. It refreshes the size and times (statx with
// AT_STATX_FORCE_SYNC) and drops the cached pages. On a local file system
// both are cheap no-ops.
func freshen(f *os.File) {
	var st unix.Statx_t
	_ = unix.Statx(int(f.Fd()), "", unix.AT_EMPTY_PATH|unix.AT_STATX_FORCE_SYNC, unix.STATX_SIZE|unix.STATX_MTIME, &st)
	_ = unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
}

// apply reads one progress record; unknown or malformed ones are skipped.
func (e *Entry) apply(line string) {
	verb, rest, _ := strings.Cut(line, " ")
	switch verb {
	case "start":
		e.starts = append(e.starts, rest)
	case "retry":
		ms, n, _ := strings.Cut(rest, " ")
		if v, err := strconv.ParseInt(ms, 10, 64); err == nil {
			e.next = time.UnixMilli(v)
		}
		if v, err := strconv.Atoi(n); err == nil {
			e.attempts = v
		}
	case "ndr":
		e.ndr = rest
		if e.ndr == "" {
			e.ndr = "handled"
		}
	case "done", "fail":
		idx, rest, _ := strings.Cut(rest, " ")
		i, err := strconv.Atoi(idx)
		if err != nil || i < 0 || i >= len(e.rcpts) {
			return
		}
		if verb == "done" {
			e.rcpts[i] = RcptState{Done: true, UID: rest}
			return
		}
		status, reason, _ := strings.Cut(rest, " ")
		e.rcpts[i] = RcptState{Failed: true, Status: status, Reason: reason}
	}
}

// Close releases the entry's lock.
func (e *Entry) Close() error {
	if e.log == nil {
		return nil
	}
	err := e.log.Close()
	e.log = nil
	return err
}

// record appends one line to the progress log and fsyncs it.
func (e *Entry) record(line string, sync bool) error {
	if e.log == nil {
		return errors.New("queue entry is closed")
	}
	if _, err := e.log.Write([]byte(line + "\n")); err != nil {
		return fmt.Errorf("cannot record progress of %s: %w", e.id, err)
	}
	if sync {
		if err := e.log.Sync(); err != nil {
			return fmt.Errorf("cannot record progress of %s: %w", e.id, err)
		}
	}
	e.apply(line)
	return nil
}

// Start records, durably, that a delivery attempt by token begins. It must
// precede any delivery so that a later attempt by another process knows to
// look for copies that landed without their "done" record.
func (e *Entry) Start(token string) error {
	return e.record("start "+trimReason(token), true)
}

// NeedsCheck reports whether a recipient that is not resolved may
// nonetheless have its copy: an attempt by a process other than token was
// recorded (it may have died between delivering and recording).
func (e *Entry) NeedsCheck(token string) bool {
	for _, s := range e.starts {
		if s != token {
			return true
		}
	}
	return false
}

var _ store.QueueSchedule = (*Entry)(nil)

// NextAttempt returns when the next attempt is due and how many attempts
// were postponed (zero: none), as recorded by any server.
func (e *Entry) NextAttempt() (time.Time, int) { return e.next, e.attempts }

// Postpone records when the next attempt is due and how many attempts
// were postponed, so that every server serving the queue waits for the
// same time: an entry is retried once in the whole cluster, not once per
// server. Not fsynced: after a power loss the entry is only retried early.
func (e *Entry) Postpone(next time.Time, attempts int) error {
	return e.record(fmt.Sprintf("retry %d %d", next.UnixMilli(), attempts), false)
}

// Done records, durably, that recipient i has its copy. Durably because
// the delivery service makes a staged copy visible only after this record
// (store.StagedDelivery): once visible, a user may retrieve and delete the
// copy, and a recovery that found no record and no copy would deliver it
// again. The fsync also pushes the record out of a network file system's
// client (GlusterFS's write-behind) before the entry's lock is released,
// so the next server to lock the entry reads it.
func (e *Entry) Done(i int, uid string) error {
	return e.record(fmt.Sprintf("done %d %s", i, trimReason(uid)), true)
}

// Fail records, durably, a permanent failure for recipient i.
func (e *Entry) Fail(i int, status, reason string) error {
	if status == "" || strings.ContainsAny(status, " \t\r\n") {
		status = "5.0.0"
	}
	return e.record(fmt.Sprintf("fail %d %s %s", i, status, trimReason(reason)), true)
}

// RecordNDR records, durably, how the non-delivery report was handled.
func (e *Entry) RecordNDR(how string) error {
	how = trimReason(how)
	if how == "" {
		how = "handled"
	}
	return e.record("ndr "+how, true)
}

// Resolved reports whether every recipient is done or failed.
func (e *Entry) Resolved() bool {
	for _, r := range e.rcpts {
		if !r.Resolved() {
			return false
		}
	}
	return true
}

// Failed returns the indexes of the failed recipients.
func (e *Entry) Failed() []int {
	var out []int
	for i, r := range e.rcpts {
		if r.Failed {
			out = append(out, i)
		}
	}
	return out
}

// Open returns a reader of the queued message.
func (e *Entry) Open() (io.ReadCloser, error) {
	f, err := os.OpenFile(e.q.path(e.id, MsgSuffix), os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil, fmt.Errorf("cannot open queued message %s: %w", e.id, err)
	}
	return f, nil
}

// Size returns the size of the queued message in octets.
func (e *Entry) Size() (int64, error) {
	fi, err := os.Lstat(e.q.path(e.id, MsgSuffix))
	if err != nil {
		return 0, fmt.Errorf("cannot stat queued message %s: %w", e.id, err)
	}
	return fi.Size(), nil
}

// Remove deletes the entry (envelope first, so that a crash halfway
// leaves only orphans that Clean removes) and releases the lock. The
// folder is not fsynced: an entry that comes back after a power loss is
// delivered again only to recipients whose copies are not found.
func (e *Entry) Remove() error {
	err := os.Remove(e.q.path(e.id, EnvSuffix))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		e.Close()
		return fmt.Errorf("cannot remove queue entry %s: %w", e.id, err)
	}
	os.Remove(e.q.path(e.id, MsgSuffix))
	os.Remove(e.q.path(e.id, LogSuffix))
	return e.Close()
}

// Quarantine moves a damaged entry (one that Lock refuses with ErrDamaged)
// to Badmail, so that it is neither retried for ever nor lost: the message
// as it was queued (an empty one when even that is gone) and a reason file
// that quotes the start of the damaged envelope. An entry that loads
// again is left alone.
func (q *Queue) Quarantine(id, reason string) error {
	if !ValidID(id) {
		return fmt.Errorf("%w: %q", ErrBadID, id)
	}
	f, err := os.OpenFile(q.path(id, LogSuffix), os.O_RDWR|os.O_APPEND|syscall.O_NOFOLLOW, 0)
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("queue entry %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("cannot open queue entry %s: %w", id, err)
	}
	if err := flock(f); err != nil {
		f.Close()
		return fmt.Errorf("queue entry %s: %w", id, err)
	}
	e := &Entry{q: q, id: id, log: f}
	if err := e.load(); !errors.Is(err, ErrDamaged) {
		f.Close()
		if err == nil {
			return fmt.Errorf("queue entry %s is not damaged", id)
		}
		return err
	}
	raw, _ := durable.ReadSmall(q.path(id, EnvSuffix), 1024)
	e.env = Envelope{ID: id, Received: time.Now()}
	if fi, err := os.Lstat(q.path(id, EnvSuffix)); err == nil {
		e.env.Received = fi.ModTime()
	}
	e.rcpts = nil
	if _, err := os.Lstat(q.path(id, MsgSuffix)); errors.Is(err, os.ErrNotExist) {
		if err := os.WriteFile(q.path(id, MsgSuffix), nil, 0o600); err != nil {
			e.Close()
			return fmt.Errorf("cannot move %s to Badmail: %w", id, err)
		}
	}
	return e.ToBadmail(reason + "; envelope: " + strconv.Quote(string(raw)))
}

// MovedToBadmail reports whether the message already went to Badmail (an
// attempt died between the move and removing the entry).
func (e *Entry) MovedToBadmail() bool {
	if _, err := os.Lstat(e.q.path(e.id, MsgSuffix)); !errors.Is(err, os.ErrNotExist) {
		return false
	}
	_, err := os.Lstat(filepath.Join(e.q.bad, e.id+BadSuffix))
	return err == nil
}

// ToBadmail moves the message into the Badmail folder with a reason file
// beside it, then removes the entry. The reason file is written first, so
// a Badmail message never lacks its reason.
func (e *Entry) ToBadmail(reason string) error {
	bad := e.q.bad
	var sb strings.Builder
	fmt.Fprintf(&sb, "Reason: %s\n", trimReason(reason)) // a relay's multi-line reply stays on one line
	fmt.Fprintf(&sb, "Queue-Id: %s\n", e.id)
	fmt.Fprintf(&sb, "Received: %s\n", e.env.Received.UTC().Format("2006-01-02T15:04:05Z"))
	fmt.Fprintf(&sb, "From: <%s>\n", trimReason(e.env.From)) // one line, whatever the envelope holds
	for i, r := range e.env.Rcpts {
		st := e.rcpts[i]
		switch {
		case st.Done:
			fmt.Fprintf(&sb, "Recipient: <%s> delivered %s\n", r, st.UID)
		case st.Failed:
			fmt.Fprintf(&sb, "Recipient: <%s> failed %s %s\n", r, st.Status, st.Reason)
		default:
			fmt.Fprintf(&sb, "Recipient: <%s> not delivered\n", r)
		}
	}
	reasonTmp, err := e.q.writeTmp(e.id+ReasonSufix, func(w io.Writer) error {
		_, err := io.WriteString(w, sb.String())
		return err
	})
	if err != nil {
		return fmt.Errorf("cannot move %s to Badmail: %w", e.id, err)
	}
	defer os.Remove(reasonTmp)
	if err := os.Rename(reasonTmp, filepath.Join(bad, e.id+ReasonSufix)); err != nil {
		return fmt.Errorf("cannot move %s to Badmail: %w", e.id, err)
	}
	dst := filepath.Join(bad, e.id+BadSuffix)
	if err := os.Rename(e.q.path(e.id, MsgSuffix), dst); err != nil {
		// Already moved by an attempt that died before removing the entry.
		if _, serr := os.Lstat(dst); !(errors.Is(err, os.ErrNotExist) && serr == nil) {
			return fmt.Errorf("cannot move %s to Badmail: %w", e.id, err)
		}
	}
	if err := durable.SyncDir(bad); err != nil {
		return fmt.Errorf("cannot move %s to Badmail: %w", e.id, err)
	}
	return e.Remove()
}
