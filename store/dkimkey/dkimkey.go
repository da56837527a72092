// Package dkimkey keeps the DKIM signing keys (RFC 6376) of the served
// domains, one per domain, under the mail root's store-wide folder:
//
//	<mailroot>/.pop3/dkim/<domain>.key    PKCS #8 private key, PEM, mode 0600
//
// pop3ctl dkim add makes a key and prints the DNS record that publishes
// its public half; the outbound delivery agent signs each message whose
// sender's domain has a key.
package dkimkey

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/pop3svc/pop3svc/store"
	"github.com/pop3svc/pop3svc/store/durable"
)

// Dir is the keys' folder under the mail root.
const Dir = ".pop3/dkim"

// Bits is the size of new RSA keys (RFC 8301 §3.2: at least 1024, 2048
// recommended).
const Bits = 2048

// maxKeyFile bounds a key file read from disk.
const maxKeyFile = 64 << 10

// ErrExists is returned by Create for a domain that has a key.
var ErrExists = errors.New("the domain already has a DKIM key")

// Path returns the key file of domain, which must be a valid domain name.
func Path(mailroot, domain string) (string, error) {
	d, err := store.CanonicalDomain(domain)
	if err != nil {
		return "", err
	}
	return filepath.Join(mailroot, filepath.FromSlash(Dir), d+".key"), nil
}

// Create makes a new RSA key for domain and stores it durably.
func Create(mailroot, domain string) (crypto.Signer, error) {
	p, err := Path(mailroot, domain)
	if err != nil {
		return nil, err
	}
	if _, err := os.Lstat(p); err == nil {
		return nil, fmt.Errorf("%w: %s", ErrExists, p)
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return nil, fmt.Errorf("cannot make the DKIM key folder: %w", err)
	}
	key, err := rsa.GenerateKey(rand.Reader, Bits)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	if err := durable.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return nil, fmt.Errorf("cannot store the DKIM key: %w", err)
	}
	return key, nil
}

// Load reads domain's key; an error wrapping os.ErrNotExist when it has none.
func Load(mailroot, domain string) (crypto.Signer, error) {
	p, err := Path(mailroot, domain)
	if err != nil {
		return nil, err
	}
	data, err := durable.ReadSmall(p, maxKeyFile)
	if err != nil {
		return nil, err
	}
	b, _ := pem.Decode(data)
	if b == nil {
		return nil, fmt.Errorf("%s holds no PEM key", p)
	}
	k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%s: not a signing key", p)
	}
	return s, nil
}

// TXT is the DKIM key record's text (RFC 6376 §3.6.1) for key's public half.
func TXT(key crypto.Signer) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		return "", err
	}
	k := "rsa"
	if _, ok := key.Public().(*rsa.PublicKey); !ok {
		k = "ed25519"
	}
	return "v=DKIM1; k=" + k + "; p=" + base64.StdEncoding.EncodeToString(der), nil
}

// Record is the zone-file line that publishes key for selector and
// domain: the TXT text cut into strings of at most 255 octets (RFC 1035
// §3.3.14), which resolvers join.
func Record(selector, domain string, key crypto.Signer) (string, error) {
	txt, err := TXT(key)
	if err != nil {
		return "", err
	}
	var parts []string
	for len(txt) > 255 {
		parts = append(parts, `"`+txt[:255]+`"`)
		txt = txt[255:]
	}
	parts = append(parts, `"`+txt+`"`)
	return fmt.Sprintf("%s._domainkey.%s. IN TXT ( %s )", selector, strings.TrimSuffix(domain, "."), strings.Join(parts, " ")), nil
}
