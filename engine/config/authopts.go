package config

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"

	"github.com/pop3svc/pop3svc/session/auth/guard"
	"github.com/pop3svc/pop3svc/session/auth/ldap"
)

// DirectoryOptions turns the [ldap] table into the directory method's
// options, loading ldap.ca_cert.
func (c LDAP) DirectoryOptions() (ldap.Options, error) {
	o := ldap.Options{
		URL: c.URL, StartTLS: c.StartTLS, BindDN: c.BindDN,
		SearchBase: c.SearchBase, SearchFilter: c.SearchFilter,
		ServiceDN: c.ServiceDN, ServicePass: c.ServicePass,
		Timeout: c.Timeout.D(), PoolSize: c.PoolSize,
	}
	if c.CACert != "" || c.Insecure {
		o.TLS = &tls.Config{InsecureSkipVerify: c.Insecure, MinVersion: tls.VersionTLS12} //nolint:gosec // an operator's explicit choice
		if c.CACert != "" {
			pem, err := os.ReadFile(c.CACert)
			if err != nil {
				return o, fmt.Errorf("ldap.ca_cert: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return o, fmt.Errorf("ldap.ca_cert: no PEM certificate in %q", c.CACert)
			}
			o.TLS.RootCAs = pool
		}
	}
	return o, nil
}

// GuardOptions turns the [auth] table into the brute-force guard's
// options.
func (a Auth) GuardOptions() guard.Options {
	return guard.Options{
		FailDelay:  a.FailDelay.D(),
		Penalty:    a.Penalty.D(),
		PenaltyMax: a.PenaltyMax.D(),
		BanAfter:   a.BanAfter,
		BanWindow:  a.BanWindow.D(),
		BanTime:    a.BanTime.D(),
	}
}

// HostName is the name the service gives itself: smtp.hostname, else the
// system's host name, else "localhost". It appears in the SMTP greeting
// and Received headers, APOP and CRAM-MD5 timestamps and NTLM challenges.
func (c *Config) HostName() string {
	if c.SMTP.Hostname != "" {
		return c.SMTP.Hostname
	}
	if h, err := os.Hostname(); err == nil && h != "" {
		return h
	}
	return "localhost"
}
