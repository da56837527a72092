// Package ntlm is the server side of NTLM authentication for POP3: the
// AUTH NTLM exchange of [MS-POP3] ("NTLM Authentication Protocol: POP3
// Extension") over the messages of [MS-NLMP]:
//
//	C: AUTH NTLM
//	S: +
//	C: <base64 NEGOTIATE_MESSAGE>
//	S: + <base64 CHALLENGE_MESSAGE>
//	C: <base64 AUTHENTICATE_MESSAGE>
//	S: +OK / -ERR
//
// or, with an initial response (RFC 5034 §4), AUTH NTLM <base64
// NEGOTIATE_MESSAGE> directly. The session does the base64 and the
// replies; this package is the auth.Mechanism.
//
// NTLMv2 ([MS-NLMP] §3.3.2) is verified against the NT hash that the
// password file keeps encrypted (store.SecretNTHash). NTLMv1, the NTLM2
// session response (§3.3.1 with extended session security) and a bare
// LMv2 response are accepted only with Options.AllowV1 (the setting
// auth.allow_ntlmv1); LMv1 never is, since the LM hash is not kept.
//
// Login names: the user field "mailbox@domain" names the mailbox directly;
// otherwise the user field is the mailbox and the domain field its domain
// when that domain is served here, else the default domain. The strings
// that enter NTOWFv2 are the ones the client wrote, as the specification
// says. An unknown mailbox fails exactly as a wrong password does, after
// the same computation against a random hash.
//
// No session security (signing, sealing) is negotiated: POP3 does not use
// it. A MIC sent by the client (§3.2.5.1.2) is verified.
package ntlm

import (
	"context"
	"crypto/hmac"
	"crypto/md5"
	"crypto/rand"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/pop3svc/pop3svc/session/auth"
	"github.com/pop3svc/pop3svc/store"
)

// Store is what the mechanism needs of the store: the NT hash of a
// mailbox and whether a domain is served. store.Store satisfies it.
type Store interface {
	Secret(ctx context.Context, addr store.Address, kind store.SecretKind) ([]byte, error)
	Domain(ctx context.Context, name string) (store.DomainInfo, error)
}

// Options configure the mechanism.
type Options struct {
	Store         Store
	DefaultDomain string // domain of bare user names; "" for none
	// AllowV1 accepts NTLMv1, NTLM2 session and bare LMv2 responses
	// (auth.allow_ntlmv1). Off: NTLMv2 only.
	AllowV1 bool
	// NetBIOSDomain is the target name and MsvAvNbDomainName; default "POP3".
	NetBIOSDomain string
	// NetBIOSComputer is MsvAvNbComputerName; default the upper-cased first
	// label of DNSComputer.
	NetBIOSComputer string
	// DNSComputer is MsvAvDnsComputerName; default "localhost".
	DNSComputer string
	// Now and Rand are the clock and the randomness; nil: the system's.
	Now  func() time.Time
	Rand io.Reader
}

// Mechanism name for AUTH.
const Name = "NTLM"

// State of an exchange.
const (
	stateStart = iota
	stateNegotiate
	stateAuthenticate
	stateDone
)

// Server is one NTLM exchange. It implements auth.Mechanism.
type Server struct {
	opt       Options
	state     int
	negotiate []byte // raw messages, kept for the MIC
	challenge []byte
	serverCh  [8]byte
	flags     uint32 // flags sent in the CHALLENGE_MESSAGE
	addr      store.Address
}

var _ auth.Mechanism = (*Server)(nil)

// New returns a new exchange.
func New(opt Options) *Server {
	if opt.NetBIOSDomain == "" {
		opt.NetBIOSDomain = "POP3"
	}
	if opt.DNSComputer == "" {
		opt.DNSComputer = "localhost"
	}
	if opt.NetBIOSComputer == "" {
		first, _, _ := strings.Cut(opt.DNSComputer, ".")
		opt.NetBIOSComputer = strings.ToUpper(first)
		if len(opt.NetBIOSComputer) > 15 { // NetBIOS names have 15 characters
			opt.NetBIOSComputer = opt.NetBIOSComputer[:15]
		}
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Rand == nil {
		opt.Rand = rand.Reader
	}
	return &Server{opt: opt}
}

// Factory returns a constructor of exchanges, the form the session's
// mechanism table takes.
func Factory(opt Options) func() auth.Mechanism {
	return func() auth.Mechanism { return New(opt) }
}

// Address is the authenticated mailbox after a successful exchange.
func (s *Server) Address() store.Address { return s.addr }

func fail(format string, args ...any) error {
	return fmt.Errorf("%w: ntlm: %s", auth.ErrAuthFailed, fmt.Sprintf(format, args...))
}

// Next implements auth.Mechanism.
func (s *Server) Next(ctx context.Context, response []byte) ([]byte, bool, error) {
	switch s.state {
	case stateStart:
		if len(response) == 0 {
			// [MS-POP3] §2.2: the server answers AUTH NTLM with an empty "+".
			s.state = stateNegotiate
			return []byte{}, false, nil
		}
		return s.onNegotiate(response)
	case stateNegotiate:
		return s.onNegotiate(response)
	case stateAuthenticate:
		s.state = stateDone
		err := s.onAuthenticate(ctx, response)
		return nil, true, err
	}
	return nil, true, fail("exchange already over")
}

func (s *Server) onNegotiate(msg []byte) ([]byte, bool, error) {
	s.state = stateDone
	neg, err := ParseNegotiate(msg)
	if err != nil {
		return nil, true, fmt.Errorf("%w: %w", auth.ErrAuthFailed, err)
	}
	if _, err := io.ReadFull(s.opt.Rand, s.serverCh[:]); err != nil {
		return nil, true, fmt.Errorf("%w: ntlm: no randomness: %v", auth.ErrUnavailable, err)
	}
	s.negotiate = append([]byte(nil), msg...)
	s.flags = s.negotiateFlags(neg.Flags)
	s.challenge = Challenge{
		Flags:           s.flags,
		ServerChallenge: s.serverCh,
		TargetName:      s.opt.NetBIOSDomain,
		TargetInfo:      s.targetInfo(),
	}.Marshal()
	s.state = stateAuthenticate
	return s.challenge, false, nil
}

// negotiateFlags chooses the CHALLENGE_MESSAGE flags from the client's,
// [MS-NLMP] §3.2.5.1.1.
func (s *Server) negotiateFlags(client uint32) uint32 {
	f := FlagNTLM | FlagTargetInfo | FlagRequestTarget | FlagTargetTypeDomain
	if client&FlagUnicode != 0 {
		f |= FlagUnicode
	} else {
		f |= FlagOEM
	}
	// Extended session security wins over LM_KEY (§2.2.2.5, flag P).
	if client&FlagExtendedSessionSecurity != 0 {
		f |= FlagExtendedSessionSecurity
	}
	f |= client & (FlagAlwaysSign | Flag128 | Flag56 | FlagVersion)
	return f
}

// targetInfo builds the AV_PAIR list of the CHALLENGE_MESSAGE (§2.2.1.2).
func (s *Server) targetInfo() []byte {
	var ts [8]byte
	binary.LittleEndian.PutUint64(ts[:], fileTime(s.opt.Now()))
	return appendAVPairs(nil, []avPair{
		{avNbDomainName, utf16le(s.opt.NetBIOSDomain)},
		{avNbComputerName, utf16le(s.opt.NetBIOSComputer)},
		{avDNSDomainName, utf16le(strings.ToLower(s.opt.NetBIOSDomain))},
		{avDNSComputerName, utf16le(s.opt.DNSComputer)},
		{avTimestamp, ts[:]},
	})
}

// fileTime is a Windows FILETIME: 100 ns ticks since 1601-01-01 UTC.
func fileTime(t time.Time) uint64 {
	const epochDiff = 116444736000000000 // 1601 to 1970 in 100 ns ticks
	return uint64(t.UnixNano()/100) + epochDiff
}

func (s *Server) onAuthenticate(ctx context.Context, msg []byte) error {
	a, err := ParseAuthenticate(msg)
	if err != nil {
		return fmt.Errorf("%w: %w", auth.ErrAuthFailed, err)
	}
	if a.Flags&FlagAnonymous != 0 || (len(a.NTResponse) == 0 && len(a.LMResponse) <= 1) {
		return fail("anonymous logins are not accepted")
	}
	addr, mapped := s.mapUser(ctx, a.User, a.Domain)
	ntHash, err := s.secret(ctx, addr, mapped)
	if err != nil {
		return err
	}
	known := ntHash != nil
	if !known {
		// Unknown mailbox: do the same work against a random hash.
		ntHash = make([]byte, 16)
		_, _ = io.ReadFull(s.opt.Rand, ntHash)
	}
	ok, sessionBaseKey, err := s.verify(a, ntHash)
	if err != nil {
		return err
	}
	if !ok || !known {
		return fail("wrong credentials for %q", a.User)
	}
	if sessionBaseKey != nil && !s.checkMIC(a, msg, sessionBaseKey) {
		return fail("MIC mismatch for %q", a.User)
	}
	s.addr = addr
	return nil
}

// secret returns the NT hash of addr, nil when the mailbox is unknown or
// has no NT hash (both fail like a wrong password).
func (s *Server) secret(ctx context.Context, addr store.Address, mapped bool) ([]byte, error) {
	if !mapped || s.opt.Store == nil {
		return nil, nil
	}
	h, err := s.opt.Store.Secret(ctx, addr, store.SecretNTHash)
	switch {
	case err == nil && len(h) == 16:
		return h, nil
	case err == nil:
		return nil, fmt.Errorf("%w: ntlm: NT hash of %s has %d octets", auth.ErrUnavailable, addr, len(h))
	case errors.Is(err, store.ErrAuthFailed), errors.Is(err, store.ErrNoSecret),
		errors.Is(err, store.ErrNoSuchMailbox), errors.Is(err, store.ErrNoSuchDomain),
		errors.Is(err, store.ErrInvalidName):
		return nil, nil
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return nil, fmt.Errorf("%w: ntlm: %w", auth.ErrUnavailable, err)
	default:
		return nil, fmt.Errorf("%w: ntlm: reading the NT hash of %s: %w", auth.ErrUnavailable, addr, err)
	}
}

// mapUser turns the message's user and domain into a mailbox address.
func (s *Server) mapUser(ctx context.Context, user, domain string) (store.Address, bool) {
	if strings.Contains(user, "@") {
		a, err := store.ParseAddress(user, "")
		return a, err == nil
	}
	if domain != "" && s.opt.Store != nil {
		if d, err := store.CanonicalDomain(domain); err == nil {
			if _, err := s.opt.Store.Domain(ctx, d); err == nil {
				a, err := store.ParseAddress(user+"@"+d, "")
				return a, err == nil
			}
		}
	}
	if s.opt.DefaultDomain == "" {
		return store.Address{}, false
	}
	a, err := store.ParseAddress(user, s.opt.DefaultDomain)
	return a, err == nil
}

// verify checks the client's responses; it returns the session base key
// of an NTLMv2 response (for the MIC), nil for the older variants.
func (s *Server) verify(a Authenticate, ntHash []byte) (bool, []byte, error) {
	sc := s.serverCh[:]
	switch n := len(a.NTResponse); {
	case n >= 16+28:
		// NTLMv2, §3.3.2: NTProofStr = HMAC_MD5(NTOWFv2, ServerChallenge ‖ temp).
		blob := a.NTResponse[16:]
		if blob[0] != 1 || blob[1] != 1 {
			return false, nil, fail("NTLMv2 blob of version %d.%d", blob[0], blob[1])
		}
		key := NTOWFv2(ntHash, a.User, a.Domain)
		proof := hmacMD5(key, sc, blob)
		ok := subtle.ConstantTimeCompare(proof, a.NTResponse[:16]) == 1
		return ok, hmacMD5(key, proof), nil
	case n == 24 && s.opt.AllowV1:
		// NTLM2 session response (§3.3.1, extended session security): the
		// LM field carries the client challenge padded with zeros.
		if a.Flags&FlagExtendedSessionSecurity != 0 && len(a.LMResponse) == 24 && allZero(a.LMResponse[8:]) {
			h := md5.Sum(append(append([]byte{}, sc...), a.LMResponse[:8]...))
			want := DESL(ntHash, h[:8])
			return subtle.ConstantTimeCompare(want, a.NTResponse) == 1, nil, nil
		}
		want := DESL(ntHash, sc) // NTLMv1
		return subtle.ConstantTimeCompare(want, a.NTResponse) == 1, nil, nil
	case n == 0 && s.opt.AllowV1 && len(a.LMResponse) == 24:
		// A bare LMv2 response, §3.3.2.
		key := NTOWFv2(ntHash, a.User, a.Domain)
		want := hmacMD5(key, sc, a.LMResponse[16:])
		return subtle.ConstantTimeCompare(want, a.LMResponse[:16]) == 1, nil, nil
	case n == 24 || n == 0:
		return false, nil, fail("NTLMv1 and LM responses are not accepted (auth.allow_ntlmv1 is off)")
	default:
		return false, nil, fail("NT response of %d octets", n)
	}
}

// checkMIC verifies the AUTHENTICATE_MESSAGE's MIC when the client says
// it sent one (MsvAvFlags bit 0x2 in its NTLMv2 blob), §3.2.5.1.2:
// HMAC_MD5(ExportedSessionKey, NEGOTIATE ‖ CHALLENGE ‖ AUTHENTICATE with
// the MIC zeroed).
func (s *Server) checkMIC(a Authenticate, msg, sessionBaseKey []byte) bool {
	pairs, err := parseAVPairs(a.NTResponse[16+28:])
	if err != nil {
		return false
	}
	hasMIC := false
	for _, p := range pairs {
		if p.id == avFlags && len(p.value) == 4 && binary.LittleEndian.Uint32(p.value)&avFlagMIC != 0 {
			hasMIC = true
		}
	}
	if !hasMIC {
		return true
	}
	if a.MICOffset == 0 {
		return false
	}
	// For NTLMv2 KeyExchangeKey is the session base key (§3.4.5.1).
	exported := sessionBaseKey
	if a.Flags&FlagKeyExch != 0 {
		if len(a.SessionKey) != 16 {
			return false
		}
		exported = rc4Crypt(sessionBaseKey, a.SessionKey)
	}
	zeroed := append([]byte(nil), msg...)
	clear(zeroed[a.MICOffset : a.MICOffset+16])
	m := hmac.New(md5.New, exported)
	m.Write(s.negotiate)
	m.Write(s.challenge)
	m.Write(zeroed)
	return hmac.Equal(m.Sum(nil), msg[a.MICOffset:a.MICOffset+16])
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
