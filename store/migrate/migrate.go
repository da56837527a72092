// Package migrate moves mailboxes of other POP3 servers into a store,
// keeping every message's UIDL (store.Importer), so that clients which
// leave mail on the server download nothing twice after the move.
//
// A Source lists one old mailbox in the old server's order, each message
// with the UIDL the old server gave it and its size as that server
// reported it (CRLF line endings). This package reads Dovecot and Courier
// Maildirs, mbox files and a Windows POP3 Service mail root; pop3ctl adds
// a live POP3 server.
//
// Import is idempotent and resumable: it lists the UIDs already in the
// target mailbox and imports only the messages whose UIDL is missing, in
// order, each made durable before the next; the store refuses a UIDL twice
// (store.ErrDuplicateUIDL). Running it again after it finished imports
// nothing; after it was interrupted it carries on where it stopped. Mail
// delivered into the mailbox meanwhile sorts after the messages imported
// before it. A message that a user deleted from the new mailbox is
// imported again by a later run: run the final import before users move.
//
// UIDLs outside RFC 1939's rules (store.ValidUIDL) cannot be kept: such a
// message is imported under the UIDL SubstituteUIDL gives, the same on
// every run (so it is imported once), and reported; its client downloads
// it once more. Two messages of one old mailbox with the same UIDL (which
// RFC 1939 forbids, and which a client could not tell apart either) are
// reported, and only the first is imported.
package migrate

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/pop3svc/pop3svc/store"
	"github.com/pop3svc/pop3svc/store/crlf"
)

// Message is one message of an old mailbox.
type Message struct {
	UIDL string // the UIDL the old server gave it, possibly outside RFC 1939's rules
	Size int64  // octets with CRLF line endings as the old server counts them; -1: unknown
	// Open returns the message's content. Sources that read a connection
	// (POP3) allow one open message at a time, in any order.
	Open func(ctx context.Context) (io.ReadCloser, error)
}

// Source is one old mailbox.
type Source interface {
	// List returns the mailbox's messages in the old server's order.
	List(ctx context.Context) ([]Message, error)
	Close() error
}

// Target is what an import needs of a store.
type Target interface {
	store.Importer
	store.Snapshots
}

// SubstitutePrefix starts the UIDL that stands in for an old UIDL outside
// RFC 1939's rules.
const SubstitutePrefix = "imported-"

// SubstituteUIDL returns the UIDL kept for an old UIDL outside RFC 1939's
// rules: SubstitutePrefix and 32 hexadecimal digits of the old UIDL's
// SHA-256, the same on every run.
func SubstituteUIDL(old string) string {
	h := sha256.Sum256([]byte(old))
	return SubstitutePrefix + hex.EncodeToString(h[:16])
}

// KeptUIDL returns the UIDL a message is stored under: its old UIDL, or
// SubstituteUIDL's when that breaks RFC 1939's rules.
func KeptUIDL(old string) (uidl string, substituted bool) {
	if store.ValidUIDL(old) {
		return old, false
	}
	return SubstituteUIDL(old), true
}

// Progress is reported after each message an import looks at.
type Progress struct {
	Mailbox        store.Address
	Done, Total    int   // messages looked at, in the old mailbox
	Bytes          int64 // octets imported so far
	Imported       int
	AlreadyPresent int
}

// Result sums up the import of one mailbox.
type Result struct {
	Mailbox        string       `json:"mailbox"`
	Source         int          `json:"source_messages"`
	Imported       int          `json:"imported"`
	AlreadyPresent int          `json:"already_present"`
	Substituted    []string     `json:"substituted_uidls,omitempty"` // old UIDLs outside RFC 1939's rules
	Duplicates     []string     `json:"duplicate_uidls,omitempty"`   // UIDLs an old mailbox gave twice
	Bytes          int64        `json:"bytes"`
	Seconds        float64      `json:"seconds"`
	Error          string       `json:"error,omitempty"`
	Differences    []Difference `json:"differences,omitempty"` // -verify
	Verified       bool         `json:"verified,omitempty"`
}

// Options tune an import.
type Options struct {
	// Progress, when set, is called after each message.
	Progress func(Progress)
}

// Import copies every message of src missing from the mailbox addr of dst.
func Import(ctx context.Context, dst Target, addr store.Address, src Source, opts Options) (res Result, err error) {
	start := time.Now()
	res.Mailbox = addr.String()
	defer func() {
		res.Seconds = time.Since(start).Seconds()
		if err != nil {
			res.Error = store.Reason(err)
		}
	}()
	msgs, err := src.List(ctx)
	if err != nil {
		return res, err
	}
	res.Source = len(msgs)
	have, err := uids(ctx, dst, addr)
	if err != nil {
		return res, err
	}
	seen := make(map[string]bool, len(msgs))
	for i, m := range msgs {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		u, sub := KeptUIDL(m.UIDL)
		if sub {
			res.Substituted = append(res.Substituted, m.UIDL)
		}
		switch {
		case seen[u]:
			res.Duplicates = append(res.Duplicates, m.UIDL)
		case have[u]:
			res.AlreadyPresent++
		default:
			n, err := importOne(ctx, dst, addr, u, m)
			switch {
			case errors.Is(err, store.ErrDuplicateUIDL):
				res.AlreadyPresent++ // imported meanwhile by another run
			case err != nil:
				return res, fmt.Errorf("message %d (UIDL %q): %w", i+1, m.UIDL, err)
			default:
				res.Imported++
				res.Bytes += n
			}
		}
		seen[u] = true
		if opts.Progress != nil {
			opts.Progress(Progress{Mailbox: addr, Done: i + 1, Total: len(msgs), Bytes: res.Bytes, Imported: res.Imported, AlreadyPresent: res.AlreadyPresent})
		}
	}
	return res, nil
}

func importOne(ctx context.Context, dst Target, addr store.Address, uidl string, m Message) (int64, error) {
	rc, err := m.Open(ctx)
	if err != nil {
		return 0, err
	}
	defer rc.Close()
	cr := &countReader{r: rc}
	if _, err := dst.Import(ctx, addr, uidl, cr); err != nil {
		return 0, err
	}
	return cr.n, nil
}

type countReader struct {
	r io.Reader
	n int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func uids(ctx context.Context, dst Target, addr store.Address) (map[string]bool, error) {
	snap, err := dst.Snapshot(ctx, addr)
	if err != nil {
		return nil, err
	}
	have := make(map[string]bool)
	for _, m := range snap.Messages() {
		have[m.UID] = true
	}
	return have, nil
}

// crlfSize counts a message's octets with CRLF line endings, as the store
// keeps it (package store/crlf).
func crlfSize(ctx context.Context, m Message) (int64, error) {
	rc, err := m.Open(ctx)
	if err != nil {
		return 0, err
	}
	defer rc.Close()
	return crlf.Copy(ctx, io.Discard, rc, 0)
}

// Difference is one way the new mailbox differs from the old.
type Difference struct {
	Kind string `json:"kind"` // missing, size, order, only-new
	UIDL string `json:"uidl"`
	Old  int64  `json:"old_size,omitempty"`
	New  int64  `json:"new_size,omitempty"`
}

func (d Difference) String() string {
	switch d.Kind {
	case "missing":
		return fmt.Sprintf("UIDL %q is in the old mailbox but not in the new", d.UIDL)
	case "size":
		return fmt.Sprintf("UIDL %q has %d octets in the old mailbox and %d in the new", d.UIDL, d.Old, d.New)
	case "order":
		return fmt.Sprintf("UIDL %q is out of the old mailbox's order in the new", d.UIDL)
	default:
		return fmt.Sprintf("UIDL %q is only in the new mailbox", d.UIDL)
	}
}

// Fails reports whether the difference means the move is incomplete; a
// message only in the new mailbox (delivered after the move) does not.
func (d Difference) Fails() bool { return d.Kind != "only-new" }

// Verify compares the UIDL list and sizes of the old mailbox with the new:
// every old message must be in the new mailbox under its kept UIDL, with
// the same size where the old server told it, and in the same order.
func Verify(ctx context.Context, dst Target, addr store.Address, src Source) ([]Difference, error) {
	msgs, err := src.List(ctx)
	if err != nil {
		return nil, err
	}
	snap, err := dst.Snapshot(ctx, addr)
	if err != nil {
		return nil, err
	}
	pos := make(map[string]int)
	size := make(map[string]int64)
	for i, m := range snap.Messages() {
		pos[m.UID] = i
		size[m.UID] = m.Size
	}
	var diffs []Difference
	old := make(map[string]bool)
	last := -1
	for _, m := range msgs {
		u, _ := KeptUIDL(m.UIDL)
		if old[u] {
			continue // a duplicate, reported by Import
		}
		old[u] = true
		p, ok := pos[u]
		switch {
		case !ok:
			diffs = append(diffs, Difference{Kind: "missing", UIDL: u, Old: m.Size})
			continue
		}
		osz := m.Size
		if osz < 0 {
			if osz, err = crlfSize(ctx, m); err != nil {
				return nil, err
			}
		}
		if osz != size[u] {
			diffs = append(diffs, Difference{Kind: "size", UIDL: u, Old: osz, New: size[u]})
		}
		if p < last {
			diffs = append(diffs, Difference{Kind: "order", UIDL: u})
		}
		last = max(last, p)
	}
	for _, m := range snap.Messages() {
		if !old[m.UID] {
			diffs = append(diffs, Difference{Kind: "only-new", UIDL: m.UID, New: m.Size})
		}
	}
	return diffs, nil
}
