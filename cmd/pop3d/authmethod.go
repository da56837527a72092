package main

import (
	"fmt"
	"sync"

	"github.com/pop3svc/pop3svc/cmd/internal/config"
	"github.com/pop3svc/pop3svc/cmd/internal/wiring"
	"github.com/pop3svc/pop3svc/session/auth"
	"github.com/pop3svc/pop3svc/session/auth/ldap"
	"github.com/pop3svc/pop3svc/session/auth/ntlm"
	"github.com/pop3svc/pop3svc/session/auth/pam"
	"github.com/pop3svc/pop3svc/store"
)

// authMethods builds the authentication method of each configuration for
// the POP3 service, which owns it. It keeps the directory's connection
// pool across reloads while the [ldap] table is unchanged, and closes it
// when the table changes, another method is chosen, or the service stops.
type authMethods struct {
	store store.Store
	dir   directoryCache
}

// build returns the method that cfg's auth.method selects, and the SASL
// mechanisms beyond those the Authenticator offers itself (PLAIN, LOGIN,
// CRAM-MD5):
//   - "passwordfile": the store's encrypted password file, plus NTLM
//     (which needs the NT hash only the password file keeps);
//   - "system": local accounts through PAM (service auth.pam_service);
//   - "directory": an LDAP directory ([ldap] table).
func (m *authMethods) build(cfg *config.Config) (auth.Method, map[string]func() auth.Mechanism, error) {
	switch cfg.Auth.Method {
	case "", "passwordfile":
		m.dir.reset()
		opt := ntlm.Options{
			Store:         m.store,
			DefaultDomain: cfg.DefaultDomain,
			AllowV1:       cfg.Auth.AllowNTLMv1,
			DNSComputer:   cfg.HostName(),
		}
		if !cfg.Auth.NTLM || !cfg.Auth.ReversibleSecrets {
			return auth.PasswordFile{Store: m.store}, nil, nil
		}
		return auth.PasswordFile{Store: m.store}, map[string]func() auth.Mechanism{ntlm.Name: ntlm.Factory(opt)}, nil
	case "system":
		m.dir.reset()
		p, err := pam.New(pam.Options{Service: cfg.Auth.PAMService})
		if err != nil {
			return nil, nil, fmt.Errorf("auth.method system: %w", err)
		}
		return p, nil, nil
	case "directory":
		d, err := m.dir.get(cfg.LDAP)
		if err != nil {
			return nil, nil, fmt.Errorf("auth.method directory: %w", err)
		}
		return d, nil, nil
	}
	return nil, nil, fmt.Errorf("auth.method: %q is not passwordfile, system or directory", cfg.Auth.Method)
}

// close releases the directory's connections.
func (m *authMethods) close() { m.dir.reset() }

// directoryCache keeps the one LDAP directory in use.
type directoryCache struct {
	mu  sync.Mutex
	cfg config.LDAP
	dir *ldap.Directory
}

func (c *directoryCache) get(cfg config.LDAP) (*ldap.Directory, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dir != nil && c.cfg == cfg {
		return c.dir, nil
	}
	opt, err := wiring.DirectoryOptions(cfg)
	if err != nil {
		return nil, err
	}
	d, err := ldap.New(opt)
	if err != nil {
		return nil, err
	}
	if c.dir != nil {
		c.dir.Close()
	}
	c.cfg, c.dir = cfg, d
	return d, nil
}

func (c *directoryCache) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dir != nil {
		c.dir.Close()
		c.dir = nil
	}
}
