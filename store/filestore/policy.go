//go:build linux

package filestore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pop3svc/pop3svc/store"
	"github.com/pop3svc/pop3svc/store/durable"
)

// The files of the POP3 policies (store.PolicyState) in a mailbox folder:
//
//	retrieved   one line per retrieved message: "<26 digits> <unix seconds>\n",
//	            replaced as a whole (durable.WriteFile) when a session that
//	            retrieved messages ends
//	lastlogin   the last login, unix nanoseconds as 20 decimal digits,
//	            rewritten in place and fdatasync'ed (one write, no rename)
const (
	RetrievedName = "retrieved"
	LastLoginName = "lastlogin"
)

// maxRetrievedFile bounds the retrieved file read at open: 40 octets a
// line, a million messages.
const maxRetrievedFile = 40 << 20

var (
	_ store.PolicyState = (*session)(nil)
	_ store.PolicyStore = (*Store)(nil)
)

// KeepsPolicyState marks the store as one whose sessions implement store.PolicyState.
func (s *Store) KeepsPolicyState() {}

// readPolicy fills in the messages' retrieval times and returns the last
// login. Missing files mean nothing recorded; a damaged line is skipped.
func readPolicy(dir string, msgs []store.MessageInfo) (time.Time, error) {
	var last time.Time
	b, err := durable.ReadSmall(filepath.Join(dir, LastLoginName), 64)
	switch {
	case err == nil:
		if n, perr := strconv.ParseInt(string(bytes.TrimSpace(b)), 10, 64); perr == nil && n > 0 {
			last = time.Unix(0, n)
		}
	case !errors.Is(err, fs.ErrNotExist):
		return last, err
	}
	if len(msgs) == 0 {
		return last, nil
	}
	b, err = durable.ReadSmall(filepath.Join(dir, RetrievedName), maxRetrievedFile)
	if errors.Is(err, fs.ErrNotExist) {
		return last, nil
	}
	if err != nil {
		return last, err
	}
	idx := make(map[string]int, len(msgs))
	for i, m := range msgs {
		idx[m.UID] = i
	}
	for len(b) > 0 {
		var l []byte
		l, b, _ = bytes.Cut(b, []byte{'\n'})
		uid, at, ok := bytes.Cut(l, []byte{' '})
		if !ok {
			continue
		}
		i, found := idx[string(uid)]
		sec, perr := strconv.ParseInt(string(at), 10, 64)
		if !found || perr != nil || sec <= 0 {
			continue
		}
		msgs[i].Retrieved = time.Unix(sec, 0)
	}
	return last, nil
}

// LastLogin implements store.PolicyState.
func (m *session) LastLogin() time.Time { return m.lastLogin }

// RecordLogin implements store.PolicyState: one 20-octet write at the
// start of the lastlogin file and an fdatasync; creating the file also
// syncs the folder.
func (m *session) RecordLogin(at time.Time) error {
	if m.closed.Load() {
		return store.ErrSessionClosed
	}
	path := filepath.Join(m.dir, LastLoginName)
	created := false
	fd, err := unix.Open(path, unix.O_WRONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ENOENT) {
		fd, err = unix.Open(path, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		created = err == nil
	}
	if err != nil {
		return fmt.Errorf("cannot record the login of %s: %w", m.addr, &os.PathError{Op: "open", Path: path, Err: err})
	}
	rec := fmt.Appendf(nil, "%020d\n", at.UnixNano())
	_, err = unix.Pwrite(fd, rec, 0)
	if err == nil {
		err = unix.Fdatasync(fd)
	}
	if cerr := unix.Close(fd); err == nil {
		err = cerr
	}
	if err == nil && created {
		err = durable.SyncDir(m.dir)
	}
	if err != nil {
		return fmt.Errorf("cannot record the login of %s: %w", m.addr, err)
	}
	return nil
}

// MarkRetrieved implements store.PolicyState: the retrieved file is
// rewritten with the snapshot's records and the new ones.
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
	if !m.lock.ours() {
		mLocksLost.Inc()
		return fmt.Errorf("cannot record retrievals in %s: %w", m.addr, store.ErrLockLost)
	}
	at = at.Truncate(time.Second)
	for _, i := range indexes {
		if r := m.msgs[i].Retrieved; r.IsZero() || at.Before(r) {
			m.msgs[i].Retrieved = at
		}
	}
	var b []byte
	for _, msg := range m.msgs {
		if !msg.Retrieved.IsZero() {
			b = fmt.Appendf(b, "%s %d\n", msg.UID, msg.Retrieved.Unix())
		}
	}
	if err := durable.WriteFile(filepath.Join(m.dir, RetrievedName), b, 0o600); err != nil {
		return fmt.Errorf("cannot record retrievals in %s: %w", m.addr, err)
	}
	return nil
}
