//go:build linux

package filestore

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"github.com/pop3svc/pop3svc/store/durable"
	"hash/fnv"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/pop3svc/pop3svc/store"
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
	size, err := copyCRLF(f, &ctxReader{ctx: ctx, r: msg}, limit)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		if errors.Is(err, errTooBig) {
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
		uid := s.names.next(s.now())
		err := os.Link(tmp, filepath.Join(dir, msgPrefix+uid+msgSuffix))
		if err == nil {
			if err := durable.SyncDir(dir); err != nil {
				return "", fmt.Errorf("cannot deliver to %s: %w", a, err)
			}
			return uid, nil
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

var errTooBig = errors.New("message too big")

// copyBuf is the pair of buffers a delivery copies through, pooled so
// that a delivery allocates little.
type copyBuf struct {
	in []byte
	w  *bufio.Writer
}

var copyBufs = sync.Pool{New: func() any {
	return &copyBuf{in: make([]byte, DefaultWriteBuffer), w: bufio.NewWriterSize(nil, DefaultWriteBuffer)}
}}

// ctxReader stops a copy when its context ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := ctxErr(c.ctx); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// copyCRLF copies r to w turning every bare LF into CRLF; a bare CR is
// kept as it is. A non-empty message that does not end with a line
// ending gets CRLF appended (a final bare CR becomes CRLF). It returns the
// octets written and errTooBig as soon as they pass limit (0: none).
func copyCRLF(w io.Writer, r io.Reader, limit int64) (int64, error) {
	cb := copyBufs.Get().(*copyBuf)
	defer copyBufs.Put(cb)
	bw, in := cb.w, cb.in
	bw.Reset(w)
	defer bw.Reset(nil)
	var n int64
	var last byte // last octet written; 0 before the first
	for {
		k, rerr := r.Read(in)
		p := in[:k]
		for len(p) > 0 {
			i := bytes.IndexByte(p, '\n')
			seg := p
			if i >= 0 {
				seg = p[:i]
			}
			if len(seg) > 0 {
				bw.Write(seg)
				n += int64(len(seg))
				last = seg[len(seg)-1]
			}
			if i < 0 {
				break
			}
			if last != '\r' {
				bw.WriteByte('\r')
				n++
			}
			bw.WriteByte('\n')
			n++
			last = '\n'
			p = p[i+1:]
		}
		if limit > 0 && n > limit {
			return n, errTooBig
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return n, rerr
		}
	}
	switch {
	case n == 0 || last == '\n':
	case last == '\r':
		bw.WriteByte('\n')
		n++
	default:
		bw.WriteString("\r\n")
		n += 2
	}
	if limit > 0 && n > limit {
		return n, errTooBig
	}
	return n, bw.Flush()
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
