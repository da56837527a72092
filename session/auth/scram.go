package auth

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"

	"github.com/pop3svc/pop3svc/session"
	"github.com/pop3svc/pop3svc/store"
)

// SCRAM mechanism names (RFC 7677) and the channel-binding types the
// -PLUS variant accepts (RFC 9266, RFC 5929).
const (
	MechSCRAMSHA256     = "SCRAM-SHA-256"
	MechSCRAMSHA256Plus = "SCRAM-SHA-256-PLUS"
	cbTLSExporter       = "tls-exporter"
	cbTLSServerEndPoint = "tls-server-end-point"
)

// Limits of SCRAM messages: a client nonce and a name of this size are
// far beyond what clients send.
const (
	maxSCRAMNonce  = 256
	maxSCRAMName   = 512
	serverNonceLen = 24
)

// SCRAMMechanisms lists the SCRAM mechanisms offered on a link: none
// unless a.SCRAM says so and the method keeps password-file credentials; the
// -PLUS variant only over TLS with channel-binding data.
func (a *Authenticator) SCRAMMechanisms(cb *session.ChannelBinding) []string {
	if a.SCRAM == nil || !a.SCRAM() || !a.Method.Challenge() || a.Store == nil {
		return nil
	}
	if cb != nil && (cb.Exporter != nil || cb.ServerEndPoint != nil) {
		return []string{MechSCRAMSHA256, MechSCRAMSHA256Plus}
	}
	return []string{MechSCRAMSHA256}
}

// NewSCRAM starts a SCRAM-SHA-256 or SCRAM-SHA-256-PLUS exchange (any
// case) when SCRAMMechanisms offers it; cb is the link's channel binding
// (nil without TLS).
func (a *Authenticator) NewSCRAM(name string, cb *session.ChannelBinding) (Mechanism, bool) {
	name = strings.ToUpper(name)
	for _, m := range a.SCRAMMechanisms(cb) {
		if m == name {
			offered := len(a.SCRAMMechanisms(cb)) == 2
			return &scramMech{a: a, plus: name == MechSCRAMSHA256Plus, plusOffered: offered, cb: cb}, true
		}
	}
	return nil, false
}

// scramMech is SCRAM-SHA-256 (RFC 5802, RFC 7677), with channel binding in
// its -PLUS variant. The server works with the stored keys only: it never
// runs PBKDF2 during a login. An unknown user, or a mailbox without SCRAM
// keys, is answered with a salt derived from the name and fails at the
// proof, exactly like a wrong password.
type scramMech struct {
	a           *Authenticator
	plus        bool // SCRAM-SHA-256-PLUS
	plusOffered bool // the server offered -PLUS on this link
	cb          *session.ChannelBinding
	step        int

	first      clientFirst
	keys       store.SCRAMKeys
	known      bool // the keys are the mailbox's, not made up
	addr       store.Address
	nonce      string // client nonce + server nonce
	serverSig  []byte
	authMsgPre string // client-first-bare "," server-first
}

func scramFail(why string) error {
	return fmt.Errorf("%w: %w: SCRAM %s", ErrAuthFailed, errProtocol, why)
}

func (m *scramMech) Next(ctx context.Context, resp []byte) ([]byte, bool, error) {
	switch m.step {
	case 0:
		m.step = 1
		if resp == nil {
			return []byte{}, false, nil // RFC 4422 section 5: ask for the initial response
		}
		fallthrough
	case 1:
		m.step = 2
		return m.serverFirst(ctx, resp)
	case 2:
		m.step = 3
		return m.serverFinal(resp)
	case 3:
		// RFC 5034 section 4: the server's final data went as a challenge;
		// the client answers it with an empty response.
		m.step = 4
		if len(resp) != 0 {
			return nil, true, scramFail("non-empty response to the server's final message")
		}
		return nil, true, nil
	}
	return nil, true, ErrExchangeOver
}

func (m *scramMech) Address() store.Address { return m.addr }

func (m *scramMech) serverFirst(ctx context.Context, resp []byte) ([]byte, bool, error) {
	cf, err := parseClientFirst(resp)
	if err != nil {
		return nil, true, fmt.Errorf("%w: %w: %w", ErrAuthFailed, errProtocol, err)
	}
	// RFC 5802 section 6: the channel-binding flag must fit the mechanism.
	switch {
	case m.plus && cf.cbFlag != 'p':
		return nil, true, scramFail("-PLUS without channel binding")
	case !m.plus && cf.cbFlag == 'p':
		return nil, true, scramFail("channel binding asked without -PLUS")
	case !m.plus && cf.cbFlag == 'y' && m.plusOffered:
		// The client supports channel binding and thinks the server does
		// not, though it does: a downgrade.
		return nil, true, scramFail("channel binding downgraded")
	}
	if cf.cbFlag == 'p' {
		if m.cbData(cf.cbName) == nil {
			return nil, true, scramFail("unsupported channel binding type " + strconv.Quote(cf.cbName))
		}
	}
	if cf.authzid != "" && !m.a.authzOK(cf.authzid, cf.user, mustResolve(m.a, cf.user)) {
		return nil, true, fmt.Errorf("%w: authorization identity differs from the authentication identity", ErrAuthFailed)
	}
	m.first = cf
	if err := m.loadKeys(ctx, cf.user); err != nil {
		return nil, true, err
	}
	var rnd [serverNonceLen]byte
	if _, err := io.ReadFull(m.a.scramRand(), rnd[:]); err != nil {
		return nil, true, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	m.nonce = cf.nonce + base64.RawStdEncoding.EncodeToString(rnd[:])
	sf := "r=" + m.nonce + ",s=" + base64.StdEncoding.EncodeToString(m.keys.Salt) + ",i=" + strconv.Itoa(m.keys.Iterations)
	m.authMsgPre = cf.bare + "," + sf
	return []byte(sf), false, nil
}

func mustResolve(a *Authenticator, name string) store.Address {
	addr, _ := a.Resolve(name)
	return addr
}

// cbData returns the link's channel-binding data of the named type; nil
// when it has none.
func (m *scramMech) cbData(name string) []byte {
	if m.cb == nil {
		return nil
	}
	switch name {
	case cbTLSExporter:
		return m.cb.Exporter
	case cbTLSServerEndPoint:
		return m.cb.ServerEndPoint
	}
	return nil
}

// loadKeys reads the mailbox's SCRAM keys; an unknown name or a mailbox
// without keys gets made-up keys (see scramMech).
func (m *scramMech) loadKeys(ctx context.Context, name string) error {
	addr, rerr := m.a.Resolve(name)
	if rerr == nil {
		b, err := m.a.Store.Secret(ctx, addr, store.SecretSCRAMSHA256)
		switch {
		case err == nil:
			if k, perr := store.ParseSCRAM(b); perr == nil {
				m.keys, m.known, m.addr = k, true, addr
				return nil
			}
		case errors.Is(err, store.ErrAuthFailed), errors.Is(err, store.ErrNoSecret),
			errors.Is(err, store.ErrNoSuchMailbox), errors.Is(err, store.ErrNoSuchDomain),
			errors.Is(err, store.ErrInvalidName):
		default:
			return fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
	}
	// The same name always gets the same salt, so that asking twice tells
	// nothing; the keys are random and match no proof.
	mac := hmac.New(sha256.New, scramFakeKey())
	mac.Write([]byte(name))
	salt := mac.Sum(nil)[:16]
	m.keys = store.SCRAMKeys{Salt: salt, Iterations: scramIterations, StoredKey: randomBytes(32), ServerKey: randomBytes(32)}
	m.known = false
	return nil
}

// scramIterations is what made-up keys claim: the count new records get.
const scramIterations = 4096

var scramFakeKey = sync.OnceValue(func() []byte { return randomBytes(32) })

func randomBytes(n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	return b
}

func (a *Authenticator) scramRand() io.Reader {
	if a.Rand != nil {
		return a.Rand
	}
	return rand.Reader
}

func (m *scramMech) serverFinal(resp []byte) ([]byte, bool, error) {
	cf, err := parseClientFinal(resp)
	if err != nil {
		return nil, true, fmt.Errorf("%w: %w: %w", ErrAuthFailed, errProtocol, err)
	}
	// c= is the GS2 header, and with channel binding its data (RFC 5802 section 7).
	want := []byte(m.first.gs2Header)
	if m.first.cbFlag == 'p' {
		want = append(want, m.cbData(m.first.cbName)...)
	}
	if subtle.ConstantTimeCompare(cf.cbind, want) != 1 {
		return nil, true, scramFail("channel binding does not match")
	}
	if cf.nonce != m.nonce {
		return nil, true, scramFail("nonce does not match")
	}
	authMsg := m.authMsgPre + "," + cf.withoutProof
	sig := hmacSHA256(m.keys.StoredKey, authMsg)
	if len(cf.proof) != len(sig) {
		return nil, true, fmt.Errorf("%w: SCRAM proof of the wrong length", ErrAuthFailed)
	}
	clientKey := make([]byte, len(sig))
	for i := range sig {
		clientKey[i] = cf.proof[i] ^ sig[i]
	}
	stored := sha256.Sum256(clientKey)
	if subtle.ConstantTimeCompare(stored[:], m.keys.StoredKey) != 1 || !m.known {
		return nil, true, fmt.Errorf("%w: SCRAM proof does not match", ErrAuthFailed)
	}
	m.serverSig = hmacSHA256(m.keys.ServerKey, authMsg)
	return []byte("v=" + base64.StdEncoding.EncodeToString(m.serverSig)), false, nil
}

func hmacSHA256(key []byte, msg string) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(msg))
	return h.Sum(nil)
}

// clientFirst is a parsed client-first-message (RFC 5802 section 7).
type clientFirst struct {
	gs2Header string // "n,," "y,," "p=tls-exporter,," with authzid
	cbFlag    byte   // 'n', 'y' or 'p'
	cbName    string // with 'p'
	authzid   string
	user      string // saslname decoded
	nonce     string
	bare      string // client-first-message-bare
}

// parseClientFirst reads gs2-header client-first-message-bare.
func parseClientFirst(b []byte) (clientFirst, error) {
	var cf clientFirst
	if len(b) > 2*maxSCRAMName+maxSCRAMNonce+64 {
		return cf, errors.New("client-first-message too long")
	}
	s := string(b)
	if !isPrintable(s) {
		return cf, errors.New("client-first-message has control characters")
	}
	flag, rest, ok := strings.Cut(s, ",")
	if !ok {
		return cf, errors.New("no GS2 header")
	}
	switch {
	case flag == "n" || flag == "y":
		cf.cbFlag = flag[0]
	case strings.HasPrefix(flag, "p="):
		cf.cbFlag, cf.cbName = 'p', flag[2:]
		if cf.cbName == "" || strings.Trim(cf.cbName, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-") != "" {
			return cf, errors.New("bad channel binding name")
		}
	default:
		return cf, errors.New("bad channel binding flag")
	}
	authz, bare, ok := strings.Cut(rest, ",")
	if !ok {
		return cf, errors.New("no authorization identity field")
	}
	if authz != "" {
		v, ok := strings.CutPrefix(authz, "a=")
		if !ok {
			return cf, errors.New("bad authorization identity field")
		}
		name, err := decodeSASLName(v)
		if err != nil {
			return cf, err
		}
		cf.authzid = name
	}
	cf.gs2Header = flag + "," + authz + ","
	cf.bare = bare
	f := strings.Split(bare, ",")
	if len(f) < 2 {
		return cf, errors.New("client-first-message-bare too short")
	}
	if strings.HasPrefix(f[0], "m=") {
		return cf, errors.New("mandatory extension not supported")
	}
	v, ok := strings.CutPrefix(f[0], "n=")
	if !ok {
		return cf, errors.New("no user name")
	}
	name, err := decodeSASLName(v)
	if err != nil {
		return cf, err
	}
	if name == "" || len(name) > maxSCRAMName {
		return cf, errors.New("bad user name length")
	}
	cf.user = name
	n, ok := strings.CutPrefix(f[1], "r=")
	if !ok || n == "" || len(n) > maxSCRAMNonce || strings.ContainsRune(n, ',') {
		return cf, errors.New("bad client nonce")
	}
	cf.nonce = n
	for _, ext := range f[2:] {
		if len(ext) < 2 || ext[1] != '=' {
			return cf, errors.New("bad extension")
		}
	}
	return cf, nil
}

// clientFinal is a parsed client-final-message.
type clientFinal struct {
	cbind        []byte // c= decoded
	nonce        string
	proof        []byte
	withoutProof string // client-final-message-without-proof
}

// parseClientFinal reads channel-binding "," nonce ["," extensions] "," proof.
func parseClientFinal(b []byte) (clientFinal, error) {
	var cf clientFinal
	if len(b) > 4096 {
		return cf, errors.New("client-final-message too long")
	}
	s := string(b)
	if !isPrintable(s) {
		return cf, errors.New("client-final-message has control characters")
	}
	i := strings.LastIndex(s, ",p=")
	if i < 0 {
		return cf, errors.New("no proof")
	}
	cf.withoutProof = s[:i]
	proof, err := base64.StdEncoding.DecodeString(s[i+3:])
	if err != nil {
		return cf, errors.New("proof is not base64")
	}
	cf.proof = proof
	f := strings.Split(cf.withoutProof, ",")
	if len(f) < 2 {
		return cf, errors.New("client-final-message too short")
	}
	c, ok := strings.CutPrefix(f[0], "c=")
	if !ok {
		return cf, errors.New("no channel binding")
	}
	if cf.cbind, err = base64.StdEncoding.DecodeString(c); err != nil {
		return cf, errors.New("channel binding is not base64")
	}
	if cf.nonce, ok = strings.CutPrefix(f[1], "r="); !ok || cf.nonce == "" {
		return cf, errors.New("no nonce")
	}
	for _, ext := range f[2:] {
		if len(ext) < 2 || ext[1] != '=' {
			return cf, errors.New("bad extension")
		}
	}
	return cf, nil
}

// decodeSASLName undoes RFC 5802's saslname escaping: "=2C" is ",", "=3D"
// is "="; any other "=" is an error.
func decodeSASLName(s string) (string, error) {
	if !strings.Contains(s, "=") {
		return s, nil
	}
	var b bytes.Buffer
	for i := 0; i < len(s); i++ {
		if s[i] != '=' {
			b.WriteByte(s[i])
			continue
		}
		switch {
		case strings.HasPrefix(s[i:], "=2C"):
			b.WriteByte(',')
		case strings.HasPrefix(s[i:], "=3D"):
			b.WriteByte('=')
		default:
			return "", errors.New("bad escape in a SCRAM name")
		}
		i += 2
	}
	return b.String(), nil
}

// isPrintable: no control characters (UTF-8 allowed).
func isPrintable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			return false
		}
	}
	return true
}
