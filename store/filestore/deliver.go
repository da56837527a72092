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
	"sync/atomic"
	"syscall"

	"github.com/pop3svc/pop3svc/store"
	"github.com/pop3svc/pop3svc/store/crlf"
	"github.com/pop3svc/pop3svc/store/durable"
)

var tmpSeq atomic.Uint64

// Deliver stores one message; see store.Delivery and the package doc.
func (s *Store) Deliver(ctx context.Context, addr store.Address, msg io.Reader) (string, error) {
	a, err := canonAddr(addr)
	if err != nil {
		return "", fmt.Errorf("cannot deliver: %w", err)
	}
	if err := ctxErr(ctx); err != nil {
		return "", err
	}
	if err := s.checkMailbox(a); err != nil {
		return "", fmt.Errorf("cannot deliver to %s: %w", a, err)
	}
	dir := s.mboxPath(a)
	quota, err := s.effectiveQuota(dir)
	if err != nil {
		return "", fmt.Errorf("cannot deliver to %s: %w", a, err)
	}
	maxSize := s.maxMessage.Load()
	limit := maxSize
	if quota > 0 && (limit == 0 || quota < limit) {
		limit = quota // a message larger than the whole quota never fits
	}

	tmp := filepath.Join(s.tmp, strconv.Itoa(s.opts.Node)+"."+strconv.Itoa(s.self.PID)+"."+
		strconv.FormatUint(tmpSeq.Add(1), 10)+"."+randomString()+".tmp")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return "", fmt.Errorf("cannot deliver to %s: %w", a, err)
	}
	defer os.Remove(tmp) // after the link below, only the temporary name goes
	size, err := crlf.Copy(ctx, f, msg, limit)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		if errors.Is(err, crlf.ErrLimit) {
			if maxSize > 0 && size > maxSize {
				return "", fmt.Errorf("cannot deliver to %s: the message exceeds %d octets: %w", a, maxSize, store.ErrMessageTooLarge)
			}
			return "", fmt.Errorf("cannot deliver to %s: the message exceeds the quota of %d octets: %w", a, quota, store.ErrOverQuota)
		}
		return "", fmt.Errorf("cannot deliver to %s: %w", a, err)
	}
	if quota > 0 {
		// Deliveries of this process into one mailbox check and store one
		// at a time, so they cannot overrun the quota together.
		mu := &s.quotaMu[shard(dir)]
		mu.Lock()
		defer mu.Unlock()
		_, used, err := usage(dir)
		if err != nil {
			return "", fmt.Errorf("cannot deliver to %s: %w", a, err)
		}
		if used+size > quota {
			return "", fmt.Errorf("cannot deliver to %s: %d octets stored + %d > quota %d: %w", a, used, size, quota, store.ErrOverQuota)
		}
	}
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
