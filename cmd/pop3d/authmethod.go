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
)

// newAuthMethod builds the authentication method that rt.cfg's
// auth.method selects, and the SASL mechanisms beyond those the
// Authenticator offers itself (PLAIN, LOGIN, CRAM-MD5):
//   - "passwordfile": the store's encrypted password file, plus NTLM
//     (which needs the NT hash only the password file keeps);
//   - "system": local accounts through PAM (service auth.pam_service);
//   - "directory": an LDAP directory ([ldap] table).
//
// The directory's connection pool is kept across reloads while the [ldap]
// table is unchanged, and closed when it changes or another method is
// chosen.
func newAuthMethod(rt *runtime) (auth.Method, map[string]func() auth.Mechanism, error) {
	cfg := rt.cfg
	switch cfg.Auth.Method {
	case "", "passwordfile":
		dirCache.reset()
		opt := ntlm.Options{
			Store:         rt.store,
			DefaultDomain: cfg.DefaultDomain,
			AllowV1:       cfg.Auth.AllowNTLMv1,
			DNSComputer:   cfg.HostName(),
		}
		if !cfg.Auth.NTLM {
			return auth.PasswordFile{Store: rt.store}, nil, nil
		}
		return auth.PasswordFile{Store: rt.store}, map[string]func() auth.Mechanism{ntlm.Name: ntlm.Factory(opt)}, nil
	case "system":
		dirCache.reset()
		m, err := pam.New(pam.Options{Service: cfg.Auth.PAMService})
		if err != nil {
			return nil, nil, fmt.Errorf("auth.method system: %w", err)
		}
		return m, nil, nil
	case "directory":
		m, err := dirCache.get(cfg.LDAP)
		if err != nil {
			return nil, nil, fmt.Errorf("auth.method directory: %w", err)
		}
		return m, nil, nil
	}
	return nil, nil, fmt.Errorf("auth.method: %q is not passwordfile, system or directory", cfg.Auth.Method)
}

// dirCache keeps the one LDAP directory in use.
var dirCache directoryCache

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
