package pop3

import (
	"io"
	"log/slog"
	"time"

	"github.com/pop3svc/pop3svc/session/auth"
	"github.com/pop3svc/pop3svc/store"
)

// Defaults used when an Options field is zero.
const (
	DefaultGreeting    = "POP3 service ready"
	DefaultMaxAuthLine = 8192
	DefaultOpTimeout   = 30 * time.Second
)

// Options configure the sessions of one POP3 service. The engine holds a
// *Options and swaps in a new one on reload; a session keeps the one it was
// created with. Options must not be changed once sessions use them.
type Options struct {
	Store    store.Store
	Auth     *auth.Authenticator
	Greeting string // text after "+OK " in the greeting; never a version
	Hostname string // host name in the APOP timestamp
	// APOP offers APOP (RFC 1939 section 7): the greeting carries a
	// timestamp. Effective only when Auth.Method keeps challenge secrets.
	APOP bool
	// SPARequired refuses plaintext passwords (USER/PASS, PLAIN, LOGIN) on
	// links without TLS.
	SPARequired bool
	// TLSAvailable: STLS (RFC 2595) is offered on links without TLS.
	TLSAvailable bool
	// MaxBadCommands is how many bad commands a client may send before
	// login before it is disconnected; 0: no limit.
	MaxBadCommands int
	// MaxAuthFailures is how many failed logins end the connection; 0: no limit.
	MaxAuthFailures int
	// MaxAuthLine is the longest SASL continuation line accepted (RFC 5034
	// section 4); 0: DefaultMaxAuthLine.
	MaxAuthLine int
	// Policy is the EXPIRE and LOGIN-DELAY policies (RFC 2449 sections
	// 6.7, 6.8), enforced and advertised when the store keeps their state
	// (store.PolicyStore); nil: none.
	Policy *Policy
	// Node is this server's number among those sharing the store; it is
	// recorded in the mailbox lock's owner.
	Node int
	// OpTimeout bounds one store or authentication call; 0: DefaultOpTimeout.
	OpTimeout time.Duration
	// RenewInterval is how often the engine renews an open mailbox's lock
	// lease (session.Renewer); a third of the lease (lock_lease) keeps two
	// renewals in hand. 0: store.DefaultLockLease / 3.
	RenewInterval time.Duration
	Logger        *slog.Logger     // nil: slog.Default()
	Now           func() time.Time // nil: time.Now
	Rand          io.Reader        // randomness of the APOP timestamp; nil: crypto/rand
}
