package outbound

import (
	"crypto"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/emersion/go-msgauth/dkim"

	"github.com/pop3svc/pop3svc/store/dkimkey"
)

var (
	mSigned     = metrics.GetOrCreateCounter(`smtp_outbound_dkim_total{result="signed"}`)
	mSignFailed = metrics.GetOrCreateCounter(`smtp_outbound_dkim_total{result="failed"}`)
)

// signedHeaders are the header fields a DKIM signature covers (RFC 6376
// §5.4.1): those that carry the message's meaning, not trace fields.
var signedHeaders = []string{
	"From", "Reply-To", "Subject", "Date", "To", "Cc", "Message-ID",
	"In-Reply-To", "References", "MIME-Version", "Content-Type",
	"Content-Transfer-Encoding",
}

// DKIM signs outgoing messages (RFC 6376) with the key of the sender's
// domain (store/dkimkey), under one selector; a domain without a key is
// sent unsigned. Keys are read again when their file changes.
type DKIM struct {
	root, selector string

	mu   sync.Mutex
	keys map[string]cachedKey
}

type cachedKey struct {
	key     crypto.Signer // nil: no key
	mod     time.Time
	checked time.Time
}

// keyRecheck is how long a domain found without a key is not looked at again.
const keyRecheck = 10 * time.Second

// NewDKIM signs with the keys under mailroot and selector.
func NewDKIM(mailroot, selector string) *DKIM {
	return &DKIM{root: mailroot, selector: selector, keys: make(map[string]cachedKey)}
}

func (d *DKIM) key(domain string) (crypto.Signer, error) {
	p, err := dkimkey.Path(d.root, domain)
	if err != nil {
		return nil, nil // no valid domain, no key
	}
	d.mu.Lock()
	c, ok := d.keys[domain]
	d.mu.Unlock()
	if ok && c.key == nil && time.Since(c.checked) < keyRecheck {
		return nil, nil
	}
	fi, err := os.Stat(p)
	if errors.Is(err, os.ErrNotExist) {
		d.mu.Lock()
		d.keys[domain] = cachedKey{checked: time.Now()}
		d.mu.Unlock()
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if ok && c.key != nil && fi.ModTime().Equal(c.mod) {
		return c.key, nil
	}
	k, err := dkimkey.Load(d.root, domain)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	d.keys[domain] = cachedKey{key: k, mod: fi.ModTime(), checked: time.Now()}
	d.mu.Unlock()
	return k, nil
}

// Sign returns the DKIM-Signature field for a message from the sender
// (envelope) address from, or "" when its domain has no key.
func (d *DKIM) Sign(from string, msg io.Reader) (string, error) {
	at := strings.LastIndexByte(from, '@')
	if at < 0 {
		return "", nil
	}
	domain := strings.ToLower(from[at+1:])
	key, err := d.key(domain)
	if err != nil || key == nil {
		if err != nil {
			mSignFailed.Inc()
		}
		return "", err
	}
	s, err := dkim.NewSigner(&dkim.SignOptions{
		Domain:                 domain,
		Selector:               d.selector,
		Signer:                 key,
		HeaderCanonicalization: dkim.CanonicalizationRelaxed,
		BodyCanonicalization:   dkim.CanonicalizationRelaxed,
		HeaderKeys:             signedHeaders,
	})
	if err != nil {
		mSignFailed.Inc()
		return "", fmt.Errorf("DKIM: %w", err)
	}
	if _, err := io.Copy(s, msg); err != nil {
		s.Close()
		mSignFailed.Inc()
		return "", fmt.Errorf("DKIM: %w", err)
	}
	if err := s.Close(); err != nil {
		mSignFailed.Inc()
		return "", fmt.Errorf("DKIM: %w", err)
	}
	mSigned.Inc()
	return s.Signature(), nil
}
