//go:build linux

package filestore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/pop3svc/pop3svc/store"
	"github.com/pop3svc/pop3svc/store/durable"
)

var _ store.Importer = (*Store)(nil)

// Import stores a message moved in from another server with the UIDL that
// server gave it (store.Importer). The message is written and fsynced in
// .pop3/tmp like a delivery; then, under the mailbox folder's flock (which
// every Import into the mailbox takes, on any server sharing the store),
// the folder is listed for the UIDL and the message is linked under a
// fresh 26-digit name carrying the UIDL (P3_<digits>-<hex>.eml) and the
// folder is fsynced. Neither the quota nor the message size limit applies.
func (s *Store) Import(ctx context.Context, addr store.Address, uidl string, msg io.Reader) (string, error) {
	a, err := canonAddr(addr)
	if err != nil {
		return "", fmt.Errorf("cannot import: %w", err)
	}
	if !store.ValidUIDL(uidl) {
		return "", fmt.Errorf("cannot import into %s: UIDL %q: %w", a, uidl, store.ErrInvalidUIDL)
	}
	if err := ctxErr(ctx); err != nil {
		return "", err
	}
	if err := s.checkMailbox(a); err != nil {
		return "", fmt.Errorf("cannot import into %s: %w", a, err)
	}
	dir := s.mboxPath(a)
	tmp := s.tmpPath()
	defer os.Remove(tmp) // after the link below, only the temporary name goes
	if _, err := writeMessage(ctx, tmp, msg, 0); err != nil {
		return "", fmt.Errorf("cannot import into %s: %w", a, err)
	}
	unlock, err := lockDir(dir)
	if err != nil {
		return "", fmt.Errorf("cannot import into %s: %w", a, err)
	}
	defer unlock()
	have, err := uidSet(dir)
	if err != nil {
		return "", fmt.Errorf("cannot import into %s: %w", a, err)
	}
	if _, dup := have[uidl]; dup {
		return "", fmt.Errorf("cannot import into %s: UIDL %q: %w", a, uidl, store.ErrDuplicateUIDL)
	}
	for i := 0; i < maxNameRetries; i++ {
		name := s.names.Next(s.now())
		if _, taken := have[name]; taken && name != uidl {
			continue // an imported UIDL of 26 digits already uses this UID
		}
		err := os.Link(tmp, filepath.Join(dir, messageName(name, uidl)))
		if err == nil {
			if err := durable.SyncDir(dir); err != nil {
				return "", fmt.Errorf("cannot import into %s: %w", a, err)
			}
			return name, nil
		}
		if errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("cannot import into %s: %w", a, store.ErrNoSuchMailbox)
		}
		if !errors.Is(err, os.ErrExist) {
			return "", fmt.Errorf("cannot import into %s: %w", a, err)
		}
	}
	return "", fmt.Errorf("cannot import into %s: no free message name after %d attempts", a, maxNameRetries)
}
