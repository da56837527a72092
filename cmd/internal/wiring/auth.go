// Package wiring builds the options each part of the service takes from
// the configuration: the engine, the certificate manager, the directory
// method and the brute-force guard. The configuration package stays plain
// data; the parts it configures never see it.
package wiring

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"

	"github.com/pop3svc/pop3svc/cmd/internal/config"
	"github.com/pop3svc/pop3svc/session/auth"
	"github.com/pop3svc/pop3svc/session/auth/guard"
	"github.com/pop3svc/pop3svc/session/auth/ldap"
	"github.com/pop3svc/pop3svc/store/credential"
)

// DirectoryOptions turns the [ldap] table into the directory method's
// options, loading ldap.ca_cert.
func DirectoryOptions(c config.LDAP) (ldap.Options, error) {
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

// DirectoryOptionsFunc returns DirectoryOptions bound to c, the form
// methodswitch.Check takes.
func DirectoryOptionsFunc(c config.LDAP) func() (ldap.Options, error) {
	return func() (ldap.Options, error) { return DirectoryOptions(c) }
}

// GuardOptions turns the [auth] table into the brute-force guard's
// options.
func GuardOptions(a config.Auth) guard.Options {
	return guard.Options{
		FailDelay:   a.FailDelay.D(),
		Penalty:     a.Penalty.D(),
		PenaltyMax:  a.PenaltyMax.D(),
		BanAfter:    a.BanAfter,
		BanWindow:   a.BanWindow.D(),
		BanTime:     a.BanTime.D(),
		NetFailures: a.NetFailures,
		NetTrust:    a.NetTrust.D(),
	}
}

// QueueOptions turns the [auth] queue settings into the auth queue's.
// The collector's room is for hashes computed in pop3d: none with hash
// processes; with them, the suspect checks, whose hashes run at
// suspect_nice, have slots of their own.
func QueueOptions(a config.Auth) auth.QueueOptions {
	room := int64(a.HashGCRoom)
	if a.HashProcesses {
		room = 0
	}
	return auth.QueueOptions{Workers: a.HashWorkers, Memory: int64(a.HashMemory), Length: a.Queue,
		SuspectWorkers: a.SuspectWorkers, SuspectApart: a.HashProcesses, GCRoom: room}
}

// HashProcesses turns auth.hash_processes, hash_nice and suspect_nice into
// the store's hash worker options; nil when hashes run in pop3d.
func HashProcesses(a config.Auth) *credential.WorkerOptions {
	if !a.HashProcesses {
		return nil
	}
	return &credential.WorkerOptions{Nice: a.HashNice, LowNice: a.SuspectNice}
}

// HashParams turns the [auth] hash settings into the password records'.
func HashParams(a config.Auth) credential.HashParams {
	return credential.HashParams{
		Alg: a.Hash,
		Argon2: credential.Argon2Params{
			Time:      uint32(a.Argon2Time),
			MemoryKiB: uint32(int64(a.Argon2Memory) >> 10),
			Threads:   uint8(a.Argon2Threads),
			KeyLen:    32,
		},
		BcryptCost:   a.BcryptCost,
		SHA512Rounds: a.SHA512Rounds,
		NoReversible: !a.ReversibleSecrets,
	}.Normal()
}
