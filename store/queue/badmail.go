package queue

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/pop3svc/pop3svc/store"
	"github.com/pop3svc/pop3svc/store/durable"
)

var _ store.BadmailAdmin = (*Queue)(nil)

// RetrySuffix names a Badmail message that RetryBadmail took (renamed
// from <id>.eml in the Badmail folder) while it queues it again; it is
// not listed, and a crash meanwhile leaves it there, never removed.
const RetrySuffix = ".retry"

func (q *Queue) badPath(id, suffix string) string { return filepath.Join(q.bad, id+suffix) }

// OpenBadmail opens a Badmail message.
func (q *Queue) OpenBadmail(id string) (io.ReadCloser, error) {
	if !ValidID(id) {
		return nil, fmt.Errorf("%w: %q", ErrBadID, id)
	}
	f, err := os.OpenFile(q.badPath(id, BadSuffix), os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("Badmail message %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("cannot open Badmail message %s: %w", id, err)
	}
	return f, nil
}

// DeleteBadmail removes a Badmail message, then its reason.
func (q *Queue) DeleteBadmail(id string) error {
	if !ValidID(id) {
		return fmt.Errorf("%w: %q", ErrBadID, id)
	}
	err := os.Remove(q.badPath(id, BadSuffix))
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("Badmail message %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("cannot delete Badmail message %s: %w", id, err)
	}
	if err := os.Remove(q.badPath(id, ReasonSufix)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("cannot delete the reason of Badmail message %s: %w", id, err)
	}
	return durable.SyncDir(q.bad)
}

// badEnvelope reads the sender and the recipients without a copy from a
// Badmail reason file (see Entry.ToBadmail).
func (q *Queue) badEnvelope(id string) (from string, rcpts []string, err error) {
	b, err := durable.ReadSmall(q.badPath(id, ReasonSufix), MaxEnvelopeSize)
	if err != nil {
		return "", nil, fmt.Errorf("cannot read the reason of Badmail message %s: %w", id, err)
	}
	haveFrom := false
	sc := bufio.NewScanner(strings.NewReader(string(b)))
	sc.Buffer(nil, MaxEnvelopeSize)
	for sc.Scan() {
		l := sc.Text()
		if v, ok := strings.CutPrefix(l, "From: <"); ok {
			from, haveFrom = strings.TrimSuffix(v, ">"), true
			continue
		}
		v, ok := strings.CutPrefix(l, "Recipient: <")
		if !ok {
			continue
		}
		addr, state, ok := strings.Cut(v, "> ")
		if !ok {
			continue
		}
		if !strings.HasPrefix(state, "delivered ") {
			rcpts = append(rcpts, addr)
		}
	}
	if !haveFrom || len(rcpts) == 0 {
		return "", nil, fmt.Errorf("Badmail message %s: its reason names no sender or no recipient without a copy, so it cannot be queued again", id)
	}
	return from, rcpts, nil
}

// RetryBadmail queues a Badmail message again for the recipients its
// reason lists without a copy. The message is first renamed out of
// Badmail (so two retries cannot both queue it), queued, then its reason
// removed; if queueing fails it is put back.
func (q *Queue) RetryBadmail(id string) (string, error) {
	if !ValidID(id) {
		return "", fmt.Errorf("%w: %q", ErrBadID, id)
	}
	if _, err := os.Lstat(q.badPath(id, BadSuffix)); errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("Badmail message %s: %w", id, ErrNotFound)
	}
	from, rcpts, err := q.badEnvelope(id)
	if err != nil {
		return "", err
	}
	claimed := q.badPath(id, RetrySuffix)
	if err := os.Rename(q.badPath(id, BadSuffix), claimed); errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("Badmail message %s: %w", id, ErrNotFound)
	} else if err != nil {
		return "", fmt.Errorf("cannot take Badmail message %s: %w", id, err)
	}
	putBack := func() { os.Rename(claimed, q.badPath(id, BadSuffix)) }
	f, err := os.Open(claimed)
	if err != nil {
		putBack()
		return "", fmt.Errorf("cannot read Badmail message %s: %w", id, err)
	}
	nid, err := q.Enqueue(Envelope{From: from, Rcpts: rcpts, Received: time.Now()}, f)
	f.Close()
	if err != nil {
		putBack()
		return "", fmt.Errorf("cannot queue Badmail message %s again: %w", id, err)
	}
	os.Remove(claimed)
	os.Remove(q.badPath(id, ReasonSufix))
	if err := durable.SyncDir(q.bad); err != nil {
		return nid, fmt.Errorf("Badmail message %s queued again as %s, but Badmail could not be synced: %w", id, nid, err)
	}
	return nid, nil
}
