// Package ldap is the "directory" authentication method: plaintext
// passwords checked by binding to an LDAP directory (OpenLDAP, Active
// Directory), RFC 4511 and RFC 4513.
//
// Two modes:
//   - bind template (ldap.bind_dn): the login's DN is built from a template
//     with %u (mailbox), %d (domain), %s (mailbox@domain) and %% (a
//     percent sign), each value escaped for a DN (RFC 4514 §2.4), and the
//     password is checked by a simple bind as that DN;
//   - search (ldap.search_base set): the filter ldap.search_filter, with the
//     same place-holders escaped for a filter (RFC 4515 §3), is searched
//     under the base, bound as ldap.service_dn when set (anonymously
//     otherwise); exactly one entry must match, and the password is then
//     checked by binding as that entry's DN. For Active Directory use
//     (userPrincipalName=%s).
//
// An empty password is refused before the directory is contacted: a
// simple bind with an empty password is an unauthenticated bind (RFC 4513
// §5.1.2) that many servers accept. A bind refused with invalidCredentials
// (49) is a failed login; a directory that cannot be reached, times out or
// answers anything else is unavailable (auth.ErrUnavailable: [SYS/TEMP]).
//
// Connections (ldap://, ldaps://, or ldap:// with StartTLS, RFC 4513 §3)
// are kept in a small pool of at most ldap.pool_size; a request waits for a
// free one no longer than ldap.timeout. Only plaintext mechanisms can use
// this method: the directory does not give out password secrets.
package ldap

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"
	"time"

	goldap "github.com/go-ldap/ldap/v3"

	"github.com/pop3svc/pop3svc/session/auth"
	"github.com/pop3svc/pop3svc/store"
)

// Defaults for settings left at zero.
const (
	DefaultTimeout  = 5 * time.Second
	DefaultPoolSize = 4
)

// Options configure the directory.
type Options struct {
	URL          string // ldap://host:389 or ldaps://host:636
	StartTLS     bool   // upgrade an ldap:// connection with StartTLS
	BindDN       string // template mode: DN template
	SearchBase   string // search mode when set
	SearchFilter string // e.g. (mail=%s)
	ServiceDN    string // optional account for searching
	ServicePass  string
	Timeout      time.Duration // dial, request and pool wait limit
	PoolSize     int
	TLS          *tls.Config // for ldaps:// and StartTLS; nil: system roots, server name from the URL
}

// Directory is the "directory" method. It implements auth.Method and is
// safe for concurrent use.
type Directory struct {
	opt   Options
	slots chan struct{} // one token per connection that may exist
	mu    sync.Mutex
	idle  []*goldap.Conn
	done  bool
}

var _ auth.Method = (*Directory)(nil)

// New checks the options and returns the method. It does not contact the
// directory.
func New(opt Options) (*Directory, error) {
	u, err := url.Parse(opt.URL)
	if err != nil || opt.URL == "" {
		return nil, fmt.Errorf("ldap.url: %q is not a URL (example: ldap://127.0.0.1:389)", opt.URL)
	}
	switch u.Scheme {
	case "ldap":
	case "ldaps":
		if opt.StartTLS {
			return nil, errors.New("ldap.starttls: not with an ldaps:// URL, which is TLS already")
		}
	default:
		return nil, fmt.Errorf("ldap.url: scheme %q, want ldap or ldaps", u.Scheme)
	}
	if opt.SearchBase == "" && opt.BindDN == "" {
		return nil, errors.New("ldap: set ldap.bind_dn (bind template) or ldap.search_base (search)")
	}
	if opt.SearchBase != "" {
		if opt.SearchFilter == "" {
			return nil, errors.New("ldap.search_filter: empty in search mode (example: (mail=%s))")
		}
		if _, err := goldap.CompileFilter(expand(opt.SearchFilter, "user", "example.com", goldap.EscapeFilter)); err != nil {
			return nil, fmt.Errorf("ldap.search_filter: %q: %v", opt.SearchFilter, err)
		}
	}
	if opt.ServiceDN != "" && opt.ServicePass == "" {
		return nil, errors.New("ldap.service_password: empty while ldap.service_dn is set")
	}
	if opt.Timeout <= 0 {
		opt.Timeout = DefaultTimeout
	}
	if opt.PoolSize <= 0 {
		opt.PoolSize = DefaultPoolSize
	}
	if opt.TLS == nil {
		opt.TLS = &tls.Config{MinVersion: tls.VersionTLS12}
	} else {
		opt.TLS = opt.TLS.Clone()
	}
	if opt.TLS.ServerName == "" {
		opt.TLS.ServerName = u.Hostname()
	}
	d := &Directory{opt: opt, slots: make(chan struct{}, opt.PoolSize)}
	return d, nil
}

// Name returns "directory".
func (d *Directory) Name() string { return "directory" }

// Challenge returns false: the directory gives out no password secrets.
func (d *Directory) Challenge() bool { return false }

// Close closes the idle connections; connections in use are closed when
// they are released.
func (d *Directory) Close() error {
	d.mu.Lock()
	idle := d.idle
	d.idle, d.done = nil, true
	d.mu.Unlock()
	for _, c := range idle {
		c.Close()
	}
	return nil
}

// Plaintext checks password for addr by binding to the directory.
func (d *Directory) Plaintext(ctx context.Context, addr store.Address, password string) error {
	if password == "" {
		return fmt.Errorf("%w: empty password", auth.ErrAuthFailed)
	}
	conn, err := d.get(ctx)
	if err != nil {
		return err
	}
	err = d.check(conn, addr, password)
	d.put(conn, err)
	return err
}

// check runs the bind (and search) on conn.
func (d *Directory) check(conn *goldap.Conn, addr store.Address, password string) error {
	dn := ""
	if d.opt.SearchBase == "" {
		dn = expand(d.opt.BindDN, addr.Mailbox, addr.Domain, goldap.EscapeDN)
	} else {
		var err error
		if dn, err = d.search(conn, addr); err != nil {
			return err
		}
	}
	if err := conn.Bind(dn, password); err != nil {
		if goldap.IsErrorWithCode(err, goldap.LDAPResultInvalidCredentials) {
			return fmt.Errorf("%w: directory refused the bind", auth.ErrAuthFailed)
		}
		return unavailable("bind", err)
	}
	return nil
}

// search finds the one entry of addr in search mode.
func (d *Directory) search(conn *goldap.Conn, addr store.Address) (string, error) {
	var err error
	if d.opt.ServiceDN != "" {
		err = conn.Bind(d.opt.ServiceDN, d.opt.ServicePass)
	} else {
		err = conn.UnauthenticatedBind("")
	}
	if err != nil {
		return "", unavailable("service bind", err)
	}
	filter := expand(d.opt.SearchFilter, addr.Mailbox, addr.Domain, goldap.EscapeFilter)
	res, err := conn.Search(&goldap.SearchRequest{
		BaseDN:       d.opt.SearchBase,
		Scope:        goldap.ScopeWholeSubtree,
		DerefAliases: goldap.NeverDerefAliases,
		SizeLimit:    2,
		TimeLimit:    int(d.opt.Timeout / time.Second),
		Filter:       filter,
		Attributes:   []string{"1.1"}, // no attributes (RFC 4511 §4.5.1.8)
	})
	if err != nil && !goldap.IsErrorWithCode(err, goldap.LDAPResultSizeLimitExceeded) {
		return "", unavailable("search", err)
	}
	switch {
	case res == nil || len(res.Entries) == 0:
		// Bind anyway, as a name that cannot exist, so that an unknown
		// user costs the same round trips as a wrong password.
		_ = conn.Bind("cn="+goldap.EscapeDN(addr.String())+"+uid=nonexistent,"+d.opt.SearchBase, "x")
		return "", fmt.Errorf("%w: no directory entry for %s", auth.ErrAuthFailed, addr)
	case len(res.Entries) > 1:
		return "", fmt.Errorf("%w: more than one directory entry for %s", auth.ErrAuthFailed, addr)
	}
	return res.Entries[0].DN, nil
}

// Exists reports whether the directory has an entry for addr: the entry
// the bind template names, or exactly one entry matching the search
// filter. It lets the administrator's tool check that mailboxes can log in
// before switching to this method. The search binds as the service
// account when one is set, anonymously otherwise.
func (d *Directory) Exists(ctx context.Context, addr store.Address) (bool, error) {
	conn, err := d.get(ctx)
	if err != nil {
		return false, err
	}
	ok, err := d.exists(conn, addr)
	// Connection errors close it; a clean answer keeps it pooled.
	if err != nil {
		d.put(conn, err)
		return false, err
	}
	d.put(conn, nil)
	return ok, nil
}

func (d *Directory) exists(conn *goldap.Conn, addr store.Address) (bool, error) {
	if d.opt.SearchBase != "" {
		_, err := d.search(conn, addr)
		if errors.Is(err, auth.ErrAuthFailed) {
			return false, nil
		}
		return err == nil, err
	}
	if d.opt.ServiceDN != "" {
		err := conn.Bind(d.opt.ServiceDN, d.opt.ServicePass)
		if err != nil {
			return false, unavailable("service bind", err)
		}
	} else if err := conn.UnauthenticatedBind(""); err != nil {
		return false, unavailable("anonymous bind", err)
	}
	res, err := conn.Search(&goldap.SearchRequest{
		BaseDN:     expand(d.opt.BindDN, addr.Mailbox, addr.Domain, goldap.EscapeDN),
		Scope:      goldap.ScopeBaseObject,
		Filter:     "(objectClass=*)",
		SizeLimit:  1,
		Attributes: []string{"1.1"},
	})
	if goldap.IsErrorWithCode(err, goldap.LDAPResultNoSuchObject) {
		return false, nil
	}
	if err != nil {
		return false, unavailable("search", err)
	}
	return len(res.Entries) == 1, nil
}

func unavailable(what string, err error) error {
	return fmt.Errorf("%w: ldap %s: %w", auth.ErrUnavailable, what, err)
}

// expand replaces %u, %d, %s and %% in tmpl, escaping the values.
func expand(tmpl, mailbox, domain string, esc func(string) string) string {
	var b strings.Builder
	for i := 0; i < len(tmpl); i++ {
		c := tmpl[i]
		if c != '%' || i+1 == len(tmpl) {
			b.WriteByte(c)
			continue
		}
		i++
		switch tmpl[i] {
		case 'u':
			b.WriteString(esc(mailbox))
		case 'd':
			b.WriteString(esc(domain))
		case 's':
			b.WriteString(esc(mailbox + "@" + domain))
		case '%':
			b.WriteByte('%')
		default:
			b.WriteByte('%')
			b.WriteByte(tmpl[i])
		}
	}
	return b.String()
}

// get returns a connection: an idle one, or a new one when the pool has
// room. It waits for a slot no longer than the timeout (or ctx).
func (d *Directory) get(ctx context.Context) (*goldap.Conn, error) {
	wait := time.NewTimer(d.opt.Timeout)
	defer wait.Stop()
	select {
	case d.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, unavailable("waiting for a connection", ctx.Err())
	case <-wait.C:
		return nil, unavailable("waiting for a connection", fmt.Errorf("all %d busy for %v", d.opt.PoolSize, d.opt.Timeout))
	}
	d.mu.Lock()
	for len(d.idle) > 0 {
		c := d.idle[len(d.idle)-1]
		d.idle = d.idle[:len(d.idle)-1]
		if !c.IsClosing() {
			d.mu.Unlock()
			return c, nil
		}
		c.Close()
	}
	d.mu.Unlock()
	c, err := d.dial(ctx)
	if err != nil {
		<-d.slots
		return nil, err
	}
	return c, nil
}

// put returns a connection to the pool, or closes it after an error that
// may have left it unusable.
func (d *Directory) put(c *goldap.Conn, err error) {
	defer func() { <-d.slots }()
	if err != nil && !errors.Is(err, auth.ErrAuthFailed) {
		c.Close()
		return
	}
	d.mu.Lock()
	if d.done || c.IsClosing() {
		d.mu.Unlock()
		c.Close()
		return
	}
	d.idle = append(d.idle, c)
	d.mu.Unlock()
}

func (d *Directory) dial(ctx context.Context) (*goldap.Conn, error) {
	timeout := d.opt.Timeout
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < timeout {
		timeout = max(time.Until(dl), time.Millisecond)
	}
	c, err := goldap.DialURL(d.opt.URL,
		goldap.DialWithDialer(&net.Dialer{Timeout: timeout}),
		goldap.DialWithTLSConfig(d.opt.TLS))
	if err != nil {
		return nil, unavailable("connect", err)
	}
	c.SetTimeout(d.opt.Timeout)
	if d.opt.StartTLS {
		if err := c.StartTLS(d.opt.TLS); err != nil {
			c.Close()
			return nil, unavailable("StartTLS", err)
		}
	}
	return c, nil
}
