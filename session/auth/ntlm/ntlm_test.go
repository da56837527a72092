package ntlm

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/pop3svc/pop3svc/session/auth"
	"github.com/pop3svc/pop3svc/store"
)

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The values of [MS-NLMP] §4.2.1 (common values), §4.2.2 (NTLMv1),
// §4.2.3 (NTLMv1 with extended session security) and §4.2.4 (NTLMv2).
const (
	specServerChallenge = "0123456789abcdef"
	specClientChallenge = "aaaaaaaaaaaaaaaa"
	specNTHash          = "a4f49c406510bdcab6824ee7c30fd852"                                          // §4.2.2.1.2 NTOWFv1("Password")
	specNTLMv1Response  = "67c43011f30298a2ad35ece64f16331c44bdbed927841f94"                          // §4.2.2.2.1
	specNTLM2Session    = "7537f803ae367128ca458204bde7caf81e97ed2683267232"                          // §4.2.3.2.2
	specNTOWFv2         = "0c868a403bfd7a93a3001ef22ef02e3f"                                          // §4.2.4.1.1
	specLMv2Response    = "86c35097ac9cec102554764a57cccc19aaaaaaaaaaaaaaaa"                          // §4.2.4.2.1
	specNTProofStr      = "68cd0ab851e51c96aabc927bebef6a1c"                                          // §4.2.4.2.2
	specSessionBaseKey  = "8de40ccadbc14a82f15cb0ad0de95ca3"                                          // §4.2.4.1.2
	specTargetInfo      = "02000c0044006f006d00610069006e0001000c00530065007200760065007200 00000000" // §4.2.4.1.3 (ends MsvAvEOL)
)

// specAuthenticate is the AUTHENTICATE_MESSAGE of [MS-NLMP] §4.2.4.3.
const specAuthenticate = `
4e544c4d53535000 03000000 18001800 6c000000 54005400 84000000 0c000c00 48000000
08000800 54000000 10001000 5c000000 10001000 d8000000 358288e2 0501280a 0000000f
44006f006d00610069006e00 5500730065007200 43004f004d0050005500540045005200
86c35097ac9cec102554764a57cccc19 aaaaaaaaaaaaaaaa
68cd0ab851e51c96aabc927bebef6a1c 0101000000000000 0000000000000000 aaaaaaaaaaaaaaaa 00000000
02000c0044006f006d00610069006e00 01000c00530065007200760065007200 00000000 00000000
c5dad2544fc9799094ce1ce90bc9d03e`

func TestSpecCrypto(t *testing.T) {
	nt := NTHash("Password")
	if got := hex.EncodeToString(nt); got != specNTHash {
		t.Errorf("NTHash(Password) = %s, want %s", got, specNTHash)
	}
	sc := unhex(t, specServerChallenge)
	if got := hex.EncodeToString(DESL(nt, sc)); got != specNTLMv1Response {
		t.Errorf("NTLMv1 response = %s, want %s", got, specNTLMv1Response)
	}
	key := NTOWFv2(nt, "User", "Domain")
	if got := hex.EncodeToString(key); got != specNTOWFv2 {
		t.Errorf("NTOWFv2 = %s, want %s", got, specNTOWFv2)
	}
	cc := unhex(t, specClientChallenge)
	if got := hex.EncodeToString(append(hmacMD5(key, sc, cc), cc...)); got != specLMv2Response {
		t.Errorf("LMv2 response = %s, want %s", got, specLMv2Response)
	}
	temp := unhex(t, "0101000000000000 0000000000000000"+specClientChallenge+"00000000"+specTargetInfo+"00000000")
	proof := hmacMD5(key, sc, temp)
	if got := hex.EncodeToString(proof); got != specNTProofStr {
		t.Errorf("NTProofStr = %s, want %s", got, specNTProofStr)
	}
	if got := hex.EncodeToString(hmacMD5(key, proof)); got != specSessionBaseKey {
		t.Errorf("SessionBaseKey = %s, want %s", got, specSessionBaseKey)
	}
}

// fixedRand returns the spec's server challenge, then zeros.
func fixedRand(t *testing.T) *bytes.Reader {
	return bytes.NewReader(append(unhex(t, specServerChallenge), make([]byte, 64)...))
}

func specStore(t *testing.T) *memStore {
	return &memStore{
		hashes:  map[string][]byte{"user@domain": unhex(t, specNTHash)},
		domains: map[string]bool{"domain": true},
	}
}

// start runs the first two steps and returns the CHALLENGE_MESSAGE.
func start(t *testing.T, s *Server, negFlags uint32) []byte {
	t.Helper()
	c, done, err := s.Next(context.Background(), nil)
	if err != nil || done || len(c) != 0 {
		t.Fatalf("Next(nil) = %q, %v, %v; want an empty challenge", c, done, err)
	}
	c, done, err = s.Next(context.Background(), clientNegotiate(negFlags))
	if err != nil || done {
		t.Fatalf("Next(NEGOTIATE) = %v, %v", done, err)
	}
	return c
}

func TestSpecAuthenticateMessage(t *testing.T) {
	s := New(Options{Store: specStore(t), Rand: fixedRand(t)})
	start(t, s, 0xe2088297)
	_, done, err := s.Next(context.Background(), unhex(t, specAuthenticate))
	if !done || err != nil {
		t.Fatalf("spec AUTHENTICATE_MESSAGE: done=%v err=%v", done, err)
	}
	if got := s.Address(); got != (store.Address{Mailbox: "user", Domain: "domain"}) {
		t.Fatalf("Address() = %v, want user@domain", got)
	}

	// The same message with another password fails.
	st := specStore(t)
	st.hashes["user@domain"] = NTHash("password")
	s = New(Options{Store: st, Rand: fixedRand(t)})
	start(t, s, 0xe2088297)
	if _, done, err := s.Next(context.Background(), unhex(t, specAuthenticate)); !done || !errors.Is(err, auth.ErrAuthFailed) {
		t.Fatalf("wrong password: done=%v err=%v, want ErrAuthFailed", done, err)
	}
}

func TestChallengeMessage(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	s := New(Options{Store: specStore(t), Rand: fixedRand(t), NetBIOSDomain: "MAIL", DNSComputer: "pop.example.com", Now: func() time.Time { return now }})
	msg := start(t, s, FlagUnicode|FlagNTLM|FlagExtendedSessionSecurity|FlagRequestTarget|FlagSign|FlagSeal|FlagKeyExch|FlagVersion)
	ch := clientParseChallenge(t, msg)
	want := FlagUnicode | FlagNTLM | FlagExtendedSessionSecurity | FlagRequestTarget | FlagTargetInfo | FlagTargetTypeDomain | FlagVersion
	if ch.flags != want {
		t.Errorf("flags %#x, want %#x", ch.flags, want)
	}
	if hex.EncodeToString(ch.challenge) != specServerChallenge {
		t.Errorf("server challenge %x", ch.challenge)
	}
	if !bytes.Equal(ch.targetName, utf16le("MAIL")) {
		t.Errorf("target name %x", ch.targetName)
	}
	pairs, err := parseAVPairs(ch.targetInfo)
	if err != nil {
		t.Fatal(err)
	}
	got := map[uint16][]byte{}
	for _, p := range pairs {
		got[p.id] = p.value
	}
	for id, v := range map[uint16][]byte{
		avNbDomainName:    utf16le("MAIL"),
		avNbComputerName:  utf16le("POP"),
		avDNSComputerName: utf16le("pop.example.com"),
	} {
		if !bytes.Equal(got[id], v) {
			t.Errorf("AV pair %d = %x, want %x", id, got[id], v)
		}
	}
	if ts := got[avTimestamp]; len(ts) != 8 || fileTime(now) != uint64(ts[0])|uint64(ts[1])<<8|uint64(ts[2])<<16|uint64(ts[3])<<24|uint64(ts[4])<<32|uint64(ts[5])<<40|uint64(ts[6])<<48|uint64(ts[7])<<56 {
		t.Errorf("timestamp %x", ts)
	}

	// An OEM-only client gets OEM.
	s = New(Options{Rand: fixedRand(t)})
	ch = clientParseChallenge(t, start(t, s, FlagOEM|FlagNTLM))
	if ch.flags&FlagUnicode != 0 || ch.flags&FlagOEM == 0 || string(ch.targetName) != "POP3" {
		t.Errorf("OEM client: flags %#x, target %q", ch.flags, ch.targetName)
	}
}

func TestExchange(t *testing.T) {
	pw := NTHash("Secret-1")
	st := &memStore{
		hashes: map[string][]byte{
			"alice@example.com": pw,
			"bob@example.org":   pw,
			"carol@example.com": nil, // no password-file credentials
		},
		domains: map[string]bool{"example.com": true, "example.org": true},
	}
	base := Options{Store: st, DefaultDomain: "example.com"}
	ok := store.Address{Mailbox: "alice", Domain: "example.com"}
	for _, c := range []struct {
		name    string
		opt     Options
		neg     uint32
		auth    authOpts
		want    store.Address
		wantErr error
	}{
		{"v2 user@domain", base, FlagUnicode | FlagNTLM, authOpts{user: "alice@example.com", ntHash: pw}, ok, nil},
		{"v2 user + served domain", base, FlagUnicode | FlagNTLM, authOpts{user: "bob", domain: "EXAMPLE.ORG", ntHash: pw}, store.Address{Mailbox: "bob", Domain: "example.org"}, nil},
		{"v2 user + unserved domain -> default", base, FlagUnicode | FlagNTLM, authOpts{user: "Alice", domain: "WORKGROUP", ntHash: pw}, ok, nil},
		{"v2 OEM strings", base, FlagOEM | FlagNTLM, authOpts{user: "alice", ntHash: pw, oem: true}, ok, nil},
		{"v2 with MIC", base, FlagUnicode | FlagNTLM | FlagVersion, authOpts{user: "alice", ntHash: pw, mic: true}, ok, nil},
		{"v2 bad MIC", base, FlagUnicode | FlagNTLM, authOpts{user: "alice", ntHash: pw, mic: true, corruptMIC: true}, store.Address{}, auth.ErrAuthFailed},
		{"v2 wrong password", base, FlagUnicode | FlagNTLM, authOpts{user: "alice", ntHash: NTHash("wrong"), timestamp: 1}, store.Address{}, auth.ErrAuthFailed},
		{"v2 unknown user", base, FlagUnicode | FlagNTLM, authOpts{user: "nobody", ntHash: pw}, store.Address{}, auth.ErrAuthFailed},
		{"v2 no secret", base, FlagUnicode | FlagNTLM, authOpts{user: "carol", ntHash: pw}, store.Address{}, auth.ErrAuthFailed},
		{"v2 bad name", base, FlagUnicode | FlagNTLM, authOpts{user: "a/b", ntHash: pw}, store.Address{}, auth.ErrAuthFailed},
		{"v2 no default domain", Options{Store: st}, FlagUnicode | FlagNTLM, authOpts{user: "alice", ntHash: pw}, store.Address{}, auth.ErrAuthFailed},
		{"v1 refused by default", base, FlagUnicode | FlagNTLM, authOpts{user: "alice", ntHash: pw, v1: true}, store.Address{}, auth.ErrAuthFailed},
		{"v1 allowed", withV1(base), FlagUnicode | FlagNTLM, authOpts{user: "alice", ntHash: pw, v1: true}, ok, nil},
		{"v1 wrong password", withV1(base), FlagUnicode | FlagNTLM, authOpts{user: "alice", ntHash: NTHash("x"), v1: true}, store.Address{}, auth.ErrAuthFailed},
		{"ntlm2 session refused by default", base, FlagUnicode | FlagNTLM | FlagExtendedSessionSecurity, authOpts{user: "alice", ntHash: pw, v1: true, ess: true}, store.Address{}, auth.ErrAuthFailed},
		{"ntlm2 session allowed", withV1(base), FlagUnicode | FlagNTLM | FlagExtendedSessionSecurity, authOpts{user: "alice", ntHash: pw, v1: true, ess: true}, ok, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := New(c.opt)
			negotiate := clientNegotiate(c.neg)
			if _, _, err := s.Next(context.Background(), nil); err != nil {
				t.Fatal(err)
			}
			chMsg, done, err := s.Next(context.Background(), negotiate)
			if err != nil || done {
				t.Fatalf("NEGOTIATE: %v %v", done, err)
			}
			a := c.auth
			a.negotiate, a.challengeMsg = negotiate, chMsg
			msg := clientAuthenticate(clientParseChallenge(t, chMsg), a)
			_, done, err = s.Next(context.Background(), msg)
			if !done {
				t.Fatal("not done after AUTHENTICATE")
			}
			if c.wantErr == nil && err != nil || c.wantErr != nil && !errors.Is(err, c.wantErr) {
				t.Fatalf("err = %v, want %v", err, c.wantErr)
			}
			if err == nil && s.Address() != c.want {
				t.Fatalf("Address() = %v, want %v", s.Address(), c.want)
			}
			if err != nil && s.Address() != (store.Address{}) {
				t.Fatalf("Address() = %v after a failure", s.Address())
			}
		})
	}
}

func withV1(o Options) Options { o.AllowV1 = true; return o }

func TestInitialResponseAndStoreDown(t *testing.T) {
	pw := NTHash("pw")
	st := &memStore{hashes: map[string][]byte{"alice@example.com": pw}, domains: map[string]bool{"example.com": true}}
	s := New(Options{Store: st})
	neg := clientNegotiate(FlagUnicode | FlagNTLM)
	chMsg, done, err := s.Next(context.Background(), neg) // AUTH NTLM <initial response>
	if err != nil || done {
		t.Fatalf("initial NEGOTIATE: %v %v", done, err)
	}
	msg := clientAuthenticate(clientParseChallenge(t, chMsg), authOpts{user: "alice@example.com", ntHash: pw})
	if _, done, err := s.Next(context.Background(), msg); !done || err != nil {
		t.Fatalf("AUTHENTICATE: %v %v", done, err)
	}
	if _, done, err := s.Next(context.Background(), msg); !done || !errors.Is(err, auth.ErrAuthFailed) {
		t.Fatalf("Next after the end: %v %v", done, err)
	}

	st.err = errors.New("disk on fire")
	s = New(Options{Store: st})
	chMsg, _, _ = s.Next(context.Background(), neg)
	msg = clientAuthenticate(clientParseChallenge(t, chMsg), authOpts{user: "alice@example.com", ntHash: pw})
	if _, done, err := s.Next(context.Background(), msg); !done || !errors.Is(err, auth.ErrUnavailable) || errors.Is(err, auth.ErrAuthFailed) {
		t.Fatalf("store down: %v %v, want ErrUnavailable only", done, err)
	}
}

func TestMalformed(t *testing.T) {
	good := unhex(t, specAuthenticate)
	bad := map[string][]byte{
		"empty":          {},
		"short":          []byte("NTLMSSP\x00\x03\x00"),
		"no signature":   append([]byte("XTLMSSP\x00"), good[8:]...),
		"wrong type":     append(append([]byte{}, good[:8]...), append([]byte{2, 0, 0, 0}, good[12:]...)...),
		"header only":    good[:40],
		"offset outside": patch(good, 16, 0xff, 0xff, 0, 0),
		"length outside": patch(good, 20, 0xff, 0x0f),
		"odd unicode":    patch(good, 36, 7, 0),
		"huge":           append(append([]byte{}, good...), make([]byte, MaxMessage)...),
		"short v2 blob":  patch(good, 20, 30, 0),
		"bad blob ver":   patch(good, 132+16, 2),
	}
	for name, msg := range bad {
		s := New(Options{Store: specStore(t), Rand: fixedRand(t)})
		start(t, s, FlagUnicode|FlagNTLM)
		_, done, err := s.Next(context.Background(), msg)
		if !done || !errors.Is(err, auth.ErrAuthFailed) {
			t.Errorf("%s: done=%v err=%v, want ErrAuthFailed", name, done, err)
		}
	}
	for name, msg := range map[string][]byte{
		"negotiate empty":  {},
		"negotiate type 3": good,
		"negotiate short":  []byte("NTLMSSP\x00\x01\x00\x00\x00"),
		"negotiate field":  patch(clientNegotiate(1), 16, 4, 0, 4, 0, 0xff, 0, 0, 0),
	} {
		s := New(Options{})
		s.Next(context.Background(), nil)
		if _, done, err := s.Next(context.Background(), msg); !done || !errors.Is(err, auth.ErrAuthFailed) {
			t.Errorf("%s: done=%v err=%v, want ErrAuthFailed", name, done, err)
		}
	}
}

func patch(b []byte, at int, v ...byte) []byte {
	c := append([]byte{}, b...)
	copy(c[at:], v)
	return c
}

// FuzzAuthenticate feeds arbitrary AUTHENTICATE_MESSAGEs (and the same
// bytes as NEGOTIATE_MESSAGE and AV_PAIR list): no panic, and never a
// success.
func FuzzAuthenticate(f *testing.F) {
	spec, _ := hex.DecodeString(strings.Join(strings.Fields(specAuthenticate), ""))
	f.Add(spec)
	f.Add(clientNegotiate(0xe2088297))
	f.Add([]byte("NTLMSSP\x00\x03\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, msg []byte) {
		ParseNegotiate(msg)
		parseAVPairs(msg)
		st := &memStore{hashes: map[string][]byte{"user@domain": NTHash("Password")}, domains: map[string]bool{"domain": true}}
		s := New(Options{Store: st, AllowV1: len(msg)%2 == 0, DefaultDomain: "domain"})
		s.Next(context.Background(), nil)
		s.Next(context.Background(), clientNegotiate(0xe2088297))
		_, done, err := s.Next(context.Background(), msg)
		if !done || err == nil {
			t.Fatalf("a random AUTHENTICATE_MESSAGE succeeded: done=%v err=%v", done, err)
		}
	})
}
