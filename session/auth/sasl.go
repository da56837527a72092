package auth

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/pop3svc/pop3svc/store"
)

// errProtocol is wrapped (with ErrAuthFailed) by mechanisms when the client
// breaks the mechanism's syntax.
var errProtocol = errors.New("malformed SASL response")

// ErrExchangeOver is returned when Next is called after the exchange ended.
var ErrExchangeOver = errors.New("SASL exchange already finished")

func malformed(mech, why string) error {
	return fmt.Errorf("%w: %w: %s %s", ErrAuthFailed, errProtocol, mech, why)
}

// plainMech is PLAIN (RFC 4616): one message "authzid NUL authcid NUL passwd".
type plainMech struct {
	a        *Authenticator
	step     int
	addr     store.Address
	deferred *PasswordCheck
}

func (m *plainMech) Next(ctx context.Context, resp []byte) ([]byte, bool, error) {
	switch m.step {
	case 0:
		m.step = 1
		if resp == nil {
			// No initial response: an empty challenge asks for it (RFC 4616 section 2).
			return []byte{}, false, nil
		}
	case 1:
	default:
		return nil, true, ErrExchangeOver
	}
	m.step = 2
	parts := bytes.Split(resp, []byte{0})
	if len(parts) != 3 {
		return nil, true, malformed(MechPlain, "message does not have three NUL-separated fields")
	}
	authz, authc, pass := string(parts[0]), string(parts[1]), string(parts[2])
	if authc == "" {
		return nil, true, malformed(MechPlain, "authentication identity is empty")
	}
	pc := PasswordCheck{Name: authc, Password: pass, AuthzID: authz}
	if m.a.Queue != nil {
		m.deferred = &pc
		return nil, true, nil
	}
	addr, pad, err := m.a.Check(ctx, pc)
	if err != nil {
		waitPad(ctx, pad)
		return nil, true, err
	}
	m.addr = addr
	return nil, true, nil
}

func (m *plainMech) Address() store.Address { return m.addr }

// Deferred returns the password check left to the session (see Deferrer).
func (m *plainMech) Deferred() *PasswordCheck { return m.deferred }

// waitPad holds a failed check back by pad (see failureFloor).
func waitPad(ctx context.Context, pad time.Duration) {
	if pad <= 0 {
		return
	}
	t := time.NewTimer(pad)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// Challenges of the LOGIN mechanism (draft-murchison-sasl-login section 2).
const (
	loginUserChallenge = "Username:"
	loginPassChallenge = "Password:"
)

// loginMech is LOGIN (draft-murchison-sasl-login): the server asks
// "Username:" then "Password:". An initial response is taken as the user name.
type loginMech struct {
	a        *Authenticator
	step     int
	user     string
	addr     store.Address
	deferred *PasswordCheck
}

func (m *loginMech) Next(ctx context.Context, resp []byte) ([]byte, bool, error) {
	switch m.step {
	case 0:
		if resp == nil {
			m.step = 1
			return []byte(loginUserChallenge), false, nil
		}
		m.user = string(resp)
		m.step = 2
		return []byte(loginPassChallenge), false, nil
	case 1:
		m.user = string(resp)
		m.step = 2
		return []byte(loginPassChallenge), false, nil
	case 2:
		m.step = 3
		if m.a.Queue != nil {
			m.deferred = &PasswordCheck{Name: m.user, Password: string(resp)}
			return nil, true, nil
		}
		addr, err := m.a.Plaintext(ctx, m.user, string(resp))
		if err != nil {
			return nil, true, err
		}
		m.addr = addr
		return nil, true, nil
	}
	return nil, true, ErrExchangeOver
}

func (m *loginMech) Address() store.Address { return m.addr }

// Deferred returns the password check left to the session (see Deferrer).
func (m *loginMech) Deferred() *PasswordCheck { return m.deferred }

// cramMech is CRAM-MD5 (RFC 2195): the server sends a unique challenge in
// the form of an RFC 822 msg-id; the client answers "user SP digest" with
// digest the hex HMAC-MD5 of the challenge keyed by the password.
type cramMech struct {
	a         *Authenticator
	step      int
	challenge string
	addr      store.Address
	name      string // the user name the client gave
}

// NewChallenge returns a unique challenge "<random.timestamp@hostname>" for
// CRAM-MD5 (RFC 2195 section 2) or the APOP greeting (RFC 1939 section 7).
func NewChallenge(hostname string) (string, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	if hostname == "" {
		hostname, _ = os.Hostname()
		if hostname == "" {
			hostname = "localhost"
		}
	}
	return fmt.Sprintf("<%d.%d@%s>", binary.BigEndian.Uint64(b[:])>>1, time.Now().UnixMicro(), hostname), nil
}

func (m *cramMech) Next(ctx context.Context, resp []byte) ([]byte, bool, error) {
	switch m.step {
	case 0:
		m.step = 1
		if resp != nil {
			// The server speaks first (RFC 2195); an initial response is a protocol error.
			m.step = 2
			return nil, true, malformed(MechCRAMMD5, "initial response not allowed")
		}
		ch, err := NewChallenge(m.a.Hostname)
		if err != nil {
			m.step = 2
			return nil, true, err
		}
		m.challenge = ch
		return []byte(ch), false, nil
	case 1:
		m.step = 2
		i := bytes.LastIndexByte(resp, ' ')
		if i <= 0 {
			return nil, true, malformed(MechCRAMMD5, "response is not \"user digest\"")
		}
		name, digest := string(resp[:i]), strings.ToLower(string(resp[i+1:]))
		m.name = name
		addr, secret, ok, err := m.a.secret(ctx, name)
		if err != nil {
			return nil, true, err
		}
		want := CRAMMD5Digest(m.challenge, secret)
		clear(secret)
		match := subtle.ConstantTimeCompare([]byte(want), []byte(digest)) == 1
		if !ok || !match {
			return nil, true, ErrAuthFailed
		}
		m.addr = addr
		return nil, true, nil
	}
	return nil, true, ErrExchangeOver
}

func (m *cramMech) Address() store.Address { return m.addr }

// Identity is the user name the client gave, for the log.
func (m *cramMech) Identity() string { return m.name }
