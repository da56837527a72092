//go:build linux

package filestore

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/pop3svc/pop3svc/store"
	"github.com/pop3svc/pop3svc/store/credential"
	"github.com/pop3svc/pop3svc/store/durable"
	"github.com/pop3svc/pop3svc/store/uid"
)

var _ store.Backups = (*Store)(nil)

// The backup archive is a gzip-compressed tar stream:
//
//	pop3-backup                          "pop3svc store backup 1"
//	key                                  the store key (hex)
//	d/<domain>/                          a domain
//	d/<domain>/domain.locked             present when the administrator locked it
//	d/<domain>/<mailbox>/                a mailbox
//	d/<domain>/<mailbox>/passwd          its password-file credentials, as stored
//	d/<domain>/<mailbox>/quota           its quota file, when set
//	d/<domain>/<mailbox>/locked          present when the administrator locked it
//	d/<domain>/<mailbox>/<UID>.eml       one message, CRLF line endings
//	d/<domain>/<mailbox>/x-<hex>.eml     one imported message: its kept UIDL in hex
//
// Domain and mailbox entries come before what they hold.
const (
	backupMagic     = "pop3svc store backup 1\n"
	backupMagicName = "pop3-backup"
	backupKeyName   = "key"
	backupLocked    = "locked"
	// backupPoll is the pause between attempts at a mailbox a session holds.
	backupPoll = 200 * time.Millisecond
)

// Backup writes the archive; see store.Backups.
func (s *Store) Backup(ctx context.Context, w io.Writer, opts store.BackupOptions) (store.BackupReport, error) {
	var rep store.BackupReport
	if opts.LockWait <= 0 {
		opts.LockWait = store.DefaultBackupLockWait
	}
	gz := gzip.NewWriter(w)
	tw := tar.NewWriter(gz)
	now := time.Now()
	file := func(name string, data []byte) error {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o600, Size: int64(len(data)), ModTime: now, Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	folder := func(name string) error {
		return tw.WriteHeader(&tar.Header{Name: name + "/", Mode: 0o700, ModTime: now, Typeflag: tar.TypeDir})
	}
	if err := file(backupMagicName, []byte(backupMagic)); err != nil {
		return rep, err
	}
	if err := file(backupKeyName, []byte(hex.EncodeToString(s.key)+"\n")); err != nil {
		return rep, err
	}
	doms, err := s.ListDomains(ctx)
	if err != nil {
		return rep, err
	}
	for _, d := range doms {
		dp := "d/" + d.Name
		if err := folder(dp); err != nil {
			return rep, err
		}
		if d.Locked {
			if err := file(dp+"/"+DomainLocked, nil); err != nil {
				return rep, err
			}
		}
		rep.Domains++
		boxes, err := s.ListMailboxes(ctx, d.Name)
		if err != nil {
			return rep, err
		}
		for _, m := range boxes {
			n, octets, err := s.backupMailbox(ctx, tw, dp+"/"+m.Address.Mailbox, m, opts, folder, file)
			if errors.Is(err, store.ErrNoSuchMailbox) {
				continue // deleted since the listing
			}
			if err != nil {
				return rep, fmt.Errorf("cannot back up %s: %w", m.Address, err)
			}
			rep.Mailboxes++
			rep.Messages += n
			rep.Octets += octets
		}
	}
	if err := tw.Close(); err != nil {
		return rep, err
	}
	return rep, gz.Close()
}

// backupMailbox writes one mailbox. Its messages are listed and read under
// its session lock (or, when the administrator locked it, without: no
// session can hold it then), so the copy is the mailbox at one instant.
func (s *Store) backupMailbox(ctx context.Context, tw *tar.Writer, mp string, m store.MailboxInfo, opts store.BackupOptions,
	folder func(string) error, file func(string, []byte) error) (int, int64, error) {
	a := m.Address
	var snap store.MailboxSnapshot
	var held store.MailboxSession // the session lock, renewed while copying
	deadline := time.Now().Add(opts.LockWait)
	for {
		sess, err := s.OpenSession(ctx, a, fmt.Sprintf("backup pid %d", os.Getpid()))
		if err == nil {
			defer sess.Close()
			snap, held = sess, sess
			break
		}
		if errors.Is(err, store.ErrMailboxLocked) || errors.Is(err, store.ErrDomainLocked) {
			if snap, err = s.Snapshot(ctx, a); err != nil {
				return 0, 0, err
			}
			break
		}
		if !errors.Is(err, store.ErrMailboxInUse) || time.Now().After(deadline) {
			return 0, 0, err
		}
		select {
		case <-ctx.Done():
			return 0, 0, ctx.Err()
		case <-time.After(backupPoll):
		}
	}
	dir := s.mboxPath(a)
	if err := folder(mp); err != nil {
		return 0, 0, err
	}
	if b, err := durable.ReadSmall(filepath.Join(dir, PasswdName), maxPasswdFile); err == nil {
		if err := file(mp+"/"+PasswdName, b); err != nil {
			return 0, 0, err
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return 0, 0, err
	}
	if q, err := readQuota(dir); err != nil {
		return 0, 0, err
	} else if q > 0 {
		if err := file(mp+"/"+QuotaName, []byte(strconv.FormatInt(q, 10)+"\n")); err != nil {
			return 0, 0, err
		}
	}
	if m.Locked {
		if err := file(mp+"/"+backupLocked, nil); err != nil {
			return 0, 0, err
		}
	}
	var octets int64
	msgs := snap.Messages()
	renewed := time.Now()
	for i, mi := range msgs {
		if err := ctx.Err(); err != nil {
			return 0, 0, err
		}
		// Renew the lease as pop3d renews a session's, so that no other
		// server takes the lock over during a long copy.
		if held != nil && time.Since(renewed) > s.lease/3 {
			if err := held.Refresh(); err != nil {
				return 0, 0, err
			}
			renewed = time.Now()
		}
		r, err := snap.Open(i)
		if err != nil {
			return 0, 0, err
		}
		err = tw.WriteHeader(&tar.Header{Name: mp + "/" + backupMessageName(mi.UID), Mode: 0o600, Size: mi.Size, ModTime: time.Now(), Typeflag: tar.TypeReg})
		if err == nil {
			_, err = io.CopyN(tw, r, mi.Size)
		}
		r.Close()
		if err != nil {
			return 0, 0, err
		}
		octets += mi.Size
	}
	return len(msgs), octets, nil
}

// Restore merges an archive into the store; see store.Backups.
func (s *Store) Restore(ctx context.Context, r io.Reader) (store.RestoreReport, error) {
	var rep store.RestoreReport
	gz, err := gzip.NewReader(r)
	if err != nil {
		return rep, fmt.Errorf("not a backup archive: %w", err)
	}
	tr := tar.NewReader(gz)
	seen := 0
	type box struct {
		created bool
		have    map[string]bool
	}
	boxes := map[store.Address]*box{}
	createdDomains := map[string]bool{}
	ensureDomain := func(d string) error {
		if _, ok := createdDomains[d]; ok {
			return nil
		}
		err := s.CreateDomain(ctx, d)
		switch {
		case err == nil:
			createdDomains[d] = true
			rep.Domains++
		case errors.Is(err, store.ErrDomainExists):
			createdDomains[d] = false
		default:
			return err
		}
		return nil
	}
	ensureBox := func(a store.Address) (*box, error) {
		if b := boxes[a]; b != nil {
			return b, nil
		}
		if err := ensureDomain(a.Domain); err != nil {
			return nil, err
		}
		b := &box{have: map[string]bool{}}
		err := s.CreateMailbox(ctx, a, "")
		switch {
		case err == nil:
			b.created = true
			rep.Mailboxes++
		case errors.Is(err, store.ErrMailboxExists):
			have, err := uidSet(s.mboxPath(a))
			if err != nil {
				return nil, err
			}
			for u := range have {
				b.have[u] = true
			}
		default:
			return nil, err
		}
		boxes[a] = b
		return b, nil
	}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return rep, fmt.Errorf("the archive is damaged: %w", err)
		}
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		name := strings.TrimSuffix(h.Name, "/")
		if seen == 0 {
			b, err := readEntry(tr, h, 64)
			if name != backupMagicName || err != nil || string(b) != backupMagic {
				return rep, errors.New("not a pop3svc backup archive (it does not start with pop3-backup)")
			}
			seen++
			continue
		}
		seen++
		if name == backupKeyName {
			b, err := readEntry(tr, h, 128)
			if err != nil {
				return rep, err
			}
			replaced, err := s.restoreKey(ctx, bytes.TrimSpace(b))
			if err != nil {
				return rep, err
			}
			rep.KeyReplaced = replaced
			continue
		}
		parts := strings.Split(name, "/")
		if parts[0] != "d" || len(parts) < 2 || len(parts) > 4 || path.Clean(name) != name {
			return rep, fmt.Errorf("the archive holds an unexpected entry %q", h.Name)
		}
		dom, err := store.CanonicalDomain(parts[1])
		if err != nil || dom != parts[1] {
			return rep, fmt.Errorf("the archive entry %q names a bad domain", h.Name)
		}
		if len(parts) == 2 {
			if err := ensureDomain(dom); err != nil {
				return rep, err
			}
			continue
		}
		if len(parts) == 3 && parts[2] == DomainLocked {
			if createdDomains[dom] {
				if err := s.LockDomain(ctx, dom); err != nil {
					return rep, err
				}
			}
			continue
		}
		if err := store.ValidateMailbox(parts[2]); err != nil || strings.ToLower(parts[2]) != parts[2] {
			return rep, fmt.Errorf("the archive entry %q names a bad mailbox", h.Name)
		}
		a := store.Address{Mailbox: parts[2], Domain: dom}
		b, err := ensureBox(a)
		if err != nil {
			return rep, err
		}
		if len(parts) == 3 {
			continue
		}
		dir := s.mboxPath(a)
		switch f := parts[3]; {
		case f == PasswdName:
			data, err := readEntry(tr, h, maxPasswdFile)
			if err != nil {
				return rep, err
			}
			if !b.created {
				continue // the live mailbox keeps its password
			}
			rec, err := credential.Decode(data)
			if err != nil {
				return rep, fmt.Errorf("the archive's password record of %s: %w", a, err)
			}
			if err := writePasswd(dir, rec); err != nil {
				return rep, err
			}
		case f == QuotaName:
			data, err := readEntry(tr, h, 64)
			if err != nil {
				return rep, err
			}
			q, err := strconv.ParseInt(string(bytes.TrimSpace(data)), 10, 64)
			if err != nil || q < 0 {
				return rep, fmt.Errorf("the archive's quota of %s is not a number of octets", a)
			}
			if b.created {
				if err := s.SetQuota(ctx, a, q); err != nil {
					return rep, err
				}
			}
		case f == backupLocked:
			if b.created {
				if err := s.LockMailbox(ctx, a); err != nil {
					return rep, err
				}
			}
		case strings.HasSuffix(f, msgSuffix) && uid.Valid([]byte(strings.TrimSuffix(f, msgSuffix))):
			u := strings.TrimSuffix(f, msgSuffix)
			if b.have[u] {
				rep.Present++
				continue
			}
			stored, err := s.restoreMessage(ctx, dir, u, tr)
			if err != nil {
				return rep, fmt.Errorf("cannot restore message %s of %s: %w", u, a, err)
			}
			b.have[u] = true
			if stored {
				rep.Messages++
				rep.Octets += h.Size
			} else {
				rep.Present++
			}
		case strings.HasPrefix(f, importedPrefix) && strings.HasSuffix(f, msgSuffix):
			raw, err := hex.DecodeString(strings.TrimSuffix(strings.TrimPrefix(f, importedPrefix), msgSuffix))
			u := string(raw)
			if err != nil || !store.ValidUIDL(u) {
				return rep, fmt.Errorf("the archive entry %q names a bad UIDL", h.Name)
			}
			if b.have[u] {
				rep.Present++
				continue
			}
			_, err = s.Import(ctx, a, u, tr)
			switch {
			case errors.Is(err, store.ErrDuplicateUIDL):
				rep.Present++
			case err != nil:
				return rep, fmt.Errorf("cannot restore message %q of %s: %w", u, a, err)
			default:
				rep.Messages++
				rep.Octets += h.Size
			}
			b.have[u] = true
		default:
			return rep, fmt.Errorf("the archive holds an unexpected entry %q", h.Name)
		}
	}
	if seen == 0 {
		return rep, errors.New("the archive is empty")
	}
	return rep, nil
}

// importedPrefix marks, in the archive, a message whose UID is a UIDL
// kept from another server (store.Importer): its name is the prefix, the
// UIDL in hex and .eml, since a UIDL may hold '/'.
const importedPrefix = "x-"

// backupMessageName is a message's name in the archive.
func backupMessageName(u string) string {
	if uid.Valid([]byte(u)) {
		return u + msgSuffix
	}
	return importedPrefix + hex.EncodeToString([]byte(u)) + msgSuffix
}

// readEntry reads an archive entry of at most limit octets.
func readEntry(tr *tar.Reader, h *tar.Header, limit int64) ([]byte, error) {
	if h.Size > limit {
		return nil, fmt.Errorf("the archive entry %q is larger than %d octets", h.Name, limit)
	}
	return io.ReadAll(io.LimitReader(tr, limit))
}

// restoreKey makes the archive's key the store key: nothing to do when
// they are the same; a store with no domain takes the archive's key (the
// key file is replaced durably); any other store refuses, since its
// password records are encrypted with its own key.
func (s *Store) restoreKey(ctx context.Context, text []byte) (bool, error) {
	k, err := hex.DecodeString(string(text))
	if err != nil || len(k) != KeySize {
		return false, errors.New("the archive's store key is damaged")
	}
	if bytes.Equal(k, s.key) {
		return false, nil
	}
	doms, err := s.ListDomains(ctx)
	if err != nil {
		return false, err
	}
	if len(doms) > 0 {
		return false, errors.New("the archive was made with another store key and this store already has domains: restore into an empty mail root (its key is then replaced by the archive's)")
	}
	if err := durable.WriteFile(filepath.Join(s.meta, KeyFile), append([]byte(hex.EncodeToString(k)), '\n'), 0o600); err != nil {
		return false, fmt.Errorf("cannot replace the store key: %w", err)
	}
	s.key = k
	return true, nil
}

// restoreMessage stores one message under its UID, as Deliver stores one
// (temporary file, fsync, link, folder fsync). It reports false when the
// mailbox already holds that UID; neither quota nor size limit applies.
func (s *Store) restoreMessage(ctx context.Context, dir, u string, r io.Reader) (bool, error) {
	tmp := s.tmpPath()
	defer os.Remove(tmp)
	if _, err := writeMessage(ctx, tmp, r, 0); err != nil {
		return false, err
	}
	err := os.Link(tmp, filepath.Join(dir, msgPrefix+u+msgSuffix))
	if errors.Is(err, os.ErrExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return true, durable.SyncDir(dir)
}
