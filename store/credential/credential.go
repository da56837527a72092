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
//     CRAM-MD5 need the password itself, NTLM its NT hash. With
//     HashParams.NoReversible records keep none, and lose theirs at the
//     next successful login;
//   - the SCRAM-SHA-256 keys (RFC 5802, 7677): a salt of its own, 4096
//     PBKDF2 iterations, StoredKey and ServerKey, nothing reversible.
//
// Instead of the argon2id hash a record may hold a bcrypt ("$2b$...") or
// SHA-512-crypt ("$6$...") hash in its usual text form (Crypt), made with
// HashParams.Alg set to that algorithm or brought by an operator from
// another system (FromCrypt). A brought record has no sealed secrets until
// its first successful plaintext login.
//
// A Hasher verifies in constant time, and verifying against no record (an
// unknown mailbox, a mailbox without a password, an invalid name) costs
// one hash computation with the current parameters over a dummy record,
// exactly like a wrong password: the two cannot be told apart by their
// answer or their time. A record made with other parameters than the
// Hasher's current ones (or without sealed secrets) is reported by
// NeedsUpgrade: the stores rewrite it at its next successful login.
package credential

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf16"

	"golang.org/x/text/secure/precis"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
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
	Version int    `json:"v"`
	Alg     string `json:"alg"` // AlgArgon2id, AlgBcrypt or AlgSHA512Crypt
	// argon2id: its parameters, salt and hash.
	Params Argon2Params `json:"params,omitzero"`
	Salt   []byte       `json:"salt,omitempty"`
	Hash   []byte       `json:"hash,omitempty"`
	// bcrypt and SHA-512-crypt: the hash in its usual text form
	// ("$2b$10$...", "$6$rounds=5000$salt$...").
	Crypt string `json:"crypt,omitempty"`
	// Nonce and Sealed: AES-256-GCM under the store key of
	// NT hash (16 octets) || password, with aad(addr) as additional data.
	// Empty for a hash an operator brought (FromCrypt) until its first
	// successful login: APOP, CRAM-MD5 and NTLM need them.
	Nonce  []byte `json:"nonce,omitempty"`
	Sealed []byte `json:"sealed,omitempty"`
	// SCRAM is the SCRAM-SHA-256 keys (store.MarshalSCRAM): salt,
	// iterations, StoredKey and ServerKey, nothing reversible. Empty in
	// records made before the store kept them, and for brought hashes,
	// until the next successful plaintext login.
	SCRAM []byte `json:"scram,omitempty"`
}

const version = 1

// Hash algorithms of a Record.
const (
	AlgArgon2id    = "argon2id"
	AlgBcrypt      = "bcrypt"
	AlgSHA512Crypt = "sha512-crypt"
)

// DefaultBcryptCost is OWASP's minimum work factor for bcrypt.
const DefaultBcryptCost = 10

// Bounds on what a stored bcrypt or SHA-512-crypt hash may ask for, so that
// a damaged or hostile record cannot make a check take minutes; the same
// bounds apply to the settings.
const (
	MaxBcryptCost = 16
	// bcryptMaxLen is the longest password bcrypt reads; x/crypto refuses
	// longer ones.
	bcryptMaxLen = 72
)

// Working memory of one bcrypt or SHA-512-crypt check (bcrypt's state is
// 4 KiB of S-boxes; SHA-512-crypt a few hashes), rounded up: what the auth
// queue charges such a check in its memory budget.
const (
	bcryptMemory = 8 << 10
	sha512Memory = 4 << 10
)

// HashParams choose the hash of new passwords, and of stored ones at their
// next successful login. Zero fields take their defaults (Normal).
type HashParams struct {
	Alg          string // AlgArgon2id (default), AlgBcrypt or AlgSHA512Crypt
	Argon2       Argon2Params
	BcryptCost   int // 4..MaxBcryptCost; 0: DefaultBcryptCost
	SHA512Rounds int // SHA512MinRounds..SHA512MaxVerifyRounds; 0: SHA512DefaultRounds
	// NoReversible: new records keep no sealed secret (the password and
	// NT hash APOP, CRAM-MD5 and NTLM need), and a stored record that has
	// one loses it at its next successful login (Current is false).
	NoReversible bool
}

// Normal returns p with its zero fields set to their defaults.
func (p HashParams) Normal() HashParams {
	if p.Alg == "" {
		p.Alg = AlgArgon2id
	}
	if p.Argon2 == (Argon2Params{}) {
		p.Argon2 = DefaultArgon2
	}
	if p.Argon2.KeyLen == 0 {
		p.Argon2.KeyLen = DefaultArgon2.KeyLen
	}
	if p.BcryptCost == 0 {
		p.BcryptCost = DefaultBcryptCost
	}
	if p.SHA512Rounds == 0 {
		p.SHA512Rounds = SHA512DefaultRounds
	}
	return p
}

// Check reports parameters (after Normal) out of the range a store accepts.
func (p HashParams) Check() error {
	if err := p.Argon2.Check(); err != nil {
		return err
	}
	if p.BcryptCost < bcrypt.MinCost || p.BcryptCost > MaxBcryptCost {
		return fmt.Errorf("bcrypt cost %d out of range %d..%d", p.BcryptCost, bcrypt.MinCost, MaxBcryptCost)
	}
	if p.SHA512Rounds < SHA512MinRounds || p.SHA512Rounds > sha512MaxVerifyRounds {
		return fmt.Errorf("SHA-512-crypt rounds %d out of range %d..%d", p.SHA512Rounds, SHA512MinRounds, sha512MaxVerifyRounds)
	}
	switch p.Alg {
	case AlgArgon2id, AlgBcrypt, AlgSHA512Crypt:
		return nil
	}
	return fmt.Errorf("unknown password hash %q (argon2id, bcrypt or sha512-crypt)", p.Alg)
}

// Memory is the memory one check with these parameters takes, in octets.
func (p HashParams) Memory() int64 {
	switch p.Alg {
	case AlgBcrypt:
		return bcryptMemory
	case AlgSHA512Crypt:
		return sha512Memory
	}
	return int64(p.Argon2.MemoryKiB) << 10
}

// Memory is the memory checking a password against r takes, in octets.
func (r *Record) Memory() int64 {
	switch r.Alg {
	case AlgBcrypt:
		return bcryptMemory
	case AlgSHA512Crypt:
		return sha512Memory
	}
	return int64(r.Params.MemoryKiB) << 10
}

// Current reports whether r was made with p (normalized), carries the
// SCRAM keys and carries the sealed secrets exactly when p keeps them:
// otherwise its next successful login rewrites it.
func (r *Record) Current(p HashParams) bool {
	if r.Alg != p.Alg || (len(r.Sealed) == 0) != p.NoReversible || len(r.SCRAM) == 0 {
		return false
	}
	switch r.Alg {
	case AlgArgon2id:
		return r.Params == p.Argon2
	case AlgBcrypt:
		cost, err := bcrypt.Cost([]byte(r.Crypt))
		return err == nil && cost == p.BcryptCost
	case AlgSHA512Crypt:
		rounds, _, _, err := parseSHA512Crypt(r.Crypt)
		if rounds == 0 {
			rounds = SHA512DefaultRounds
		}
		return err == nil && rounds == p.SHA512Rounds
	}
	return false
}

// valid checks a record read back.
func (r *Record) valid() error {
	if r.Version != version {
		return fmt.Errorf("unknown version %d", r.Version)
	}
	switch r.Alg {
	case AlgArgon2id:
		if len(r.Salt) < SaltLen || len(r.Hash) != int(r.Params.KeyLen) {
			return errors.New("bad argon2id salt or hash")
		}
		return r.Params.Check()
	case AlgBcrypt:
		if !strings.HasPrefix(r.Crypt, "$2") {
			return errors.New("not a bcrypt hash")
		}
		cost, err := bcrypt.Cost([]byte(r.Crypt))
		if err != nil {
			return err
		}
		if cost > MaxBcryptCost {
			return fmt.Errorf("bcrypt cost %d above %d", cost, MaxBcryptCost)
		}
	case AlgSHA512Crypt:
		rounds, _, _, err := parseSHA512Crypt(r.Crypt)
		if err != nil {
			return err
		}
		if rounds > sha512MaxVerifyRounds {
			return fmt.Errorf("SHA-512-crypt rounds %d above %d", rounds, sha512MaxVerifyRounds)
		}
	default:
		return fmt.Errorf("unknown hash %q", r.Alg)
	}
	return nil
}

// FromCrypt makes a record from a hash an operator brought from another
// system: bcrypt ("$2a$", "$2b$", "$2y$") or SHA-512-crypt ("$6$"). It has
// no sealed secrets: APOP, CRAM-MD5 and NTLM are unavailable to the
// mailbox until its first successful plaintext login, which rewrites the
// record with the current parameters (NeedsUpgrade).
func FromCrypt(hash string) (*Record, error) {
	r := &Record{Version: version, Crypt: hash}
	switch {
	case strings.HasPrefix(hash, "$2"):
		r.Alg = AlgBcrypt
	case strings.HasPrefix(hash, sha512Prefix):
		r.Alg = AlgSHA512Crypt
	default:
		return nil, errors.New("not a bcrypt or SHA-512-crypt hash")
	}
	if err := r.valid(); err != nil {
		return nil, err
	}
	return r, nil
}

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
	if err := r.valid(); err != nil {
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
	h.Write([]byte{0})
	h.Write([]byte(r.Crypt))
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
	if kind == store.SecretSCRAMSHA256 {
		if _, err := store.ParseSCRAM(r.SCRAM); err != nil {
			return nil, fmt.Errorf("mailbox %s has no SCRAM keys until its next password change or plaintext login: %w", a, store.ErrNoSecret)
		}
		return r.SCRAM, nil
	}
	if kind != store.SecretPassword && kind != store.SecretNTHash {
		return nil, fmt.Errorf("unknown secret kind %d: %w", kind, store.ErrNoSecret)
	}
	if len(r.Sealed) == 0 {
		return nil, fmt.Errorf("mailbox %s keeps no sealed secret (a hash brought from elsewhere, or records made without reversible secrets): %w", a, store.ErrNoSecret)
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
	if len(r.Sealed) == 0 {
		n := *r // a brought hash: nothing sealed to the old name
		return &n, nil
	}
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

// Hasher computes password hashes, at most a fixed number at once: an
// argon2id check takes Argon2Params.MemoryKiB of memory, so a burst of
// logins queues instead of exhausting memory. Its parameters for new
// records may change while it runs (SetParams). It is safe for concurrent
// use.
type Hasher struct {
	params atomic.Pointer[HashParams]
	runner atomic.Pointer[runnerBox] // nil or its Runner nil: checks run here
	// noWorkerLog is when noWorker last logged (UnixNano).
	noWorkerLog atomic.Int64
	slots       chan struct{}
	dummy       atomic.Pointer[Record] // verified against when there is no record
}

// NewHasher returns a Hasher making new records with params (zero fields:
// their defaults) and running at most concurrency computations at once.
func NewHasher(params HashParams, concurrency int) (*Hasher, error) {
	if concurrency < 1 {
		return nil, fmt.Errorf("hash concurrency %d is not positive", concurrency)
	}
	h := &Hasher{slots: make(chan struct{}, concurrency)}
	if err := h.SetParams(params); err != nil {
		return nil, err
	}
	return h, nil
}

// SetParams changes the hash of new records, and of stored ones at their
// next successful login (NeedsUpgrade); zero fields take their defaults.
// It applies at once.
func (h *Hasher) SetParams(p HashParams) error {
	p = p.Normal()
	if err := p.Check(); err != nil {
		return err
	}
	if cur := h.params.Load(); cur != nil && *cur == p {
		return nil
	}
	// Unknown names are checked against a record made with the new
	// parameters, so that they cost what a real check costs.
	var pw [16]byte
	rand.Read(pw[:])
	dummy, err := h.newRecord(context.Background(), p, NewKey(), store.Address{Mailbox: "dummy", Domain: "invalid"}, hex.EncodeToString(pw[:]))
	if err != nil {
		return err
	}
	h.params.Store(&p)
	h.dummy.Store(dummy)
	return nil
}

type runnerBox struct{ r Runner }

// noWorker reports, at most once a minute, that checks run here because
// no worker could start.
func (h *Hasher) noWorker(err error) {
	now := time.Now().UnixNano()
	last := h.noWorkerLog.Load()
	if now-last < int64(time.Minute) || !h.noWorkerLog.CompareAndSwap(last, now) {
		return
	}
	slog.Warn("password checks run in this process: no hash worker could start", "err", err)
}

// SetRunner makes Verify compute its hashes with r (nil: on the calling
// goroutine). Records are still made (New) on the calling goroutine: a
// password set, or a hash upgraded after a successful login, is rare next
// to the checks a flood of guesses asks for.
func (h *Hasher) SetRunner(r Runner) { h.runner.Store(&runnerBox{r}) }

// Runner returns the Runner set, or nil.
func (h *Hasher) Runner() Runner {
	if b := h.runner.Load(); b != nil {
		return b.r
	}
	return nil
}

// Params returns the parameters new records get.
func (h *Hasher) Params() HashParams { return *h.params.Load() }

// NeedsUpgrade reports whether r, once its password is verified, should be
// rewritten with the current parameters.
func (h *Hasher) NeedsUpgrade(r *Record) bool { return r != nil && !r.Current(h.Params()) }

// New makes the record of password for mailbox a, sealed under key, with
// the current parameters.
func (h *Hasher) New(ctx context.Context, key []byte, a store.Address, password string) (*Record, error) {
	return h.newRecord(ctx, h.Params(), key, a, password)
}

func (h *Hasher) newRecord(ctx context.Context, p HashParams, key []byte, a store.Address, password string) (*Record, error) {
	password = NormalizePassword(password)
	if len(password) > MaxPasswordLen {
		return nil, fmt.Errorf("password longer than %d octets", MaxPasswordLen)
	}
	if p.Alg == AlgBcrypt && len(password) > bcryptMaxLen {
		return nil, fmt.Errorf("bcrypt takes passwords of %d octets at most", bcryptMaxLen)
	}
	salt := make([]byte, SaltLen)
	if _, err := rand.Read(salt); err != nil {
		return nil, err
	}
	if err := h.acquire(ctx); err != nil {
		return nil, err
	}
	var r *Record
	var err error
	if run := h.Runner(); run != nil {
		r, err = run.Make(ctx, p, salt, []byte(password))
		if errors.Is(err, ErrNoWorker) {
			h.noWorker(err)
			r, err = makeHash(p, salt, []byte(password))
		}
	} else {
		r, err = makeHash(p, salt, []byte(password))
	}
	if err != nil {
		h.release()
		return nil, err
	}
	h.release()
	if !p.NoReversible {
		if err := r.seal(key, a, password); err != nil {
			return nil, err
		}
	}
	scramSalt := make([]byte, SaltLen)
	if _, err := rand.Read(scramSalt); err != nil {
		return nil, err
	}
	r.SCRAM = store.MarshalSCRAM(NewSCRAMKeys(password, scramSalt, SCRAMIterations))
	return r, nil
}

// makeHash computes the hash of password with p and salt: a record with
// the hash and its parameters only.
func makeHash(p HashParams, salt, password []byte) (*Record, error) {
	r := &Record{Version: version, Alg: p.Alg}
	switch p.Alg {
	case AlgArgon2id:
		r.Params, r.Salt = p.Argon2, salt
		r.Hash = argon2.IDKey(password, r.Salt, r.Params.Time, r.Params.MemoryKiB, r.Params.Threads, r.Params.KeyLen)
	case AlgBcrypt:
		b, err := bcrypt.GenerateFromPassword(password, p.BcryptCost)
		if err != nil {
			return nil, err
		}
		r.Crypt = string(b)
	case AlgSHA512Crypt:
		rounds := p.SHA512Rounds
		if rounds == SHA512DefaultRounds {
			rounds = 0 // the usual spelling of the default
		}
		r.Crypt = sha512Crypt(password, newSHA512Salt(salt), rounds)
	default:
		return nil, fmt.Errorf("unknown password hash %q", p.Alg)
	}
	return r, nil
}

// NormalizePassword prepares a password as RFC 6856 and the SASL RFCs ask
// (PRECIS OpaqueString, RFC 8265 section 4.2, the successor of SASLprep):
// non-ASCII spaces become ASCII spaces and the text is put in Unicode
// normalization form C, so that a password typed on two systems compares
// equal. An ASCII password, and one OpaqueString refuses (control
// characters), is used as it is.
func NormalizePassword(pw string) string {
	for i := 0; i < len(pw); i++ {
		if pw[i] >= 0x80 {
			if n, err := precis.OpaqueString.String(pw); err == nil {
				return n
			}
			return pw
		}
	}
	return pw
}

// SCRAMIterations is the PBKDF2 iteration count of new SCRAM-SHA-256 keys
// (RFC 7677 section 4 asks for at least 4096). The server never runs
// PBKDF2 during a login: it keeps the keys; the client derives them.
const SCRAMIterations = 4096

// NewSCRAMKeys derives the SCRAM-SHA-256 keys of password (RFC 5802
// section 3): SaltedPassword = PBKDF2-HMAC-SHA-256(password, salt, iter),
// StoredKey = SHA-256(HMAC(SaltedPassword, "Client Key")), ServerKey =
// HMAC(SaltedPassword, "Server Key").
func NewSCRAMKeys(password string, salt []byte, iter int) store.SCRAMKeys {
	salted, err := pbkdf2.Key(sha256.New, password, salt, iter, sha256.Size)
	if err != nil {
		panic(err) // only for parameters out of FIPS 140 ranges, which these are not
	}
	mac := func(key []byte, msg string) []byte {
		m := hmac.New(sha256.New, key)
		m.Write([]byte(msg))
		return m.Sum(nil)
	}
	stored := sha256.Sum256(mac(salted, "Client Key"))
	return store.SCRAMKeys{Salt: bytes.Clone(salt), Iterations: iter, StoredKey: stored[:], ServerKey: mac(salted, "Server Key")}
}

// Verify checks password against r in constant time and returns nil or
// store.ErrAuthFailed. A nil r (no such mailbox, no password, an invalid
// name) costs the same computation as a record made with the current
// parameters and fails. An error other than store.ErrAuthFailed means the
// check could not run (ctx ended).
func (h *Hasher) Verify(ctx context.Context, r *Record, password string) error {
	password = NormalizePassword(password)
	// A password longer than any that can be set is hashed all the same.
	found := r != nil && len(password) <= MaxPasswordLen
	if r == nil {
		r = h.dummy.Load()
	}
	if err := h.acquire(ctx); err != nil {
		return err
	}
	var ok bool
	if run := h.Runner(); run != nil {
		var err error
		ok, err = run.Verify(ctx, []byte(password), r, store.LowPriority(ctx))
		switch {
		case errors.Is(err, ErrNoWorker):
			h.noWorker(err)
			ok = verify([]byte(password), r)
		case err != nil:
			h.release()
			return err
		}
	} else {
		ok = verify([]byte(password), r)
	}
	h.release()
	if ok && found {
		return nil
	}
	return store.ErrAuthFailed
}

// verify computes the hash of password with r's algorithm, salt and
// parameters and compares it with r's in constant time.
func verify(password []byte, r *Record) bool {
	switch r.Alg {
	case AlgArgon2id:
		got := argon2.IDKey(password, r.Salt, r.Params.Time, r.Params.MemoryKiB, r.Params.Threads, r.Params.KeyLen)
		return subtle.ConstantTimeCompare(got, r.Hash) == 1
	case AlgBcrypt:
		if len(password) > bcryptMaxLen {
			// x/crypto refuses what bcrypt would truncate; compare the
			// first 72 octets, as other bcrypt implementations do.
			password = password[:bcryptMaxLen]
		}
		return bcrypt.CompareHashAndPassword([]byte(r.Crypt), password) == nil
	case AlgSHA512Crypt:
		rounds, salt, _, err := parseSHA512Crypt(r.Crypt)
		if err != nil {
			return false
		}
		got := sha512Crypt(password, salt, rounds)
		return subtle.ConstantTimeCompare([]byte(got), []byte(r.Crypt)) == 1
	}
	return false
}

// acquire waits for one of the computation slots.
func (h *Hasher) acquire(ctx context.Context) error {
	if ctx == nil {
		ctx = context.Background()
	}
	select {
	case h.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (h *Hasher) release() { <-h.slots }
