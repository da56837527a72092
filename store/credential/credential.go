// Package credential is the password record every store keeps for a
// mailbox with password-file credentials, and the rules that check it. The
// file store writes a Record as the mailbox's passwd file; the in-memory
// store keeps it in memory. Both verify, seal and open it here, so that a
// password is checked by the same rules whatever keeps it.
//
// A Record holds:
//
//   - an argon2id hash (RFC 9106) of the password with a 16-octet random
//     salt and the parameters used (DefaultArgon2: 3 passes, 19 MiB, 1
//     lane, 32 octets, about 25 ms per check on a small server); the
//     parameters travel with the record, so changing the defaults only
//     affects passwords set afterwards;
//   - the NT hash (MD4 of the UTF-16LE password, MS-NLMP 3.3.1) followed by
//     the password, sealed with AES-256-GCM under the store key, a random
//     96-bit nonce, and "pop3svc passwd v1 " + mailbox@domain as additional
//     data, so a record moved to another mailbox does not open. APOP and
//     CRAM-MD5 need the password itself, NTLM its NT hash.
//
// A Hasher verifies in constant time, and verifying against no record (an
// unknown mailbox, a mailbox without a password, an invalid name) costs
// one argon2id computation over a dummy record, exactly like a wrong
// password: the two cannot be told apart by their answer or their time.
package credential

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf16"

	"golang.org/x/crypto/argon2"
	//lint:ignore SA1019 the NT hash NTLM needs is MD4 ([MS-NLMP] 3.3.1)
	"golang.org/x/crypto/md4"

	"github.com/pop3svc/pop3svc/store"
)

// Argon2Params are the argon2id parameters (RFC 9106) of a password hash.
// They are recorded in every Record, so changing the defaults affects only
// passwords set afterwards.
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

// Limits on the parameters of a record read back, so that a damaged or
// hostile record cannot make a check take minutes or gigabytes.
const (
	maxArgonTime   = 64
	maxArgonMemory = 1 << 20 // 1 GiB
	// SaltLen is the length of a record's random salt.
	SaltLen = 16
	// MaxPasswordLen bounds a password accepted by SetPassword.
	MaxPasswordLen = 1024
	// KeySize is the store key's size in octets (AES-256).
	KeySize = 32
	// NTHashLen is the length of the NT hash (MD4).
	NTHashLen = md4.Size
)

// Check reports parameters out of the range a store accepts.
func (p Argon2Params) Check() error {
	if p.Time < 1 || p.Time > maxArgonTime || p.MemoryKiB < 8*uint32(max(p.Threads, 1)) ||
		p.MemoryKiB > maxArgonMemory || p.Threads < 1 || p.KeyLen < 16 || p.KeyLen > 64 {
		return fmt.Errorf("argon2id parameters %+v out of range", p)
	}
	return nil
}

// Record is one mailbox's credentials; its JSON form is the file store's
// passwd file. A Record is never changed once made: a new password makes
// a new Record, so a Record may be read from several goroutines.
type Record struct {
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

const (
	version = 1
	alg     = "argon2id"
)

func aad(a store.Address) []byte { return []byte("pop3svc passwd v1 " + a.String()) }

// NTHash is MD4(UTF-16LE(password)), MS-NLMP 3.3.1's NTOWFv1.
func NTHash(password string) []byte {
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

// NewKey returns a fresh random store key.
func NewKey() []byte {
	k := make([]byte, KeySize)
	if _, err := rand.Read(k); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	return k
}

// ParseKey decodes a hex-encoded store key.
func ParseKey(text string) ([]byte, error) {
	key, err := hex.DecodeString(text)
	if err != nil || len(key) != KeySize {
		return nil, fmt.Errorf("the store key is not %d hex-encoded octets", KeySize)
	}
	return key, nil
}

func aead(key []byte) (cipher.AEAD, error) {
	blk, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(blk)
}

// Decode parses and checks a record's JSON form.
func Decode(b []byte) (*Record, error) {
	var r Record
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("damaged password record: %w", err)
	}
	if r.Version != version || r.Alg != alg || len(r.Salt) < SaltLen || len(r.Hash) != int(r.Params.KeyLen) {
		return nil, errors.New("damaged password record")
	}
	if err := r.Params.Check(); err != nil {
		return nil, fmt.Errorf("damaged password record: %w", err)
	}
	return &r, nil
}

// Encode returns the record's JSON form, ending with a newline.
func (r *Record) Encode() ([]byte, error) {
	b, err := json.Marshal(r)
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// Digest identifies the record: it changes with every new password (a new
// salt and hash), so a cache of verified passwords keyed by it is
// invalidated by any change.
func (r *Record) Digest() [32]byte {
	h := sha256.New()
	h.Write(r.Salt)
	h.Write([]byte{0})
	h.Write(r.Hash)
	var d [32]byte
	h.Sum(d[:0])
	return d
}

// seal sets the record's sealed secrets for password at address a.
func (r *Record) seal(key []byte, a store.Address, password string) error {
	g, err := aead(key)
	if err != nil {
		return err
	}
	r.Nonce = make([]byte, g.NonceSize())
	if _, err := rand.Read(r.Nonce); err != nil {
		return err
	}
	plain := append(NTHash(password), password...)
	r.Sealed = g.Seal(nil, r.Nonce, plain, aad(a))
	clear(plain)
	return nil
}

// open returns NT hash || password, sealed to address a.
func (r *Record) open(key []byte, a store.Address) ([]byte, error) {
	g, err := aead(key)
	if err != nil {
		return nil, err
	}
	if len(r.Nonce) != g.NonceSize() {
		return nil, errors.New("bad nonce")
	}
	plain, err := g.Open(nil, r.Nonce, r.Sealed, aad(a))
	if err != nil || len(plain) < NTHashLen {
		return nil, fmt.Errorf("cannot decrypt the password record of %s (wrong store key or moved record)", a)
	}
	return plain, nil
}

// Secret returns the decrypted secret of the given kind for the mailbox a
// the record is sealed to.
func (r *Record) Secret(key []byte, a store.Address, kind store.SecretKind) ([]byte, error) {
	if kind != store.SecretPassword && kind != store.SecretNTHash {
		return nil, fmt.Errorf("unknown secret kind %d: %w", kind, store.ErrNoSecret)
	}
	plain, err := r.open(key, a)
	if err != nil {
		return nil, err
	}
	if kind == store.SecretNTHash {
		return plain[:NTHashLen:NTHashLen], nil
	}
	return plain[NTHashLen:], nil
}

// Reseal returns a copy of the record sealed to address to instead of
// from (a renamed mailbox). The hash is kept: the password does not change.
func (r *Record) Reseal(key []byte, from, to store.Address) (*Record, error) {
	plain, err := r.open(key, from)
	if err != nil {
		return nil, err
	}
	defer clear(plain)
	n := *r
	if err := n.seal(key, to, string(plain[NTHashLen:])); err != nil {
		return nil, err
	}
	return &n, nil
}

// Hasher computes argon2id hashes, at most a fixed number at once: each
// takes Argon2Params.MemoryKiB of memory, so a burst of logins queues
// instead of exhausting memory. It is safe for concurrent use.
type Hasher struct {
	params Argon2Params
	slots  chan struct{}
	dummy  *Record // verified against when there is no record
}

// NewHasher returns a Hasher making new records with params (zero:
// DefaultArgon2) and running at most concurrency computations at once.
func NewHasher(params Argon2Params, concurrency int) (*Hasher, error) {
	if params == (Argon2Params{}) {
		params = DefaultArgon2
	}
	if err := params.Check(); err != nil {
		return nil, err
	}
	if concurrency < 1 {
		return nil, fmt.Errorf("hash concurrency %d is not positive", concurrency)
	}
	h := &Hasher{params: params, slots: make(chan struct{}, concurrency)}
	var pw [16]byte
	rand.Read(pw[:])
	dummy, err := h.New(context.Background(), NewKey(), store.Address{Mailbox: "dummy", Domain: "invalid"}, hex.EncodeToString(pw[:]))
	if err != nil {
		return nil, err
	}
	h.dummy = dummy
	return h, nil
}

// Params returns the parameters new records get.
func (h *Hasher) Params() Argon2Params { return h.params }

// New makes the record of password for mailbox a, sealed under key.
func (h *Hasher) New(ctx context.Context, key []byte, a store.Address, password string) (*Record, error) {
	if len(password) > MaxPasswordLen {
		return nil, fmt.Errorf("password longer than %d octets", MaxPasswordLen)
	}
	r := &Record{Version: version, Alg: alg, Params: h.params, Salt: make([]byte, SaltLen)}
	if _, err := rand.Read(r.Salt); err != nil {
		return nil, err
	}
	var err error
	if r.Hash, err = h.hash(ctx, []byte(password), r); err != nil {
		return nil, err
	}
	if err := r.seal(key, a, password); err != nil {
		return nil, err
	}
	return r, nil
}

// Verify checks password against r in constant time and returns nil or
// store.ErrAuthFailed. A nil r (no such mailbox, no password, an invalid
// name) costs the same argon2id computation and fails. An error other
// than store.ErrAuthFailed means the check could not run (ctx ended).
func (h *Hasher) Verify(ctx context.Context, r *Record, password string) error {
	// A password longer than any that can be set is hashed all the same.
	found := r != nil && len(password) <= MaxPasswordLen
	if r == nil {
		r = h.dummy
	}
	got, err := h.hash(ctx, []byte(password), r)
	if err != nil {
		return err
	}
	if subtle.ConstantTimeCompare(got, r.Hash) == 1 && found {
		return nil
	}
	return store.ErrAuthFailed
}

// hash computes argon2id with r's salt and parameters, waiting for a slot.
func (h *Hasher) hash(ctx context.Context, password []byte, r *Record) ([]byte, error) {
	if ctx == nil {
		ctx = context.Background()
	}
	select {
	case h.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-h.slots }()
	return argon2.IDKey(password, r.Salt, r.Params.Time, r.Params.MemoryKiB, r.Params.Threads, r.Params.KeyLen), nil
}
