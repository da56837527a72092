package auth

import (
	"context"
	"crypto/hmac"
	"crypto/md5"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/idna"
	"golang.org/x/text/unicode/norm"

	"github.com/pop3svc/pop3svc/session"
	"github.com/pop3svc/pop3svc/store"
)

// Mechanism names offered by the Authenticator (RFC 4422 registry spelling).
const (
	MechPlain   = "PLAIN"
	MechLogin   = "LOGIN"
	MechCRAMMD5 = "CRAM-MD5"
)

// dummyAddress is verified instead of a login name that is not a valid
// address, so that such a name costs the same time as a wrong password.
// The ".invalid" top-level domain (RFC 2606) can never be a real domain here.
var dummyAddress = store.Address{Mailbox: "no-such-mailbox", Domain: "login.invalid"}

// dummySecretLen is the length of the random secret used in place of an
// unknown user's secret, so that the computation matches a real one.
const dummySecretLen = 16

// Authenticator checks logins for a protocol session: it resolves login
// names, verifies plaintext passwords through the configured method, checks
// APOP digests and builds SASL mechanisms. It is safe for concurrent use and
// shared by every session; a reload builds a new one.
type Authenticator struct {
	Method        Method      // where plaintext credentials are checked
	Store         store.Store // mailbox secrets for APOP and CRAM-MD5
	DefaultDomain string      // domain for login names without '@'; "" for none
	Guard         Guard       // brute-force protection; nil for none
	FailDelay     time.Duration
	Hostname      string // the host name in CRAM-MD5 challenges
	// Extra are SASL mechanisms supplied by other packages (for example
	// "NTLM"), keyed by their upper-case name. They need the method's
	// challenge secrets and are offered only when Method.Challenge().
	Extra map[string]func() Mechanism
	// Queue, when set, is the auth queue plaintext checks run in: USER/PASS
	// and the last step of PLAIN and LOGIN leave the check to the session
	// (PasswordCheck), which runs it there. nil: checks run where they are
	// asked for.
	Queue *HashQueue
	// HashCost is the memory a check is charged in Queue's budget when the
	// method cannot tell (see Cacher): the configured hash's memory.
	HashCost int64
	// SCRAM offers SCRAM-SHA-256 (and -PLUS over TLS) when it returns
	// true and the method keeps password-file credentials
	// (SCRAMMechanisms); nil: never.
	SCRAM func() bool
	// Rand is the randomness of SCRAM server nonces; nil: crypto/rand.
	Rand io.Reader
	// OAuth, when set, offers OAUTHBEARER and XOAUTH2 wherever plaintext
	// passwords are allowed (a bearer token is as good as a password).
	OAuth *OAuth
	// NoReversible: the password file keeps no reversible secrets
	// (auth.reversible_secrets off), so APOP, CRAM-MD5 and the Extra
	// mechanisms are neither offered nor accepted, even where records
	// still hold one.
	NoReversible bool

	floor failureFloor // how long recent plaintext checks took
}

// PasswordCheck is a plaintext password waiting to be checked: from
// USER/PASS, or the last step of PLAIN or LOGIN.
type PasswordCheck struct {
	Name     string // the login name as the client gave it
	Password string
	AuthzID  string // PLAIN's authorization identity; "" when none
}

// Cacher is implemented by methods that remember successful checks (the
// password file). Cached does no hash: it reports whether password was
// verified for addr lately, and otherwise how much memory the hash of
// addr's credentials will take (0: unknown).
type Cacher interface {
	Cached(ctx context.Context, addr store.Address, password string) (ok bool, cost int64)
}

// Deferrer is implemented by the PLAIN and LOGIN mechanisms. When the
// Authenticator has a Queue, their last step checks nothing: Next returns
// done with a nil error, and Deferred returns the password the session
// must check (see Authenticator.Check). Without a Queue, Deferred returns
// nil and Next checked the password itself.
type Deferrer interface {
	Deferred() *PasswordCheck
}

// Quick answers a password check without a hash when it can: ok is true
// when the method remembers this password as verified for the name. The
// cost is what the full check will be charged in the queue's budget.
func (a *Authenticator) Quick(ctx context.Context, pc PasswordCheck) (addr store.Address, ok bool, cost int64) {
	cost = a.HashCost
	addr, err := a.Resolve(pc.Name)
	if err != nil {
		return store.Address{}, false, cost
	}
	c, is := a.Method.(Cacher)
	if !is {
		return store.Address{}, false, cost
	}
	ok, n := c.Cached(ctx, addr, pc.Password)
	if n > 0 {
		cost = n
	}
	if !ok || !a.authzOK(pc.AuthzID, pc.Name, addr) {
		return store.Address{}, false, cost
	}
	return addr, true, cost
}

// Check verifies a password check in full. A failure that came back
// sooner than recent checks took returns in pad how long its reply must
// still be held back (see failureFloor); Check itself never waits.
func (a *Authenticator) Check(ctx context.Context, pc PasswordCheck) (addr store.Address, pad time.Duration, err error) {
	addr, rerr := a.Resolve(pc.Name)
	target := addr
	if rerr != nil {
		target = dummyAddress
	}
	start := time.Now()
	err = a.Method.Plaintext(ctx, target, pc.Password)
	pad = a.floor.pad(time.Since(start))
	if err == nil && rerr == nil && !a.authzOK(pc.AuthzID, pc.Name, addr) {
		err = fmt.Errorf("%w: authorization identity differs from the authentication identity", ErrAuthFailed)
	}
	if err != nil && errors.Is(err, ErrUnavailable) {
		return store.Address{}, 0, err
	}
	if rerr != nil {
		return store.Address{}, pad, rerr
	}
	if err != nil {
		return store.Address{}, pad, err
	}
	return addr, 0, nil
}

// authzOK applies RFC 4616 section 2: an authorization identity, when
// given, must be the authenticated one; no proxy logins here.
func (a *Authenticator) authzOK(authz, authc string, addr store.Address) bool {
	if authz == "" || authz == authc {
		return true
	}
	z, err := a.Resolve(authz)
	return err == nil && z == addr
}

// Suspect reports whether remoteIP has failed logins whose penalty has not
// yet decayed, or belongs to a network whose addresses failed often
// lately: its password checks wait behind everyone else's in the auth
// queue (Standing is Suspect).
func (a *Authenticator) Suspect(remoteIP string) bool {
	return a.Standing(remoteIP) == Suspect
}

// Standing says which line of the auth queue remoteIP's password checks
// wait in. A Guard with a Standing method decides; one with only a
// Penalty method makes an address with a penalty Suspect; without either,
// every address is Unknown.
func (a *Authenticator) Standing(remoteIP string) Standing {
	switch g := a.Guard.(type) {
	case interface{ Standing(string) Standing }:
		return g.Standing(remoteIP)
	case interface{ Penalty(string) time.Duration }:
		if g.Penalty(remoteIP) > 0 {
			return Suspect
		}
	}
	return Unknown
}

// Admit asks the Guard, before a password is hashed for remoteIP, whether
// and when the hash may run (see Guard.Admit). Without a Guard: at once.
func (a *Authenticator) Admit(remoteIP string) (wait time.Duration, ok bool) {
	if a.Guard == nil {
		return 0, true
	}
	return a.Guard.Admit(remoteIP)
}

// maxFailurePad bounds how long a failed plaintext check is held back to
// match the time real checks take.
const maxFailurePad = 2 * time.Second

// failureFloor pads failed plaintext checks to the time recent checks took.
// The password file costs one argon2id computation for every name, known
// or not, but a system or directory method may answer an unknown user
// faster than a wrong password (a look-up that finds nothing against a
// real bind or hash): without the pad, the reply time would tell which
// accounts exist. The floor follows the slowest recent check and decays
// towards the usual one, so an outlier does not slow every failure for
// long.
type failureFloor struct {
	mu sync.Mutex
	d  time.Duration
}

// pad records a check that took elapsed and returns how much longer a
// failed one must wait.
func (f *failureFloor) pad(elapsed time.Duration) time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	if elapsed > f.d {
		f.d = min(elapsed, maxFailurePad)
	} else {
		f.d -= (f.d - elapsed) / 16
	}
	if elapsed >= f.d {
		return 0
	}
	return f.d - elapsed
}

// Resolve turns a login name into a mailbox address: "mailbox@domain", or a
// bare "mailbox" in DefaultDomain. An invalid name returns an error wrapping
// both ErrAuthFailed and the reason; callers must treat it like a wrong
// password (see Plaintext and APOP, which do).
func (a *Authenticator) Resolve(name string) (store.Address, error) {
	name, err := asciiDomain(name)
	if err != nil {
		return store.Address{}, fmt.Errorf("%w: %w: %w", ErrAuthFailed, store.ErrInvalidName, err)
	}
	addr, err := store.ParseAddress(name, a.DefaultDomain)
	if err != nil {
		return store.Address{}, fmt.Errorf("%w: %w", ErrAuthFailed, err)
	}
	return addr, nil
}

// Plaintext verifies a login name and password. An unparseable name is
// verified against a dummy address so that it takes the same time and
// returns the same ErrAuthFailed as a wrong password.
//
// Plaintext waits out the failure pad itself; the auth queue's path
// (Check) returns it to be added to the reply's delay instead.
func (a *Authenticator) Plaintext(ctx context.Context, name, password string) (store.Address, error) {
	addr, pad, err := a.Check(ctx, PasswordCheck{Name: name, Password: password})
	if err != nil {
		waitPad(ctx, pad)
	}
	return addr, err
}

// secret returns the password secret of name for a challenge mechanism. An
// unknown or invalid name, or a mailbox without password-file secrets,
// yields a random secret and ok=false, so that the caller computes and
// compares exactly as for a real user and then fails. Failures of the
// store itself return an error wrapping ErrUnavailable.
func (a *Authenticator) secret(ctx context.Context, name string) (addr store.Address, secret []byte, ok bool, err error) {
	addr, rerr := a.Resolve(name)
	if rerr == nil && a.challenge() && a.Store != nil {
		s, serr := a.Store.Secret(ctx, addr, store.SecretPassword)
		switch {
		case serr == nil:
			return addr, s, true, nil
		case errors.Is(serr, store.ErrAuthFailed), errors.Is(serr, store.ErrNoSecret),
			errors.Is(serr, store.ErrNoSuchMailbox), errors.Is(serr, store.ErrNoSuchDomain),
			errors.Is(serr, store.ErrInvalidName):
		default:
			return store.Address{}, nil, false, fmt.Errorf("%w: %w", ErrUnavailable, serr)
		}
	}
	dummy := make([]byte, dummySecretLen)
	if _, err := rand.Read(dummy); err != nil {
		return store.Address{}, nil, false, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return store.Address{}, dummy, false, nil
}

// challenge reports whether challenge-response mechanisms (APOP,
// CRAM-MD5, NTLM) may run: the method keeps their secrets and
// NoReversible does not forbid them.
func (a *Authenticator) challenge() bool { return a.Method.Challenge() && !a.NoReversible }

// APOPDigest computes the APOP digest of RFC 1939 section 7: the lower-case
// hex MD5 of the greeting's timestamp (angle brackets included) followed by
// the shared secret.
func APOPDigest(timestamp string, secret []byte) string {
	h := md5.New()
	h.Write([]byte(timestamp))
	h.Write(secret)
	return hex.EncodeToString(h.Sum(nil))
}

// APOP verifies an APOP command (RFC 1939 section 7): digest must be the hex
// MD5 of timestamp followed by the user's password. The comparison is in
// constant time; an unknown user is compared against a random secret.
func (a *Authenticator) APOP(ctx context.Context, name, timestamp, digest string) (store.Address, error) {
	if !a.challenge() {
		return store.Address{}, fmt.Errorf("%w: method %s keeps no APOP secrets", ErrAuthFailed, a.Method.Name())
	}
	// The timestamp is the greeting's msg-id (RFC 1939 section 7). Without
	// one the digest would be MD5(password), the same on every connection
	// and replayable forever: refuse it here too, not only in the session.
	if len(timestamp) < 3 || timestamp[0] != '<' || timestamp[len(timestamp)-1] != '>' {
		return store.Address{}, fmt.Errorf("%w: APOP without a greeting timestamp", ErrAuthFailed)
	}
	addr, secret, ok, err := a.secret(ctx, name)
	if err != nil {
		return store.Address{}, err
	}
	want := APOPDigest(timestamp, secret)
	clear(secret)
	got := strings.ToLower(digest)
	match := subtle.ConstantTimeCompare([]byte(want), []byte(got)) == 1
	if !ok || !match {
		return store.Address{}, ErrAuthFailed
	}
	return addr, nil
}

// CRAMMD5Digest is the hex HMAC-MD5 of challenge keyed by secret (RFC 2195).
func CRAMMD5Digest(challenge string, secret []byte) string {
	m := hmac.New(md5.New, secret)
	m.Write([]byte(challenge))
	return hex.EncodeToString(m.Sum(nil))
}

// PlaintextAllowed reports whether a plaintext password may be sent on the
// link: always over TLS, otherwise only when sparequired is off.
func PlaintextAllowed(tls, spaRequired bool) bool { return tls || !spaRequired }

// Mechanisms lists the SASL mechanisms offered on a link: PLAIN and LOGIN
// (and OAUTHBEARER and XOAUTH2 with OAuth) when plaintext passwords are
// allowed, CRAM-MD5 and the Extra mechanisms
// (sorted) when the method keeps challenge secrets and NoReversible is off.
func (a *Authenticator) Mechanisms(tls, spaRequired bool) []string {
	var out []string
	if PlaintextAllowed(tls, spaRequired) {
		out = append(out, MechPlain, MechLogin)
		if a.OAuth != nil {
			out = append(out, MechOAuthBearer, MechXOAuth2)
		}
	}
	if a.challenge() {
		out = append(out, MechCRAMMD5)
		extra := make([]string, 0, len(a.Extra))
		for name := range a.Extra {
			extra = append(extra, strings.ToUpper(name))
		}
		slices.Sort(extra)
		out = append(out, extra...)
	}
	return out
}

// NewMechanism starts a SASL exchange for the named mechanism (any case)
// if it is offered on the link; ok is false otherwise.
func (a *Authenticator) NewMechanism(name string, tls, spaRequired bool) (m Mechanism, ok bool) {
	name = strings.ToUpper(name)
	if !slices.Contains(a.Mechanisms(tls, spaRequired), name) {
		return nil, false
	}
	switch name {
	case MechPlain:
		return &plainMech{a: a}, true
	case MechLogin:
		return &loginMech{a: a}, true
	case MechCRAMMD5:
		return &cramMech{a: a}, true
	case MechOAuthBearer:
		return &oauthMech{a: a}, true
	case MechXOAuth2:
		return &oauthMech{a: a, xoauth: true}, true
	}
	for n, f := range a.Extra {
		if strings.ToUpper(n) == name {
			return f(), true
		}
	}
	return nil, false
}

// AllMechanisms lists every SASL mechanism offered on a link, for a
// protocol's mechanism list (POP3 CAPA SASL and AUTH, SMTP EHLO AUTH):
// Mechanisms, then SCRAMMechanisms. cb is the link's channel binding, nil
// without TLS.
func (a *Authenticator) AllMechanisms(tls, spaRequired bool, cb *session.ChannelBinding) []string {
	return append(a.Mechanisms(tls, spaRequired), a.SCRAMMechanisms(cb)...)
}

// Start starts a SASL exchange for any mechanism AllMechanisms offers on
// the link; ok is false for one it does not.
func (a *Authenticator) Start(name string, tls, spaRequired bool, cb *session.ChannelBinding) (Mechanism, bool) {
	if m, ok := a.NewMechanism(name, tls, spaRequired); ok {
		return m, true
	}
	return a.NewSCRAM(name, cb)
}

// Failure records a failed login from remoteIP and returns how long to hold
// the reply back: the Guard's answer, or FailDelay without a Guard.
//
// When the failure makes the address's network suspect (a Guard with a
// NetworkSuspect method decides), the network's checks waiting in the
// Queue's trusted and unknown lines move to the suspect line (HashQueue.Demote).
func (a *Authenticator) Failure(remoteIP string) time.Duration {
	if a.Guard == nil {
		return a.FailDelay
	}
	d := a.Guard.Failure(remoteIP)
	if g, ok := a.Guard.(interface{ NetworkSuspect(string) bool }); ok && a.Queue != nil && g.NetworkSuspect(remoteIP) {
		a.Queue.Demote(Network(remoteIP))
	}
	return d
}

// Success records a successful login from remoteIP.
func (a *Authenticator) Success(remoteIP string) {
	if a.Guard != nil {
		a.Guard.Success(remoteIP)
	}
}

// Busy records that the auth queue refused a check of remoteIP because it
// was full: a Guard with a Busy method makes the address's next check
// wait its turn (see guard.Guard.Busy). It counts as no failure.
func (a *Authenticator) Busy(remoteIP string) {
	if g, ok := a.Guard.(interface{ Busy(string) }); ok {
		g.Busy(remoteIP)
	}
}

// Banned reports whether remoteIP is banned by the Guard.
func (a *Authenticator) Banned(remoteIP string) bool {
	return a.Guard != nil && a.Guard.Banned(remoteIP)
}

// asciiDomain maps the domain of a login name given in UTF-8 (RFC 6856)
// to the A-labels the store keeps (IDNA 2008, UTS #46 lookup mapping:
// "alice@bücher.example" is "alice@xn--bcher-kva.example"); the mailbox
// part is put in Unicode normalization form C. ASCII names pass as they are.
func asciiDomain(name string) (string, error) {
	ascii := true
	for i := 0; i < len(name); i++ {
		if name[i] >= 0x80 {
			ascii = false
			break
		}
	}
	if ascii {
		return name, nil
	}
	local, domain, ok := strings.Cut(name, "@")
	if !ok {
		return norm.NFC.String(name), nil
	}
	d, err := idna.Lookup.ToASCII(domain)
	if err != nil {
		return "", err
	}
	return norm.NFC.String(local) + "@" + d, nil
}
