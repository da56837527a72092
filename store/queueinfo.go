package store

import (
	"errors"
	"fmt"
	"time"
)

// The operator's view of a queue (pop3ctl queue, the admin API's
// /api/queue, the console), built on Queue alone so that every queue
// implementation gets it.

// Queue names as operators give them.
const (
	QueueInbound  = "inbound"  // the mail queue: mail for local mailboxes
	QueueOutbound = "outbound" // submitted mail for other domains
)

// QueueItem describes one queue entry.
type QueueItem struct {
	Queue    string    `json:"queue"`
	ID       string    `json:"id"`
	From     string    `json:"from"`
	Received time.Time `json:"received"`
	Size     int64     `json:"size"`
	// Busy: a worker holds the entry (a delivery attempt is running); the
	// fields below are then unknown.
	Busy        bool        `json:"busy"`
	Attempts    int         `json:"attempts"`               // postponed attempts
	NextAttempt *time.Time  `json:"next_attempt,omitempty"` // when postponed
	Report      bool        `json:"report,omitempty"`       // a non-delivery report
	Rcpts       []QueueRcpt `json:"rcpts"`
}

// QueueRcpt is one recipient's state in a QueueItem.
type QueueRcpt struct {
	Addr   string `json:"addr"`
	State  string `json:"state"` // "pending", "done" or "failed"
	Status string `json:"status,omitempty"`
	Reason string `json:"reason,omitempty"`
}

// DescribeQueueEntry reads one entry under its lock.
func DescribeQueueEntry(q Queue, name, id string) (QueueItem, error) {
	it := QueueItem{Queue: name, ID: id}
	e, err := q.Lock(id)
	if errors.Is(err, ErrQueueBusy) {
		it.Busy = true
		return it, nil
	}
	if err != nil {
		return it, err
	}
	defer e.Close()
	env := e.Envelope()
	it.From, it.Received, it.Report = env.From, env.Received, env.Report
	it.Size, _ = e.Size()
	if sch, ok := e.(QueueSchedule); ok {
		next, n := sch.NextAttempt()
		it.Attempts = n
		if !next.IsZero() {
			it.NextAttempt = &next
		}
	}
	for i, r := range env.Rcpts {
		qr := QueueRcpt{Addr: r, State: "pending"}
		if i < len(e.Rcpts()) {
			st := e.Rcpts()[i]
			switch {
			case st.Done:
				qr.State = "done"
			case st.Failed:
				qr.State, qr.Status, qr.Reason = "failed", st.Status, st.Reason
			}
		}
		it.Rcpts = append(it.Rcpts, qr)
	}
	return it, nil
}

// DescribeQueue describes every live entry, oldest first. An entry that
// left the queue meanwhile is skipped.
func DescribeQueue(q Queue, name string) ([]QueueItem, error) {
	ids, err := q.List()
	if err != nil {
		return nil, err
	}
	out := make([]QueueItem, 0, len(ids))
	for _, id := range ids {
		it, err := DescribeQueueEntry(q, name, id)
		if errors.Is(err, ErrQueueNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("queue entry %s: %w", id, err)
		}
		out = append(out, it)
	}
	return out, nil
}

// RetryQueueEntry makes a postponed entry due now; the delivery service
// takes it at its next scan, or at once when told (the admin API).
func RetryQueueEntry(q Queue, id string) error {
	e, err := q.Lock(id)
	if err != nil {
		return err
	}
	defer e.Close()
	sch, ok := e.(QueueSchedule)
	if !ok {
		return nil
	}
	_, n := sch.NextAttempt()
	return sch.Postpone(time.Now(), n)
}

// DeleteQueueEntry removes an entry without delivering it or reporting.
func DeleteQueueEntry(q Queue, id string) error {
	e, err := q.Lock(id)
	if err != nil {
		return err
	}
	defer e.Close()
	return e.Remove()
}
