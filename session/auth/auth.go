// Package auth is the authentication module (the seed's Pop3auth.dll): the
// authentication methods (encrypted password file, local system accounts,
// a directory) and the SASL mechanisms POP3 offers over them.
package auth

import (
	"context"
	"errors"
	"time"

	"github.com/pop3svc/pop3svc/store"
)

// ErrAuthFailed is returned for bad credentials of any kind, including an
// unknown user; it is the same error as store.ErrAuthFailed.
var ErrAuthFailed = store.ErrAuthFailed

// ErrUnavailable wraps failures of the authentication store itself (a
// directory that is down, PAM misconfigured): the client gets a temporary
// failure ([SYS/TEMP]), never [AUTH].
var ErrUnavailable = errors.New("authentication service unavailable")

// Method is an authentication method: where plaintext credentials are
// checked.
type Method interface {
	// Name is "passwordfile", "system" or "directory".
	Name() string
	// Plaintext verifies a password for a mailbox. Bad credentials and
	// unknown users return ErrAuthFailed, in the same time; failures of the
	// authentication store return an error wrapping ErrUnavailable.
	Plaintext(ctx context.Context, addr store.Address, password string) error
	// Challenge reports whether the method keeps the secrets that
	// challenge-response mechanisms (APOP, CRAM-MD5, NTLM) need. Only the
	// password file does.
	Challenge() bool
}

// Mechanism is one SASL exchange (RFC 4422) in progress. The session
// decodes the client's base64 lines and encodes the challenges.
type Mechanism interface {
	// Next takes the client's next response: the initial response on the
	// first call (nil when the client sent none; empty for "="), then
	// each continuation. It returns the next challenge to send, or
	// done=true once the exchange is over: err == nil on success, an
	// error wrapping ErrAuthFailed or ErrUnavailable otherwise.
	Next(ctx context.Context, response []byte) (challenge []byte, done bool, err error)
	// Address is the authenticated mailbox once Next returned done with a nil error.
	Address() store.Address
}

// Identifier is a Mechanism that can tell, for the log, which user name
// the client gave, also when the exchange failed.
type Identifier interface {
	Identity() string
}

// Guard is the brute-force protection consulted by protocol sessions. It
// never blocks: it only says how long to hold a reply back.
type Guard interface {
	// Banned reports whether the remote address is temporarily banned.
	Banned(remoteIP string) bool
	// Failure records a failed login from remoteIP and returns how long
	// to delay the -ERR reply (the fixed fail delay plus the address's
	// penalty).
	Failure(remoteIP string) time.Duration
	// Success records a successful login from remoteIP.
	Success(remoteIP string)
	// Admit is asked before a password is hashed for remoteIP, so that
	// penalties and bans cost no hash: ok is false when the address is
	// banned or has more attempts waiting than its penalty allows; wait
	// is how long this attempt must wait for its turn.
	Admit(remoteIP string) (wait time.Duration, ok bool)
}
