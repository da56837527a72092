package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"

	"github.com/pop3svc/pop3svc/cmd/internal/config"
	"github.com/pop3svc/pop3svc/cmd/internal/wiring"
	"github.com/pop3svc/pop3svc/session/auth/pam"
)

// startChecks are the checks the service makes at start beyond the
// configuration file's own validation, without starting anything:
//   - the authentication method can be built in this binary (auth.method
//     "system" needs a build with PAM; "directory" needs a readable
//     ldap.ca_cert);
//   - the TLS certificate and key files, when set, can be read and parse
//     as a matching pair;
//   - every listen address names an IP or a host name that resolves.
//
// pop3d -check runs them after the file's validation, so that a file it
// accepts does not fail at start for one of these reasons.
func startChecks(cfg *config.Config) []error {
	var errs []error
	switch cfg.Auth.Method {
	case "system":
		if !pam.Available {
			errs = append(errs, errors.New("auth.method: \"system\" needs PAM, and this pop3d was built without it (the nopam tag; install libpam0g-dev and rebuild)"))
		} else if _, err := pam.New(pam.Options{Service: cfg.Auth.PAMService}); err != nil {
			errs = append(errs, fmt.Errorf("auth.method: %w", err))
		}
	case "directory":
		if _, err := wiring.DirectoryOptions(cfg.LDAP); err != nil {
			errs = append(errs, err)
		}
	}
	if cfg.TLS.Cert != "" || cfg.TLS.Key != "" {
		pair, err := tls.LoadX509KeyPair(cfg.TLS.Cert, cfg.TLS.Key)
		if err != nil {
			errs = append(errs, fmt.Errorf("tls.cert / tls.key: cannot load %q and %q: %w", cfg.TLS.Cert, cfg.TLS.Key, err))
		} else if _, err := x509.ParseCertificate(pair.Certificate[0]); err != nil {
			errs = append(errs, fmt.Errorf("tls.cert: %q: %w", cfg.TLS.Cert, err))
		}
	}
	lists := []struct {
		key   string
		addrs []string
	}{
		{"pop3.listen", cfg.POP3.Listen},
		{"pop3.listen_tls", cfg.POP3.ListenTLS},
		{"smtp.listen", cfg.SMTP.Listen},
		{"smtp.lmtp_listen", cfg.SMTP.LMTPListen},
	}
	if cfg.Admin.Listen != "" {
		lists = append(lists, struct {
			key   string
			addrs []string
		}{"admin.listen", []string{cfg.Admin.Listen}})
	}
	for _, l := range lists {
		for i, a := range l.addrs {
			if _, err := net.ResolveTCPAddr("tcp", a); err != nil {
				errs = append(errs, fmt.Errorf("%s[%d]: %q cannot be bound: %w", l.key, i, a, err))
			}
		}
	}
	return errs
}
