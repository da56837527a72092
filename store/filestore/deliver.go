//go:build linux

package filestore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/pop3svc/pop3svc/store"
	"github.com/pop3svc/pop3svc/store/crlf"
	"github.com/pop3svc/pop3svc/store/durable"
)

var tmpSeq atomic.Uint64

// Deliver stores one message; see store.Delivery and the package doc.
func (s *Store) Deliver(ctx context.Context, addr store.Address, msg io.Reader) (string, error) {
	a, dir, tmp, unlock, err := s.writeCopy(ctx, addr, msg)
	if err != nil {
		return "", err
	}
	defer unlock()
	defer os.Remove(tmp) // after the link below, only the temporary name goes
	// link never replaces an existing name: a name another process took
	// (same node, same millisecond) makes us try the next one.
	for i := 0; i < maxNameRetries; i++ {
		name := s.names.Next(s.now())
		err := os.Link(tmp, filepath.Join(dir, msgPrefix+name+msgSuffix))
		if err == nil {
			if err := durable.SyncDir(dir); err != nil {
				return "", fmt.Errorf("cannot deliver to %s: %w", a, err)
			}
			return name, nil
		}
		if errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("cannot deliver to %s: %w", a, store.ErrNoSuchMailbox)
		}
		if !errors.Is(err, os.ErrExist) {
			return "", fmt.Errorf("cannot deliver to %s: %w", a, err)
		}
	}
	return "", fmt.Errorf("cannot deliver to %s: no free message name after %d attempts", a, maxNameRetries)
}

// writeCopy makes Deliver's checks and writes msg, fsynced, to a new
// temporary file. When a quota applies it returns holding the mailbox's
// quota lock (unlock releases it), so that deliveries of this process into
// one mailbox check and store one at a time.
func (s *Store) writeCopy(ctx context.Context, addr store.Address, msg io.Reader) (a store.Address, dir, tmp string, unlock func(), err error) {
	unlock = func() {}
	a, err = canonAddr(addr)
	if err != nil {
		return a, "", "", unlock, fmt.Errorf("cannot deliver: %w", err)
	}
	if err := ctxErr(ctx); err != nil {
		return a, "", "", unlock, err
	}
	if err := s.checkMailbox(a); err != nil {
		return a, "", "", unlock, fmt.Errorf("cannot deliver to %s: %w", a, err)
	}
	dir = s.mboxPath(a)
	quota, err := s.effectiveQuota(dir)
	if err != nil {
		return a, "", "", unlock, fmt.Errorf("cannot deliver to %s: %w", a, err)
	}
	maxSize := s.maxMessage.Load()
	limit := maxSize
	if quota > 0 && (limit == 0 || quota < limit) {
		limit = quota // a message larger than the whole quota never fits
	}

	tmp = s.tmpPath()
	size, err := writeMessage(ctx, tmp, msg, limit)
	if err != nil {
		os.Remove(tmp)
		if errors.Is(err, crlf.ErrLimit) {
			if maxSize > 0 && size > maxSize {
				return a, "", "", unlock, fmt.Errorf("cannot deliver to %s: the message exceeds %d octets: %w", a, maxSize, store.ErrMessageTooLarge)
			}
			return a, "", "", unlock, fmt.Errorf("cannot deliver to %s: the message exceeds the quota of %d octets: %w", a, quota, store.ErrOverQuota)
		}
		return a, "", "", unlock, fmt.Errorf("cannot deliver to %s: %w", a, err)
	}
	if quota > 0 {
		mu := &s.quotaMu[shard(dir)]
		mu.Lock()
		_, used, err := usage(dir)
		if err == nil && used+size > quota {
			err = fmt.Errorf("%d octets stored + %d > quota %d: %w", used, size, quota, store.ErrOverQuota)
		}
		if err != nil {
			mu.Unlock()
			os.Remove(tmp)
			return a, "", "", unlock, fmt.Errorf("cannot deliver to %s: %w", a, err)
		}
		unlock = mu.Unlock
	}
	return a, dir, tmp, unlock, nil
}

// stagedPrefix starts the name of a staged copy in the tmp folder:
// staged.<key>. Clean leaves these alone: the delivery service that
// staged one publishes it, after a crash too.
const stagedPrefix = "staged."

// validKey reports whether k may name a staged copy (or a UID to publish
// it as): 1 to 128 octets of [0-9A-Za-z._-], not only dots.
func validKey(k string) bool {
	if len(k) == 0 || len(k) > 128 || strings.Trim(k, ".") == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// Stage stores a copy invisible to sessions; see store.StagedDelivery.
// It lives in the tmp folder as staged.<key> until Publish renames it into
// the mailbox.
func (s *Store) Stage(ctx context.Context, addr store.Address, key string, msg io.Reader) (string, error) {
	if !validKey(key) {
		return "", fmt.Errorf("cannot stage a copy: bad key %q", key)
	}
	a, _, tmp, unlock, err := s.writeCopy(ctx, addr, msg)
	if err != nil {
		return "", err
	}
	defer unlock()
	if err := os.Rename(tmp, filepath.Join(s.tmp, stagedPrefix+key)); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("cannot stage a copy for %s: %w", a, err)
	}
	if err := durable.SyncDir(s.tmp); err != nil {
		return "", fmt.Errorf("cannot stage a copy for %s: %w", a, err)
	}
	return s.names.Next(s.now()), nil
}

// Publish renames a staged copy into its mailbox; see
// store.StagedDelivery. The rename is the one step: the staged name goes
// and the message appears together, so a crash on either side of it
// leaves one copy. Publishing under a name the mailbox already has
// replaces that file with the same message (a repeat after a crash).
func (s *Store) Publish(ctx context.Context, addr store.Address, key, uid string) error {
	if !validKey(key) || !validKey(uid) {
		return fmt.Errorf("cannot publish a staged copy: bad key %q or UID %q", key, uid)
	}
	a, err := canonAddr(addr)
	if err != nil {
		return fmt.Errorf("cannot publish a staged copy: %w", err)
	}
	if err := ctxErr(ctx); err != nil {
		return err
	}
	staged := filepath.Join(s.tmp, stagedPrefix+key)
	if _, err := os.Lstat(staged); errors.Is(err, os.ErrNotExist) {
		return nil // published before
	}
	dir := s.mboxPath(a)
	if err := os.Rename(staged, filepath.Join(dir, msgPrefix+uid+msgSuffix)); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			if _, serr := os.Lstat(staged); errors.Is(serr, os.ErrNotExist) {
				return nil // published meanwhile
			}
			if _, derr := os.Stat(dir); errors.Is(derr, os.ErrNotExist) {
				_ = os.Remove(staged)
				return fmt.Errorf("cannot publish a copy for %s: %w", a, store.ErrNoSuchMailbox)
			}
		}
		return fmt.Errorf("cannot publish a copy for %s: %w", a, err)
	}
	if err := durable.SyncDir(dir); err != nil {
		return fmt.Errorf("cannot publish a copy for %s: %w", a, err)
	}
	return nil
}

// effectiveQuota is the mailbox's quota file, or the default when the
// file is missing or holds 0.
func (s *Store) effectiveQuota(dir string) (int64, error) {
	q, err := readQuota(dir)
	if err != nil {
		return 0, err
	}
	if q == 0 {
		q = s.quotaDefault.Load()
	}
	return q, nil
}

// readQuota reads the quota file: decimal octets, missing or empty = 0.
func readQuota(dir string) (int64, error) {
	b, err := durable.ReadSmall(filepath.Join(dir, QuotaName), 64)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return 0, nil
		}
		return 0, fmt.Errorf("cannot read quota: %w", err)
	}
	t := bytes.TrimSpace(b)
	if len(t) == 0 {
		return 0, nil
	}
	q, err := strconv.ParseInt(string(t), 10, 64)
	if err != nil || q < 0 {
		return 0, fmt.Errorf("the quota file in %q does not hold a number of octets", dir)
	}
	return q, nil
}

// quotaShards is the number of mutexes that serialise quota checks.
const quotaShards = 64

func shard(dir string) int {
	h := fnv.New32a()
	h.Write([]byte(dir))
	return int(h.Sum32() % quotaShards)
}
