// Package certs manages the service's TLS certificate: the pair named by the
// [tls] cert and key settings, or, when both are empty, a self-signed
// ECDSA P-256 pair made under the mail root on first start and reused later.
// One Manager serves POP3 STLS (RFC 2595), implicit TLS (RFC 8314) and SMTP
// STARTTLS (RFC 3207); Reload swaps the certificate for new handshakes
// without touching sessions already established.
//
// On disk (self-signed case):
//
//	<mailroot>/.pop3/tls/cert.pem   the certificate (0644)
//	<mailroot>/.pop3/tls/key.pem    its PKCS#8 private key (0600)
//
// Both files are written to temporary names, fsynced and renamed into place,
// then the folder is fsynced; a half-written pair is never read.
package certs

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Options say where the certificate comes from.
type Options struct {
	CertFile string // PEM certificate chain; with KeyFile, or both empty
	KeyFile  string // PEM private key
	// MailRoot holds the self-signed pair when CertFile and KeyFile are empty.
	MailRoot string
	// MinVersion is "1.0", "1.1", "1.2" or "1.3"; empty means "1.2".
	MinVersion string
	// Hosts are extra names or addresses for a self-signed certificate;
	// localhost, 127.0.0.1, ::1 and the host name are always included.
	Hosts []string
	// SelfSignedValidity is how long a new self-signed certificate is valid;
	// 0 means DefaultSelfSignedValidity.
	SelfSignedValidity time.Duration
	Log                *slog.Logger // nil: slog.Default()
}

// DefaultSelfSignedValidity is the lifetime of a generated certificate.
const DefaultSelfSignedValidity = 2 * 365 * 24 * time.Hour

// RenewBefore: a self-signed certificate that expires within this long is
// replaced at start or on Reload.
const RenewBefore = 30 * 24 * time.Hour

// SelfSignedDir is the folder, relative to the mail root, of the generated pair.
const SelfSignedDir = ".pop3/tls"

// ParseMinVersion maps "1.0".."1.3" to a crypto/tls version; "" is TLS 1.2.
func ParseMinVersion(s string) (uint16, error) {
	switch strings.TrimSpace(s) {
	case "", "1.2":
		return tls.VersionTLS12, nil
	case "1.3":
		return tls.VersionTLS13, nil
	case "1.1":
		return tls.VersionTLS11, nil
	case "1.0":
		return tls.VersionTLS10, nil
	}
	return 0, fmt.Errorf("tls.min_version %q: want \"1.0\", \"1.1\", \"1.2\" or \"1.3\"", s)
}

// current is one loaded state: a certificate and the settings that go with it.
type current struct {
	cert        *tls.Certificate
	config      *tls.Config // served to new handshakes
	fingerprint string      // SHA-256 of the leaf, hex
	selfSigned  bool
	notAfter    time.Time
}

// Manager owns the certificate. Its methods are safe for concurrent use.
type Manager struct {
	mu   sync.Mutex // serializes Reload and Apply
	opts Options
	cur  atomic.Pointer[current]
	log  *slog.Logger
}

// New loads (or creates) the certificate described by opts.
func New(opts Options) (*Manager, error) {
	m := &Manager{log: opts.Log}
	if m.log == nil {
		m.log = slog.Default()
	}
	if err := m.Apply(opts); err != nil {
		return nil, err
	}
	return m, nil
}

// Reload reads the certificate again from the same place (SIGHUP). On error
// the previous certificate stays in use.
func (m *Manager) Reload() error {
	m.mu.Lock()
	opts := m.opts
	m.mu.Unlock()
	return m.Apply(opts)
}

// Apply switches to new options (a changed configuration). Sessions already
// established keep their keys; new handshakes use the new certificate and
// minimum version. On error nothing changes.
func (m *Manager) Apply(opts Options) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	minVer, err := ParseMinVersion(opts.MinVersion)
	if err != nil {
		return err
	}
	if (opts.CertFile == "") != (opts.KeyFile == "") {
		return errors.New("tls: set both cert and key, or neither (for a self-signed pair)")
	}
	var (
		cert       tls.Certificate
		selfSigned bool
	)
	if opts.CertFile != "" {
		cert, err = tls.LoadX509KeyPair(opts.CertFile, opts.KeyFile)
		if err != nil {
			return fmt.Errorf("tls: cannot load cert %q and key %q: %w", opts.CertFile, opts.KeyFile, err)
		}
	} else {
		if opts.MailRoot == "" {
			return errors.New("tls: no cert/key and no mailroot for a self-signed pair")
		}
		validity := opts.SelfSignedValidity
		if validity <= 0 {
			validity = DefaultSelfSignedValidity
		}
		dir := filepath.Join(opts.MailRoot, filepath.FromSlash(SelfSignedDir))
		var created bool
		cert, created, err = loadOrCreateSelfSigned(dir, opts.Hosts, validity, time.Now())
		if err != nil {
			return err
		}
		selfSigned = true
		if created {
			m.log.Info("tls: created a self-signed certificate", "dir", dir)
		}
	}
	leaf := cert.Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return fmt.Errorf("tls: cannot parse certificate: %w", err)
		}
		cert.Leaf = leaf
	}
	sum := sha256.Sum256(leaf.Raw)
	c := &current{
		cert:        &cert,
		fingerprint: hex.EncodeToString(sum[:]),
		selfSigned:  selfSigned,
		notAfter:    leaf.NotAfter,
	}
	c.config = &tls.Config{
		MinVersion:   minVer,
		Certificates: []tls.Certificate{cert},
	}
	if time.Now().After(leaf.NotAfter) {
		m.log.Warn("tls: certificate has expired", "not_after", leaf.NotAfter)
	}
	m.opts = opts
	m.cur.Store(c)
	m.log.Info("tls: certificate loaded", "sha256", c.fingerprint, "subject", leaf.Subject.String(),
		"not_after", leaf.NotAfter.UTC().Format(time.RFC3339), "self_signed", selfSigned,
		"min_version", tls.VersionName(minVer))
	return nil
}

// TLSConfig returns a server configuration whose certificate and minimum
// version follow Reload and Apply: each handshake asks the Manager for the
// current settings. Give it to tls.Server, go-smtp's Server.TLSConfig, or
// the engine.
func (m *Manager) TLSConfig() *tls.Config {
	return &tls.Config{
		// MinVersion here only matters if GetConfigForClient is bypassed.
		MinVersion: tls.VersionTLS12,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return m.cur.Load().config, nil
		},
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return m.cur.Load().cert, nil
		},
	}
}

// Certificate returns the certificate new handshakes use.
func (m *Manager) Certificate() *tls.Certificate { return m.cur.Load().cert }

// Fingerprint is the hex SHA-256 of the current certificate (DER), the
// value a client pins or an operator compares with `openssl x509 -fingerprint -sha256`.
func (m *Manager) Fingerprint() string { return m.cur.Load().fingerprint }

// SelfSigned reports whether the current certificate was generated.
func (m *Manager) SelfSigned() bool { return m.cur.Load().selfSigned }
