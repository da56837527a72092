package certs

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"github.com/pop3svc/pop3svc/store/durable"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// File names of the generated pair inside SelfSignedDir.
const (
	certName = "cert.pem"
	keyName  = "key.pem"
)

// loadOrCreateSelfSigned returns the pair in dir, making a new one when it is
// missing, unreadable, not a matching pair, or expires within RenewBefore.
func loadOrCreateSelfSigned(dir string, hosts []string, validity time.Duration, now time.Time) (tls.Certificate, bool, error) {
	certPath, keyPath := filepath.Join(dir, certName), filepath.Join(dir, keyName)
	cert, err := tls.LoadX509KeyPair(certPath, keyPath)
	// A missing, damaged or expiring pair is replaced (the renames below
	// overwrite it) rather than refusing to start.
	if err == nil {
		leaf, perr := x509.ParseCertificate(cert.Certificate[0])
		if perr == nil && now.Add(RenewBefore).Before(leaf.NotAfter) {
			cert.Leaf = leaf
			return cert, false, nil
		}
	}
	certPEM, keyPEM, err := makeSelfSigned(hosts, validity, now)
	if err != nil {
		return tls.Certificate{}, false, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return tls.Certificate{}, false, fmt.Errorf("tls: cannot create %q: %w", dir, err)
	}
	// The key goes first: a reader that finds the new certificate also
	// finds its key. A reader between the two renames sees a mismatched
	// pair, fails, and makes its own (each start then logs its fingerprint).
	if err := durable.WriteFile(keyPath, keyPEM, 0o600); err != nil {
		return tls.Certificate{}, false, err
	}
	if err := durable.WriteFile(certPath, certPEM, 0o644); err != nil {
		return tls.Certificate{}, false, err
	}
	if err := durable.SyncDir(dir); err != nil {
		return tls.Certificate{}, false, err
	}
	cert, err = tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, false, fmt.Errorf("tls: generated pair does not load: %w", err)
	}
	return cert, true, nil
}

// makeSelfSigned returns a PEM certificate and PKCS#8 key for an ECDSA P-256
// key, valid for localhost, 127.0.0.1, ::1, the host name and hosts.
func makeSelfSigned(hosts []string, validity time.Duration, now time.Time) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("tls: cannot generate key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, fmt.Errorf("tls: cannot draw serial: %w", err)
	}
	cn := "localhost"
	names := []string{"localhost"}
	if h, err := os.Hostname(); err == nil && h != "" && h != "localhost" {
		names = append(names, h)
		cn = h
	}
	ips := []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			ips = append(ips, ip)
		} else if h != "" {
			names = append(names, h)
		}
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: cn, Organization: []string{"pop3d self-signed"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true, // so that a client can trust it as its own root
		DNSNames:              names,
		IPAddresses:           ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("tls: cannot create certificate: %w", err)
	}
	pk, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("tls: cannot encode key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pk}), nil
}
