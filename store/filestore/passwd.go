//go:build linux

package filestore

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/pop3svc/pop3svc/store/durable"
	"os"
	"path/filepath"
	"unicode/utf16"

	"golang.org/x/crypto/argon2"
	//lint:ignore SA1019 the NT hash NTLM needs is MD4 ([MS-NLMP] 3.3.1)
	"golang.org/x/crypto/md4"

	"github.com/pop3svc/pop3svc/store"
)

// Argon2Params are the argon2id parameters (RFC 9106) of a password hash.
// They are recorded in every password file, so changing the defaults
// affects only passwords set afterwards.
type Argon2Params struct {
	Time      uint32 // passes
	MemoryKiB uint32 // memory in KiB
	Threads   uint8  // lanes
	KeyLen    uint32 // hash length in octets
}

// DefaultArgon2 takes about 25 ms per check on a 2-core 2020s server
// (RFC 9106 section 7.4 style tuning: memory first, then passes). 19 MiB per
// check keeps 100 simultaneous logins under 2 GiB.
var DefaultArgon2 = Argon2Params{Time: 3, MemoryKiB: 19 * 1024, Threads: 1, KeyLen: 32}

// Limits on parameters read from a password file, so that a damaged or
// hostile file cannot make a check take minutes or gigabytes.
const (
	maxArgonTime   = 64
	maxArgonMemory = 1 << 20 // 1 GiB
	minSaltLen     = 16
	maxPasswdFile  = 8192
	// MaxPasswordLen bounds a password accepted by SetPassword.
	MaxPasswordLen = 1024
)

func (p Argon2Params) check() error {
	if p.Time < 1 || p.Time > maxArgonTime || p.MemoryKiB < 8*uint32(max(p.Threads, 1)) ||
		p.MemoryKiB > maxArgonMemory || p.Threads < 1 || p.KeyLen < 16 || p.KeyLen > 64 {
		return fmt.Errorf("argon2id parameters %+v out of range", p)
	}
	return nil
}

// passwdRecord is the JSON content of a mailbox's passwd file.
type passwdRecord struct {
	Version int          `json:"v"`
	Alg     string       `json:"alg"` // "argon2id"
	Params  Argon2Params `json:"params"`
	Salt    []byte       `json:"salt"`
	Hash    []byte       `json:"hash"`
	// Nonce and Sealed: AES-256-GCM under the store key of
	// NT hash (16 octets) || password, with aad(addr) as additional data.
	Nonce  []byte `json:"nonce"`
	Sealed []byte `json:"sealed"`
}

const passwdVersion = 1

func aad(a store.Address) []byte { return []byte("pop3svc passwd v1 " + a.String()) }

func ntHash(password string) []byte {
	u := utf16.Encode([]rune(password))
	b := make([]byte, 2*len(u))
	for i, c := range u {
		b[2*i] = byte(c)
		b[2*i+1] = byte(c >> 8)
	}
	h := md4.New()
	h.Write(b)
	return h.Sum(nil)
}

func (s *Store) aead() (cipher.AEAD, error) {
	blk, err := aes.NewCipher(s.key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(blk)
}

func (s *Store) newPasswdRecord(a store.Address, password string) (*passwdRecord, error) {
	r := &passwdRecord{Version: passwdVersion, Alg: "argon2id", Params: s.argon, Salt: make([]byte, minSaltLen)}
	if _, err := rand.Read(r.Salt); err != nil {
		return nil, err
	}
	var err error
	if r.Hash, err = s.hash(context.Background(), []byte(password), r); err != nil {
		return nil, err
	}
	if err := s.seal(r, a, password); err != nil {
		return nil, err
	}
	return r, nil
}

func (s *Store) seal(r *passwdRecord, a store.Address, password string) error {
	g, err := s.aead()
	if err != nil {
		return err
	}
	r.Nonce = make([]byte, g.NonceSize())
	if _, err := rand.Read(r.Nonce); err != nil {
		return err
	}
	plain := append(ntHash(password), password...)
	r.Sealed = g.Seal(nil, r.Nonce, plain, aad(a))
	clear(plain)
	return nil
}

func (s *Store) open(r *passwdRecord, a store.Address) ([]byte, error) {
	g, err := s.aead()
	if err != nil {
		return nil, err
	}
	if len(r.Nonce) != g.NonceSize() {
		return nil, errors.New("bad nonce")
	}
	plain, err := g.Open(nil, r.Nonce, r.Sealed, aad(a))
	if err != nil || len(plain) < md4.Size {
		return nil, fmt.Errorf("cannot decrypt the password file of %s (wrong store key or moved file)", a)
	}
	return plain, nil
}

func readPasswd(dir string) (*passwdRecord, error) {
	b, err := durable.ReadSmall(filepath.Join(dir, PasswdName), maxPasswdFile)
	if err != nil {
		return nil, err
	}
	var r passwdRecord
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("damaged password file in %q: %w", dir, err)
	}
	if r.Version != passwdVersion || r.Alg != "argon2id" || len(r.Salt) < minSaltLen || len(r.Hash) != int(r.Params.KeyLen) {
		return nil, fmt.Errorf("damaged password file in %q", dir)
	}
	if err := r.Params.check(); err != nil {
		return nil, fmt.Errorf("damaged password file in %q: %w", dir, err)
	}
	return &r, nil
}

func writePasswd(dir string, r *passwdRecord) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return durable.WriteFile(filepath.Join(dir, PasswdName), append(b, '\n'), 0o600)
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
	r, err := s.newPasswdRecord(a, password)
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
	r := s.dummy
	found := false
	var key string
	if a, err := canonAddr(addr); err == nil && s.checkMailbox(a) == nil {
		key = a.String()
		if rec, err := readPasswd(s.mboxPath(a)); err == nil {
			r, found = rec, true
		} else if !errors.Is(err, os.ErrNotExist) {
			s.log.Warn("cannot read password file", "mailbox", a.String(), "err", err)
		}
	}
	if found && len(password) <= MaxPasswordLen && s.authCache.Load().check(key, r, password, s.now()) {
		return nil
	}
	got, err := s.hash(ctx, []byte(password), r)
	if err != nil {
		return err
	}
	ok := subtle.ConstantTimeCompare(got, r.Hash) == 1
	if ok && found && len(password) <= MaxPasswordLen {
		s.authCache.Load().remember(key, r, password, s.now())
		return nil
	}
	return store.ErrAuthFailed
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
	dir := s.mboxPath(a)
	r, err := readPasswd(dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("mailbox %s has no password file: %w", a, store.ErrNoSecret)
		}
		return nil, err
	}
	plain, err := s.open(r, a)
	if err != nil {
		return nil, err
	}
	if kind == store.SecretNTHash {
		return plain[:md4.Size:md4.Size], nil
	}
	return plain[md4.Size:], nil
}

// hash computes argon2id with r's salt and parameters, waiting for one of
// the HashConcurrency slots.
func (s *Store) hash(ctx context.Context, password []byte, r *passwdRecord) ([]byte, error) {
	if ctx == nil {
		ctx = context.Background()
	}
	select {
	case s.hashes <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-s.hashes }()
	return argon2.IDKey(password, r.Salt, r.Params.Time, r.Params.MemoryKiB, r.Params.Threads, r.Params.KeyLen), nil
}
