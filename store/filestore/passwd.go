//go:build linux

package filestore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/pop3svc/pop3svc/store"
	"github.com/pop3svc/pop3svc/store/credential"
	"github.com/pop3svc/pop3svc/store/durable"
)

// Argon2Params are the argon2id parameters of a password hash; see
// package store/credential.
type Argon2Params = credential.Argon2Params

// DefaultArgon2 are the parameters of new password hashes unless
// Options.Argon2 says otherwise.
var DefaultArgon2 = credential.DefaultArgon2

// MaxPasswordLen bounds a password accepted by SetPassword.
const MaxPasswordLen = credential.MaxPasswordLen

// maxPasswdFile bounds what is read from a passwd file.
const maxPasswdFile = 8192

func readPasswd(dir string) (*credential.Record, error) {
	b, err := durable.ReadSmall(filepath.Join(dir, PasswdName), maxPasswdFile)
	if err != nil {
		return nil, err
	}
	r, err := credential.Decode(b)
	if err != nil {
		return nil, fmt.Errorf("password file in %q: %w", dir, err)
	}
	return r, nil
}

func writePasswd(dir string, r *credential.Record) error {
	b, err := r.Encode()
	if err != nil {
		return err
	}
	return durable.WriteFile(filepath.Join(dir, PasswdName), b, 0o600)
}

// SetPassword replaces the mailbox's credentials; an empty password
// removes them (the mailbox then needs system or directory authentication).
func (s *Store) SetPassword(ctx context.Context, addr store.Address, password string) error {
	a, err := canonAddr(addr)
	if err != nil {
		return fmt.Errorf("cannot set password: %w", err)
	}
	if err := ctxErr(ctx); err != nil {
		return err
	}
	if len(password) > MaxPasswordLen {
		return fmt.Errorf("cannot set password of %s: longer than %d octets", a, MaxPasswordLen)
	}
	if err := s.checkMailbox(a); err != nil {
		return fmt.Errorf("cannot set password of %s: %w", a, err)
	}
	dir := s.mboxPath(a)
	s.authCache.Load().forget(a.String())
	if password == "" {
		if err := os.Remove(filepath.Join(dir, PasswdName)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("cannot remove password of %s: %w", a, err)
		}
		return durable.SyncDir(dir)
	}
	r, err := s.hasher.New(ctx, s.key, a, password)
	if err != nil {
		return fmt.Errorf("cannot set password of %s: %w", a, err)
	}
	if err := writePasswd(dir, r); err != nil {
		return fmt.Errorf("cannot set password of %s: %w", a, err)
	}
	return nil
}

// VerifyPassword checks password against the argon2id hash. An invalid
// name, an unknown mailbox, a mailbox without a password and a wrong
// password all cost one argon2id computation and return ErrAuthFailed.
func (s *Store) VerifyPassword(ctx context.Context, addr store.Address, password string) error {
	if err := ctxErr(ctx); err != nil {
		return err
	}
	var r *credential.Record
	var key string
	if a, err := canonAddr(addr); err == nil && s.checkMailbox(a) == nil {
		key = a.String()
		if rec, err := readPasswd(s.mboxPath(a)); err == nil {
			r = rec
		} else if !errors.Is(err, os.ErrNotExist) {
			s.log.Warn("cannot read password file", "mailbox", a.String(), "err", err)
		}
	}
	if r != nil && len(password) <= MaxPasswordLen && s.authCache.Load().check(key, r, password, s.now()) {
		return nil
	}
	if err := s.hasher.Verify(ctx, r, password); err != nil {
		return err
	}
	s.authCache.Load().remember(key, r, password, s.now())
	return nil
}

// Cached reports whether password was verified for addr within the
// verified-login cache's lifetime, without computing a hash (see
// store.CredentialCache); otherwise it returns the memory the argon2id
// check of addr's password file will take.
func (s *Store) Cached(ctx context.Context, addr store.Address, password string) (ok bool, memory int64) {
	memory = int64(s.hasher.Params().MemoryKiB) << 10
	if ctxErr(ctx) != nil {
		return false, memory
	}
	a, err := canonAddr(addr)
	if err != nil || len(password) > MaxPasswordLen {
		return false, memory
	}
	cache := s.authCache.Load()
	if !cache.may(a.String(), password, s.now()) {
		// Nothing remembered matches: no file to read (a flood of wrong
		// passwords for real mailboxes costs memory look-ups only).
		authCacheMisses.Inc()
		return false, memory
	}
	if s.checkMailbox(a) != nil {
		return false, memory
	}
	r, err := readPasswd(s.mboxPath(a))
	if err != nil {
		return false, memory
	}
	if cache.check(a.String(), r, password, s.now()) {
		return true, 0
	}
	return false, int64(r.Params.MemoryKiB) << 10
}

// Secret decrypts the password or the NT hash for a challenge mechanism.
func (s *Store) Secret(ctx context.Context, addr store.Address, kind store.SecretKind) ([]byte, error) {
	if err := ctxErr(ctx); err != nil {
		return nil, err
	}
	if kind != store.SecretPassword && kind != store.SecretNTHash {
		return nil, fmt.Errorf("unknown secret kind %d: %w", kind, store.ErrNoSecret)
	}
	a, err := canonAddr(addr)
	if err != nil {
		return nil, store.ErrAuthFailed
	}
	if err := s.checkMailbox(a); err != nil {
		return nil, store.ErrAuthFailed
	}
	r, err := readPasswd(s.mboxPath(a))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("mailbox %s has no password file: %w", a, store.ErrNoSecret)
		}
		return nil, err
	}
	return r.Secret(s.key, a, kind)
}
