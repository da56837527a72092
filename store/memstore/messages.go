package memstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pop3svc/pop3svc/store"
	"github.com/pop3svc/pop3svc/store/crlf"
)

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

var _ store.Importer = (*Store)(nil)

// Import stores a message with the UIDL its old server gave it
// (store.Importer): no quota or size limit; a UIDL already in the mailbox
// stores nothing and returns store.ErrDuplicateUIDL.
func (s *Store) Import(ctx context.Context, addr store.Address, uidl string, msg io.Reader) (string, error) {
	a, err := store.CanonicalAddress(addr)
	if err != nil {
		return "", fmt.Errorf("cannot import: %w", err)
	}
	if !store.ValidUIDL(uidl) {
		return "", fmt.Errorf("cannot import into %s: UIDL %q: %w", a, uidl, store.ErrInvalidUIDL)
	}
	if err := ctxErr(ctx); err != nil {
		return "", err
	}
	var buf bytes.Buffer
	size, err := crlf.Copy(ctx, &buf, msg, 0)
	if err != nil {
		return "", fmt.Errorf("cannot import into %s: %w", a, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	_, m, err := s.lookup(a)
	if err != nil {
		return "", fmt.Errorf("cannot import into %s: %w", a, err)
	}
	taken := func(id string) bool {
		for _, x := range m.msgs {
			if x.id() == id {
				return true
			}
		}
		return false
	}
	if taken(uidl) {
		return "", fmt.Errorf("cannot import into %s: UIDL %q: %w", a, uidl, store.ErrDuplicateUIDL)
	}
	name := s.names.Next(s.now())
	for taken(name) {
		name = s.names.Next(s.now())
	}
	body := buf.Bytes()
	if body == nil {
		body = []byte{}
	}
	msg1 := &message{uid: name, body: body}
	if uidl != name {
		msg1.uidl = uidl
	}
	m.msgs = append(m.msgs, msg1)
	m.bytes += size
	return name, nil
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
	ms := &session{s: s, addr: a, box: m, owner: owner, bodies: slices.Clone(m.msgs), lastLogin: m.lastLogin}
	ms.msgs = make([]store.MessageInfo, len(ms.bodies))
	for i, msg := range ms.bodies {
		ms.msgs[i] = store.MessageInfo{UID: msg.id(), Size: int64(len(msg.body)), Retrieved: msg.retrieved}
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
	// lastLogin is the mailbox's last recorded login when the session opened.
	lastLogin time.Time
}

var (
	_ store.PolicyState = (*session)(nil)
	_ store.PolicyStore = (*Store)(nil)
)

// KeepsPolicyState marks the store as one whose sessions implement store.PolicyState.
func (s *Store) KeepsPolicyState() {}

// LastLogin implements store.PolicyState.
func (m *session) LastLogin() time.Time { return m.lastLogin }

// RecordLogin implements store.PolicyState.
func (m *session) RecordLogin(at time.Time) error {
	if m.closed.Load() {
		return store.ErrSessionClosed
	}
	m.s.mu.Lock()
	m.box.lastLogin = at
	m.s.mu.Unlock()
	return nil
}

// MarkRetrieved implements store.PolicyState.
func (m *session) MarkRetrieved(ctx context.Context, indexes []int, at time.Time) error {
	if m.closed.Load() {
		return store.ErrSessionClosed
	}
	if err := ctxErr(ctx); err != nil {
		return err
	}
	for _, i := range indexes {
		if i < 0 || i >= len(m.msgs) {
			return fmt.Errorf("cannot record retrievals in %s: message %d: %w", m.addr, i+1, store.ErrNoSuchMessage)
		}
	}
	m.s.mu.Lock()
	defer m.s.mu.Unlock()
	for _, i := range indexes {
		if msg := m.bodies[i]; msg.retrieved.IsZero() || at.Before(msg.retrieved) {
			msg.retrieved = at
		}
	}
	return nil
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

var _ store.Snapshots = (*Store)(nil)

// Snapshot lists a mailbox without taking its lock (store.Snapshots).
// Bodies never change, so the snapshot reads them even after a deletion.
func (s *Store) Snapshot(ctx context.Context, addr store.Address) (store.MailboxSnapshot, error) {
	a, err := store.CanonicalAddress(addr)
	if err != nil {
		return nil, fmt.Errorf("cannot read mailbox: %w", err)
	}
	if err := ctxErr(ctx); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	_, m, err := s.lookup(a)
	if err != nil {
		return nil, fmt.Errorf("cannot read mailbox %s: %w", a, err)
	}
	snap := &snapshot{addr: a, bodies: slices.Clone(m.msgs)}
	snap.msgs = make([]store.MessageInfo, len(snap.bodies))
	for i, msg := range snap.bodies {
		snap.msgs[i] = store.MessageInfo{UID: msg.id(), Size: int64(len(msg.body))}
	}
	return snap, nil
}

type snapshot struct {
	addr   store.Address
	msgs   []store.MessageInfo
	bodies []*message
}

func (r *snapshot) Messages() []store.MessageInfo { return r.msgs }

func (r *snapshot) Open(i int) (io.ReadCloser, error) {
	if i < 0 || i >= len(r.msgs) {
		return nil, fmt.Errorf("message %d of %s: %w", i+1, r.addr, store.ErrNoSuchMessage)
	}
	mr := &msgReader{}
	mr.r.Reset(r.bodies[i].body)
	return mr, nil
}
